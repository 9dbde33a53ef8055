//! Runbook: "Flip held_back: false in services.yaml" once TLS is live; commit and push.

use async_trait::async_trait;

use super::cert::{served_ok, targets};
use super::{ApprovedPlan, CheckReport, Plan, Step, StepContext, StepError};
use crate::templating;

pub struct Release;

/// (path, current text, released text) for every site still held back.
fn held(cx: &StepContext) -> Result<Vec<(String, String, String)>, StepError> {
    let mut out = Vec::new();
    for (domain, _) in targets(cx)? {
        let path = format!(
            "{}/{}/services.yaml",
            cx.services.config.deploy.domains_dir, domain
        );
        let text = cx.services.repo.read(&path)?.ok_or_else(|| {
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
impl Step for Release {
    fn name(&self) -> &'static str {
        "release"
    }

    fn description(&self) -> &'static str {
        "Flip deploy_state.held_back to false in services.yaml (comments kept), commit and push"
    }

    fn writes_production(&self) -> bool {
        true
    }

    async fn plan(&self, cx: &StepContext) -> Result<Plan, StepError> {
        let _turn = cx.services.repo_lock.lock().await;
        let sync = cx.services.repo.sync().await?;
        let held = held(cx)?;
        if held.is_empty() && sync.ahead == 0 {
            return Ok(Plan::AlreadyDone {
                evidence: "held_back is false for every site".into(),
            });
        }
        for (domain, _) in targets(cx)? {
            if served_ok(cx, &domain).await.is_none() {
                return Err(StepError::refused(format!(
                    "{domain} does not serve a valid certificate yet: run /cert first; held_back stays true"
                )));
            }
        }
        let detail: String = held
            .iter()
            .map(|(p, old, new)| templating::unified_diff(p, Some(old), new))
            .collect();
        Ok(Plan::Change {
            summary: format!("release {} site(s): held_back: false", held.len()),
            detail,
        })
    }

    async fn apply(&self, cx: &StepContext, plan: &ApprovedPlan) -> Result<(), StepError> {
        let repo = &cx.services.repo;
        let _turn = cx.services.repo_lock.lock().await;
        repo.sync().await?;
        let held = held(cx)?;
        let files: Vec<(String, String)> = held
            .into_iter()
            .map(|(path, _, text)| (path, text))
            .collect();
        let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
        let message = format!(
            "release {}: held_back: false, TLS is live\n\nRun {} of onboard-bot, approved by {}.",
            names.join(", "),
            cx.run_id,
            plan.approver().unwrap_or("nobody")
        );
        repo.write_commit_push(&files, &message).await?;
        Ok(())
    }

    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError> {
        let _turn = cx.services.repo_lock.lock().await;
        let held = held(cx)?;
        Ok(if held.is_empty() {
            CheckReport::ok("held_back: false, committed and pushed")
        } else {
            CheckReport::failed(format!("{} still held back", held[0].0))
        })
    }
}
