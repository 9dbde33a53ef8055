//! Approvals: the decision on each exact plan of a step.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::audit::{self, AuditKey, NewEvent};

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

/// Stores a decision inside the caller's transaction; `None` when this person already has a
/// standing decision on the plan (the database keeps one per run, step, plan hash and actor).
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
         ON CONFLICT (run_id, step, plan_hash, actor) WHERE voided_at IS NULL DO NOTHING
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
    Ok(row.as_ref().map(approval_of))
}

/// Every standing (not voided) decision on exactly this plan, oldest first: one per person.
pub async fn decisions_for(
    pool: &PgPool,
    run_id: Uuid,
    step: &str,
    plan_hash: &str,
) -> anyhow::Result<Vec<Approval>> {
    let rows = sqlx::query(
        "SELECT * FROM approvals WHERE run_id = $1 AND step = $2 AND plan_hash = $3 AND voided_at IS NULL
         ORDER BY id",
    )
    .bind(run_id)
    .bind(step)
    .bind(plan_hash)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(approval_of).collect())
}

fn approval_of(r: &sqlx::postgres::PgRow) -> Approval {
    Approval {
        id: r.get("id"),
        run_id: r.get("run_id"),
        step: r.get("step"),
        plan_hash: r.get("plan_hash"),
        approved: r.get("approved"),
        actor: r.get("actor"),
        frontend: r.get("frontend"),
        reason: r.get("reason"),
        decided_at: r.get("decided_at"),
    }
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

/// A decision to store.
#[derive(Debug, Clone, Copy)]
pub struct NewDecision<'a> {
    pub run_id: Uuid,
    pub step: &'a str,
    pub plan_hash: &'a str,
    pub approved: bool,
    pub actor: &'a str,
    pub frontend: &'a str,
    pub reason: Option<&'a str>,
}

/// Stores a decision and its audit event in one transaction: both or neither. `None` (and
/// nothing stored) when this person already has a standing decision on the plan.
pub async fn record_with_event(
    pool: &PgPool,
    key: &AuditKey,
    d: &NewDecision<'_>,
    ev: NewEvent,
) -> anyhow::Result<Option<i64>> {
    let mut tx = pool.begin().await?;
    let inserted = record_decision(
        &mut tx,
        d.run_id,
        d.step,
        d.plan_hash,
        d.approved,
        d.actor,
        d.frontend,
        d.reason,
    )
    .await?;
    if inserted.is_none() {
        tx.rollback().await?;
        return Ok(None);
    }
    audit::append_in(&mut tx, key, ev).await?;
    tx.commit().await?;
    Ok(inserted)
}

/// Stores one person's Approve all: an approval row for each (step, plan hash) pair they have
/// not decided yet, and the one audit event `event` builds from the pairs stored, in one
/// transaction: both or neither. Returns the pairs stored (none: nothing was written).
pub async fn record_all_with_event(
    pool: &PgPool,
    key: &AuditKey,
    run_id: Uuid,
    pairs: &[(String, String)],
    actor: &str,
    frontend: &str,
    event: impl FnOnce(&[(String, String)]) -> NewEvent,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut tx = pool.begin().await?;
    let mut stored = Vec::new();
    for (step, hash) in pairs {
        let id = record_decision(&mut tx, run_id, step, hash, true, actor, frontend, None).await?;
        if id.is_some() {
            stored.push((step.clone(), hash.clone()));
        }
    }
    if stored.is_empty() {
        tx.rollback().await?;
        return Ok(stored);
    }
    audit::append_in(&mut tx, key, event(&stored)).await?;
    tx.commit().await?;
    Ok(stored)
}
