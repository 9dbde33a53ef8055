//! The runbook engine: runs are ordered lists of steps with persisted state.
//!
//! It takes the locks, asks the front-end for approvals of exact plans, enforces timeouts and
//! retries, parks runs on external conditions, records every transition in the audit trail and
//! resumes unfinished runs. Steps never talk to the front-end; of the state database they
//! touch only the sites records (whose each site is), through `StepContext::state_db`.

pub mod request;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, instrument, warn};
use uuid::Uuid;

use crate::adapters::Services;
use crate::chat::{Actor, ApprovalRequest, ChatFrontend, Decision, RunEvent, RunView, StepLine};
use crate::config::{Config, Environment};
use crate::domain::{DomainName, Email};
use crate::state::audit::{self, Anchor, ChainVerifier, NewEvent};
use crate::state::runs::{self, LockHeld, NewRun, RunRecord, RunStatus, StepStatus};
use crate::state::sites;
use crate::steps::{self, ApprovedPlan, Plan, Step, StepContext, StepError};
use request::{CertRequest, Request};

/// Postgres channel on which `runs cancel` tells the executing process to stop a run.
const CANCEL_CHANNEL: &str = "onboard_bot_cancel";
/// Postgres channel on which `dns-check` asks runs parked on a domain to re-check now.
const NUDGE_CHANNEL: &str = "onboard_bot_nudge";
/// Postgres channel on which a take-over asks the executing process to let go of a run.
const TAKEOVER_CHANNEL: &str = "onboard_bot_takeover";
/// How long an executor's claim on a run lasts without renewal.
const EXECUTOR_LEASE_SECS: i64 = 30;

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{}", crate::messages::lock_refused(.0))]
    Locked(LockHeld),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Options for a new run.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Plan every step, show the plans, ask nothing and write nothing.
    pub dry_run: bool,
    /// Console use against production: the reason, recorded in the audit trail.
    pub break_glass: Option<String>,
}

/// How a run ended (for now: the process may stop and resume it later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub message: String,
}

/// A test hook: `ONBOARD_BOT_FAULT=<when>:<step>[:<ms>]` makes the process print a marker at
/// that point so a test can SIGKILL it there. `before-apply` and `after-apply` (the write done,
/// its success not yet recorded: the worst moment) then hang; `during-apply` prints the marker
/// `<ms>` milliseconds into the apply and lets it go on, so the kill lands mid-step (certbot or
/// the deploy command running).
#[derive(Debug, Clone, PartialEq, Eq)]
struct FaultPoint {
    when: String,
    step: String,
    delay: Duration,
}

impl FaultPoint {
    fn from_env() -> Option<Self> {
        let raw = std::env::var("ONBOARD_BOT_FAULT").ok()?;
        let mut parts = raw.split(':');
        let when = parts.next()?.to_owned();
        let step = parts.next()?.to_owned();
        let delay = Duration::from_millis(parts.next().and_then(|ms| ms.parse().ok()).unwrap_or(0));
        Some(Self { when, step, delay })
    }

    fn matches(fault: &Option<Self>, when: &str, step: &str) -> Option<Duration> {
        fault
            .as_ref()
            .filter(|f| f.when == when && f.step == step)
            .map(|f| f.delay)
    }

    async fn hit(fault: &Option<Self>, when: &str, step: &str) {
        if Self::matches(fault, when, step).is_some() {
            eprintln!("FAULT-POINT {when}:{step} reached; waiting to be killed");
            std::future::pending::<()>().await;
        }
    }

    /// Runs `work`; with a matching `during-apply` fault, announces the kill point meanwhile.
    async fn during<T>(
        fault: &Option<Self>,
        step: &str,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let Some(delay) = Self::matches(fault, "during-apply", step) else {
            return work.await;
        };
        tokio::pin!(work);
        tokio::select! {
            out = &mut work => out,
            _ = tokio::time::sleep(delay) => {
                eprintln!("FAULT-POINT during-apply:{step} reached; waiting to be killed");
                work.await
            }
        }
    }
}

struct ActiveRun {
    cancel: CancellationToken,
    /// Cancelled when this process loses its claim on the run.
    lease: Lease,
    nudge: Arc<Notify>,
    /// The run's lock keys (`domain:x.com`), to find the runs a nudge is for.
    keys: Vec<String>,
}

struct Inner {
    pool: PgPool,
    config: Arc<Config>,
    services: Arc<Services>,
    frontend: Arc<dyn ChatFrontend>,
    /// `host:pid` of this process: who executes a run.
    me: String,
    /// `<boot id>/<pid namespace>`: where `me`'s pid means something.
    proc_id: String,
    /// How far the audit chain is known to verify.
    chain: ChainVerifier,
    active: Mutex<HashMap<Uuid, ActiveRun>>,
    redactor: Redactor,
    fault: Option<FaultPoint>,
}

/// The engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// Connects to the state database, migrates it and starts listening for cancellations.
    pub async fn new(config: Arc<Config>, frontend: Arc<dyn ChatFrontend>) -> anyhow::Result<Self> {
        crate::state::migrate(&config).await?;
        let pool = crate::state::connect(&config.state_db).await?;
        let services = Arc::new(Services::new(config.clone()));
        // Log lines are scrubbed of the same values (src/telemetry.rs).
        crate::redact::register(config.secret_values());
        let redactor = Redactor::new(
            config
                .secret_values()
                .into_iter()
                .map(String::from)
                .collect(),
        );
        let engine = Self {
            inner: Arc::new(Inner {
                pool,
                config,
                services,
                frontend,
                me: executor_id(),
                proc_id: proc_identity(),
                chain: ChainVerifier::default(),
                active: Mutex::new(HashMap::new()),
                redactor,
                fault: FaultPoint::from_env(),
            }),
        };
        engine.listen_for_cancels().await?;
        Ok(engine)
    }

    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.inner.config
    }

    pub fn services(&self) -> &Arc<Services> {
        &self.inner.services
    }

    /// Creates a run (taking its locks) and records who asked. Does not execute it.
    pub async fn start(
        &self,
        request: Request,
        actor: &Actor,
        opts: StartOptions,
    ) -> Result<Uuid, StartError> {
        let cfg = &self.inner.config;
        if cfg.environment == Environment::Production
            && self.inner.frontend.name() == "console"
            && opts.break_glass.is_none()
        {
            return Err(StartError::Refused(
                "this config is marked production: the console may only be used with --break-glass REASON (recorded in the audit trail)"
                    .into(),
            ));
        }
        // /cert and /verify act only on what the bot has on record (a site it created or
        // adopted, a person it created): never on another tenant's site or a mistyped name.
        let not_on_record = match &request {
            Request::Cert(r) => sites::get(&self.inner.pool, r.domain.as_str())
                .await?
                .is_none()
                .then(|| crate::messages::domain_not_on_record(r.domain.as_str())),
            Request::Verify(r) => (!sites::slug_on_record(&self.inner.pool, r.slug.as_str())
                .await?)
                .then(|| crate::messages::slug_not_on_record(r.slug.as_str())),
            Request::Onboard(_) => None,
        };
        if let Some(why) = not_on_record {
            self.audit(NewEvent {
                run_id: None,
                subject: request.subject(),
                step: None,
                actor: actor.id.clone(),
                kind: "run.refused".into(),
                outcome: "not_on_record".into(),
                detail: json!({"runbook": request.runbook(), "reason": why}),
                duration_ms: None,
            })
            .await?;
            return Err(StartError::Refused(why));
        }
        let id = Uuid::new_v4();
        let new = NewRun {
            id,
            runbook: request.runbook().into(),
            subject: request.subject(),
            input: serde_json::to_value(&request).context("serialising the request")?,
            steps: request.steps().into_iter().map(String::from).collect(),
            started_by: actor.id.clone(),
            frontend: self.inner.frontend.name().into(),
            dry_run: opts.dry_run,
            break_glass: opts.break_glass.clone(),
            lock_keys: request.lock_keys(),
        };
        if let Err(held) = runs::create(&self.inner.pool, &new).await? {
            self.audit(NewEvent {
                run_id: None,
                subject: new.subject.clone(),
                step: None,
                actor: actor.id.clone(),
                kind: "run.refused".into(),
                outcome: "locked".into(),
                detail: json!({"runbook": new.runbook, "lock": held.key, "held_by_run": held.run_id, "held_by": held.started_by}),
                duration_ms: None,
            })
            .await?;
            return Err(StartError::Locked(held));
        }
        self.audit(NewEvent {
            run_id: Some(id),
            subject: new.subject.clone(),
            step: None,
            actor: actor.id.clone(),
            kind: "run.started".into(),
            outcome: "ok".into(),
            detail: json!({
                "runbook": new.runbook,
                "input": new.input,
                "steps": new.steps,
                "dry_run": opts.dry_run,
                "frontend": new.frontend,
                "break_glass": opts.break_glass,
                "locks": new.lock_keys,
            }),
            duration_ms: None,
        })
        .await?;
        info!(run_id = %id, runbook = new.runbook, subject = new.subject, "run started");
        Ok(id)
    }

    /// `/cert issue`: the request for a domain whose site the bot has on record, with the
    /// email given or else the one its owner's onboarding recorded (never the email of another
    /// tenant's onboarding that merely named the domain).
    pub async fn cert_request(
        &self,
        domain: DomainName,
        email: Option<Email>,
    ) -> Result<Request, StartError> {
        let pool = &self.inner.pool;
        let Some(site) = sites::get(pool, domain.as_str()).await? else {
            return Err(StartError::Refused(crate::messages::domain_not_on_record(
                domain.as_str(),
            )));
        };
        let email = match email {
            Some(e) => e,
            None => match sites::owner_email(pool, domain.as_str()).await? {
                Some(e) => Email::parse(&e)
                    .map_err(|e| anyhow!("the recorded email of {domain} does not parse: {e}"))?,
                None => {
                    return Err(StartError::Refused(crate::messages::no_owner_email(
                        domain.as_str(),
                        &site.slug,
                    )));
                }
            },
        };
        Ok(Request::Cert(CertRequest { domain, email }))
    }

    /// Starts a run and executes it to its end (or until it stops to wait for a person).
    pub async fn run(
        &self,
        request: Request,
        actor: &Actor,
        opts: StartOptions,
    ) -> Result<(Uuid, RunOutcome), StartError> {
        let id = self.start(request, actor, opts).await?;
        let outcome = self.execute(id).await?;
        Ok((id, outcome))
    }

    /// Executes a run from its recorded state. Finished steps are skipped; a step that was
    /// interrupted (even during apply) is planned again, never blindly repeated or skipped.
    /// Refused ([`ExecutorBusy`]) while another live process holds the run.
    pub async fn execute(&self, run_id: Uuid) -> anyhow::Result<RunOutcome> {
        self.execute_as(run_id, None).await
    }

    /// Takes a run over from the process that executes it, then executes it: the holder is
    /// asked to let go (it stops renewing its lease and stops before its next write), and the
    /// run is claimed once it has, or once its lease ran out. An approver's act, audited with
    /// who and why.
    pub async fn take_over(
        &self,
        run_id: Uuid,
        actor: &Actor,
        reason: &str,
    ) -> anyhow::Result<RunOutcome> {
        self.execute_as(run_id, Some((actor, reason))).await
    }

    #[instrument(skip_all, fields(run_id = %run_id), err)]
    async fn execute_as(
        &self,
        run_id: Uuid,
        take_over: Option<(&Actor, &str)>,
    ) -> anyhow::Result<RunOutcome> {
        let pool = &self.inner.pool;
        let run = runs::get(pool, run_id)
            .await?
            .ok_or_else(|| anyhow!("no run {run_id}"))?;
        if run.status.is_terminal() {
            return Ok(RunOutcome {
                status: run.status,
                message: format!("run {run_id} is already {}", run.status.as_str()),
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
        self.inner.active.lock().expect("active runs").insert(
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
        self.inner
            .active
            .lock()
            .expect("active runs")
            .remove(&run_id);
        runs::release_executor(pool, run_id, &self.inner.me, epoch)
            .await
            .ok();
        result
    }

    fn is_active(&self, run_id: Uuid) -> bool {
        self.inner
            .active
            .lock()
            .expect("active runs")
            .contains_key(&run_id)
    }

    /// Claims a run nobody else executes (or whose executor is provably gone); returns the
    /// fencing token.
    async fn claim(&self, run: &RunRecord) -> anyhow::Result<i64> {
        let pool = &self.inner.pool;
        let dead = run
            .executor
            .as_deref()
            .is_some_and(|e| executor_is_dead(e, run.executor_proc.as_deref()));
        match runs::claim_executor(
            pool,
            run.id,
            &self.inner.me,
            &self.inner.proc_id,
            EXECUTOR_LEASE_SECS,
            dead,
        )
        .await?
        {
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
                        "run.taken_over",
                        "ok",
                        json!({"previous_executor": run.executor, "executor": self.inner.me, "explicit": false,
                               "why": "the previous executor's process is gone (same machine and pid namespace)"}),
                    )
                    .await?;
                }
                Ok(epoch)
            }
        }
    }

    /// The take-over protocol: ask the live holder to let go, wait until it has (or its lease,
    /// which it no longer renews, ran out), then claim.
    async fn claim_by_take_over(
        &self,
        run: &RunRecord,
        actor: &Actor,
        reason: &str,
    ) -> anyhow::Result<i64> {
        let pool = &self.inner.pool;
        let live_holder = run
            .executor
            .clone()
            .filter(|e| e != &self.inner.me)
            .filter(|e| !executor_is_dead(e, run.executor_proc.as_deref()))
            .filter(|_| run.executor_until.is_some_and(|t| t > chrono::Utc::now()));
        if let Some(holder) = &live_holder
            && runs::request_takeover(pool, run.id, holder, &self.inner.me).await?
        {
            self.audit_run(
                run,
                Some(actor),
                "run.takeover_requested",
                "waiting",
                json!({"holder": holder, "by": self.inner.me, "reason": reason}),
            )
            .await?;
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(TAKEOVER_CHANNEL)
                .bind(run.id.to_string())
                .execute(pool)
                .await?;
        }
        // A responsive holder lets go within moments; one that cannot reach the database stops
        // renewing, so its lease runs out within EXECUTOR_LEASE_SECS.
        let patience = Duration::from_secs(EXECUTOR_LEASE_SECS as u64 + 10);
        let deadline = Instant::now() + patience;
        let epoch = loop {
            let force = live_holder.is_none();
            match runs::claim_executor(
                pool,
                run.id,
                &self.inner.me,
                &self.inner.proc_id,
                EXECUTOR_LEASE_SECS,
                force,
            )
            .await?
            {
                Ok(epoch) => break epoch,
                Err(holder) if Instant::now() >= deadline => {
                    bail!(
                        "run {}: {holder} still holds it after {}s (it keeps renewing its lease, so it is alive and reaches the database); nothing was taken over. Stop that process, or cancel the run with `runs cancel`.",
                        run.id,
                        patience.as_secs()
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        self.audit_run(
            run,
            Some(actor),
            "run.taken_over",
            "ok",
            json!({"previous_executor": run.executor, "executor": self.inner.me, "explicit": true, "reason": reason}),
        )
        .await?;
        info!(run_id = %run.id, previous = ?run.executor, by = %actor.id, "run taken over");
        Ok(epoch)
    }

    /// Renews the lease while the run executes; when it cannot (the run was taken over, or
    /// the database stayed out of reach until the lease ran out), cancels the lease so the
    /// executor stops before its next write.
    fn spawn_heartbeat(&self, run_id: Uuid, lease: Lease) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        tokio::spawn(async move {
            let period = Duration::from_secs(EXECUTOR_LEASE_SECS as u64 / 3);
            let mut tick = tokio::time::interval(period);
            let mut renewed_at = Instant::now();
            loop {
                tick.tick().await;
                let pool = &engine.inner.pool;
                let me = &engine.inner.me;
                match runs::renew_executor(pool, run_id, me, lease.epoch, EXECUTOR_LEASE_SECS).await
                {
                    Ok(true) => renewed_at = Instant::now(),
                    Ok(false) => {
                        let why = runs::lease_lost(pool, run_id, me, lease.epoch)
                            .await
                            .ok()
                            .flatten()
                            .unwrap_or_else(|| "the lease could not be renewed".into());
                        lease.lose(why);
                        return;
                    }
                    Err(e) => {
                        warn!(run_id = %run_id, error = %e, "could not renew the executor lease");
                        if renewed_at.elapsed() >= Duration::from_secs(EXECUTOR_LEASE_SECS as u64) {
                            lease.lose(
                                "the lease ran out while the state database was out of reach"
                                    .into(),
                            );
                            return;
                        }
                    }
                }
            }
        })
    }

    /// The fencing check, right before a write: this process still holds the claim it made.
    async fn fence(&self, run: &RunRecord, lease: &Lease) -> Result<(), StepStop> {
        if let Some(why) = lease.why() {
            return Err(StepStop::LeaseLost(why));
        }
        match runs::lease_lost(&self.inner.pool, run.id, &self.inner.me, lease.epoch).await? {
            None => Ok(()),
            Some(why) => {
                lease.lose(why.clone());
                Err(StepStop::LeaseLost(why))
            }
        }
    }

    async fn execute_claimed(
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
                "run.resumed",
                "ok",
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
                "approval.reasked",
                "ok",
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
                        RunStatus::Failed,
                        format!("unknown step {} (stored by another version)", record.name),
                    )
                    .await;
            };
            log_sink.set_step(idx);
            let outcome = tokio::select! {
                biased;
                _ = lease.lost.cancelled() => Err(StepStop::LeaseLost(lease.why().unwrap_or_default())),
                _ = cancel.cancelled() => Err(StepStop::Cancelled),
                r = self.run_step(&run, &mut view, idx, step.as_ref(), &cx, &nudge, lease) => r,
            };
            if let Err(StepStop::LeaseLost(why)) = outcome {
                return Err(self.stopped_for_lost_lease(&run, &view, idx, why).await);
            }
            let outputs = Value::Object(cx.outputs().await);
            runs::set_outputs(pool, run.id, &outputs).await?;
            match outcome {
                Ok(()) => {}
                Err(StepStop::LeaseLost(_)) => unreachable!("handled above"),
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
                        .finish(&run, &view, RunStatus::Cancelled, "cancelled".into())
                        .await;
                }
                Err(StepStop::Rejected(msg)) => {
                    return self.finish(&run, &view, RunStatus::Rejected, msg).await;
                }
                Err(StepStop::Failed(msg)) => {
                    return self.finish(&run, &view, RunStatus::Failed, msg).await;
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
        self.finish(&run, &view, RunStatus::Done, message).await
    }

    /// This process lost its claim on the run: it says so in the run's thread and in its log,
    /// and leaves the run's state to the new executor (no status, no locks touched).
    async fn stopped_for_lost_lease(
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
        self.inner
            .frontend
            .event(
                view,
                &RunEvent::Log {
                    idx,
                    line: crate::messages::lease_lost(&lost.executor, &lost.why),
                },
            )
            .await;
        lost.into()
    }

    /// Plans, gets approval if needed, applies and checks one step.
    #[allow(clippy::too_many_arguments)]
    #[instrument(skip_all, fields(run_id = %run.id, step = step.name()), err(Debug))]
    async fn run_step(
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
        loop {
            self.set_step(run, view, idx, StepStatus::Planning, None, None, "")
                .await?;
            let plan = match self.attempt(step, "plan", || step.plan(cx)).await {
                Ok(plan) => plan,
                // A dry run wrote nothing, so later steps may refuse for want of what earlier
                // ones would have done: it reports the refusal and goes on planning.
                Err(StepError::Refused(reason)) if run.dry_run => {
                    let reason = self.inner.redactor.redact(&reason);
                    self.set_step(
                        run,
                        view,
                        idx,
                        StepStatus::Planned,
                        Some(("", "would refuse")),
                        None,
                        &format!("would refuse: {reason}"),
                    )
                    .await?;
                    self.audit_step(
                        run,
                        name,
                        "step.planned",
                        "would_refuse",
                        json!({"reason": reason}),
                        t0,
                    )
                    .await?;
                    return Ok(());
                }
                Err(e) => return Err(self.step_failed(e)),
            };
            let hash = plan.hash(name);
            match &plan {
                Plan::AlreadyDone { evidence } => {
                    let evidence = self.inner.redactor.redact(evidence);
                    self.set_step(
                        run,
                        view,
                        idx,
                        StepStatus::AlreadyDone,
                        Some((&hash, "already done")),
                        None,
                        &evidence,
                    )
                    .await?;
                    self.audit_step(
                        run,
                        name,
                        "step.already_done",
                        "ok",
                        json!({"evidence": evidence}),
                        t0,
                    )
                    .await?;
                    return Ok(());
                }
                Plan::Wait { reason, recheck } => {
                    let reason = self.inner.redactor.redact(reason);
                    if run.dry_run {
                        // A dry run reports what it would wait for and goes on planning.
                        self.set_step(
                            run,
                            view,
                            idx,
                            StepStatus::Planned,
                            Some((&hash, "would wait")),
                            None,
                            &reason,
                        )
                        .await?;
                        self.audit_step(
                            run,
                            name,
                            "step.planned",
                            "dry_run",
                            json!({"would_wait": reason}),
                            t0,
                        )
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
                        self.set_step(run, view, idx, StepStatus::Parked, None, None, &reason)
                            .await?;
                        self.audit_step(
                            run,
                            name,
                            "step.parked",
                            "waiting",
                            json!({"reason": reason}),
                            t0,
                        )
                        .await?;
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
                        self.audit_step(run, name, "step.unparked", "ok", json!({}), t0)
                            .await?;
                    }
                    let summary = self.inner.redactor.redact(summary);
                    let detail = self.inner.redactor.redact(detail);
                    if run.dry_run {
                        self.set_step(
                            run,
                            view,
                            idx,
                            StepStatus::Planned,
                            Some((&hash, &summary)),
                            None,
                            &detail,
                        )
                        .await?;
                        self.audit_step(
                            run,
                            name,
                            "step.planned",
                            "dry_run",
                            json!({"summary": summary, "detail": detail, "plan_hash": hash}),
                            t0,
                        )
                        .await?;
                        return Ok(());
                    }
                    let approver = if step.writes_production() {
                        let decision =
                            runs::decision_for(&self.inner.pool, run.id, name, &hash).await?;
                        if let Some(a) = &decision {
                            self.decision_backed(run, name, &hash, a).await?;
                        }
                        match decision {
                            Some(a) if a.approved => Some(a.actor),
                            Some(a) => {
                                return Err(StepStop::Rejected(format!(
                                    "{name}: plan rejected by {}{}",
                                    a.actor,
                                    a.reason.map(|r| format!(": {r}")).unwrap_or_default()
                                )));
                            }
                            None => {
                                self.ask_approval(run, view, idx, step, &summary, &detail, &hash)
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
                                "step.plan_changed",
                                "plan_changed",
                                json!({"approved_plan_hash": hash, "reason": why}),
                                t_apply,
                            )
                            .await?;
                            self.inner
                                .frontend
                                .event(view, &RunEvent::Log { idx, line: why })
                                .await;
                            continue;
                        }
                        Err(e) => return Err(self.step_failed(e)),
                    }
                    FaultPoint::hit(&self.inner.fault, "after-apply", name).await;
                    self.audit_step(
                        run,
                        name,
                        "step.applied",
                        "ok",
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
                            "step.check_failed",
                            "failed",
                            json!({"evidence": evidence}),
                            t0,
                        )
                        .await?;
                        return Err(StepStop::Failed(format!(
                            "{name}: applied, but the check failed: {evidence}"
                        )));
                    }
                    self.set_step(run, view, idx, StepStatus::Done, None, None, &evidence)
                        .await?;
                    self.audit_step(
                        run,
                        name,
                        "step.done",
                        "ok",
                        json!({"evidence": evidence}),
                        t0,
                    )
                    .await?;
                    return Ok(());
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn ask_approval(
        &self,
        run: &RunRecord,
        view: &mut RunView,
        idx: usize,
        step: &dyn Step,
        summary: &str,
        detail: &str,
        hash: &str,
    ) -> Result<(), StepStop> {
        let name = step.name();
        let t0 = Instant::now();
        let voided = runs::void_other_approvals(&self.inner.pool, run.id, name, hash).await?;
        if voided > 0 {
            self.audit_step(
                run,
                name,
                "approval.voided",
                "plan_changed",
                json!({"new_plan_hash": hash, "voided": voided}),
                t0,
            )
            .await?;
            self.inner
                .frontend
                .event(
                    view,
                    &RunEvent::Log {
                        idx,
                        line: "the plan changed since it was approved: asking again".into(),
                    },
                )
                .await;
        }
        runs::set_status(&self.inner.pool, run.id, RunStatus::WaitingApproval, None).await?;
        self.set_step(
            run,
            view,
            idx,
            StepStatus::WaitingApproval,
            Some((hash, summary)),
            None,
            summary,
        )
        .await?;
        self.audit_step(
            run,
            name,
            "approval.requested",
            "waiting",
            json!({"plan_hash": hash, "summary": summary, "detail": detail}),
            t0,
        )
        .await?;
        let req = ApprovalRequest {
            run_id: run.id,
            subject: run.subject.clone(),
            step: name.into(),
            step_description: step.description().into(),
            summary: summary.into(),
            detail: detail.into(),
            plan_hash: hash.into(),
            started_by: run.started_by.clone(),
        };
        let decision = self
            .inner
            .frontend
            .request_approval(&req)
            .await
            .map_err(StepStop::Internal)?;
        // A front-end may hand back a decision that was already recorded (a click stored while
        // no run was waiting for it): record each decision once.
        let known = runs::decision_for(&self.inner.pool, run.id, name, hash).await?;
        if known.is_none_or(|k| k.actor != decision.actor.id || k.approved != decision.approved) {
            self.record_decision(run, name, hash, &decision).await?;
        }
        runs::set_status(&self.inner.pool, run.id, RunStatus::Running, None).await?;
        Ok(())
    }

    /// Stores a decision and its audit event (who, when, how, which plan) in one transaction.
    /// A plan has one standing decision: a second, different one is refused.
    pub async fn record_decision(
        &self,
        run: &RunRecord,
        step: &str,
        hash: &str,
        d: &Decision,
    ) -> anyhow::Result<()> {
        let pool = &self.inner.pool;
        let mut tx = pool.begin().await?;
        let inserted = runs::record_decision(
            &mut tx,
            run.id,
            step,
            hash,
            d.approved,
            &d.actor.id,
            self.inner.frontend.name(),
            d.reason.as_deref(),
        )
        .await?;
        if inserted.is_none() {
            tx.rollback().await?;
            return match runs::decision_for(pool, run.id, step, hash).await? {
                Some(a) if a.actor == d.actor.id && a.approved == d.approved => Ok(()),
                Some(a) => bail!(
                    "{step}: this plan was already {} by {}",
                    if a.approved { "approved" } else { "rejected" },
                    a.actor
                ),
                None => bail!("{step}: the decision could not be stored; try again"),
            };
        }
        let ev = NewEvent {
            run_id: Some(run.id),
            subject: run.subject.clone(),
            step: Some(step.into()),
            actor: d.actor.id.clone(),
            kind: if d.approved { "approval.granted" } else { "approval.rejected" }.into(),
            outcome: if d.approved { "approved" } else { "rejected" }.into(),
            detail: self.inner.redactor.redact_json(
                json!({"plan_hash": hash, "how": d.how, "reason": d.reason, "actor_name": d.actor.display}),
            ),
            duration_ms: None,
        };
        audit::append_in(&mut tx, &self.inner.config.audit_key, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A recorded decision counts only when the audit chain backs it: its `approval.*` event
    /// (not voided since) names the same actor and verdict, and the chain verifies through
    /// its head under the bot's key. A row someone wrote into `approvals` by hand, or an event
    /// written without the key, stops the step instead of authorising it.
    async fn decision_backed(
        &self,
        run: &RunRecord,
        step: &str,
        hash: &str,
        a: &runs::Approval,
    ) -> Result<(), StepStop> {
        let pool = &self.inner.pool;
        let events = audit::for_run(pool, run.id).await?;
        let problem = match audit::standing_decision(&events, step, hash) {
            None => Some("has no approval event in the audit trail".to_owned()),
            Some(e) if e.actor != a.actor || (e.kind == "approval.granted") != a.approved => {
                Some(format!(
                    "does not match its audit event #{} ({} by {})",
                    e.id, e.kind, e.actor
                ))
            }
            Some(_) => {
                let head = audit::head(pool).await?.map(|h| h.id).unwrap_or(0);
                match self
                    .inner
                    .chain
                    .verify_through(pool, &self.inner.config.audit_key, head)
                    .await?
                {
                    Ok(()) => None,
                    Err(b) => Some(format!(
                        "is in an audit chain that does not verify (event #{}: {})",
                        b.id, b.problem
                    )),
                }
            }
        };
        let Some(problem) = problem else {
            return Ok(());
        };
        warn!(run_id = %run.id, step, approval = a.id, actor = %a.actor, problem, "an approval is not backed by the audit chain");
        self.audit(NewEvent {
            run_id: Some(run.id),
            subject: run.subject.clone(),
            step: Some(step.into()),
            actor: Actor::bot().id,
            kind: "approval.unbacked".into(),
            outcome: "refused".into(),
            detail: json!({"approval_id": a.id, "actor": a.actor, "plan_hash": hash, "problem": problem}),
            duration_ms: None,
        })
        .await?;
        Err(StepStop::Failed(crate::messages::approval_unbacked(
            step, &a.actor, &problem,
        )))
    }

    /// One call with the step's timeout, retried with back-off on transient errors.
    async fn attempt<'a, F, Fut, T>(
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

    fn step_failed(&self, e: StepError) -> StepStop {
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

    #[allow(clippy::too_many_arguments)]
    async fn set_step(
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
        view.steps[idx].status = status;
        view.steps[idx].note = (!message.is_empty()).then(|| message.to_owned());
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

    async fn finish(
        &self,
        run: &RunRecord,
        view: &RunView,
        status: RunStatus,
        message: String,
    ) -> anyhow::Result<RunOutcome> {
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
            &format!("run.{}", status.as_str()),
            status.as_str(),
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

    async fn wrote_anything(&self, run_id: Uuid) -> anyhow::Result<bool> {
        let applied: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audit_events WHERE run_id = $1 AND kind = 'step.applied' AND detail ? 'approved_by' AND detail->>'approved_by' IS NOT NULL",
        )
        .bind(run_id)
        .fetch_one(&self.inner.pool)
        .await?;
        Ok(applied > 0)
    }

    /// `/dns-check`: the records `req.domain` needs (for the mail plan given, else the one its
    /// onboarding recorded), checked on every server — until they hold or the deadline passes
    /// when `req.wait` is set — and runs parked on the domain asked to re-check now.
    pub async fn dns_check(
        &self,
        req: &request::DnsCheckRequest,
        progress: impl FnMut(u32, &crate::dnscheck::Report),
    ) -> anyhow::Result<(crate::dnscheck::Report, crate::domain::MailPlan)> {
        use crate::domain::MailPlan;
        let cfg = &self.inner.config;
        let mail = match req.mail {
            Some(m) => m,
            None => match runs::mail_plan_for_domain(&self.inner.pool, req.domain.as_str())
                .await?
                .as_deref()
            {
                Some("mailbox") => MailPlan::Mailbox,
                Some("forwarding") => MailPlan::Forwarding,
                _ => MailPlan::None,
            },
        };
        let expected = crate::dnscheck::expected_records(
            &req.domain,
            cfg.vps.ipv4,
            cfg.vps.ipv6,
            mail,
            &cfg.mail,
        );
        let domain = req.domain.as_str();
        let report = match req.wait {
            None => {
                crate::adapters::dns::check_domain(&cfg.dns, &expected, domain, &cfg.mail).await?
            }
            Some(deadline) => {
                crate::adapters::dns::check_until(
                    &cfg.dns, &expected, domain, &cfg.mail, deadline, progress,
                )
                .await?
            }
        };
        self.nudge_domain(domain).await?;
        Ok((report, mail))
    }

    /// Records why the console acts on a production run (`--break-glass REASON`).
    pub async fn record_break_glass(
        &self,
        run_id: Uuid,
        actor: &Actor,
        reason: &str,
    ) -> anyhow::Result<()> {
        let run = runs::get(&self.inner.pool, run_id)
            .await?
            .ok_or_else(|| anyhow!("no run {run_id}"))?;
        self.audit_run(
            &run,
            Some(actor),
            "run.break_glass",
            "ok",
            json!({"reason": reason, "frontend": self.inner.frontend.name()}),
        )
        .await?;
        Ok(())
    }

    /// Records a command refused before it could start or show anything (a chat member
    /// without the role for it): who, which command, why (`outcome`), about what `subject`;
    /// `detail` (a JSON object) gets the command and the front-end added.
    pub async fn record_command_refused(
        &self,
        actor: &Actor,
        command: &str,
        subject: &str,
        outcome: &str,
        detail: Value,
    ) -> anyhow::Result<()> {
        let mut detail = detail;
        detail["command"] = json!(command);
        detail["frontend"] = json!(self.inner.frontend.name());
        self.audit(NewEvent {
            run_id: None,
            subject: subject.into(),
            step: None,
            actor: actor.id.clone(),
            kind: "command.refused".into(),
            outcome: outcome.into(),
            detail,
            duration_ms: None,
        })
        .await?;
        Ok(())
    }

    /// Cancels a run: stops its running or waiting step here, or tells the process that
    /// executes it, then records it and releases its locks.
    pub async fn cancel(
        &self,
        run_id: Uuid,
        actor: &Actor,
        reason: &str,
    ) -> anyhow::Result<String> {
        let pool = &self.inner.pool;
        let run = runs::get(pool, run_id)
            .await?
            .ok_or_else(|| anyhow!("no run {run_id}"))?;
        if run.status.is_terminal() {
            return Ok(format!("run {run_id} is already {}", run.status.as_str()));
        }
        self.audit_run(
            &run,
            Some(actor),
            "run.cancel_requested",
            "ok",
            json!({"reason": reason}),
        )
        .await?;
        let local = self
            .inner
            .active
            .lock()
            .expect("active runs")
            .get(&run_id)
            .map(|a| a.cancel.clone());
        if let Some(token) = local {
            token.cancel();
            return Ok(format!("run {run_id}: cancelling the running step"));
        }
        let live_executor = run
            .executor
            .as_deref()
            .is_some_and(|e| !executor_is_dead(e, run.executor_proc.as_deref()))
            && run.executor_until.is_some_and(|t| t > chrono::Utc::now());
        if live_executor {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CANCEL_CHANNEL)
                .bind(run_id.to_string())
                .execute(pool)
                .await?;
            return Ok(format!(
                "run {run_id}: asked {} to cancel it",
                run.executor.unwrap_or_default()
            ));
        }
        runs::set_status(pool, run_id, RunStatus::Cancelled, Some(reason)).await?;
        runs::release_locks(pool, run_id).await?;
        self.audit_run(
            &run,
            Some(actor),
            "run.cancelled",
            "cancelled",
            json!({"reason": reason}),
        )
        .await?;
        Ok(format!("run {run_id} cancelled; its locks are released"))
    }

    /// Asks runs parked on `domain` (in any process) to re-check now instead of at their next
    /// scheduled check.
    pub async fn nudge_domain(&self, domain: &str) -> anyhow::Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(NUDGE_CHANNEL)
            .bind(domain)
            .execute(&self.inner.pool)
            .await?;
        Ok(())
    }

    fn nudge_local(inner: &Inner, domain: &str) {
        let key = format!("domain:{domain}");
        for a in inner.active.lock().expect("active runs").values() {
            if a.keys.contains(&key) {
                a.nudge.notify_one();
            }
        }
    }

    /// Unfinished runs this process should execute again (at start-up).
    pub async fn resumable(&self) -> anyhow::Result<Vec<RunRecord>> {
        runs::resumable(&self.inner.pool).await
    }

    /// Takes a lock over: the run holding it is cancelled (audited with the reason) so a new
    /// run can take the slug or domain.
    pub async fn take_over_lock(
        &self,
        key: &str,
        actor: &Actor,
        reason: &str,
    ) -> anyhow::Result<String> {
        let pool = &self.inner.pool;
        let held = runs::list_locks(pool)
            .await?
            .into_iter()
            .find(|l| l.key == key)
            .ok_or_else(|| anyhow!("no lock {key}"))?;
        let msg = self
            .cancel(
                held.run_id,
                actor,
                &format!("lock {key} taken over: {reason}"),
            )
            .await?;
        runs::remove_lock(pool, key).await?;
        self.audit(NewEvent {
            run_id: Some(held.run_id),
            subject: key.split_once(':').map(|(_, s)| s).unwrap_or(key).into(),
            step: None,
            actor: actor.id.clone(),
            kind: "lock.taken_over".into(),
            outcome: "ok".into(),
            detail: json!({"lock": key, "held_by_run": held.run_id, "held_by": held.started_by, "reason": reason}),
            duration_ms: None,
        })
        .await?;
        Ok(format!("{msg}; lock {key} released"))
    }

    async fn listen_for_cancels(&self) -> anyhow::Result<()> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.inner.pool).await?;
        listener
            .listen_all([CANCEL_CHANNEL, NUDGE_CHANNEL, TAKEOVER_CHANNEL])
            .await?;
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let Ok(note) = listener.recv().await else {
                    // PgListener reconnects by itself on the next recv; back off a little.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                };
                let Some(inner) = weak.upgrade() else { return };
                if note.channel() == NUDGE_CHANNEL {
                    Self::nudge_local(&inner, note.payload());
                } else if note.channel() == TAKEOVER_CHANNEL {
                    if let Ok(id) = note.payload().parse::<Uuid>()
                        && let Some(a) = inner.active.lock().expect("active runs").get(&id)
                    {
                        // Checked at once rather than at the next heartbeat.
                        let (pool, me, lease) =
                            (inner.pool.clone(), inner.me.clone(), a.lease.clone());
                        tokio::spawn(async move {
                            if let Ok(Some(why)) =
                                runs::lease_lost(&pool, id, &me, lease.epoch).await
                            {
                                lease.lose(why);
                            }
                        });
                    }
                } else if let Ok(id) = note.payload().parse::<Uuid>()
                    && let Some(a) = inner.active.lock().expect("active runs").get(&id)
                {
                    a.cancel.cancel();
                }
            }
        });
        Ok(())
    }

    fn view(&self, run: &RunRecord, records: &[runs::StepRecord]) -> RunView {
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

    fn log_sink(&self, view: RunView) -> LogSink {
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

    /// Appends an event to the audit trail (secrets redacted, keyed with the bot's key).
    pub async fn audit(&self, mut ev: NewEvent) -> anyhow::Result<i64> {
        ev.detail = self.inner.redactor.redact_json(ev.detail);
        audit::append(&self.inner.pool, &self.inner.config.audit_key, ev).await
    }

    /// Posts the audit chain's head outside the database (the front-end's audit channel), so
    /// that `audit --verify --anchor` can tell a chain cut short. Returns what was posted.
    pub async fn post_anchor(&self) -> anyhow::Result<Option<Anchor>> {
        let Some(head) = audit::head(&self.inner.pool).await? else {
            return Ok(None);
        };
        self.inner.frontend.anchor(&head).await;
        Ok(Some(head))
    }

    async fn audit_run(
        &self,
        run: &RunRecord,
        actor: Option<&Actor>,
        kind: &str,
        outcome: &str,
        detail: Value,
    ) -> anyhow::Result<i64> {
        self.audit(NewEvent {
            run_id: Some(run.id),
            subject: run.subject.clone(),
            step: None,
            actor: actor
                .map(|a| a.id.clone())
                .unwrap_or_else(|| Actor::bot().id),
            kind: kind.into(),
            outcome: outcome.into(),
            detail,
            duration_ms: None,
        })
        .await
    }

    async fn audit_step(
        &self,
        run: &RunRecord,
        step: &str,
        kind: &str,
        outcome: &str,
        detail: Value,
        since: Instant,
    ) -> anyhow::Result<i64> {
        self.audit(NewEvent {
            run_id: Some(run.id),
            subject: run.subject.clone(),
            step: Some(step.into()),
            actor: Actor::bot().id,
            kind: kind.into(),
            outcome: outcome.into(),
            detail,
            duration_ms: Some(since.elapsed().as_millis() as i64),
        })
        .await
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why a step stopped its run.
#[derive(Debug)]
enum StepStop {
    Cancelled,
    /// This process lost its claim on the run (taken over, lease lapsed).
    LeaseLost(String),
    Rejected(String),
    Failed(String),
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for StepStop {
    fn from(e: anyhow::Error) -> Self {
        StepStop::Internal(e)
    }
}

/// Forwards a step's log lines to the front-end, tagged with the current step, in the order
/// they were written: one channel and one forwarding task per run (a task per line could
/// deliver them out of order).
#[derive(Clone)]
struct LogSink {
    tx: tokio::sync::mpsc::UnboundedSender<(usize, String)>,
    idx: Arc<Mutex<usize>>,
    redactor: Redactor,
}

impl LogSink {
    fn set_step(&self, idx: usize) {
        *self.idx.lock().expect("log sink") = idx;
    }
}

impl From<LogSink> for Arc<dyn Fn(&str) + Send + Sync> {
    fn from(sink: LogSink) -> Self {
        Arc::new(move |line: &str| {
            let idx = *sink.idx.lock().expect("log sink");
            // Fails only once the run is over and its forwarder gone: nothing left to show.
            let _ = sink.tx.send((idx, sink.redactor.redact(line)));
        })
    }
}

/// Replaces every configured secret value with `[redacted]` before text leaves the process
/// (chat, audit trail): defence in depth behind never putting secrets into plans at all.
#[derive(Clone)]
pub struct Redactor {
    secrets: Arc<Vec<String>>,
}

impl Redactor {
    pub fn new(mut secrets: Vec<String>) -> Self {
        // Short values would redact ordinary words; the config refuses empty ones already.
        secrets.retain(|s| s.len() >= 4);
        Self {
            secrets: Arc::new(secrets),
        }
    }

    pub fn redact(&self, text: &str) -> String {
        // Credentials in URLs (a git remote's) even when their value is not known here.
        let mut out = crate::redact::scrub_url_credentials(text).into_owned();
        for s in self.secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "[redacted]");
            }
        }
        out
    }

    pub fn redact_json(&self, v: Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.redact(&s)),
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|i| self.redact_json(i)).collect())
            }
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k, self.redact_json(v)))
                    .collect(),
            ),
            other => other,
        }
    }
}

/// `host:pid` of this process.
/// Another live process holds the run's executor lease (two bots on one state database, or a
/// resume racing the process that runs it). Front-ends tell it from an internal error.
#[derive(Debug, thiserror::Error)]
#[error(
    "run {run_id} is being executed by {holder} (its lease is renewed while it lives). If that process is gone or stuck, an approver can take it over: resume with --take-over --reason R."
)]
pub struct ExecutorBusy {
    pub run_id: Uuid,
    pub holder: String,
}

fn executor_id() -> String {
    format!("{}:{}", hostname(), std::process::id())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// `<boot id>/<pid namespace>` of this process: two processes that share it see the same
/// pids, so one may judge the other dead from its pid.
fn proc_identity() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|b| b.trim().to_owned())
        .unwrap_or_default();
    let ns = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    format!("{boot}/{ns}")
}

/// An executor whose process no longer exists: its run can be claimed at once instead of
/// waiting for the lease to run out (the crash-and-restart case). Judged only for an executor
/// that ran where this process runs (same host name, boot and pid namespace): elsewhere — another
/// machine, a container with the same host name — a pid says nothing, and only the lease
/// running out does.
fn executor_is_dead(executor: &str, proc: Option<&str>) -> bool {
    let Some((host, pid)) = executor.rsplit_once(':') else {
        return false;
    };
    let mine = proc_identity();
    host == hostname()
        && proc == Some(mine.as_str())
        && !mine.starts_with('/')
        && pid.parse::<u32>().is_ok_and(|pid| {
            pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        })
}

/// A claim on a run: the fencing token it was made with, and a token cancelled when it is
/// lost.
#[derive(Clone)]
struct Lease {
    epoch: i64,
    lost: CancellationToken,
    why: Arc<Mutex<Option<String>>>,
}

impl Lease {
    fn new(epoch: i64) -> Self {
        Self {
            epoch,
            lost: CancellationToken::new(),
            why: Arc::new(Mutex::new(None)),
        }
    }

    fn lose(&self, why: String) {
        self.why.lock().expect("lease").get_or_insert(why);
        self.lost.cancel();
    }

    fn why(&self) -> Option<String> {
        self.why.lock().expect("lease").clone()
    }
}

/// This process stopped executing a run because it lost its claim on it: another process
/// took it over, or the lease lapsed. Nothing more was applied; the run's state is the new
/// executor's.
#[derive(Debug, thiserror::Error)]
#[error("run {run_id}: {executor} stopped executing it before its next write: {why}")]
pub struct LeaseLost {
    pub run_id: Uuid,
    pub executor: String,
    pub why: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redactor_hides_secrets_everywhere() {
        let r = Redactor::new(vec!["hunter22".into(), "x".into()]);
        assert_eq!(r.redact("pw=hunter22;x"), "pw=[redacted];x");
        let v = r.redact_json(json!({"a": ["hunter22"], "b": {"c": "say hunter22"}}));
        assert_eq!(
            v,
            json!({"a": ["[redacted]"], "b": {"c": "say [redacted]"}})
        );
    }

    #[test]
    fn dead_executor_detection() {
        let here = proc_identity();
        assert!(
            !executor_is_dead(&executor_id(), Some(&here)),
            "this process is alive"
        );
        let gone = format!("{}:{}", hostname(), u32::MAX - 1);
        assert!(executor_is_dead(&gone, Some(&here)));
        // Same host name and a pid that is not here: another machine or another container
        // whose pids this process cannot see. Never judged dead from the pid.
        assert!(!executor_is_dead(&gone, Some("other-boot/pid:[1]")));
        assert!(!executor_is_dead(&gone, None));
        assert!(!executor_is_dead("some-other-host:1", Some(&here)));
    }
}
