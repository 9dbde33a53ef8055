//! Runbook: "Flip held_back: false in services.yaml" once TLS is live; commit and push.

use async_trait::async_trait;

use super::common::{self, RepoEdits, RepoWrite, Site, cert_targets, served_ok};
use super::{CheckReport, StepContext, StepError, StepName};
use crate::adapters::repo::Checkout;
use crate::templating;

pub struct Release;

/// The release's edits: each held-back services.yaml rewritten with `held_back: false`.
fn release_edits(held: Vec<(String, String, String)>) -> RepoEdits {
    RepoEdits::rewrites(
        format!("release {} site(s): held_back: false", held.len()),
        held.into_iter()
            .map(|(path, old, new)| (path, Some(old), new))
            .collect(),
        "held_back is false for every site",
    )
}

/// (path, current text, released text) for every site still held back.
fn held(cx: &StepContext, repo: &Checkout<'_>) -> Result<Vec<(String, String, String)>, StepError> {
    held_in(cx, |path| Ok(repo.read(path)?))
}

/// [`held`], each services.yaml read by `read`.
fn held_in(
    cx: &StepContext,
    read: impl Fn(&str) -> Result<Option<String>, StepError>,
) -> Result<Vec<(String, String, String)>, StepError> {
    let mut out = Vec::new();
    for (domain, _) in cert_targets(cx)? {
        let path = Site::of(cx, &domain)?.services_yaml();
        let text = read(&path)?.ok_or_else(|| {
            StepError::refused(format!(
                "{path} is not in the repo: run the deploy config first"
            ))
        })?;
        if templating::held_back(&text).map_err(|e| StepError::refused(format!("{path}: {e:#}")))? {
            let released = templating::set_held_back(&text, false)
                .map_err(|e| StepError::refused(format!("{path}: {e:#}")))?;
            out.push((path, text, released));
        }
    }
    Ok(out)
}

#[async_trait]
impl RepoWrite for Release {
    fn id(&self) -> StepName {
        StepName::Release
    }

    fn description(&self) -> &'static str {
        "Flip deploy_state.held_back to false in services.yaml (comments kept), commit and push"
    }

    async fn edits(&self, cx: &StepContext, repo: &Checkout<'_>) -> Result<RepoEdits, StepError> {
        Ok(release_edits(held(cx, repo)?))
    }

    /// Before deploy-config has pushed: each services.yaml as deploy-config plans to write it.
    async fn edits_ahead(
        &self,
        cx: &StepContext,
        repo: &Checkout<'_>,
    ) -> Result<Option<(RepoEdits, String)>, StepError> {
        let config = RepoWrite::edits(&super::deploy_config::DeployConfig, cx, repo).await?;
        let held = held_in(cx, |path| {
            Ok(match config.files.iter().find(|(p, _)| p == path) {
                Some((_, text)) => Some(text.clone()),
                None => repo.read(path)?,
            })
        })?;
        Ok(Some((
            release_edits(held),
            crate::messages::release_presumes().to_owned(),
        )))
    }

    async fn ready(&self, cx: &StepContext) -> Result<(), StepError> {
        for (domain, _) in cert_targets(cx)? {
            if served_ok(cx, &domain).await.is_none() {
                return Err(StepError::refused(format!(
                    "{domain} does not serve a valid certificate yet: run /cert first; held_back stays true"
                )));
            }
        }
        Ok(())
    }

    fn subject(&self, _cx: &StepContext, files: &[(String, String)]) -> Result<String, StepError> {
        Ok(format!(
            "release {}: held_back: false, TLS is live",
            common::paths(files)
        ))
    }

    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError> {
        let repo = cx.services.repo.lock().await;
        Ok(match held(cx, &repo)?.first() {
            None => CheckReport::ok("held_back: false, committed and pushed"),
            Some((path, _, _)) => CheckReport::failed(format!("{path} still held back")),
        })
    }
}
