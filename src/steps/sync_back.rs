//! Runbook: "Sync the certbot-modified conf back to the repo so future deploys preserve TLS":
//! read the site file from the VPS and commit it as the site's nginx/prod.conf.

use std::time::Duration;

use async_trait::async_trait;

use super::common::{self, RepoEdits, RepoWrite, Site, cert_targets};
use super::{CheckReport, StepContext, StepError, StepName};
use crate::adapters::repo::Checkout;
use crate::adapters::ssh;

pub struct SyncBack;

/// (repo path, what the repo has, what the VPS has) for every domain that differs.
async fn differences(
    cx: &StepContext,
    repo: &Checkout<'_>,
) -> Result<Vec<(String, Option<String>, String)>, StepError> {
    let session = cx.vps_session().await?;
    let mut out = Vec::new();
    for (domain, _) in cert_targets(cx)? {
        let site = Site::of(cx, &domain)?;
        let remote_path = site.vps_nginx_site();
        let remote = ssh::run(&session, "cat", &[remote_path], Duration::from_secs(30)).await?;
        if !remote.success {
            return Err(StepError::refused(format!(
                "cannot read {remote_path} on the VPS: {}",
                remote.stderr.trim()
            )));
        }
        let path = site.nginx_conf();
        let local = repo.read(&path)?;
        if local.as_deref() != Some(remote.stdout.as_str()) {
            out.push((path, local, remote.stdout));
        }
    }
    Ok(out)
}

#[async_trait]
impl RepoWrite for SyncBack {
    fn id(&self) -> StepName {
        StepName::SyncBack
    }

    fn description(&self) -> &'static str {
        "Sync certbot's nginx site file from the VPS back to the repo's nginx/prod.conf, so later deploys keep TLS"
    }

    async fn edits(&self, cx: &StepContext, repo: &Checkout<'_>) -> Result<RepoEdits, StepError> {
        let diffs = differences(cx, repo).await?;
        Ok(RepoEdits::rewrites(
            format!(
                "commit certbot's nginx conf for {} file(s) and push",
                diffs.len()
            ),
            diffs,
            "the repo's nginx/prod.conf matches the VPS",
        ))
    }

    fn subject(&self, _cx: &StepContext, files: &[(String, String)]) -> Result<String, StepError> {
        Ok(format!(
            "sync certbot's nginx conf back: {}",
            common::paths(files)
        ))
    }

    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError> {
        let repo = cx.services.repo.lock().await;
        let diffs = differences(cx, &repo).await?;
        Ok(match diffs.first() {
            None => CheckReport::ok("nginx/prod.conf in the repo equals the VPS's site file"),
            Some((p, _, _)) => CheckReport::failed(format!("{p} still differs from the VPS")),
        })
    }
}
