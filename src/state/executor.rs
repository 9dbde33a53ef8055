//! The executor lease of a run: who executes it, until when, and the fencing token of the
//! claim.

use sqlx::PgPool;
use uuid::Uuid;

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
