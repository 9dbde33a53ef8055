//! The runbook engine: runs are ordered lists of steps with persisted state.
//!
//! It takes the locks, asks the front-end for approvals of exact plans, enforces timeouts and
//! retries, parks runs on external conditions, records every transition in the audit trail and
//! resumes unfinished runs. Steps never talk to the front-end; of the state database they
//! touch only the sites records (whose each site is), through `StepContext::state_db`.

mod approvals;
mod control;
mod executor;
mod fault;
mod lease;
mod queries;
mod step;
mod up_front;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use anyhow::{Context, anyhow};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::info;
use uuid::Uuid;

use crate::adapters::Services;
use crate::config::{Config, Environment};
use crate::domain::{DomainName, Email};
use crate::frontend::{
    Actor, ApprovalRequest, ChatFrontend, Decision, RunEvent, RunView, StepLine,
};
use crate::request::{CertRequest, Request};
use crate::state::audit::{self, Anchor, AuditKind, ChainVerifier, NewEvent, Outcome};
use crate::state::locks::{self, LockKey};
use crate::state::notify::{self, Channel};
use crate::state::runs::{self, LockHeld, NewRun, RunRecord, RunStatus, StepStatus};
use crate::state::sites;
use crate::steps::{self, ApprovedPlan, Plan, Step, StepContext, StepError};

pub use crate::redact::Redactor;
use fault::FaultPoint;
use lease::{
    AbortOnDrop, EXECUTOR_LEASE_SECS, Lease, executor_id, executor_is_dead, live_executor,
    proc_identity,
};
pub use lease::{ExecutorBusy, LeaseLost};
use step::StepStop;

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

struct ActiveRun {
    cancel: CancellationToken,
    /// Cancelled when this process loses its claim on the run.
    lease: Lease,
    nudge: Arc<Notify>,
    /// The run's lock keys (`domain:x.com`), to find the runs a nudge is for.
    keys: Vec<LockKey>,
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

impl Inner {
    /// The runs this process executes. A poisoned lock is recovered: every change to the map
    /// is one insert or one remove, so a panic elsewhere cannot leave it half-changed.
    fn active_runs(&self) -> MutexGuard<'_, HashMap<Uuid, ActiveRun>> {
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `approvals.required` names only steps that write to production: a count for any other
/// name (a typo, a read-only step) would silently require nothing.
pub fn check_required_approvals(cfg: &crate::config::ApprovalsConfig) -> anyhow::Result<()> {
    for name in cfg.required_steps() {
        let writes = steps::StepName::parse(name).is_some_and(|n| n.step().writes_production());
        if !writes {
            let known: Vec<&str> = steps::StepName::ALL
                .iter()
                .filter(|n| n.step().writes_production())
                .map(|n| n.as_str())
                .collect();
            anyhow::bail!(
                "approvals.required.{name}: not a step that writes to production; give `default` or one of: {}",
                known.join(", ")
            );
        }
    }
    Ok(())
}

/// What is said of a run that has already ended, to whoever asks to execute or cancel it.
fn already_ended(run: &RunRecord) -> String {
    format!("run {} is already {}", run.id, run.status.as_str())
}

/// The engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// A handle on the engine that does not keep it alive: for a front-end, which the engine
/// itself holds (a strong handle both ways would never be freed, and the engine's listener
/// task ends only when the engine is).
#[derive(Clone)]
pub struct WeakEngine(std::sync::Weak<Inner>);

impl WeakEngine {
    /// The engine, while it lives.
    pub fn upgrade(&self) -> Option<Engine> {
        self.0.upgrade().map(|inner| Engine { inner })
    }
}

impl Engine {
    /// Connects to the state database, migrates it and starts listening for cancellations.
    pub async fn new(config: Arc<Config>, frontend: Arc<dyn ChatFrontend>) -> anyhow::Result<Self> {
        check_required_approvals(&config.approvals)?;
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

    /// A handle that does not keep the engine alive (see [`WeakEngine`]).
    pub fn downgrade(&self) -> WeakEngine {
        WeakEngine(Arc::downgrade(&self.inner))
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
            // The command built it from a run on record.
            Request::Onboard(_) | Request::Abandon(_) => None,
        };
        if let Some(why) = not_on_record {
            self.audit(NewEvent {
                run_id: None,
                subject: request.subject(),
                step: None,
                actor: actor.id.clone(),
                kind: AuditKind::RunRefused,
                outcome: Outcome::NotOnRecord.into(),
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
                kind: AuditKind::RunRefused,
                outcome: Outcome::Locked.into(),
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
            kind: AuditKind::RunStarted,
            outcome: Outcome::Ok.into(),
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
        // The site's VPS, from its record (sites recorded before the fleet: the first).
        let vps = crate::domain::VpsName::parse(&site.vps)
            .ok()
            .filter(|n| self.inner.config.vps(Some(n)).is_some());
        Ok(Request::Cert(CertRequest { domain, email, vps }))
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

    /// `/dns-check`: the records `req.domain` needs (for the mail plan given, else the one its
    /// onboarding recorded), checked on every server — until they hold or the deadline passes
    /// when `req.wait` is set — and runs parked on the domain asked to re-check now.
    pub async fn dns_check(
        &self,
        req: &crate::request::DnsCheckRequest,
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
        // Against the VPS the domain's site is on: its record, else the VPS its latest
        // onboarding chose, else the first.
        let recorded = match sites::get(&self.inner.pool, req.domain.as_str()).await? {
            Some(site) => Some(site.vps),
            None => runs::vps_for_domain(&self.inner.pool, req.domain.as_str()).await?,
        };
        let vps = recorded
            .and_then(|n| crate::domain::VpsName::parse(&n).ok())
            .and_then(|n| cfg.vps(Some(&n)))
            .or_else(|| cfg.vps(None))
            .ok_or_else(|| anyhow!("the config lists no VPS"))?;
        let expected =
            crate::dnscheck::expected_records(&req.domain, vps.ipv4, vps.ipv6, mail, &cfg.mail);
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
        let run = self.load_run(run_id).await?;
        self.audit_run(
            &run,
            Some(actor),
            AuditKind::RunBreakGlass,
            Outcome::Ok,
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
            kind: AuditKind::CommandRefused,
            outcome: outcome.into(),
            detail,
            duration_ms: None,
        })
        .await?;
        Ok(())
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

    /// The run's record; a run id nobody started is an error.
    async fn load_run(&self, run_id: Uuid) -> anyhow::Result<RunRecord> {
        runs::get(&self.inner.pool, run_id)
            .await?
            .ok_or_else(|| anyhow!("no run {run_id}"))
    }

    async fn audit_run(
        &self,
        run: &RunRecord,
        actor: Option<&Actor>,
        kind: AuditKind,
        outcome: Outcome,
        detail: Value,
    ) -> anyhow::Result<i64> {
        self.audit(NewEvent {
            run_id: Some(run.id),
            subject: run.subject.clone(),
            step: None,
            actor: actor
                .map(|a| a.id.clone())
                .unwrap_or_else(|| Actor::bot().id),
            kind,
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
        kind: AuditKind,
        outcome: Outcome,
        detail: Value,
        since: Instant,
    ) -> anyhow::Result<i64> {
        self.audit(NewEvent {
            run_id: Some(run.id),
            subject: run.subject.clone(),
            step: Some(step.into()),
            actor: Actor::bot().id,
            kind,
            outcome: outcome.into(),
            detail,
            duration_ms: Some(since.elapsed().as_millis() as i64),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_approvals_name_only_steps_that_write() {
        let with = |steps: &[(&str, u32)]| crate::config::ApprovalsConfig {
            required: steps.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
            ..Default::default()
        };
        check_required_approvals(&with(&[("default", 2), ("create-org", 2), ("cert", 3)])).unwrap();
        for bad in ["preflight", "create-orgs", "no-such-step"] {
            let err = check_required_approvals(&with(&[(bad, 2)]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("approvals.required.{bad}")) && err.contains("create-org"),
                "{err}"
            );
        }
    }
}
