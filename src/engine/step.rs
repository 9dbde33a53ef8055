//! One step of a run: plan, approval, apply under the fence, check; with timeouts and retries.

use std::time::{Duration, Instant};

use anyhow::anyhow;
use serde_json::json;
use tracing::{instrument, warn};

use super::approvals::Standing;
use super::executor::Transition;
use super::*;

impl Engine {
    /// Plans, gets approval if needed, applies and checks one step.
    #[allow(clippy::too_many_arguments)]
    #[instrument(skip_all, fields(run_id = %run.id, step = step.name()), err(Debug))]
    pub(super) async fn run_step(
        &self,
        run: &RunRecord,
        view: &mut RunView,
        idx: usize,
        step: &dyn Step,
        cx: &StepContext,
        nudge: &Notify,
        lease: &Lease,
    ) -> Result<(), StepStop> {
        let name = step.name();
        let t0 = Instant::now();
        let park_deadline =
            Instant::now() + Duration::from_secs(self.inner.config.engine.park_deadline_secs);
        let mut parked_reason: Option<String> = None;
        // The evidence of a check that failed right after this step applied: the step plans
        // once more, and a plan to wait (what is left is a person's, e.g. records outside the
        // zones the bot may write) parks it as any wait does; any other plan fails it.
        let mut unchecked_apply: Option<String> = None;
        loop {
            self.set_step(run, view, idx, StepStatus::Planning, None, None, "")
                .await?;
            let plan = match self.attempt(step, "plan", || step.plan(cx)).await {
                Ok(plan) => plan,
                // A dry run wrote nothing, so later steps may refuse for want of what earlier
                // ones would have done: it reports the refusal and goes on planning.
                Err(StepError::Refused(reason)) if run.dry_run => {
                    let reason = self.inner.redactor.redact(&reason);
                    let would_refuse = Transition {
                        status: StepStatus::Planned,
                        plan: Some(("", "would refuse")),
                        note: &format!("would refuse: {reason}"),
                        kind: AuditKind::StepPlanned,
                        outcome: Outcome::WouldRefuse,
                        detail: json!({"reason": reason}),
                    };
                    self.transition(run, view, idx, name, t0, would_refuse)
                        .await?;
                    return Ok(());
                }
                Err(e) => return Err(self.step_failed(e)),
            };
            let hash = plan.hash(name);
            match &plan {
                Plan::AlreadyDone { .. } | Plan::Change { .. } if unchecked_apply.is_some() => {
                    let evidence = unchecked_apply.take().unwrap_or_default();
                    return Err(StepStop::Failed(format!(
                        "{name}: applied, but the check failed: {evidence}"
                    )));
                }
                Plan::AlreadyDone { evidence } => {
                    let evidence = self.inner.redactor.redact(evidence);
                    let already_done = Transition {
                        status: StepStatus::AlreadyDone,
                        plan: Some((&hash, "already done")),
                        note: &evidence,
                        kind: AuditKind::StepAlreadyDone,
                        outcome: Outcome::Ok,
                        detail: json!({"evidence": evidence}),
                    };
                    self.transition(run, view, idx, name, t0, already_done)
                        .await?;
                    return Ok(());
                }
                Plan::Wait { reason, recheck } => {
                    unchecked_apply = None;
                    let reason = self.inner.redactor.redact(reason);
                    if run.dry_run {
                        // A dry run reports what it would wait for and goes on planning.
                        let would_wait = Transition {
                            status: StepStatus::Planned,
                            plan: Some((&hash, "would wait")),
                            note: &reason,
                            kind: AuditKind::StepPlanned,
                            outcome: Outcome::DryRun,
                            detail: json!({"would_wait": reason}),
                        };
                        self.transition(run, view, idx, name, t0, would_wait)
                            .await?;
                        return Ok(());
                    }
                    if parked_reason.as_deref() != Some(reason.as_str()) {
                        runs::set_status(
                            &self.inner.pool,
                            run.id,
                            RunStatus::Parked,
                            Some(&reason),
                        )
                        .await?;
                        let parked = Transition {
                            status: StepStatus::Parked,
                            plan: None,
                            note: &reason,
                            kind: AuditKind::StepParked,
                            outcome: Outcome::Waiting,
                            detail: json!({"reason": reason}),
                        };
                        self.transition(run, view, idx, name, t0, parked).await?;
                        parked_reason = Some(reason.clone());
                    }
                    if Instant::now() >= park_deadline {
                        return Err(StepStop::Failed(format!(
                            "{name}: still waiting after {}s: {reason}",
                            self.inner.config.engine.park_deadline_secs
                        )));
                    }
                    let recheck = (*recheck)
                        .min(Duration::from_secs(self.inner.config.engine.recheck_secs))
                        .max(Duration::from_millis(100));
                    tokio::select! {
                        _ = tokio::time::sleep(recheck) => {}
                        _ = nudge.notified() => {}
                    }
                    continue;
                }
                Plan::Change { summary, detail } => {
                    if parked_reason.take().is_some() {
                        runs::set_status(&self.inner.pool, run.id, RunStatus::Running, None)
                            .await?;
                        self.audit_step(
                            run,
                            name,
                            AuditKind::StepUnparked,
                            Outcome::Ok,
                            json!({}),
                            t0,
                        )
                        .await?;
                    }
                    let summary = self.inner.redactor.redact(summary);
                    let detail = self.inner.redactor.redact(detail);
                    if run.dry_run {
                        let planned = Transition {
                            status: StepStatus::Planned,
                            plan: Some((&hash, &summary)),
                            note: &detail,
                            kind: AuditKind::StepPlanned,
                            outcome: Outcome::DryRun,
                            detail: json!({"summary": summary, "detail": detail, "plan_hash": hash}),
                        };
                        self.transition(run, view, idx, name, t0, planned).await?;
                        return Ok(());
                    }
                    let approver = if step.writes_production() {
                        match self.standing(run, name, &hash).await? {
                            Standing::Approved(approvers) => Some(approvers.join(", ")),
                            Standing::Rejected(a) => {
                                return Err(StepStop::Rejected(format!(
                                    "{name}: plan rejected by {}{}",
                                    a.actor,
                                    a.reason.map(|r| format!(": {r}")).unwrap_or_default()
                                )));
                            }
                            Standing::Waiting(approved_by) => {
                                self.ask_approval(
                                    run,
                                    view,
                                    idx,
                                    step,
                                    &summary,
                                    &detail,
                                    &hash,
                                    approved_by,
                                )
                                .await?;
                                // Re-plan before applying: if the world changed since the plan
                                // was shown, its approval does not cover the new plan.
                                continue;
                            }
                        }
                    } else {
                        None
                    };
                    self.set_step(
                        run,
                        view,
                        idx,
                        StepStatus::Applying,
                        Some((&hash, &summary)),
                        None,
                        &summary,
                    )
                    .await?;
                    let approved = ApprovedPlan::new(plan.clone(), hash.clone(), approver.clone());
                    FaultPoint::hit(&self.inner.fault, "before-apply", name).await;
                    // The fencing token, checked right before the write: a process that lost
                    // the run (taken over, lease lapsed) applies nothing more.
                    self.fence(run, lease).await?;
                    let t_apply = Instant::now();
                    match FaultPoint::during(
                        &self.inner.fault,
                        name,
                        self.attempt(step, "apply", || step.apply(cx, &approved)),
                    )
                    .await
                    {
                        Ok(()) => {}
                        // The step planned again under its own lock and found the world
                        // changed since the approval: it wrote nothing. Plan again; the changed
                        // plan voids the approval and is asked for anew (ask_approval).
                        Err(StepError::PlanChanged(why)) => {
                            let why = self.inner.redactor.redact(&why);
                            self.audit_step(
                                run,
                                name,
                                AuditKind::StepPlanChanged,
                                Outcome::PlanChanged,
                                json!({"approved_plan_hash": hash, "reason": why}),
                                t_apply,
                            )
                            .await?;
                            self.log_line(view, idx, why).await;
                            continue;
                        }
                        Err(e) => return Err(self.step_failed(e)),
                    }
                    FaultPoint::hit(&self.inner.fault, "after-apply", name).await;
                    self.audit_step(
                        run,
                        name,
                        AuditKind::StepApplied,
                        Outcome::Ok,
                        json!({"summary": summary, "detail": detail, "plan_hash": hash, "approved_by": approver}),
                        t_apply,
                    )
                    .await?;
                    self.set_step(run, view, idx, StepStatus::Checking, None, None, "")
                        .await?;
                    let report = self
                        .attempt(step, "check", || step.check(cx))
                        .await
                        .map_err(|e| self.step_failed(e))?;
                    let evidence = self.inner.redactor.redact(&report.evidence);
                    if !report.ok {
                        self.audit_step(
                            run,
                            name,
                            AuditKind::StepCheckFailed,
                            Outcome::Failed,
                            json!({"evidence": evidence}),
                            t0,
                        )
                        .await?;
                        self.log_line(
                            view,
                            idx,
                            format!(
                                "applied; not everything holds yet ({evidence}): planning again"
                            ),
                        )
                        .await;
                        unchecked_apply = Some(evidence);
                        continue;
                    }
                    let done = Transition {
                        status: StepStatus::Done,
                        plan: None,
                        note: &evidence,
                        kind: AuditKind::StepDone,
                        outcome: Outcome::Ok,
                        detail: json!({"evidence": evidence}),
                    };
                    self.transition(run, view, idx, name, t0, done).await?;
                    return Ok(());
                }
            }
        }
    }

    /// One call with the step's timeout, retried with back-off on transient errors.
    pub(super) async fn attempt<'a, F, Fut, T>(
        &self,
        step: &dyn Step,
        phase: &str,
        mut f: F,
    ) -> Result<T, StepError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StepError>> + 'a,
    {
        let cfg = &self.inner.config.engine;
        let timeout = step.timeout().unwrap_or(cfg.step_timeout());
        let mut backoff = Duration::from_millis(cfg.retry_backoff_ms);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match tokio::time::timeout(timeout, f()).await {
                Ok(r) => r,
                Err(_) => Err(StepError::Transient(anyhow!(
                    "{} {phase} timed out after {}s",
                    step.name(),
                    timeout.as_secs()
                ))),
            };
            match result {
                Err(StepError::Transient(e)) if attempt <= cfg.retries => {
                    warn!(step = step.name(), phase, attempt, error = %format!("{e:#}"), "transient error; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                other => return other,
            }
        }
    }

    pub(super) fn step_failed(&self, e: StepError) -> StepStop {
        let msg = match &e {
            StepError::Refused(m) | StepError::PlanChanged(m) => m.clone(),
            StepError::Transient(err) => format!("gave up after retries: {err:#}"),
            StepError::Internal(err) => {
                warn!(error = ?err, "step failed");
                format!("{err:#}")
            }
        };
        StepStop::Failed(self.inner.redactor.redact(&msg))
    }
}

/// Why a step stopped its run.
#[derive(Debug)]
pub(super) enum StepStop {
    Cancelled,
    /// This process lost its claim on the run (taken over, lease lapsed).
    LeaseLost(String),
    Rejected(String),
    /// No decision came within `approvals.ttl_secs`; the run stops, resumable.
    Expired(String),
    Failed(String),
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for StepStop {
    fn from(e: anyhow::Error) -> Self {
        StepStop::Internal(e)
    }
}
