//! `--adopt-site` (Discord `adopt_site`): take over a site that exists already (in the platform
//! repo, on the VPS, or on record for another slug) for the Provider being onboarded. Without
//! it preflight refuses such a domain. The plan names the site and what is there now, a person
//! approves it like any production write, and the apply records the adoption in the bot's
//! records; the later steps then redeploy the site, issue its certificate with this Provider's
//! email and release it.

use async_trait::async_trait;

use super::common::onboard;
use super::ownership::{self, Claim, Findings};
use super::{ApprovedPlan, CheckReport, Plan, Step, StepContext, StepError, StepName};
use crate::domain::DomainName;
use crate::messages;
use crate::state::sites::{self, NewSite, SiteRecord};

pub struct AdoptSite;

/// What to do for each domain of the run.
enum Todo {
    /// On record for this slug already (adopted earlier in this run, or created by it).
    Ours(SiteRecord),
    /// Not served and not on record: there is nothing to adopt; deploy-config creates it.
    Nothing(Findings),
    /// Served or another slug's: adopt it.
    Adopt(Findings, Option<SiteRecord>),
}

async fn todo(cx: &StepContext) -> Result<Vec<(DomainName, Todo)>, StepError> {
    let req = onboard(cx)?;
    let mut out = Vec::new();
    for domain in &req.domains {
        let record = ownership::record(cx, domain).await?;
        if let Some(r) = record.as_ref().filter(|r| r.slug == req.slug.as_str()) {
            out.push((domain.clone(), Todo::Ours(r.clone())));
            continue;
        }
        let findings = ownership::survey(cx, domain).await?;
        let t = match ownership::claim(&req.slug, record.as_ref(), &findings) {
            Claim::Ours(r) => Todo::Ours(r),
            Claim::Free => Todo::Nothing(findings),
            Claim::Taken => Todo::Adopt(findings, record),
        };
        out.push((domain.clone(), t));
    }
    Ok(out)
}

#[async_trait]
impl Step for AdoptSite {
    fn id(&self) -> StepName {
        StepName::AdoptSite
    }

    fn description(&self) -> &'static str {
        "Deploy config, asked for with --adopt-site: take over the existing site of the domain for this Provider (recorded in the bot's records)"
    }

    fn writes_production(&self) -> bool {
        true
    }

    async fn plan(&self, cx: &StepContext) -> Result<Plan, StepError> {
        let req = onboard(cx)?;
        let mut evidence = Vec::new();
        let mut adopt = Vec::new();
        for (domain, t) in todo(cx).await? {
            match t {
                Todo::Ours(r) => {
                    evidence.push(format!("{domain}: {}", messages::site_owner(Some(&r))))
                }
                Todo::Nothing(f) => evidence.push(format!(
                    "{domain}: nothing to adopt (no site directory in the repo, nginx site or certificate on {}, and not on record); deploy-config creates the site",
                    f.vps
                )),
                Todo::Adopt(f, record) => {
                    adopt.push(domain);
                    evidence.push(messages::site_adoption(&f, record.as_ref()));
                }
            }
        }
        if adopt.is_empty() {
            return Ok(Plan::AlreadyDone {
                evidence: evidence.join("\n"),
            });
        }
        let names: Vec<&str> = adopt.iter().map(DomainName::as_str).collect();
        evidence.push(format!(
            "\nOn approval, the bot records {} as `{}`'s site(s) (adopted); the later steps then redeploy, certify (certbot -m {}) and release it as theirs.",
            names.join(", "),
            req.slug,
            req.email
        ));
        Ok(Plan::Change {
            summary: format!(
                "adopt the existing site of {} for `{}`",
                names.join(", "),
                req.slug
            ),
            detail: evidence.join("\n"),
        })
    }

    async fn apply(&self, cx: &StepContext, _plan: &ApprovedPlan) -> Result<(), StepError> {
        let req = onboard(cx)?;
        let pool = cx.state_db()?;
        for (domain, t) in todo(cx).await? {
            if let Todo::Adopt(..) = t {
                let r = sites::record_adopted(
                    pool,
                    &NewSite {
                        domain: domain.as_str(),
                        slug: req.slug.as_str(),
                        vps: cx.vps()?.name.as_str(),
                        run_id: cx.run_id,
                    },
                )
                .await?;
                cx.log(&format!("{domain}: {}", messages::site_owner(Some(&r))));
            }
        }
        Ok(())
    }

    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError> {
        let req = onboard(cx)?;
        let mut evidence = Vec::new();
        for domain in &req.domains {
            match ownership::record(cx, domain).await? {
                Some(r) if r.slug == req.slug.as_str() => {
                    evidence.push(format!("{domain}: {}", messages::site_owner(Some(&r))))
                }
                // Nothing was there to adopt: deploy-config creates (and records) the site.
                None if ownership::survey(cx, domain).await?.is_empty() => {
                    evidence.push(format!("{domain}: nothing to adopt"))
                }
                other => {
                    return Ok(CheckReport::failed(format!(
                        "{domain}: {}",
                        messages::site_owner(other.as_ref())
                    )));
                }
            }
        }
        Ok(CheckReport::ok(evidence.join("; ")))
    }
}
