//! What the front-ends and commands read about runs, locks, decisions and the audit trail:
//! through the engine, so none of them holds a pool of its own or writes SQL.

use uuid::Uuid;

use super::Engine;
use crate::frontend::RunView;
use crate::state::approvals::Approval;
use crate::state::audit::{self, Anchor, ChainBreak, Event};
use crate::state::locks::{self, LockHeld};
use crate::state::runs::{self, RunRecord, StepRecord};

impl Engine {
    /// A run as stored.
    pub async fn run_record(&self, run_id: Uuid) -> anyhow::Result<Option<RunRecord>> {
        runs::get(&self.inner.pool, run_id).await
    }

    /// A run's steps, in the runbook's order.
    pub async fn run_steps(&self, run_id: Uuid) -> anyhow::Result<Vec<StepRecord>> {
        runs::steps(&self.inner.pool, run_id).await
    }

    /// A run and its steps as a front-end shows them; `None` for no such run.
    pub async fn run_view(&self, run_id: Uuid) -> anyhow::Result<Option<RunView>> {
        let Some(run) = self.run_record(run_id).await? else {
            return Ok(None);
        };
        let steps = self.run_steps(run_id).await?;
        Ok(Some(self.view(&run, &steps)))
    }

    /// Runs, newest first, at most `limit`; with `unfinished_only`, those not done or
    /// cancelled.
    pub async fn list_runs(
        &self,
        limit: i64,
        unfinished_only: bool,
    ) -> anyhow::Result<Vec<RunRecord>> {
        runs::list(&self.inner.pool, limit, unfinished_only).await
    }

    /// Unfinished runs this process should execute again (at start-up), oldest first.
    pub async fn resumable(&self) -> anyhow::Result<Vec<RunRecord>> {
        runs::resumable(&self.inner.pool).await
    }

    /// Every lock held, oldest first.
    pub async fn held_locks(&self) -> anyhow::Result<Vec<LockHeld>> {
        locks::list_locks(&self.inner.pool).await
    }

    /// The standing (not voided) decision on exactly this plan of a run's step.
    pub async fn decision_for(
        &self,
        run_id: Uuid,
        step: &str,
        plan_hash: &str,
    ) -> anyhow::Result<Option<Approval>> {
        runs::decision_for(&self.inner.pool, run_id, step, plan_hash).await
    }

    /// Every standing decision on exactly this plan of a run's step (one per person), oldest
    /// first.
    pub async fn decisions_for(
        &self,
        run_id: Uuid,
        step: &str,
        plan_hash: &str,
    ) -> anyhow::Result<Vec<Approval>> {
        runs::decisions_for(&self.inner.pool, run_id, step, plan_hash).await
    }

    /// How many distinct approvers a plan of `step` needs (`approvals.required`).
    pub fn approvals_required(&self, step: &str) -> u32 {
        self.inner.config.approvals.required_for(step)
    }

    /// The audit events about a subject (slug or domain), oldest first.
    pub async fn audit_of_subject(&self, subject: &str) -> anyhow::Result<Vec<Event>> {
        audit::for_subject(&self.inner.pool, subject).await
    }

    /// The audit events of one run, oldest first.
    pub async fn audit_of_run(&self, run_id: Uuid) -> anyhow::Result<Vec<Event>> {
        audit::for_run(&self.inner.pool, run_id).await
    }

    /// Verifies the whole audit chain under the bot's key, and against `anchors` posted
    /// outside the database: how many events, and every break found.
    pub async fn verify_audit_chain(
        &self,
        anchors: &[Anchor],
    ) -> anyhow::Result<(usize, Vec<ChainBreak>)> {
        audit::verify_chain(&self.inner.pool, &self.inner.config.audit_key, anchors).await
    }

    /// The audit chain's newest event: what an anchor records.
    pub async fn audit_head(&self) -> anyhow::Result<Option<Anchor>> {
        audit::head(&self.inner.pool).await
    }
}
