//! Approvals: asking the front-end for a decision on an exact plan, storing it, and checking
//! that the audit chain backs a stored one before it authorises a write.

use std::time::Instant;

use anyhow::bail;
use serde_json::json;
use tracing::warn;

use super::executor::Transition;
use super::*;
use crate::state::approvals::{self, NewDecision};

impl Engine {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn ask_approval(
        &self,
        run: &RunRecord,
        view: &mut RunView,
        idx: usize,
        step: &dyn Step,
        summary: &str,
        detail: &str,
        hash: &str,
        approved_by: Vec<String>,
    ) -> Result<(), StepStop> {
        let name = step.name();
        let required = self.inner.config.approvals.required_for(name);
        let t0 = Instant::now();
        let voided = runs::void_other_approvals(&self.inner.pool, run.id, name, hash).await?;
        if voided > 0 {
            self.audit_step(
                run,
                name,
                AuditKind::ApprovalVoided,
                Outcome::PlanChanged,
                json!({"new_plan_hash": hash, "voided": voided}),
                t0,
            )
            .await?;
            self.log_line(
                view,
                idx,
                "the plan changed since it was approved: asking again".into(),
            )
            .await;
        }
        if !approved_by.is_empty() {
            self.log_line(
                view,
                idx,
                crate::messages::quorum_progress(&approved_by, required),
            )
            .await;
        }
        runs::set_status(&self.inner.pool, run.id, RunStatus::WaitingApproval, None).await?;
        let waiting = Transition {
            status: StepStatus::WaitingApproval,
            plan: Some((hash, summary)),
            note: summary,
            kind: AuditKind::ApprovalRequested,
            outcome: Outcome::Waiting,
            detail: json!({"plan_hash": hash, "summary": summary, "detail": detail, "required": required, "approved_by": approved_by}),
        };
        self.transition(run, view, idx, name, t0, waiting).await?;
        let req = ApprovalRequest {
            run_id: run.id,
            subject: run.subject.clone(),
            step: name.into(),
            step_description: step.description().into(),
            summary: summary.into(),
            detail: detail.into(),
            plan_hash: hash.into(),
            started_by: run.started_by.clone(),
            required,
            approved_by,
            why_asked: self.why_asked_alone(run, name, hash).await?,
        };
        let decision = self.wait_for_decision(run, view, idx, &req).await?;
        // Each approver counts once: the same person approving again (the console, where one
        // person answers every prompt) cannot make up a quorum. The run stops, resumable; the
        // approval already given stands for the next approver to join.
        if decision.approved && req.approved_by.contains(&decision.actor.id) {
            runs::set_status(&self.inner.pool, run.id, RunStatus::Running, None).await?;
            return Err(StepStop::Failed(crate::messages::quorum_same_person(
                name,
                &decision.actor.id,
                required,
            )));
        }
        // A front-end may hand back a decision that was already recorded (a click stored while
        // no run was waiting for it): record each decision once.
        let known = runs::decisions_for(&self.inner.pool, run.id, name, hash).await?;
        if !known
            .iter()
            .any(|k| k.actor == decision.actor.id && k.approved == decision.approved)
        {
            self.record_decision(run, name, hash, &decision).await?;
        }
        runs::set_status(&self.inner.pool, run.id, RunStatus::Running, None).await?;
        Ok(())
    }

    /// Waits for the front-end's decision on `req`, reminding the approvers once after
    /// `approvals.remind_after_secs`; after `approvals.ttl_secs` the approval expires: the
    /// step is parked as "approval expired" and the run stops, resumable (a resume asks again).
    async fn wait_for_decision(
        &self,
        run: &RunRecord,
        view: &mut RunView,
        idx: usize,
        req: &ApprovalRequest,
    ) -> Result<Decision, StepStop> {
        let cfg = &self.inner.config.approvals;
        let (ttl, remind_after) = (cfg.ttl(), cfg.remind_after());
        let t0 = Instant::now();
        let asked = self.inner.frontend.request_approval(req);
        tokio::pin!(asked);
        let expiry = tokio::time::sleep(ttl);
        tokio::pin!(expiry);
        let reminder = tokio::time::sleep(remind_after.unwrap_or(ttl));
        tokio::pin!(reminder);
        let mut reminded = remind_after.is_none();
        loop {
            tokio::select! {
                decision = &mut asked => return decision.map_err(StepStop::Internal),
                _ = &mut reminder, if !reminded => {
                    reminded = true;
                    let waited = t0.elapsed();
                    self.audit_step(
                        run,
                        &req.step,
                        AuditKind::ApprovalReminded,
                        Outcome::Waiting,
                        json!({"plan_hash": req.plan_hash, "waited_secs": waited.as_secs()}),
                        t0,
                    )
                    .await?;
                    self.inner
                        .frontend
                        .remind(req, waited, ttl.saturating_sub(waited))
                        .await;
                }
                _ = &mut expiry => break,
            }
        }
        // The front-end's wait ends here (its future is dropped with this function).
        let message = crate::messages::approval_expired_note(&req.step, ttl);
        self.audit_step(
            run,
            &req.step,
            AuditKind::ApprovalExpired,
            Outcome::Expired,
            json!({"plan_hash": req.plan_hash, "ttl_secs": ttl.as_secs()}),
            t0,
        )
        .await?;
        self.set_step(run, view, idx, StepStatus::Parked, None, None, &message)
            .await?;
        Err(StepStop::Expired(message))
    }

    /// Stores a decision and its audit event (who, when, how, which plan) in one transaction.
    /// A person has one standing decision on a plan: a second, different one is refused.
    pub async fn record_decision(
        &self,
        run: &RunRecord,
        step: &str,
        hash: &str,
        d: &Decision,
    ) -> anyhow::Result<()> {
        let pool = &self.inner.pool;
        let ev = NewEvent {
            run_id: Some(run.id),
            subject: run.subject.clone(),
            step: Some(step.into()),
            actor: d.actor.id.clone(),
            kind: if d.approved {
                AuditKind::ApprovalGranted
            } else {
                AuditKind::ApprovalRejected
            },
            outcome: if d.approved {
                Outcome::Approved
            } else {
                Outcome::Rejected
            }
            .into(),
            detail: self.inner.redactor.redact_json(
                json!({"plan_hash": hash, "how": d.how, "reason": d.reason, "actor_name": d.actor.display}),
            ),
            duration_ms: None,
        };
        let new = NewDecision {
            run_id: run.id,
            step,
            plan_hash: hash,
            approved: d.approved,
            actor: &d.actor.id,
            frontend: self.inner.frontend.name(),
            reason: d.reason.as_deref(),
        };
        let stored =
            approvals::record_with_event(pool, &self.inner.config.audit_key, &new, ev).await?;
        if stored.is_none() {
            let mine = runs::decisions_for(pool, run.id, step, hash)
                .await?
                .into_iter()
                .find(|a| a.actor == d.actor.id);
            return match mine {
                Some(a) if a.actor == d.actor.id && a.approved == d.approved => Ok(()),
                Some(a) => bail!(
                    "{step}: this plan was already {} by {}",
                    if a.approved { "approved" } else { "rejected" },
                    a.actor
                ),
                None => bail!("{step}: the decision could not be stored; try again"),
            };
        }
        Ok(())
    }

    /// Where a plan stands: the standing decisions on it, each checked against the chain
    /// ([`Self::decisions_backed`]); any rejection stops the step; it is approved once
    /// `approvals.required` distinct people approved it.
    pub(super) async fn standing(
        &self,
        run: &RunRecord,
        step: &str,
        hash: &str,
    ) -> Result<Standing, StepStop> {
        let decisions = runs::decisions_for(&self.inner.pool, run.id, step, hash).await?;
        self.decisions_backed(run, step, hash, &decisions).await?;
        if let Some(r) = decisions.iter().find(|a| !a.approved) {
            return Ok(Standing::Rejected(r.clone()));
        }
        // One row per person is what the database keeps; dedup anyway, a count of people is
        // what the policy asks for.
        let mut approvers: Vec<String> = Vec::new();
        for a in decisions {
            if !approvers.contains(&a.actor) {
                approvers.push(a.actor);
            }
        }
        let required = self.inner.config.approvals.required_for(step) as usize;
        Ok(if approvers.len() >= required {
            Standing::Approved(approvers)
        } else {
            Standing::Waiting(approvers)
        })
    }

    /// A recorded decision counts only when the audit chain backs it: its `approval.*` event
    /// by the same person (not voided since) has the same verdict, and the chain verifies
    /// through its head under the bot's key. A row someone wrote into `approvals` by hand, or
    /// an event written without the key, stops the step instead of authorising it.
    async fn decisions_backed(
        &self,
        run: &RunRecord,
        step: &str,
        hash: &str,
        decisions: &[runs::Approval],
    ) -> Result<(), StepStop> {
        if decisions.is_empty() {
            return Ok(());
        }
        let pool = &self.inner.pool;
        let events = audit::for_run(pool, run.id).await?;
        let unmatched = decisions.iter().find_map(|a| {
            let problem = match audit::standing_decision(&events, step, hash, &a.actor) {
                None => "has no approval event in the audit trail".to_owned(),
                Some(e) if audit::is_grant(&e.kind) != a.approved => format!(
                    "does not match its audit event #{} ({} by {})",
                    e.id, e.kind, e.actor
                ),
                Some(_) => return None,
            };
            Some((a, problem))
        });
        let (a, problem) = match unmatched {
            Some(found) => found,
            None => {
                let head = audit::head(pool).await?.map(|h| h.id).unwrap_or(0);
                match self
                    .inner
                    .chain
                    .verify_through(pool, &self.inner.config.audit_key, head)
                    .await?
                {
                    Ok(()) => return Ok(()),
                    Err(b) => (
                        &decisions[0],
                        format!(
                            "is in an audit chain that does not verify (event #{}: {})",
                            b.id, b.problem
                        ),
                    ),
                }
            }
        };
        warn!(run_id = %run.id, step, approval = a.id, actor = %a.actor, problem, "an approval is not backed by the audit chain");
        self.audit(NewEvent {
            run_id: Some(run.id),
            subject: run.subject.clone(),
            step: Some(step.into()),
            actor: Actor::bot().id,
            kind: AuditKind::ApprovalUnbacked,
            outcome: Outcome::Refused.into(),
            detail: json!({"approval_id": a.id, "actor": a.actor, "plan_hash": hash, "problem": problem}),
            duration_ms: None,
        })
        .await?;
        Err(StepStop::Failed(crate::messages::approval_unbacked(
            step, &a.actor, &problem,
        )))
    }
}

/// Where a plan stands with its approvers.
#[derive(Debug)]
pub(super) enum Standing {
    /// Enough distinct people approved it (their actor ids, oldest first).
    Approved(Vec<String>),
    /// Someone rejected it: the step stops.
    Rejected(runs::Approval),
    /// Not yet enough approvers; these have approved so far.
    Waiting(Vec<String>),
}
