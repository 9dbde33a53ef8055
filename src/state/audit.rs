//! The append-only, hash-chained audit trail.
//!
//! Each event stores the hash of the previous event and its own hash over its content, so an
//! edited event breaks its own hash and a deleted one breaks the next event's link. The
//! database refuses UPDATE, DELETE and TRUNCATE by trigger; the chain catches what a superuser
//! could still do by disabling the trigger.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// The hash the first event points back to.
pub const GENESIS: &str = "genesis";

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub run_id: Option<Uuid>,
    pub subject: String,
    pub step: Option<String>,
    pub actor: String,
    pub kind: String,
    pub outcome: String,
    pub detail: Value,
    pub duration_ms: Option<i64>,
}

/// A stored event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub run_id: Option<Uuid>,
    pub subject: String,
    pub step: Option<String>,
    pub actor: String,
    pub kind: String,
    pub outcome: String,
    pub detail: Value,
    pub duration_ms: Option<i64>,
    pub prev_hash: String,
    pub hash: String,
}

/// Appends one event, chained to the last one. Serialised by a transaction-scoped advisory
/// lock so that two writers never chain to the same predecessor.
pub async fn append(pool: &PgPool, ev: NewEvent) -> anyhow::Result<i64> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('onboard_bot.audit_chain'))")
        .execute(&mut *tx)
        .await?;
    let prev: Option<String> =
        sqlx::query_scalar("SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
    let prev = prev.unwrap_or_else(|| GENESIS.to_owned());
    // Microseconds: what timestamptz stores, so the hash recomputes from the stored value.
    let at = DateTime::from_timestamp_micros(Utc::now().timestamp_micros())
        .expect("now is representable");
    let hash = event_hash(&prev, at, &ev);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO audit_events (at, run_id, subject, step, actor, kind, outcome, detail, duration_ms, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(at)
    .bind(ev.run_id)
    .bind(&ev.subject)
    .bind(&ev.step)
    .bind(&ev.actor)
    .bind(&ev.kind)
    .bind(&ev.outcome)
    .bind(&ev.detail)
    .bind(ev.duration_ms)
    .bind(&prev)
    .bind(&hash)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// The hash of an event: SHA-256 over a canonical JSON array of every field.
pub fn event_hash(prev: &str, at: DateTime<Utc>, ev: &NewEvent) -> String {
    let fields = serde_json::json!([
        prev,
        at.to_rfc3339_opts(SecondsFormat::Micros, true),
        ev.run_id,
        ev.subject,
        ev.step,
        ev.actor,
        ev.kind,
        ev.outcome,
        canonical(&ev.detail),
        ev.duration_ms,
    ]);
    hex::encode(Sha256::digest(fields.to_string().as_bytes()))
}

/// JSON text with object keys sorted at every level: jsonb reorders keys, so the hash must not
/// depend on the order they were written in.
pub fn canonical(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        Value::String((*k).clone()),
                        canonical(&map[k.as_str()])
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

fn row_to_event(row: &sqlx::postgres::PgRow) -> Result<Event, sqlx::Error> {
    Ok(Event {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        run_id: row.try_get("run_id")?,
        subject: row.try_get("subject")?,
        step: row.try_get("step")?,
        actor: row.try_get("actor")?,
        kind: row.try_get("kind")?,
        outcome: row.try_get("outcome")?,
        detail: row.try_get("detail")?,
        duration_ms: row.try_get("duration_ms")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Events about one subject (slug or domain), oldest first.
pub async fn for_subject(pool: &PgPool, subject: &str) -> anyhow::Result<Vec<Event>> {
    let rows = sqlx::query("SELECT * FROM audit_events WHERE subject = $1 ORDER BY id")
        .bind(subject)
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(row_to_event).collect::<Result<_, _>>()?)
}

/// Events of one run, oldest first.
pub async fn for_run(pool: &PgPool, run_id: Uuid) -> anyhow::Result<Vec<Event>> {
    let rows = sqlx::query("SELECT * FROM audit_events WHERE run_id = $1 ORDER BY id")
        .bind(run_id)
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(row_to_event).collect::<Result<_, _>>()?)
}

/// One way the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    pub id: i64,
    pub problem: String,
}

/// Walks the whole chain (a subject's events are interleaved with others', so the links can
/// only be checked globally) and reports every event whose hash or link does not hold.
pub async fn verify_chain(pool: &PgPool) -> anyhow::Result<(usize, Vec<ChainBreak>)> {
    let rows = sqlx::query("SELECT * FROM audit_events ORDER BY id")
        .fetch_all(pool)
        .await?;
    let events: Vec<Event> = rows.iter().map(row_to_event).collect::<Result<_, _>>()?;
    Ok((events.len(), verify_events(&events)))
}

/// The pure part of [`verify_chain`].
pub fn verify_events(events: &[Event]) -> Vec<ChainBreak> {
    let mut breaks = Vec::new();
    let mut expected_prev = GENESIS.to_owned();
    for e in events {
        if e.prev_hash != expected_prev {
            breaks.push(ChainBreak {
                id: e.id,
                problem: "links to a previous event that is not the one before it: an event was deleted or reordered".into(),
            });
        }
        let ev = NewEvent {
            run_id: e.run_id,
            subject: e.subject.clone(),
            step: e.step.clone(),
            actor: e.actor.clone(),
            kind: e.kind.clone(),
            outcome: e.outcome.clone(),
            detail: e.detail.clone(),
            duration_ms: e.duration_ms,
        };
        if event_hash(&e.prev_hash, e.at, &ev) != e.hash {
            breaks.push(ChainBreak {
                id: e.id,
                problem: "content does not match its hash: the event was edited".into(),
            });
        }
        expected_prev = e.hash.clone();
    }
    breaks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<Event> {
        let mut prev = GENESIS.to_owned();
        (0..n)
            .map(|i| {
                let ev = NewEvent {
                    run_id: None,
                    subject: "merche".into(),
                    step: Some(format!("s{i}")),
                    actor: "ops".into(),
                    kind: "step.done".into(),
                    outcome: "ok".into(),
                    detail: serde_json::json!({"b": 1, "a": [i]}),
                    duration_ms: Some(5),
                };
                let at = DateTime::from_timestamp_micros(1_700_000_000_000_000 + i as i64).unwrap();
                let hash = event_hash(&prev, at, &ev);
                let e = Event {
                    id: i as i64 + 1,
                    at,
                    run_id: ev.run_id,
                    subject: ev.subject,
                    step: ev.step,
                    actor: ev.actor,
                    kind: ev.kind,
                    outcome: ev.outcome,
                    detail: ev.detail,
                    duration_ms: ev.duration_ms,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                e
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies() {
        assert!(verify_events(&chain(5)).is_empty());
    }

    #[test]
    fn edit_and_delete_are_caught() {
        let mut edited = chain(5);
        edited[2].actor = "mallory".into();
        assert_eq!(
            verify_events(&edited),
            vec![ChainBreak {
                id: 3,
                problem: verify_events(&edited)[0].problem.clone()
            }]
        );
        let mut deleted = chain(5);
        deleted.remove(1);
        let breaks = verify_events(&deleted);
        assert_eq!(breaks.len(), 1);
        assert_eq!(breaks[0].id, 3);
    }

    #[test]
    fn key_order_does_not_matter() {
        let a: Value = serde_json::from_str(r#"{"x":1,"a":{"z":2,"b":3}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"b":3,"z":2},"x":1}"#).unwrap();
        assert_eq!(canonical(&a), canonical(&b));
    }
}
