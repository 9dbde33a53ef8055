//! Figures for `/metrics`, read at scrape time.

use sqlx::PgPool;

/// How many runs have each status (only statuses some run has).
pub async fn runs_by_status(pool: &PgPool) -> anyhow::Result<Vec<(String, i64)>> {
    Ok(
        sqlx::query_as("SELECT status, count(*) FROM runs GROUP BY status")
            .fetch_all(pool)
            .await?,
    )
}

/// How long finished steps took, per step name.
pub struct StepTimes {
    /// (step, how many finished, their seconds summed), by step name.
    pub totals: Vec<(String, i64, f64)>,
    /// (step, 1-based index into the bounds given, how many took at most that long).
    pub buckets: Vec<(String, i32, i64)>,
}

/// The durations of every finished step, counted against the upper `bounds` (seconds).
pub async fn step_times(pool: &PgPool, bounds: &[f64]) -> anyhow::Result<StepTimes> {
    // A step's started_at is its first planning and finished_at its end (reset when it is
    // planned again after a resume), so this is wall time including waits for approval or DNS.
    const FINISHED: &str =
        "SELECT name, extract(epoch FROM finished_at - started_at)::float8 AS secs
         FROM step_runs WHERE started_at IS NOT NULL AND finished_at IS NOT NULL";
    let totals = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT name, count(*), coalesce(sum(secs), 0)::float8 FROM ({FINISHED}) d GROUP BY name ORDER BY name"
    )))
    .fetch_all(pool)
    .await?;
    let buckets = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT d.name, b.i::int4, count(*) FILTER (WHERE d.secs <= b.le)
         FROM ({FINISHED}) d CROSS JOIN unnest($1::float8[]) WITH ORDINALITY AS b(le, i)
         GROUP BY d.name, b.i"
    )))
    .bind(bounds.to_vec())
    .fetch_all(pool)
    .await?;
    Ok(StepTimes { totals, buckets })
}

/// Whether the database answers at all (`/healthz`).
pub async fn ping(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(pool)
        .await?;
    Ok(())
}

/// The server's version line (`PostgreSQL 15.x on …`), for `config check`.
pub async fn server_version(pool: &PgPool) -> anyhow::Result<String> {
    Ok(sqlx::query_scalar::<_, String>("SELECT version()")
        .fetch_one(pool)
        .await?)
}
