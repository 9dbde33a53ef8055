//! Executing a run: claim it, walk its unfinished steps, record how it ended.

use std::sync::{Arc, PoisonError};
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tracing::{instrument, warn};
use uuid::Uuid;

use super::*;

impl Engine {
    /// Executes a run from its recorded state. Finished steps are skipped; a step that was
    /// interrupted (even during apply) is planned again, never blindly repeated or skipped.
    /// Refused ([`ExecutorBusy`]) while another live process holds the run.
    pub async fn execute(&self, run_id: Uuid) -> anyhow::Result<RunOutcome> {
        self.execute_as(run_id, None).await
    }

    #[instrument(skip_all, fields(run_id = %run_id), err)]
    pub(super) async fn execute_as(
        &self,
        run_id: Uuid,
        take_over: Option<(&Actor, &str)>,
    ) -> anyhow::Result<RunOutcome> {
        let pool = &self.inner.pool;
        let run = self.load_run(run_id).await?;
        if run.status.is_terminal() {
            return Ok(RunOutcome {
                status: run.status,
                message: already_ended(&run),
            });
        }
        if self.is_active(run_id) {
            bail!("run {run_id} is running in this process already");
        }
        let epoch = match take_over {
            None => self.claim(&run).await?,
            Some((actor, reason)) => self.claim_by_take_over(&run, actor, reason).await?,
        };
        let lease = Lease::new(epoch);
        let cancel = CancellationToken::new();
        let nudge = Arc::new(Notify::new());
        let keys = serde_json::from_value::<Request>(run.input.clone())
            .map(|r| r.lock_keys())
            .unwrap_or_default();
        self.inner.active_runs().insert(
            run_id,
            ActiveRun {
                cancel: cancel.clone(),
                lease: lease.clone(),
                nudge: nudge.clone(),
                keys,
            },
        );
        // Aborted when this future ends or is dropped (a task aborted at shutdown): a lease
        // must not be renewed for a run nobody executes.
        let _heartbeat = AbortOnDrop(self.spawn_heartbeat(run_id, lease.clone()));
        let result = self.execute_claimed(run, cancel, nudge, &lease).await;
        self.inner.active_runs().remove(&run_id);
        runs::release_executor(pool, run_id, &self.inner.me, epoch)
            .await
            .ok();
        result
    }

    pub(super) fn is_active(&self, run_id: Uuid) -> bool {
        self.inner.active_runs().contains_key(&run_id)
    }

    /// Claims a run nobody else executes (or whose executor is provably gone); returns the
    /// fencing token.
    pub(super) async fn claim(&self, run: &RunRecord) -> anyhow::Result<i64> {
        let dead = run
            .executor
            .as_deref()
            .is_some_and(|e| executor_is_dead(e, run.executor_proc.as_deref()));
        match self.claim_executor(run.id, dead).await? {
            Err(holder) => Err(ExecutorBusy {
                run_id: run.id,
                holder,
            }
            .into()),
            Ok(epoch) => {
                if dead {
                    self.audit_run(
                        run,
                        None,
                        AuditKind::RunTakenOver,
                        Outcome::Ok,
                        json!({"previous_executor": run.executor, "executor": self.inner.me, "explicit": false,
                               "why": "the previous executor's process is gone (same machine and pid namespace)"}),
                    )
                    .await?;
                }
                Ok(epoch)
            }
        }
    }

    pub(super) async fn execute_claimed(
        &self,
        run: RunRecord,
        cancel: CancellationToken,
        nudge: Arc<Notify>,
        lease: &Lease,
    ) -> anyhow::Result<RunOutcome> {
        let pool = &self.inner.pool;
        let request: Request = serde_json::from_value(run.input.clone())
            .with_context(|| format!("run {} has an input this version cannot read", run.id))?;
        if !run.dry_run
            && let Err(held) = runs::reacquire_locks(pool, run.id, &request.lock_keys()).await?
        {
            bail!(
                "cannot resume run {}: {}",
                run.id,
                crate::messages::lock_refused(&held)
            );
        }
        let records = runs::steps(pool, run.id).await?;
        let mut view = self.view(&run, &records);
        if let Some(chat_ref) = self.inner.frontend.attach(&view).await? {
            runs::set_chat_ref(pool, run.id, &chat_ref).await?;
            view.chat_ref = Some(chat_ref);
        }
        if run.status != RunStatus::Running {
            runs::set_status(pool, run.id, RunStatus::Running, None).await?;
            self.audit_run(
                &run,
                None,
                AuditKind::RunResumed,
                Outcome::Ok,
                json!({"from_status": run.status.as_str(), "executor": self.inner.me}),
            )
            .await?;
        }
        if run.status == RunStatus::Rejected {
            // Resuming a rejected run asks again: the rejection stays in the audit trail but
            // no longer decides the plan.
            let voided = runs::void_rejections(pool, run.id).await?;
            self.audit_run(
                &run,
                None,
                AuditKind::ApprovalReasked,
                Outcome::Ok,
                json!({"voided_rejections": voided}),
            )
            .await?;
        }
        let outputs = match &run.outputs {
            Value::Object(m) => m.clone(),
            _ => Default::default(),
        };
        let log_sink = self.log_sink(view.clone());
        let cx = StepContext::new(
            run.id,
            Arc::new(request),
            self.inner.services.clone(),
            outputs,
            cancel.clone(),
            log_sink.clone().into(),
        )
        .with_dry_run(run.dry_run)
        .with_state_db(pool.clone());
        let mut shown_up_front = false;
        for record in &records {
            if record.status.is_finished() {
                continue;
            }
            let idx = record.idx as usize;
            let Some(step) = steps::by_name(&record.name) else {
                return self
                    .finish(
                        &run,
                        &view,
                        RunEnd::Failed,
                        format!("unknown step {} (stored by another version)", record.name),
                    )
                    .await;
            };
            log_sink.set_step(idx);
            // Before the first production write: every remaining write, planned up front and
            // shown with an Approve all (once per run).
            if step.writes_production() && !shown_up_front {
                shown_up_front = true;
                let shown = tokio::select! {
                    biased;
                    _ = lease.lost.cancelled() => Err(StepStop::LeaseLost(lease.why().unwrap_or_default())),
                    _ = cancel.cancelled() => Err(StepStop::Cancelled),
                    r = self.plan_up_front(&run, &records, &cx) => r,
                };
                if let Err(e) = shown {
                    warn!(run_id = %run.id, error = ?e, "the whole plan could not be shown up front; asking step by step");
                }
            }
            let outcome = tokio::select! {
                biased;
                _ = lease.lost.cancelled() => Err(StepStop::LeaseLost(lease.why().unwrap_or_default())),
                _ = cancel.cancelled() => Err(StepStop::Cancelled),
                r = self.run_step(&run, &mut view, idx, step.as_ref(), &cx, &nudge, lease) => r,
            };
            // A run whose lease was lost is another executor's now: nothing more is recorded
            // as this one's, not even the step's outputs.
            if !matches!(outcome, Err(StepStop::LeaseLost(_))) {
                let outputs = Value::Object(cx.outputs().await);
                runs::set_outputs(pool, run.id, &outputs).await?;
            }
            match outcome {
                Ok(()) => {}
                Err(StepStop::LeaseLost(why)) => {
                    return Err(self.stopped_for_lost_lease(&run, &view, idx, why).await);
                }
                Err(StepStop::Cancelled) => {
                    self.set_step(
                        &run,
                        &mut view,
                        idx,
                        StepStatus::Cancelled,
                        None,
                        None,
                        "cancelled",
                    )
                    .await?;
                    return self
                        .finish(&run, &view, RunEnd::Cancelled, "cancelled".into())
                        .await;
                }
                Err(StepStop::Rejected(msg)) => {
                    return self.finish(&run, &view, RunEnd::Rejected, msg).await;
                }
                Err(StepStop::Expired(msg)) => {
                    return self.finish(&run, &view, RunEnd::Expired, msg).await;
                }
                Err(StepStop::Failed(msg)) => {
                    return self.finish(&run, &view, RunEnd::Failed, msg).await;
                }
                Err(StepStop::Internal(e)) => return Err(e),
            }
        }
        let message = if run.dry_run {
            "dry run: every step planned, nothing written".into()
        } else {
            "all steps done".into()
        };
        if let Err(StepStop::LeaseLost(why)) = self.fence(&run, lease).await {
            let last = view.steps.len().saturating_sub(1);
            return Err(self.stopped_for_lost_lease(&run, &view, last, why).await);
        }
        self.finish(&run, &view, RunEnd::Done, message).await
    }

    /// This process lost its claim on the run: it says so in the run's thread and in its log,
    /// and leaves the run's state to the new executor (no status, no locks touched).
    pub(super) async fn stopped_for_lost_lease(
        &self,
        run: &RunRecord,
        view: &RunView,
        idx: usize,
        why: String,
    ) -> anyhow::Error {
        let lost = LeaseLost {
            run_id: run.id,
            executor: self.inner.me.clone(),
            why,
        };
        warn!(run_id = %run.id, executor = %self.inner.me, why = %lost.why, "lost the run's lease: stopped before the next write");
        self.log_line(
            view,
            idx,
            crate::messages::lease_lost(&lost.executor, &lost.why),
        )
        .await;
        lost.into()
    }

    /// Shows a line in the run's thread, under step `idx`.
    pub(super) async fn log_line(&self, view: &RunView, idx: usize, line: String) {
        self.inner
            .frontend
            .event(view, &RunEvent::Log { idx, line })
            .await;
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn set_step(
        &self,
        run: &RunRecord,
        view: &mut RunView,
        idx: usize,
        status: StepStatus,
        plan: Option<(&str, &str)>,
        error: Option<&str>,
        message: &str,
    ) -> anyhow::Result<()> {
        runs::set_step(&self.inner.pool, run.id, idx as i32, status, plan, error).await?;
        if let Some(line) = view.steps.get_mut(idx) {
            line.status = status;
            line.note = (!message.is_empty()).then(|| message.to_owned());
        }
        self.inner
            .frontend
            .event(
                view,
                &RunEvent::Step {
                    idx,
                    status,
                    message: message.to_owned(),
                },
            )
            .await;
        Ok(())
    }

    /// Records a step reaching a status: its row and the run's thread first, then its audit
    /// event, timed from `since` (the order every transition has always been written in).
    pub(super) async fn transition(
        &self,
        run: &RunRecord,
        view: &mut RunView,
        idx: usize,
        name: &str,
        since: Instant,
        t: Transition<'_>,
    ) -> anyhow::Result<()> {
        self.set_step(run, view, idx, t.status, t.plan, None, t.note)
            .await?;
        self.audit_step(run, name, t.kind, t.outcome, t.detail, since)
            .await?;
        Ok(())
    }

    pub(super) async fn finish(
        &self,
        run: &RunRecord,
        view: &RunView,
        end: RunEnd,
        message: String,
    ) -> anyhow::Result<RunOutcome> {
        let status = end.status();
        let pool = &self.inner.pool;
        let message = self.inner.redactor.redact(&message);
        let error = (status != RunStatus::Done).then_some(message.as_str());
        if matches!(status, RunStatus::Failed | RunStatus::Rejected)
            && let Some(s) = view.steps.iter().position(|s| !s.status.is_finished())
        {
            runs::set_step(
                pool,
                run.id,
                s as i32,
                StepStatus::Failed,
                None,
                Some(&message),
            )
            .await?;
        }
        runs::set_status(pool, run.id, status, error).await?;
        // A run that wrote nothing does not keep its slug and domains: the operator can fix
        // the input and start again. One that wrote something keeps them until it is resumed
        // to its end or cancelled, so nobody else onboards over a half-done Provider.
        if status.is_terminal() || !self.wrote_anything(run.id).await? {
            runs::release_locks(pool, run.id).await?;
        }
        self.audit_run(
            run,
            None,
            end.kind(),
            end.outcome(),
            json!({"message": message}),
        )
        .await?;
        self.inner
            .frontend
            .event(
                view,
                &RunEvent::Finished {
                    status,
                    message: message.clone(),
                },
            )
            .await;
        // The chain's head leaves the database at every run's end (and on a schedule).
        if let Err(e) = self.post_anchor().await {
            warn!(error = %format!("{e:#}"), "could not post the audit anchor");
        }
        Ok(RunOutcome { status, message })
    }

    pub(super) async fn wrote_anything(&self, run_id: Uuid) -> anyhow::Result<bool> {
        Ok(audit::approved_writes(&self.inner.pool, run_id).await? > 0)
    }

    pub(super) fn view(&self, run: &RunRecord, records: &[runs::StepRecord]) -> RunView {
        RunView {
            id: run.id,
            runbook: run.runbook.clone(),
            subject: run.subject.clone(),
            started_by: run.started_by.clone(),
            dry_run: run.dry_run,
            chat_ref: run.chat_ref.clone(),
            steps: records
                .iter()
                .map(|r| StepLine {
                    name: r.name.clone(),
                    status: r.status,
                    note: None,
                })
                .collect(),
        }
    }

    pub(super) fn log_sink(&self, view: RunView) -> LogSink {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, String)>();
        let frontend = self.inner.frontend.clone();
        // Ends when the run's last sender (its step context) is dropped.
        tokio::spawn(async move {
            while let Some((idx, line)) = rx.recv().await {
                frontend.event(&view, &RunEvent::Log { idx, line }).await;
            }
        });
        LogSink {
            tx,
            idx: Arc::new(Mutex::new(0)),
            redactor: self.inner.redactor.clone(),
        }
    }
}

/// Forwards a step's log lines to the front-end, tagged with the current step, in the order
/// they were written: one channel and one forwarding task per run (a task per line could
/// deliver them out of order).
#[derive(Clone)]
pub(super) struct LogSink {
    tx: tokio::sync::mpsc::UnboundedSender<(usize, String)>,
    idx: Arc<Mutex<usize>>,
    redactor: Redactor,
}

impl LogSink {
    pub(super) fn set_step(&self, idx: usize) {
        *self.idx.lock().unwrap_or_else(PoisonError::into_inner) = idx;
    }
}

impl From<LogSink> for Arc<dyn Fn(&str) + Send + Sync> {
    fn from(sink: LogSink) -> Self {
        Arc::new(move |line: &str| {
            let idx = *sink.idx.lock().unwrap_or_else(PoisonError::into_inner);
            // Fails only once the run is over and its forwarder gone: nothing left to show.
            let _ = sink.tx.send((idx, sink.redactor.redact(line)));
        })
    }
}

/// A step reaching a status, as [`Engine::transition`] records it.
pub(super) struct Transition<'a> {
    pub(super) status: StepStatus,
    /// The plan's hash and summary, stored with the status.
    pub(super) plan: Option<(&'a str, &'a str)>,
    /// The note shown beside the step in the run's thread.
    pub(super) note: &'a str,
    pub(super) kind: AuditKind,
    pub(super) outcome: Outcome,
    pub(super) detail: Value,
}

/// How a run ends here: each with its status, its audit event and that event's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RunEnd {
    Done,
    Failed,
    Rejected,
    Expired,
    Cancelled,
}

impl RunEnd {
    fn status(self) -> RunStatus {
        match self {
            Self::Done => RunStatus::Done,
            Self::Failed => RunStatus::Failed,
            Self::Rejected => RunStatus::Rejected,
            Self::Expired => RunStatus::Expired,
            Self::Cancelled => RunStatus::Cancelled,
        }
    }

    fn kind(self) -> AuditKind {
        match self {
            Self::Done => AuditKind::RunDone,
            Self::Failed => AuditKind::RunFailed,
            Self::Rejected => AuditKind::RunRejected,
            Self::Expired => AuditKind::RunExpired,
            Self::Cancelled => AuditKind::RunCancelled,
        }
    }

    fn outcome(self) -> Outcome {
        match self {
            Self::Done => Outcome::Done,
            Self::Failed => Outcome::Failed,
            Self::Rejected => Outcome::Rejected,
            Self::Expired => Outcome::Expired,
            Self::Cancelled => Outcome::Cancelled,
        }
    }
}
