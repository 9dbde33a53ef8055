//! Runbook "Deploy config": templated, not forked. For each domain, copy the template site,
//! edit services.yaml (domain, feature, aliases, held_back: true), deploy.sh (REMOTE_DEST,
//! REMOTE_NGINX_CONF) and nginx/prod.conf (server_name, root); Org-shaped providers get their
//! brand in org-site.yaml, mailbox domains a line in the brand-mail config. One commit, pushed.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::ownership::{self, Claim};
use super::preflight::onboard;
use super::{ApprovedPlan, CheckReport, Plan, Step, StepContext, StepError};
use crate::domain::{DomainName, MailPlan, OperatingMode};
use crate::engine::request::OnboardRequest;
use crate::messages;
use crate::state::sites::{self, NewSite};
use crate::templating;

pub struct DeployConfig;

/// `{domains_dir}/{domain}`: the site directory of one domain.
pub fn site_dir(cx: &StepContext, domain: &DomainName) -> String {
    format!("{}/{}", cx.services.config.deploy.domains_dir, domain)
}

pub fn fill(template: &str, domain: &DomainName) -> String {
    template
        .replace("{domain}", domain.as_str())
        .replace("{site}", domain.as_str())
}

/// Every file the step wants in the repo, with its content.
fn desired_files(
    cx: &StepContext,
    req: &OnboardRequest,
) -> Result<BTreeMap<String, String>, StepError> {
    let cfg = &cx.services.config;
    let repo = &cx.services.repo;
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
    for domain in &req.domains {
        let site = site_dir(cx, domain);
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
                    &fill(&cfg.deploy.webroot, domain),
                    &fill(&cfg.deploy.nginx_site, domain),
                ),
                "nginx/prod.conf" => {
                    templating::nginx_conf(&text, domain, &fill(&cfg.deploy.webroot, domain))
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
                StepError::refused(format!("editing {site}/{rel} from the template: {e:#}"))
            })?;
            out.insert(format!("{site}/{rel}"), edited);
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
fn site_configured(cx: &StepContext, domain: &DomainName) -> Result<bool, StepError> {
    let path = format!("{}/services.yaml", site_dir(cx, domain));
    Ok(match cx.services.repo.read(&path)? {
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
    req: &OnboardRequest,
) -> Result<BTreeMap<String, (Option<String>, String)>, StepError> {
    let desired = desired_files(cx, req)?;
    // Sites already configured (read once, not once per file).
    let mut done_sites = Vec::new();
    for d in &req.domains {
        if site_configured(cx, d)? {
            done_sites.push(format!("{}/", site_dir(cx, d)));
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
        let current = cx.services.repo.read(&path)?;
        if current.as_deref() != Some(text.as_str()) {
            out.insert(path, (current, text));
        }
    }
    Ok(out)
}

/// deploy-config writes a site only for its own tenant: one on record for this slug, or one
/// nothing serves yet (returned: the apply records it as created before writing it). A site
/// that is another tenant's is refused here too, not only at preflight: it may have appeared
/// since. The caller holds the repo lock and has synced the checkout.
async fn own_or_new(cx: &StepContext, req: &OnboardRequest) -> Result<Vec<DomainName>, StepError> {
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
        let findings = ownership::survey_with(cx, d, ownership::repo_sites(cx, d)?).await?;
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
    req: &OnboardRequest,
    path: &str,
) -> Result<Option<(String, String)>, StepError> {
    let deploy = &cx.services.config.deploy;
    for d in &req.domains {
        if let Some(rel) = path.strip_prefix(&format!("{}/", site_dir(cx, d))) {
            let tpath = format!("{}/{}/{rel}", deploy.domains_dir, deploy.template);
            return Ok(cx.services.repo.read(&tpath)?.map(|t| (tpath, t)));
        }
    }
    Ok(None)
}

/// The plan and the files it writes, from the checkout synced with origin just now. The
/// caller holds the repo lock.
async fn planned(cx: &StepContext) -> Result<(Plan, Vec<(String, String)>), StepError> {
    let req = onboard(cx)?;
    cx.services.repo.sync().await?;
    // Another tenant's site is refused before anything is planned over it.
    own_or_new(cx, req).await?;
    let changes = changes(cx, req)?;
    let unpushed = cx.services.repo.unpushed().await?;
    if changes.is_empty() && unpushed.is_empty() {
        let sites: Vec<String> = req.domains.iter().map(|d| site_dir(cx, d)).collect();
        return Ok((
            Plan::AlreadyDone {
                evidence: format!("{} in the repo and pushed", sites.join(", ")),
            },
            Vec::new(),
        ));
    }
    let mut detail = String::new();
    for (path, (old, new)) in &changes {
        // A new site file is shown as a copy of its template file plus the edits, so the
        // diff holds only the values that change (runbook: templated, not forked).
        let template = match old {
            None => template_source(cx, req, path)?,
            Some(_) => None,
        };
        detail.push_str(&match (&template, old) {
            (Some((tpath, ttext)), _) => templating::copy_diff(tpath, path, ttext, new),
            (None, old) => templating::unified_diff(path, old.as_deref(), new),
        });
    }
    if !changes.is_empty() {
        // The diffs show what changes; these lines pin every byte written (a template line far
        // from the edits is in the copy too).
        detail.push_str("\nfiles as written:\n");
        for (path, (_, new)) in &changes {
            detail.push_str(&super::written_as(path, new));
        }
    }
    if !unpushed.is_empty() {
        detail.push('\n');
        detail.push_str(&unpushed);
    }
    let summary = format!(
        "add {} file(s) for {} to the platform repo, commit and push",
        changes.len(),
        req.domains
            .iter()
            .map(|d| d.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let files = changes
        .into_iter()
        .map(|(path, (_, text))| (path, text))
        .collect();
    Ok((Plan::Change { summary, detail }, files))
}

#[async_trait]
impl Step for DeployConfig {
    fn name(&self) -> &'static str {
        "deploy-config"
    }

    fn description(&self) -> &'static str {
        "Deploy config: copy _template/{provider}.com, edit services.yaml, deploy.sh, nginx/prod.conf; commit and push"
    }

    fn writes_production(&self) -> bool {
        true
    }

    async fn plan(&self, cx: &StepContext) -> Result<Plan, StepError> {
        let _turn = cx.services.repo_lock.lock().await;
        Ok(planned(cx).await?.0)
    }

    async fn apply(&self, cx: &StepContext, plan: &ApprovedPlan) -> Result<(), StepError> {
        let req = onboard(cx)?;
        let repo = &cx.services.repo;
        // One turn from the fetch to the push: the plan checked against the approval is the
        // one written, and no other run of this process touches the checkout in between.
        let _turn = cx.services.repo_lock.lock().await;
        let (now, files) = planned(cx).await?;
        plan.ensure_current(self.name(), &now)?;
        // Recorded before the commit: a run interrupted after pushing is still recognised as
        // the site's creator when it resumes.
        for d in own_or_new(cx, req).await? {
            let vps = &cx.services.config.vps.name;
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
        let message = format!(
            "onboard {}: deploy config for {}\n\nRun {} of onboard-bot, approved by {}.\nTemplated from {}; held_back: true until TLS is live.",
            req.slug,
            req.domains
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            cx.run_id,
            plan.approver().unwrap_or("nobody"),
            cx.services.config.deploy.template,
        );
        let head = repo.write_commit_push(&files, &message).await?;
        cx.log(&format!("committed and pushed {head}"));
        Ok(())
    }

    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError> {
        let req = onboard(cx)?;
        let _turn = cx.services.repo_lock.lock().await;
        let sync = cx.services.repo.sync().await?;
        for d in &req.domains {
            if !site_configured(cx, d)? {
                return Ok(CheckReport::failed(format!(
                    "{} has no services.yaml for {d}",
                    site_dir(cx, d)
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
                .map(|d| site_dir(cx, d))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}
