//! Locks: one active run per slug and per domain.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// A lock held by another run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockHeld {
    pub key: String,
    pub run_id: Uuid,
    pub started_by: String,
    pub status: String,
    pub acquired_at: DateTime<Utc>,
}

pub(super) async fn lock_holder(
    ex: impl sqlx::PgExecutor<'_>,
    key: &str,
) -> anyhow::Result<Option<LockHeld>> {
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
