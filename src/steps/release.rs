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

/// The plan and the files it writes, from the checkout synced with origin just now. The
/// caller holds the repo lock.
async fn planned(cx: &StepContext) -> Result<(Plan, Vec<(String, String)>), StepError> {
    cx.services.repo.sync().await?;
    let held = held(cx)?;
    let unpushed = cx.services.repo.unpushed().await?;
    if held.is_empty() && unpushed.is_empty() {
        return Ok((
            Plan::AlreadyDone {
                evidence: "held_back is false for every site".into(),
            },
            Vec::new(),
        ));
    }
    for (domain, _) in targets(cx)? {
        if served_ok(cx, &domain).await.is_none() {
            return Err(StepError::refused(format!(
                "{domain} does not serve a valid certificate yet: run /cert first; held_back stays true"
            )));
        }
    }
    let mut detail: String = held
        .iter()
        .map(|(p, old, new)| templating::unified_diff(p, Some(old), new))
        .collect();
    if !held.is_empty() {
        detail.push_str("\nfiles as written:\n");
        for (p, _, new) in &held {
            detail.push_str(&super::written_as(p, new));
        }
    }
    if !unpushed.is_empty() {
        detail.push('\n');
        detail.push_str(&unpushed);
    }
    let plan = Plan::Change {
        summary: format!("release {} site(s): held_back: false", held.len()),
        detail,
    };
    let files = held
        .into_iter()
        .map(|(path, _, text)| (path, text))
        .collect();
    Ok((plan, files))
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
