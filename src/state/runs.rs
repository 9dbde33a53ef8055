//! Runs and their steps (approvals, locks and executor leases have files of their own).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgPool, Row};
use uuid::Uuid;

// Their old home: callers still reach them as `runs::...`.
pub use super::approvals::{
    Approval, decision_for, decisions_for, record_decision, void_other_approvals, void_rejections,
};
pub use super::executor::{
    claim_executor, lease_lost, release_executor, renew_executor, request_takeover,
};
use super::locks::{self, LockKey};
pub use super::locks::{LockHeld, list_locks, reacquire_locks, release_locks, remove_lock};

/// Status of a run. Only `done` and `cancelled` release the run's locks: a failed or rejected
/// run stays resumable and keeps its slug and domains until someone resumes or cancels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    WaitingApproval,
    Parked,
    Failed,
    Rejected,
    /// A plan waited longer than `approvals.ttl_secs` for its decision; resumable.
    Expired,
    Done,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::WaitingApproval => "waiting_approval",
            Self::Parked => "parked",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::Done => "done",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "running" => Self::Running,
            "waiting_approval" => Self::WaitingApproval,
            "parked" => Self::Parked,
            "failed" => Self::Failed,
            "rejected" => Self::Rejected,
            "expired" => Self::Expired,
            "done" => Self::Done,
            "cancelled" => Self::Cancelled,
            other => anyhow::bail!("unknown run status {other}"),
        })
    }

    /// Finished for good: nothing left to resume.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Done | Self::Cancelled)
    }
}

/// Status of one step in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Planning,
    WaitingApproval,
    Applying,
    Checking,
    Parked,
    Done,
    AlreadyDone,
    /// Dry run: planned, nothing applied.
    Planned,
    Failed,
    Cancelled,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Planning => "planning",
            Self::WaitingApproval => "waiting_approval",
            Self::Applying => "applying",
            Self::Checking => "checking",
            Self::Parked => "parked",
            Self::Done => "done",
            Self::AlreadyDone => "already_done",
            Self::Planned => "planned",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "pending" => Self::Pending,
            "planning" => Self::Planning,
            "waiting_approval" => Self::WaitingApproval,
            "applying" => Self::Applying,
            "checking" => Self::Checking,
            "parked" => Self::Parked,
            "done" => Self::Done,
            "already_done" => Self::AlreadyDone,
            "planned" => Self::Planned,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            other => anyhow::bail!("unknown step status {other}"),
        })
    }

    /// The step needs no more work in this run.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Done | Self::AlreadyDone | Self::Planned)
    }
}

/// A run as stored.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: Uuid,
    pub runbook: String,
    pub subject: String,
    pub input: Value,
    pub outputs: Value,
    pub status: RunStatus,
    pub dry_run: bool,
    pub started_by: String,
    pub frontend: String,
    pub chat_ref: Option<Value>,
    pub break_glass: Option<String>,
    pub error: Option<String>,
    pub executor: Option<String>,
    pub executor_until: Option<DateTime<Utc>>,
    /// Where the executor's pid means something (`<boot id>/<pid namespace>`).
    pub executor_proc: Option<String>,
    /// The fencing token of the current claim.
    pub lease_epoch: i64,
    /// Who asked to take the run over from its executor, while it has not let go.
    pub takeover_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A step of a run as stored.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub idx: i32,
    pub name: String,
    pub status: StepStatus,
    pub plan_hash: Option<String>,
    pub plan_summary: Option<String>,
    pub attempts: i32,
    pub error: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// What a new run needs.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: Uuid,
    pub runbook: String,
    pub subject: String,
    pub input: Value,
    pub steps: Vec<String>,
    pub started_by: String,
    pub frontend: String,
    pub dry_run: bool,
    pub break_glass: Option<String>,
    pub lock_keys: Vec<LockKey>,
}

/// Creates the run, its steps and its locks in one transaction. When a lock is held, nothing
/// is written and the holder is returned.
pub async fn create(pool: &PgPool, run: &NewRun) -> anyhow::Result<Result<(), LockHeld>> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO runs (id, runbook, subject, input, status, dry_run, started_by, frontend, break_glass)
         VALUES ($1, $2, $3, $4, 'running', $5, $6, $7, $8)",
    )
    .bind(run.id)
    .bind(&run.runbook)
    .bind(&run.subject)
    .bind(&run.input)
    .bind(run.dry_run)
    .bind(&run.started_by)
    .bind(&run.frontend)
    .bind(&run.break_glass)
    .execute(&mut *tx)
    .await?;
    for (idx, name) in run.steps.iter().enumerate() {
        sqlx::query(
            "INSERT INTO step_runs (run_id, idx, name, status) VALUES ($1, $2, $3, 'pending')",
        )
        .bind(run.id)
        .bind(idx as i32)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    }
    // A dry run writes nothing anywhere, so it takes no lock either.
    if !run.dry_run {
        for key in &run.lock_keys {
            if let Err(held) = locks::take_in(&mut tx, run.id, key).await? {
                tx.rollback().await?;
                return Ok(Err(held));
            }
        }
    }
    tx.commit().await?;
    Ok(Ok(()))
}

fn row_to_run(r: &sqlx::postgres::PgRow) -> anyhow::Result<RunRecord> {
    Ok(RunRecord {
        id: r.try_get("id")?,
        runbook: r.try_get("runbook")?,
        subject: r.try_get("subject")?,
        input: r.try_get("input")?,
        outputs: r.try_get("outputs")?,
        status: RunStatus::parse(r.try_get("status")?)?,
        dry_run: r.try_get("dry_run")?,
        started_by: r.try_get("started_by")?,
        frontend: r.try_get("frontend")?,
        chat_ref: r.try_get("chat_ref")?,
        break_glass: r.try_get("break_glass")?,
        error: r.try_get("error")?,
        executor: r.try_get("executor")?,
        executor_until: r.try_get("executor_until")?,
        executor_proc: r.try_get("executor_proc")?,
        lease_epoch: r.try_get("lease_epoch")?,
        takeover_by: r.try_get("takeover_by")?,
        created_at: r.try_get("created_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

pub async fn get(pool: &PgPool, id: Uuid) -> anyhow::Result<Option<RunRecord>> {
    let row = sqlx::query("SELECT * FROM runs WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(row_to_run).transpose()
}

/// Runs, newest first.
pub async fn list(
    pool: &PgPool,
    limit: i64,
    unfinished_only: bool,
) -> anyhow::Result<Vec<RunRecord>> {
    let rows = sqlx::query(
        "SELECT * FROM runs WHERE NOT $1 OR status NOT IN ('done', 'cancelled') ORDER BY created_at DESC LIMIT $2",
    )
    .bind(unfinished_only)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(row_to_run).collect()
}

/// Runs a process should pick up again at start-up, oldest first.
pub async fn resumable(pool: &PgPool) -> anyhow::Result<Vec<RunRecord>> {
    let rows = sqlx::query("SELECT * FROM runs WHERE status IN ('running', 'waiting_approval', 'parked') ORDER BY created_at")
        .fetch_all(pool)
        .await?;
    rows.iter().map(row_to_run).collect()
}

pub async fn steps(pool: &PgPool, run_id: Uuid) -> anyhow::Result<Vec<StepRecord>> {
    let rows = sqlx::query("SELECT * FROM step_runs WHERE run_id = $1 ORDER BY idx")
        .bind(run_id)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(StepRecord {
                idx: r.try_get("idx")?,
                name: r.try_get("name")?,
                status: StepStatus::parse(r.try_get("status")?)?,
                plan_hash: r.try_get("plan_hash")?,
                plan_summary: r.try_get("plan_summary")?,
                attempts: r.try_get("attempts")?,
                error: r.try_get("error")?,
                started_at: r.try_get("started_at")?,
                finished_at: r.try_get("finished_at")?,
            })
        })
        .collect()
}

pub async fn set_status(
    pool: &PgPool,
    id: Uuid,
    status: RunStatus,
    error: Option<&str>,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE runs SET status = $2, error = $3, updated_at = now(),
                finished_at = CASE WHEN $2 IN ('done', 'cancelled') THEN now() ELSE NULL END
         WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn set_outputs(pool: &PgPool, id: Uuid, outputs: &Value) -> anyhow::Result<()> {
    sqlx::query("UPDATE runs SET outputs = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(outputs)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn set_chat_ref(pool: &PgPool, id: Uuid, chat_ref: &Value) -> anyhow::Result<()> {
    sqlx::query("UPDATE runs SET chat_ref = $2 WHERE id = $1")
        .bind(id)
        .bind(chat_ref)
        .execute(pool)
        .await?;
    Ok(())
}

/// Records a step transition. `plan` is set when the step planned.
pub async fn set_step(
    pool: &PgPool,
    run_id: Uuid,
    idx: i32,
    status: StepStatus,
    plan: Option<(&str, &str)>,
    error: Option<&str>,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE step_runs SET status = $3,
                plan_hash = COALESCE($4, plan_hash), plan_summary = COALESCE($5, plan_summary),
                error = $6,
                attempts = attempts + CASE WHEN $3 = 'planning' THEN 1 ELSE 0 END,
                started_at = COALESCE(started_at, CASE WHEN $3 = 'planning' THEN now() END),
                finished_at = CASE WHEN $3 IN ('done', 'already_done', 'planned', 'failed', 'cancelled') THEN now() END
         WHERE run_id = $1 AND idx = $2",
    )
    .bind(run_id)
    .bind(idx)
    .bind(status.as_str())
    .bind(plan.map(|p| p.0))
    .bind(plan.map(|p| p.1))
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// The mail plan the latest onboarding of `domain` asked for, if any.
pub async fn mail_plan_for_domain(pool: &PgPool, domain: &str) -> anyhow::Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT input->>'mail' FROM runs WHERE runbook = 'onboard' AND input->'domains' ? $1 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(domain)
    .fetch_optional(pool)
    .await?
    .flatten())
}

/// The VPS the latest onboarding of `domain` chose (`None` for one stored before the fleet).
pub async fn vps_for_domain(pool: &PgPool, domain: &str) -> anyhow::Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT input->>'vps' FROM runs WHERE runbook = 'onboard' AND input->'domains' ? $1 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(domain)
    .fetch_optional(pool)
    .await?
    .flatten())
}

/// The steps of a run that wrote, or may have written: done, interrupted in their apply or
/// check, or with an apply or an approval in the audit trail (an apply that failed half-way).
/// What an abandon undoes; each compensation plans from what it finds, so one that finds
/// nothing of its step is "already done".
pub async fn applied_steps(pool: &PgPool, run_id: Uuid) -> anyhow::Result<Vec<String>> {
    use super::audit::AuditKind;
    Ok(sqlx::query_scalar(
        "SELECT s.name FROM step_runs s WHERE s.run_id = $1 AND (
             s.status IN ('done', 'applying', 'checking')
             OR EXISTS (SELECT 1 FROM audit_events a WHERE a.run_id = s.run_id AND a.step = s.name
                        AND a.kind IN ($2, $3)))
         ORDER BY s.idx",
    )
    .bind(run_id)
    .bind(AuditKind::StepApplied.as_str())
    .bind(AuditKind::ApprovalGranted.as_str())
    .fetch_all(pool)
    .await?)
}

/// The abandon run that undid onboarding `run_id` to its end, if one did.
pub async fn abandoned_by(pool: &PgPool, run_id: Uuid) -> anyhow::Result<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM runs WHERE runbook = 'abandon' AND status = 'done' AND NOT dry_run
           AND input->>'run_id' = $1 ORDER BY created_at LIMIT 1",
    )
    .bind(run_id.to_string())
    .fetch_optional(pool)
    .await?)
}
