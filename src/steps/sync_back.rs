//! Runbook: "Sync the certbot-modified conf back to the repo so future deploys preserve TLS":
//! read the site file from the VPS and commit it as the site's nginx/prod.conf.

use std::time::Duration;

use async_trait::async_trait;

use super::cert::targets;
use super::deploy_config::fill;
use super::{ApprovedPlan, CheckReport, Plan, Step, StepContext, StepError};
use crate::adapters::ssh;
use crate::domain::DomainName;
use crate::templating;

pub struct SyncBack;

fn repo_conf(cx: &StepContext, domain: &DomainName) -> String {
    format!(
        "{}/{}/nginx/prod.conf",
        cx.services.config.deploy.domains_dir, domain
    )
}

/// (repo path, what the repo has, what the VPS has) for every domain that differs.
async fn differences(cx: &StepContext) -> Result<Vec<(String, Option<String>, String)>, StepError> {
    let session = cx.services.vps().await?;
    let mut out = Vec::new();
    for (domain, _) in targets(cx)? {
        let remote_path = fill(&cx.services.config.deploy.nginx_site, &domain);
        let remote = ssh::run(&session, "cat", &[&remote_path], Duration::from_secs(30)).await?;
        if !remote.success {
            return Err(StepError::refused(format!(
                "cannot read {remote_path} on the VPS: {}",
                remote.stderr.trim()
            )));
        }
        let path = repo_conf(cx, &domain);
        let local = cx.services.repo.read(&path)?;
        if local.as_deref() != Some(remote.stdout.as_str()) {
            out.push((path, local, remote.stdout));
        }
    }
    Ok(out)
}

/// The plan and the files it writes, from the checkout synced with origin just now and the
/// VPS's files read just now. The caller holds the repo lock.
async fn planned(cx: &StepContext) -> Result<(Plan, Vec<(String, String)>), StepError> {
    cx.services.repo.sync().await?;
    let diffs = differences(cx).await?;
    let unpushed = cx.services.repo.unpushed().await?;
    if diffs.is_empty() && unpushed.is_empty() {
        return Ok((
            Plan::AlreadyDone {
                evidence: "the repo's nginx/prod.conf matches the VPS".into(),
            },
            Vec::new(),
        ));
    }
    let mut detail: String = diffs
        .iter()
        .map(|(p, old, new)| templating::unified_diff(p, old.as_deref(), new))
        .collect();
    if !diffs.is_empty() {
        detail.push_str("\nfiles as written:\n");
        for (p, _, new) in &diffs {
            detail.push_str(&super::written_as(p, new));
        }
    }
    if !unpushed.is_empty() {
        detail.push('\n');
        detail.push_str(&unpushed);
    }
    let plan = Plan::Change {
        summary: format!(
            "commit certbot's nginx conf for {} file(s) and push",
            diffs.len()
        ),
        detail,
    };
    let files = diffs
        .into_iter()
        .map(|(path, _, text)| (path, text))
        .collect();
    Ok((plan, files))
}

#[async_trait]
impl Step for SyncBack {
    fn name(&self) -> &'static str {
        "sync-back"
    }

    fn description(&self) -> &'static str {
        "Sync certbot's nginx site file from the VPS back to the repo's nginx/prod.conf, so later deploys keep TLS"
    }

    fn writes_production(&self) -> bool {
        true
    }

    async fn plan(&self, cx: &StepContext) -> Result<Plan, StepError> {
        let _turn = cx.services.repo_lock.lock().await;
        Ok(planned(cx).await?.0)
    }

    async fn apply(&self, cx: &StepContext, plan: &ApprovedPlan) -> Result<(), StepError> {
        let repo = &cx.services.repo;
        // One turn from the fetch to the push (see deploy-config).
        let _turn = cx.services.repo_lock.lock().await;
        let (now, files) = planned(cx).await?;
        plan.ensure_current(self.name(), &now)?;
        let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
        let message = format!(
            "sync certbot's nginx conf back: {}\n\nRun {} of onboard-bot, approved by {}.",
            names.join(", "),
            cx.run_id,
            plan.approver().unwrap_or("nobody")
        );
        repo.write_commit_push(&files, &message).await?;
        Ok(())
    }

    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError> {
        let _turn = cx.services.repo_lock.lock().await;
        let diffs = differences(cx).await?;
        Ok(match diffs.first() {
            None => CheckReport::ok("nginx/prod.conf in the repo equals the VPS's site file"),
            Some((p, _, _)) => CheckReport::failed(format!("{p} still differs from the VPS")),
        })
    }
}
