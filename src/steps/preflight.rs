//! Runbook "Inputs": the slug is free across people and orgs, not reserved, the org to join
//! exists, the tenant database is the authoritative primary, and no domain is another
//! tenant's site. Read-only.

use async_trait::async_trait;

use super::common::onboard;
use super::ownership::{self, Claim};
use super::{ApprovedPlan, CheckReport, Plan, Step, StepContext, StepError, StepName};
use crate::adapters::tenant_db;
use crate::domain::OperatingMode;
use crate::messages;

pub struct Preflight;

impl Preflight {
    /// Every input check, as evidence lines; a refusal for the first that fails.
    async fn checks(cx: &StepContext) -> Result<Vec<String>, StepError> {
        let req = onboard(cx)?;
        let cfg = &cx.services.config;
        let reserved = &cfg.onboarding.reserved_slugs;
        let mut evidence = Vec::new();
        req.slug
            .check_not_reserved("slug", reserved)
            .map_err(|e| StepError::refused(e.to_string()))?;
        if let Some(org) = req.mode.org_slug() {
            org.check_not_reserved("org", reserved)
                .map_err(|e| StepError::refused(e.to_string()))?;
        }
        let pool = cx.services.tenant_db().await?;
        let mut conn = pool.acquire().await?;
        let facts = tenant_db::host_facts(&mut conn).await?;
        evidence.push(format!(
            "tenant DB {} ({}), {}",
            facts.address,
            facts.database,
            if facts.in_recovery {
                "a standby"
            } else {
                "primary"
            }
        ));
        tenant_db::ensure_authoritative(&mut conn, &cfg.tenant_authoritative).await?;
        // Slugs are global across people and orgs: `{slug}.my` must mean one tenant.
        if let Some(org) = tenant_db::find_org(&mut conn, &req.slug).await? {
            return Err(StepError::refused(format!(
                "slug `{}` is already taken by the org {:?} ({})",
                req.slug, org.name, org.id
            )));
        }
        match tenant_db::find_user(&mut conn, &req.slug).await? {
            Some(u) => evidence.push(format!(
                "slug `{}` exists as user {} (create-person compares it)",
                req.slug, u.id
            )),
            None => evidence.push(format!("slug `{}` is free", req.slug)),
        }
        match &req.mode {
            OperatingMode::PersonOnly => {}
            OperatingMode::PersonOwnsOrg { org_slug, .. } => {
                if org_slug == &req.slug {
                    return Err(StepError::refused(
                        "the new org's slug must differ from the person's slug",
                    ));
                }
                if let Some(u) = tenant_db::find_user(&mut conn, org_slug).await? {
                    return Err(StepError::refused(format!(
                        "org slug `{org_slug}` is already taken by the user {}",
                        u.id
                    )));
                }
                match tenant_db::find_org(&mut conn, org_slug).await? {
                    Some(o) => evidence.push(format!(
                        "org `{org_slug}` exists ({}, create-org compares it)",
                        o.id
                    )),
                    None => evidence.push(format!("org slug `{org_slug}` is free")),
                }
            }
            OperatingMode::PersonJoinsOrg { org_slug } => {
                match tenant_db::find_org(&mut conn, org_slug).await? {
                    Some(o) => {
                        evidence.push(format!("org `{org_slug}` exists: {:?} ({})", o.name, o.id))
                    }
                    None => {
                        let known = tenant_db::org_slugs(&mut conn, "", 20).await?;
                        return Err(StepError::refused(format!(
                            "there is no org `{org_slug}` to join; existing orgs: {}",
                            if known.is_empty() {
                                "none".into()
                            } else {
                                known.join(", ")
                            }
                        )));
                    }
                }
            }
        }
        // A site belongs to one tenant: a domain another tenant's site serves (or that the
        // bot's records give to another slug) is refused, unless an adoption was asked for,
        // which adopt-site then puts to a person for approval.
        for domain in &req.domains {
            let record = ownership::record(cx, domain).await?;
            if let Some(r) = record.as_ref().filter(|r| r.slug == req.slug.as_str()) {
                evidence.push(format!("{domain}: {}", messages::site_owner(Some(r))));
                continue;
            }
            let findings = ownership::survey(cx, domain).await?;
            match ownership::claim(&req.slug, record.as_ref(), &findings) {
                Claim::Free => evidence.push(format!(
                    "{domain}: no site serves it (no site directory in the repo, nginx site or certificate on {}) and it is not on record",
                    findings.vps
                )),
                Claim::Ours(r) => {
                    evidence.push(format!("{domain}: {}", messages::site_owner(Some(&r))))
                }
                Claim::Taken if req.adopt_site => evidence.push(format!(
                    "{domain}: adopt-site will ask to {}",
                    messages::site_adoption(&findings, record.as_ref())
                )),
                Claim::Taken => {
                    return Err(StepError::refused(messages::site_taken(
                        req.slug.as_str(),
                        &findings,
                        record.as_ref(),
                    )));
                }
            }
        }
        Ok(evidence)
    }
}

#[async_trait]
impl Step for Preflight {
    fn id(&self) -> StepName {
        StepName::Preflight
    }

    fn description(&self) -> &'static str {
        "Inputs: slug free across people and orgs and not reserved, org to join exists, tenant DB is the authoritative primary, no domain is another tenant's site"
    }

    fn writes_production(&self) -> bool {
        false
    }

    async fn plan(&self, cx: &StepContext) -> Result<Plan, StepError> {
        let evidence = Self::checks(cx).await?;
        Ok(Plan::Change {
            summary: "check the inputs against the tenant database".into(),
            detail: evidence.join("\n"),
        })
    }

    async fn apply(&self, _cx: &StepContext, _plan: &ApprovedPlan) -> Result<(), StepError> {
        Ok(())
    }

    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError> {
        Ok(CheckReport::ok(Self::checks(cx).await?.join("; ")))
    }
}
