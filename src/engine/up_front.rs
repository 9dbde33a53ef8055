//! The whole plan up front: before a run's first production write, every remaining write is
//! planned (plans are read-only) and shown with an Approve all. One person's Approve all is an
//! approval of each plan it lists, recorded as one `approval.granted_all` event naming the
//! (step, plan hash) pairs and a row per pair; a step applies on it only if its plan, planned
//! again right before the write, still has the listed hash, and the chain backs the event.
//! Each step is planned with `Step::plan_ahead`: as it will be once the earlier writes are
//! done, where a step can say so (cert, release), else as now.

use std::time::Instant;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::step::StepStop;
use super::*;
use crate::frontend::{PlannedWrite, UpFrontPlan, UpFrontStep};
use crate::messages::ApprovalRefusal;
use crate::state::approvals;
use crate::state::audit::Event;

impl Engine {
    /// Plans every unfinished production write of the run and shows them with an Approve all,
    /// once per run (a resumed run has shown its plan already).
    pub(super) async fn plan_up_front(
        &self,
        run: &RunRecord,
        records: &[runs::StepRecord],
        cx: &StepContext,
    ) -> Result<(), StepStop> {
        if run.dry_run || !self.inner.frontend.shows_up_front() {
            return Ok(());
        }
        let events = audit::for_run(&self.inner.pool, run.id).await?;
        if last_up_front(&events).is_some() {
            return Ok(());
        }
        let t0 = Instant::now();
        let mut steps = Vec::new();
        for record in records.iter().filter(|r| !r.status.is_finished()) {
            let Some(step) = steps::by_name(&record.name) else {
                continue;
            };
            if !step.writes_production() {
                continue;
            }
            let name = step.name();
            let mut presumes = None;
            let planned = self
                .attempt(step.as_ref(), "plan", || step.plan_ahead(cx))
                .await
                .map(|(plan, p)| {
                    presumes = p;
                    plan
                });
            let plan = match planned {
                Ok(plan @ Plan::Change { .. }) => {
                    let hash = plan.hash(name);
                    let Plan::Change { summary, detail } = plan else {
                        unreachable!()
                    };
                    Ok(PlannedWrite {
                        plan_hash: hash,
                        summary: self.inner.redactor.redact(&summary),
                        detail: self.inner.redactor.redact(&detail),
                    })
                }
                Ok(Plan::AlreadyDone { .. }) => continue,
                Ok(Plan::Wait { reason, .. }) => Err(self.inner.redactor.redact(&reason)),
                Err(e) => Err(self.inner.redactor.redact(&step_error_text(&e))),
            };
            steps.push(UpFrontStep {
                step: name.into(),
                description: step.description().into(),
                presumes: presumes.filter(|_| plan.is_ok()),
                plan,
            });
        }
        if steps.is_empty() {
            return Ok(());
        }
        let plan = UpFrontPlan {
            run_id: run.id,
            subject: run.subject.clone(),
            started_by: run.started_by.clone(),
            hash: listing_hash(&steps),
            steps,
        };
        let listed: Vec<_> = plan
            .steps
            .iter()
            .map(|s| match &s.plan {
                Ok(p) => json!({"step": s.step, "plan_hash": p.plan_hash, "summary": p.summary, "presumes": s.presumes}),
                Err(why) => json!({"step": s.step, "why": why}),
            })
            .collect();
        self.audit_run(
            run,
            None,
            AuditKind::PlanUpFront,
            Outcome::Waiting,
            json!({"hash": plan.hash, "steps": listed, "duration_ms": t0.elapsed().as_millis() as u64}),
        )
        .await?;
        self.inner.frontend.present_up_front(&plan).await;
        Ok(())
    }

    /// One person's Approve all of the run's up-front plan named by `hash_prefix`: an approval
    /// of each listed plan of a step not finished yet that they have not decided. Returns the
    /// (step, plan hash) pairs it approved, or why nothing was.
    pub async fn approve_all(
        &self,
        run_id: Uuid,
        hash_prefix: &str,
        d: &Decision,
    ) -> anyhow::Result<Result<Vec<(String, String)>, ApprovalRefusal>> {
        let pool = &self.inner.pool;
        let Some(run) = runs::get(pool, run_id).await? else {
            return Ok(Err(ApprovalRefusal::RunOver("unknown".into())));
        };
        match run.status {
            RunStatus::Expired => return Ok(Err(ApprovalRefusal::Expired)),
            RunStatus::Running | RunStatus::WaitingApproval | RunStatus::Parked => {}
            other => return Ok(Err(ApprovalRefusal::RunOver(other.as_str().into()))),
        }
        let events = audit::for_run(pool, run_id).await?;
        let Some(listing) = last_up_front(&events).filter(|e| {
            e.detail["hash"]
                .as_str()
                .is_some_and(|h| h.starts_with(hash_prefix))
        }) else {
            return Ok(Err(ApprovalRefusal::Stale));
        };
        let unfinished: Vec<String> = runs::steps(pool, run_id)
            .await?
            .into_iter()
            .filter(|s| !s.status.is_finished())
            .map(|s| s.name)
            .collect();
        let pairs: Vec<(String, String)> = listed_pairs(listing)
            .into_iter()
            .filter(|(step, _)| unfinished.contains(step))
            .collect();
        let up_front_hash = listing.detail["hash"].clone();
        let stored = approvals::record_all_with_event(
            pool,
            &self.inner.config.audit_key,
            run_id,
            &pairs,
            &d.actor.id,
            self.inner.frontend.name(),
            |stored| NewEvent {
                run_id: Some(run_id),
                subject: run.subject.clone(),
                step: None,
                actor: d.actor.id.clone(),
                kind: AuditKind::ApprovalGrantedAll,
                outcome: Outcome::Approved.into(),
                detail: self.inner.redactor.redact_json(json!({
                    "up_front_hash": up_front_hash,
                    "covers": stored.iter().map(|(s, h)| json!({"step": s, "plan_hash": h})).collect::<Vec<_>>(),
                    "how": d.how,
                    "actor_name": d.actor.display,
                })),
                duration_ms: None,
            },
        )
        .await?;
        if stored.is_empty() {
            return Ok(Err(if pairs.is_empty() {
                ApprovalRefusal::Stale
            } else {
                ApprovalRefusal::AlreadyApproved
            }));
        }
        Ok(Ok(stored))
    }

    /// Why the plan `hash` of `step` is asked for on its own though the run's whole plan was
    /// shown up front; `None` when it was not, or when Approve all covers this very plan.
    pub(super) async fn why_asked_alone(
        &self,
        run: &RunRecord,
        step: &str,
        hash: &str,
    ) -> anyhow::Result<Option<String>> {
        let events = audit::for_run(&self.inner.pool, run.id).await?;
        let Some(listing) = last_up_front(&events) else {
            return Ok(None);
        };
        let Some(entry) = listing.detail["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["step"].as_str() == Some(step))
        else {
            return Ok(None);
        };
        Ok(match (entry["plan_hash"].as_str(), entry["why"].as_str()) {
            (Some(h), _) if h == hash => None,
            (Some(_), _) => Some(crate::messages::asked_alone_changed()),
            (None, Some(why)) => Some(crate::messages::asked_alone_unknown(why)),
            (None, None) => None,
        })
    }
}

/// The newest `plan.up_front` event of a run's events.
fn last_up_front(events: &[Event]) -> Option<&Event> {
    events
        .iter()
        .rev()
        .find(|e| e.kind == AuditKind::PlanUpFront)
}

/// The (step, plan hash) pairs a `plan.up_front` event lists as known.
fn listed_pairs(e: &Event) -> Vec<(String, String)> {
    e.detail["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            Some((
                s["step"].as_str()?.to_owned(),
                s["plan_hash"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// What an Approve all click names: the listed steps in order, each with its plan hash or
/// none, hashed.
fn listing_hash(steps: &[UpFrontStep]) -> String {
    let mut h = Sha256::new();
    for s in steps {
        h.update(s.step.as_bytes());
        h.update([0]);
        if let Ok(p) = &s.plan {
            h.update(p.plan_hash.as_bytes());
        }
        h.update([1]);
    }
    hex::encode(h.finalize())
}

/// A planning error as people read it (why a plan cannot be known yet).
fn step_error_text(e: &StepError) -> String {
    match e {
        StepError::Refused(m) | StepError::PlanChanged(m) => m.clone(),
        StepError::Transient(err) | StepError::Internal(err) => format!("{err:#}"),
    }
}
