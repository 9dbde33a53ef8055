//! Acting on runs from outside their executor: cancel, take-over of a run or of a lock, and
//! the notifications (cancel, nudge, take-over) other processes send over Postgres.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde_json::json;
use tracing::info;
use uuid::Uuid;

use super::*;

impl Engine {
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

    /// The take-over protocol: ask the live holder to let go, wait until it has (or its lease,
    /// which it no longer renews, ran out), then claim.
    pub(super) async fn claim_by_take_over(
        &self,
        run: &RunRecord,
        actor: &Actor,
        reason: &str,
    ) -> anyhow::Result<i64> {
        let pool = &self.inner.pool;
        let live_holder = live_executor(run)
            .filter(|e| *e != self.inner.me)
            .map(str::to_owned);
        if let Some(holder) = &live_holder
            && runs::request_takeover(pool, run.id, holder, &self.inner.me).await?
        {
            self.audit_run(
                run,
                Some(actor),
                AuditKind::RunTakeoverRequested,
                Outcome::Waiting,
                json!({"holder": holder, "by": self.inner.me, "reason": reason}),
            )
            .await?;
            notify::notify(pool, Channel::TakeOver, &run.id.to_string()).await?;
        }
        // A responsive holder lets go within moments; one that cannot reach the database stops
        // renewing, so its lease runs out within EXECUTOR_LEASE_SECS.
        let patience = Duration::from_secs(EXECUTOR_LEASE_SECS as u64 + 10);
        let deadline = Instant::now() + patience;
        let epoch = loop {
            let force = live_holder.is_none();
            match self.claim_executor(run.id, force).await? {
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
            AuditKind::RunTakenOver,
            Outcome::Ok,
            json!({"previous_executor": run.executor, "executor": self.inner.me, "explicit": true, "reason": reason}),
        )
        .await?;
        info!(run_id = %run.id, previous = ?run.executor, by = %actor.id, "run taken over");
        Ok(epoch)
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
        let run = self.load_run(run_id).await?;
        if run.status.is_terminal() {
            return Ok(already_ended(&run));
        }
        self.audit_run(
            &run,
            Some(actor),
            AuditKind::RunCancelRequested,
            Outcome::Ok,
            json!({"reason": reason}),
        )
        .await?;
        let local = self
            .inner
            .active_runs()
            .get(&run_id)
            .map(|a| a.cancel.clone());
        if let Some(token) = local {
            token.cancel();
            return Ok(format!("run {run_id}: cancelling the running step"));
        }
        if live_executor(&run).is_some() {
            notify::notify(pool, Channel::Cancel, &run_id.to_string()).await?;
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
            AuditKind::RunCancelled,
            Outcome::Cancelled,
            json!({"reason": reason}),
        )
        .await?;
        Ok(format!("run {run_id} cancelled; its locks are released"))
    }

    /// The DNS records the bot wrote for `domain` (dns-records into a zone of `dns.update`).
    pub async fn dns_writes(
        &self,
        domain: &str,
    ) -> anyhow::Result<Vec<crate::state::dns_writes::DnsWrite>> {
        crate::state::dns_writes::for_domain(&self.inner.pool, domain).await
    }

    /// Asks runs parked on `domain` (in any process) to re-check now instead of at their next
    /// scheduled check.
    pub async fn nudge_domain(&self, domain: &str) -> anyhow::Result<()> {
        notify::notify(&self.inner.pool, Channel::Nudge, domain).await
    }

    pub(super) fn nudge_local(inner: &Inner, domain: &str) {
        for a in inner.active_runs().values() {
            if a.keys
                .iter()
                .any(|k| k.domain().is_some_and(|d| d.as_str() == domain))
            {
                a.nudge.notify_one();
            }
        }
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
        // Parsed here, so the console and chat front-ends refuse a mistyped key alike.
        let key = LockKey::parse(key).map_err(|e| anyhow!("{}", e.message))?;
        let held = locks::holder(pool, &key)
            .await?
            .ok_or_else(|| anyhow!("no lock {key}"))?;
        let msg = self
            .cancel(
                held.run_id,
                actor,
                &format!("lock {key} taken over: {reason}"),
            )
            .await?;
        runs::remove_lock(pool, &key).await?;
        self.audit(NewEvent {
            run_id: Some(held.run_id),
            subject: key.subject().into(),
            step: None,
            actor: actor.id.clone(),
            kind: AuditKind::LockTakenOver,
            outcome: Outcome::Ok.into(),
            detail: json!({"lock": key, "held_by_run": held.run_id, "held_by": held.started_by, "reason": reason}),
            duration_ms: None,
        })
        .await?;
        Ok(format!("{msg}; lock {key} released"))
    }

    pub(super) async fn listen_for_cancels(&self) -> anyhow::Result<()> {
        let mut listener = notify::listen(&self.inner.pool, &Channel::ALL).await?;
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let Ok((channel, payload)) = listener.recv().await else {
                    // The listener reconnects by itself on the next recv; back off a little.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                };
                let Some(inner) = weak.upgrade() else { return };
                match channel {
                    Channel::Nudge => Self::nudge_local(&inner, &payload),
                    Channel::TakeOver => {
                        if let Ok(id) = payload.parse::<Uuid>()
                            && let Some(a) = inner.active_runs().get(&id)
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
                    }
                    Channel::Cancel => {
                        if let Ok(id) = payload.parse::<Uuid>()
                            && let Some(a) = inner.active_runs().get(&id)
                        {
                            a.cancel.cancel();
                        }
                    }
                }
            }
        });
        Ok(())
    }
}

impl Engine {
    /// `/abandon`: the request that undoes onboarding `run_id`, built from its record (its
    /// request, the steps it applied, the ids it created). A run still going is cancelled
    /// first, and this waits until it has stopped. Refused for anything but a real onboarding,
    /// and for one that adopted a site (it was someone's before: undoing it is a person's call).
    pub async fn abandon_request(
        &self,
        run_id: Uuid,
        actor: &Actor,
        reason: &str,
    ) -> Result<Request, StartError> {
        let pool = &self.inner.pool;
        let Some(mut run) = runs::get(pool, run_id).await? else {
            return Err(StartError::Refused(format!("no run {run_id}")));
        };
        if run.runbook != "onboard" || run.dry_run {
            return Err(StartError::Refused(
                crate::messages::abandon_not_an_onboarding(run_id, &run.runbook, run.dry_run),
            ));
        }
        let Ok(Request::Onboard(onboarding)) = serde_json::from_value::<Request>(run.input.clone())
        else {
            return Err(StartError::Internal(anyhow!(
                "run {run_id} has an input this version cannot read"
            )));
        };
        if let Some(done) = runs::abandoned_by(pool, run_id).await? {
            return Err(StartError::Refused(crate::messages::abandon_done_already(
                run_id, done,
            )));
        }
        let applied = runs::applied_steps(pool, run_id).await?;
        if applied.iter().any(|s| s == "adopt-site") {
            return Err(StartError::Refused(crate::messages::abandon_adopted(
                run_id,
            )));
        }
        if !run.status.is_terminal() {
            self.cancel(run_id, actor, &format!("abandoned: {reason}"))
                .await?;
            // The executor stops at its next await point and records the cancellation.
            let deadline = Instant::now() + Duration::from_secs(EXECUTOR_LEASE_SECS as u64 + 30);
            while !run.status.is_terminal() {
                if Instant::now() >= deadline {
                    return Err(StartError::Refused(format!(
                        "run {run_id} was asked to cancel but is still {}; try again once it has stopped",
                        run.status.as_str()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                run = self.load_run(run_id).await?;
            }
        }
        // Read again: a step may have finished while the run was being cancelled.
        let applied = runs::applied_steps(pool, run_id).await?;
        let id = |key: &str| {
            run.outputs
                .get(key)
                .and_then(|v| serde_json::from_value::<Uuid>(v.clone()).ok())
        };
        Ok(Request::Abandon(crate::request::AbandonRequest {
            run_id,
            reason: reason.to_owned(),
            onboarding,
            applied,
            user_id: id("user_id"),
            org_id: id("org_id"),
        }))
    }
}
