//! Runbook "Deploy config": templated, not forked. For each domain, copy the template site,
//! edit services.yaml (domain, feature, aliases, held_back: true), deploy.sh (REMOTE_DEST,
//! REMOTE_NGINX_CONF) and nginx/prod.conf (server_name, root); Org-shaped providers get their
//! brand in org-site.yaml, mailbox domains a line in the brand-mail config. One commit, pushed.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::common::{OnboardRequest, RepoEdits, RepoWrite, Site, onboard};
use super::ownership::{self, Claim};
use super::{CheckReport, StepContext, StepError, StepName};
use crate::adapters::repo::Checkout;
use crate::domain::{DomainName, MailPlan, OperatingMode};
use crate::messages;
use crate::state::sites::{self, NewSite};
use crate::templating;

pub struct DeployConfig;

/// Every file the step wants in the repo, with its content.
fn desired_files(
    cx: &StepContext,
    repo: &Checkout<'_>,
    req: &OnboardRequest,
) -> Result<BTreeMap<String, String>, StepError> {
    let cfg = &cx.services.config;
    // The "don't write a new merche-* feature" guard, again at the write (the edge checks too).
    if req.feature.contains(req.slug.as_str()) || !cfg.onboarding.features.contains(&req.feature) {
        return Err(StepError::refused(format!(
            "feature `{}` is not one of the generic features {}: provider customisation is config, never a new feature",
            req.feature,
            cfg.onboarding.features.join(", ")
        )));
    }
    let template_dir = format!("{}/{}", cfg.deploy.domains_dir, cfg.deploy.template);
    let template_files = repo.list(&template_dir)?;
    if template_files.is_empty() {
        return Err(StepError::refused(format!(
            "the template site {template_dir} is empty or missing in the platform repo"
        )));
    }
    let mut out = BTreeMap::new();
    let vps = cx.vps()?;
    for domain in &req.domains {
        let site = Site::of(cx, domain)?;
        for rel in &template_files {
            let org_shaped = matches!(req.mode, OperatingMode::PersonOwnsOrg { .. });
            if rel == "org-site.yaml" && !org_shaped {
                // The template says: delete it for Person-only providers and joining talent.
                continue;
            }
            let text = repo
                .read(&format!("{template_dir}/{rel}"))?
                .ok_or_else(|| {
                    StepError::Internal(anyhow::anyhow!("template file {rel} vanished"))
                })?;
            let edited = match rel.as_str() {
                "services.yaml" => templating::services_yaml(&text, domain, &req.feature, true),
                "deploy.sh" => templating::deploy_sh(
                    &text,
                    Some(&vps.ssh_host),
                    site.webroot(),
                    site.vps_nginx_site(),
                ),
                "nginx/prod.conf" => {
                    // With IPv6 the AAAA records point at the VPS: the site must listen there.
                    if let Some(v6) = vps.ipv6
                        && !templating::nginx_listens_ipv6(&text, v6)
                    {
                        return Err(StepError::refused(format!(
                            "{template_dir}/{rel} has no `listen [::]:80` (or `listen [{v6}]:80`): {} has the IPv6 address {v6}, where the AAAA records of {domain} point, and nginx would not answer there. Add the listen line to the template",
                            vps.name
                        )));
                    }
                    templating::nginx_conf(&text, domain, site.webroot())
                }
                "org-site.yaml" => match (&req.mode, &req.brand) {
                    (OperatingMode::PersonOwnsOrg { org_name, .. }, Some(brand)) => {
                        templating::org_site_yaml(&text, org_name, brand, "public/logo.svg")
                    }
                    _ => Ok(text),
                },
                _ => Ok(text),
            }
            .map_err(|e| {
                StepError::refused(format!(
                    "editing {} from the template: {e:#}",
                    site.file(rel)
                ))
            })?;
            out.insert(site.file(rel), edited);
        }
        let mode = match req.mail {
            MailPlan::Mailbox => Some("mailbox"),
            MailPlan::Forwarding => Some("forward"),
            MailPlan::None => None,
        };
        if let Some(mode) = mode {
            let file = cfg.deploy.brand_mail_file.clone();
            let current = match out.get(&file) {
                Some(t) => t.clone(),
                None => repo.read(&file)?.unwrap_or_default(),
            };
            let edited =
                templating::brand_mail_conf(&current, domain, mode, &cfg.mail.dkim_selector)
                    .map_err(|e| StepError::refused(format!("{file}: {e:#}")))?;
            out.insert(file, edited);
        }
    }
    Ok(out)
}

/// A site that exists is owned by later steps (certbot's conf sync, held_back flip): it counts
/// as configured when its services.yaml names the domain.
fn site_configured(
    cx: &StepContext,
    repo: &Checkout<'_>,
    domain: &DomainName,
) -> Result<bool, StepError> {
    Ok(match repo.read(&Site::of(cx, domain)?.services_yaml())? {
        Some(text) => serde_norway::from_str::<serde_norway::Value>(&text)
            .ok()
            .and_then(|v| {
                v.get("domain")
                    .and_then(|d| d.as_str())
                    .map(|d| d == domain.as_str())
            })
            .unwrap_or(false),
        None => false,
    })
}

/// The files still to write: desired files of unconfigured sites, plus the brand-mail line.
fn changes(
    cx: &StepContext,
    repo: &Checkout<'_>,
    req: &OnboardRequest,
) -> Result<BTreeMap<String, (Option<String>, String)>, StepError> {
    let desired = desired_files(cx, repo, req)?;
    // Sites already configured (read once, not once per file).
    let mut done_sites = Vec::new();
    for d in &req.domains {
        if site_configured(cx, repo, d)? {
            done_sites.push(format!("{}/", Site::repo_dir(cx, d)));
        }
    }
    let mut out = BTreeMap::new();
    for (path, text) in desired {
        if done_sites
            .iter()
            .any(|site| path.starts_with(site.as_str()))
        {
            continue;
        }
        let current = repo.read(&path)?;
        if current.as_deref() != Some(text.as_str()) {
            out.insert(path, (current, text));
        }
    }
    Ok(out)
}

/// deploy-config writes a site only for its own tenant: one on record for this slug, or one
/// nothing serves yet (returned: the apply records it as created before writing it). A site
/// that is another tenant's is refused here too, not only at preflight: it may have appeared
/// since. From the checkout synced just now.
async fn own_or_new(
    cx: &StepContext,
    repo: &Checkout<'_>,
    req: &OnboardRequest,
) -> Result<Vec<DomainName>, StepError> {
    let mut new = Vec::new();
    for d in &req.domains {
        let record = ownership::record(cx, d).await?;
        if record.as_ref().is_some_and(|r| r.slug == req.slug.as_str()) {
            continue;
        }
        // A dry run wrote nothing: with --adopt-site it plans as if the adoption was approved.
        if cx.dry_run && req.adopt_site {
            continue;
        }
        let findings = ownership::survey_with(cx, d, ownership::repo_sites(cx, repo, d)?).await?;
        match ownership::claim(&req.slug, record.as_ref(), &findings) {
            Claim::Free => new.push(d.clone()),
            Claim::Ours(_) => {}
            Claim::Taken => {
                return Err(StepError::refused(messages::site_taken(
                    req.slug.as_str(),
                    &findings,
                    record.as_ref(),
                )));
            }
        }
    }
    Ok(new)
}

/// For a file of a new site: the template file it is copied from, and its text.
fn template_source(
    cx: &StepContext,
    repo: &Checkout<'_>,
    req: &OnboardRequest,
    path: &str,
) -> Result<Option<(String, String)>, StepError> {
    let deploy = &cx.services.config.deploy;
    for d in &req.domains {
        if let Some(rel) = path.strip_prefix(&format!("{}/", Site::repo_dir(cx, d))) {
            let tpath = format!("{}/{}/{rel}", deploy.domains_dir, deploy.template);
            return Ok(repo.read(&tpath)?.map(|t| (tpath, t)));
        }
    }
    Ok(None)
}

fn domain_list(req: &OnboardRequest) -> String {
    req.domains
        .iter()
        .map(|d| d.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[async_trait]
impl RepoWrite for DeployConfig {
    fn id(&self) -> StepName {
        StepName::DeployConfig
    }

    fn description(&self) -> &'static str {
        "Deploy config: copy _template/{provider}.com, edit services.yaml, deploy.sh, nginx/prod.conf; commit and push"
    }

    async fn edits(&self, cx: &StepContext, repo: &Checkout<'_>) -> Result<RepoEdits, StepError> {
        let req = onboard(cx)?;
        // Another tenant's site is refused before anything is planned over it.
        own_or_new(cx, repo, req).await?;
        let changes = changes(cx, repo, req)?;
        let mut diffs = String::new();
        let mut left = Vec::new();
        for (path, (old, new)) in &changes {
            // A new site file is shown as a copy of its template file plus the edits, so the
            // diff holds only the values that change (runbook: templated, not forked).
            let template = match old {
                None => template_source(cx, repo, req, path)?,
                Some(_) => None,
            };
            if template.is_some() {
                left.extend(templating::placeholders_left(path, new));
            }
            diffs.push_str(&match (&template, old) {
                (Some((tpath, ttext)), _) => templating::copy_diff(tpath, path, ttext, new),
                (None, old) => templating::unified_diff(path, old.as_deref(), new),
            });
        }
        let sites: Vec<String> = req.domains.iter().map(|d| Site::repo_dir(cx, d)).collect();
        Ok(RepoEdits {
            summary: format!(
                "add {} file(s) for {} to the platform repo, commit and push",
                changes.len(),
                domain_list(req)
            ),
            // First, so the approver reads it before the diffs (a long plan is cut to its top).
            diffs: messages::placeholders_left(&left) + &diffs,
            files: changes
                .into_iter()
                .map(|(path, (_, text))| (path, text))
                .collect(),
            removed: Vec::new(),
            done: format!("{} in the repo and pushed", sites.join(", ")),
        })
    }

    /// Recorded before the commit: a run interrupted after pushing is still recognised as the
    /// site's creator when it resumes.
    async fn before_commit(&self, cx: &StepContext, repo: &Checkout<'_>) -> Result<(), StepError> {
        let req = onboard(cx)?;
        for d in own_or_new(cx, repo, req).await? {
            let vps = cx.vps()?.name.as_str();
            let site = NewSite {
                domain: d.as_str(),
                slug: req.slug.as_str(),
                vps,
                run_id: cx.run_id,
            };
            let r = sites::record_created(cx.state_db()?, &site).await?;
            if r.slug != req.slug.as_str() {
                return Err(StepError::refused(format!(
                    "{d}: {}; nothing was changed",
                    messages::site_owner(Some(&r))
                )));
            }
        }
        Ok(())
    }

    fn subject(&self, cx: &StepContext, _files: &[(String, String)]) -> Result<String, StepError> {
        let req = onboard(cx)?;
        Ok(format!(
            "onboard {}: deploy config for {}",
            req.slug,
            domain_list(req)
        ))
    }

    fn note(&self, cx: &StepContext) -> Result<Option<String>, StepError> {
        Ok(Some(format!(
            "Templated from {}; held_back: true until TLS is live.",
            cx.services.config.deploy.template
        )))
    }

    fn pushed(&self, cx: &StepContext, head: &str) {
        cx.log(&format!("committed and pushed {head}"));
    }

    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError> {
        let req = onboard(cx)?;
        let repo = cx.services.repo.lock().await;
        let sync = repo.sync().await?;
        for d in &req.domains {
            if !site_configured(cx, &repo, d)? {
                return Ok(CheckReport::failed(format!(
                    "{} has no services.yaml for {d}",
                    Site::repo_dir(cx, d)
                )));
            }
        }
        if sync.ahead > 0 {
            return Ok(CheckReport::failed(format!(
                "{} commit(s) not pushed",
                sync.ahead
            )));
        }
        Ok(CheckReport::ok(format!(
            "site(s) {} committed and pushed",
            req.domains
                .iter()
                .map(|d| Site::repo_dir(cx, d))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}
