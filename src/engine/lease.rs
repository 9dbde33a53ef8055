//! The executor lease: one live process executes a run, proven by a fencing token renewed
//! while it lives; who this process is, and whether another executor's process is gone.

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use tracing::warn;
use uuid::Uuid;

use super::*;

/// How long an executor's claim on a run lasts without renewal.
pub(super) const EXECUTOR_LEASE_SECS: i64 = 30;

impl Engine {
    /// Renews the lease while the run executes; when it cannot (the run was taken over, or
    /// the database stayed out of reach until the lease ran out), cancels the lease so the
    /// executor stops before its next write.
    pub(super) fn spawn_heartbeat(
        &self,
        run_id: Uuid,
        lease: Lease,
    ) -> tokio::task::JoinHandle<()> {
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

    /// Claims the run's executor lease for this process and returns its fencing token, or the
    /// holder that keeps it; `force` claims it even from a holder whose lease has not run out.
    pub(super) async fn claim_executor(
        &self,
        run_id: Uuid,
        force: bool,
    ) -> anyhow::Result<Result<i64, String>> {
        let inner = &self.inner;
        runs::claim_executor(
            &inner.pool,
            run_id,
            &inner.me,
            &inner.proc_id,
            EXECUTOR_LEASE_SECS,
            force,
        )
        .await
    }

    /// The fencing check, right before a write: this process still holds the claim it made.
    pub(super) async fn fence(&self, run: &RunRecord, lease: &Lease) -> Result<(), StepStop> {
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
}

/// Aborts a task when dropped.
pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

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

/// `host:pid` of this process.
pub(super) fn executor_id() -> String {
    format!("{}:{}", hostname(), std::process::id())
}

pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// `<boot id>/<pid namespace>` of this process: two processes that share it see the same
/// pids, so one may judge the other dead from its pid.
pub(super) fn proc_identity() -> String {
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
pub(super) fn executor_is_dead(executor: &str, proc: Option<&str>) -> bool {
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

/// The executor holding `run`, while it lives: its process is not known to be gone and its
/// lease has not run out.
pub(super) fn live_executor(run: &RunRecord) -> Option<&str> {
    run.executor
        .as_deref()
        .filter(|e| !executor_is_dead(e, run.executor_proc.as_deref()))
        .filter(|_| run.executor_until.is_some_and(|t| t > chrono::Utc::now()))
}

/// A claim on a run: the fencing token it was made with, and a token cancelled when it is
/// lost.
#[derive(Clone)]
pub(super) struct Lease {
    pub(super) epoch: i64,
    pub(super) lost: CancellationToken,
    pub(super) why: Arc<Mutex<Option<String>>>,
}

impl Lease {
    pub(super) fn new(epoch: i64) -> Self {
        Self {
            epoch,
            lost: CancellationToken::new(),
            why: Arc::new(Mutex::new(None)),
        }
    }

    pub(super) fn lose(&self, why: String) {
        self.why
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(why);
        self.lost.cancel();
    }

    pub(super) fn why(&self) -> Option<String> {
        self.why
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
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
    pub(super) fn dead_executor_detection() {
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
