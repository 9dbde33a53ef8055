//! Runs, their steps, approvals and locks.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgPool, Row};
use uuid::Uuid;

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
    pub lock_keys: Vec<String>,
}

/// A lock held by another run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockHeld {
    pub key: String,
    pub run_id: Uuid,
    pub started_by: String,
    pub status: String,
    pub acquired_at: DateTime<Utc>,
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
            let inserted = sqlx::query(
                "INSERT INTO locks (key, run_id) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(run.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                let held = lock_holder(&mut *tx, key).await?;
                tx.rollback().await?;
                return Ok(Err(held.expect("a conflicting lock row exists")));
            }
        }
    }
    tx.commit().await?;
    Ok(Ok(()))
}

async fn lock_holder(ex: impl sqlx::PgExecutor<'_>, key: &str) -> anyhow::Result<Option<LockHeld>> {
    let row = sqlx::query(
        "SELECT l.key, l.run_id, l.acquired_at, r.started_by, r.status FROM locks l JOIN runs r ON r.id = l.run_id WHERE l.key = $1",
    )
    .bind(key)
    .fetch_optional(ex)
    .await?;
    Ok(row.map(|r| LockHeld {
        key: r.get("key"),
        run_id: r.get("run_id"),
        started_by: r.get("started_by"),
        status: r.get("status"),
        acquired_at: r.get("acquired_at"),
    }))
}

/// Takes (again) the locks of a resumed run; returns the holder of the first lock another run
/// holds. Locks a run already holds are kept.
pub async fn reacquire_locks(
    pool: &PgPool,
    run_id: Uuid,
    keys: &[String],
) -> anyhow::Result<Result<(), LockHeld>> {
    let mut tx = pool.begin().await?;
    for key in keys {
        sqlx::query("INSERT INTO locks (key, run_id) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        if let Some(held) = lock_holder(&mut *tx, key).await?
            && held.run_id != run_id
        {
            tx.rollback().await?;
            return Ok(Err(held));
        }
    }
    tx.commit().await?;
    Ok(Ok(()))
}

/// Every lock, oldest first.
pub async fn list_locks(pool: &PgPool) -> anyhow::Result<Vec<LockHeld>> {
    let rows = sqlx::query(
        "SELECT l.key, l.run_id, l.acquired_at, r.started_by, r.status FROM locks l JOIN runs r ON r.id = l.run_id ORDER BY l.acquired_at",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| LockHeld {
            key: r.get("key"),
            run_id: r.get("run_id"),
            started_by: r.get("started_by"),
            status: r.get("status"),
            acquired_at: r.get("acquired_at"),
        })
        .collect())
}

/// Drops every lock a run holds.
pub async fn release_locks(pool: &PgPool, run_id: Uuid) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM locks WHERE run_id = $1")
        .bind(run_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Deletes one lock, returning who held it.
pub async fn remove_lock(pool: &PgPool, key: &str) -> anyhow::Result<Option<LockHeld>> {
    let held = lock_holder(pool, key).await?;
    sqlx::query("DELETE FROM locks WHERE key = $1")
        .bind(key)
        .execute(pool)
        .await?;
    Ok(held)
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

/// Claims the right to execute a run for `me` (`host:pid`, running in `proc`) for
/// `lease_secs`. Succeeds when nobody holds it, `me` already does, the lease ran out, or
/// `force` is set (the caller proved the holder dead). Every claim bumps the run's fencing
/// token and returns it; the holder is returned when refused.
pub async fn claim_executor(
    pool: &PgPool,
    id: Uuid,
    me: &str,
    proc: &str,
    lease_secs: i64,
    force: bool,
) -> anyhow::Result<Result<i64, String>> {
    let epoch: Option<i64> = sqlx::query_scalar(
        "UPDATE runs SET executor = $2, executor_proc = $5, executor_until = now() + make_interval(secs => $3),
                lease_epoch = lease_epoch + 1, takeover_by = NULL
         WHERE id = $1 AND (executor IS NULL OR executor = $2 OR executor_until < now() OR $4)
         RETURNING lease_epoch",
    )
    .bind(id)
    .bind(me)
    .bind(lease_secs as f64)
    .bind(force)
    .bind(proc)
    .fetch_optional(pool)
    .await?;
    if let Some(epoch) = epoch {
        return Ok(Ok(epoch));
    }
    let holder: Option<String> = sqlx::query_scalar("SELECT executor FROM runs WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?
        .flatten();
    Ok(Err(holder.unwrap_or_default()))
}

/// Renews `me`'s lease if it still holds the claim made with `epoch` and nobody asked to take
/// the run over. Returns false when the claim is lost.
pub async fn renew_executor(
    pool: &PgPool,
    id: Uuid,
    me: &str,
    epoch: i64,
    lease_secs: i64,
) -> anyhow::Result<bool> {
    let renewed = sqlx::query(
        "UPDATE runs SET executor_until = now() + make_interval(secs => $4)
         WHERE id = $1 AND executor = $2 AND lease_epoch = $3 AND takeover_by IS NULL",
    )
    .bind(id)
    .bind(me)
    .bind(epoch)
    .bind(lease_secs as f64)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(renewed == 1)
}

/// The fencing check: `None` while `me` holds the claim made with `epoch` and nobody asked
/// for it, else why not (for the log and the run's thread).
pub async fn lease_lost(
    pool: &PgPool,
    id: Uuid,
    me: &str,
    epoch: i64,
) -> anyhow::Result<Option<String>> {
    let row: Option<(Option<String>, i64, Option<String>)> =
        sqlx::query_as("SELECT executor, lease_epoch, takeover_by FROM runs WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(match row {
        None => Some("the run is gone".into()),
        Some((_, _, Some(by))) => Some(format!("{by} is taking the run over")),
        Some((Some(holder), e, None)) if holder == me && e == epoch => None,
        Some((holder, _, None)) => Some(format!(
            "the run is now executed by {}",
            holder.unwrap_or_else(|| "nobody".into())
        )),
    })
}

/// Asks `holder` to let go of the run for `by`: it stops renewing its lease and stops before
/// its next write. False when `holder` no longer holds it.
pub async fn request_takeover(
    pool: &PgPool,
    id: Uuid,
    holder: &str,
    by: &str,
) -> anyhow::Result<bool> {
    Ok(
        sqlx::query("UPDATE runs SET takeover_by = $3 WHERE id = $1 AND executor = $2")
            .bind(id)
            .bind(holder)
            .bind(by)
            .execute(pool)
            .await?
            .rows_affected()
            == 1,
    )
}

/// Gives up the execution lease of the claim made with `epoch` (the run stays as it is).
pub async fn release_executor(pool: &PgPool, id: Uuid, me: &str, epoch: i64) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE runs SET executor = NULL, executor_until = NULL
         WHERE id = $1 AND executor = $2 AND lease_epoch = $3",
    )
    .bind(id)
    .bind(me)
    .bind(epoch)
    .execute(pool)
    .await?;
    Ok(())
}

/// A decision on one plan.
#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    pub id: i64,
    pub run_id: Uuid,
    pub step: String,
    pub plan_hash: String,
    pub approved: bool,
    pub actor: String,
    pub frontend: String,
    pub reason: Option<String>,
    pub decided_at: DateTime<Utc>,
}

/// Stores a decision inside the caller's transaction; `None` when the plan already has a
/// standing decision (the database keeps one per run, step and plan hash).
#[allow(clippy::too_many_arguments)]
pub async fn record_decision(
    conn: &mut sqlx::PgConnection,
    run_id: Uuid,
    step: &str,
    plan_hash: &str,
    approved: bool,
    actor: &str,
    frontend: &str,
    reason: Option<&str>,
) -> anyhow::Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "INSERT INTO approvals (run_id, step, plan_hash, approved, actor, frontend, reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (run_id, step, plan_hash) WHERE voided_at IS NULL DO NOTHING
         RETURNING id",
    )
    .bind(run_id)
    .bind(step)
    .bind(plan_hash)
    .bind(approved)
    .bind(actor)
    .bind(frontend)
    .bind(reason)
    .fetch_optional(conn)
    .await?)
}

/// The latest decision on exactly this plan, unless voided.
pub async fn decision_for(
    pool: &PgPool,
    run_id: Uuid,
    step: &str,
    plan_hash: &str,
) -> anyhow::Result<Option<Approval>> {
    let row = sqlx::query(
        "SELECT * FROM approvals WHERE run_id = $1 AND step = $2 AND plan_hash = $3 AND voided_at IS NULL
         ORDER BY id DESC LIMIT 1",
    )
    .bind(run_id)
    .bind(step)
    .bind(plan_hash)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Approval {
        id: r.get("id"),
        run_id: r.get("run_id"),
        step: r.get("step"),
        plan_hash: r.get("plan_hash"),
        approved: r.get("approved"),
        actor: r.get("actor"),
        frontend: r.get("frontend"),
        reason: r.get("reason"),
        decided_at: r.get("decided_at"),
    }))
}

/// Voids a run's standing rejections (a rejected run is resumed: ask again); returns how many.
pub async fn void_rejections(pool: &PgPool, run_id: Uuid) -> anyhow::Result<u64> {
    Ok(sqlx::query(
        "UPDATE approvals SET voided_at = now() WHERE run_id = $1 AND NOT approved AND voided_at IS NULL",
    )
    .bind(run_id)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Voids approvals of a step's plans other than `current_hash`; returns how many.
pub async fn void_other_approvals(
    pool: &PgPool,
    run_id: Uuid,
    step: &str,
    current_hash: &str,
) -> anyhow::Result<u64> {
    Ok(sqlx::query(
        "UPDATE approvals SET voided_at = now()
         WHERE run_id = $1 AND step = $2 AND plan_hash <> $3 AND voided_at IS NULL AND approved",
    )
    .bind(run_id)
    .bind(step)
    .bind(current_hash)
    .execute(pool)
    .await?
    .rows_affected())
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
