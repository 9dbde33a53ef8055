//! The append-only, hash-chained audit trail.
//!
//! Each event stores the hash of the previous event and its own hash over its content, so an
//! edited event breaks its own hash and a deleted one breaks the next event's link. The hash
//! is an HMAC-SHA256 under the bot's audit key (`audit.key`), which the database never sees:
//! someone who can write to the state database but does not hold the key cannot append an
//! event that verifies, nor rehash the chain after an edit. What a key cannot show is a chain
//! cut short at its end: for that the bot posts the head (sequence number and hash) outside
//! the database ([`Anchor`]), and `audit --verify --anchor ID:HASH` checks against it.
//!
//! The runtime role may only INSERT and SELECT here (see `state::grant_runtime`); the
//! triggers refuse UPDATE, DELETE and TRUNCATE even to the owner unless it disables them.

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::Mac;
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

mod chain;
mod kind;
pub use chain::{Anchor, ChainBreak, ChainVerifier, check_anchors, verify_chain, verify_events};
pub use kind::{AuditKind, Outcome};

pub use crate::config::AuditKey;

/// The hash the first event points back to.
pub const GENESIS: &str = "genesis";

/// An event's fields, every one its hash covers (all but its id and the two hashes), with the
/// kind as `K`.
#[derive(Debug, Clone)]
pub struct EventFields<K> {
    pub run_id: Option<Uuid>,
    pub subject: String,
    pub step: Option<String>,
    pub actor: String,
    pub kind: K,
    /// How it came out ([`Outcome`]'s text), or a refusal's reason key.
    pub outcome: String,
    pub detail: Value,
    pub duration_ms: Option<i64>,
}

/// An event to append: its kind is one this version writes.
pub type NewEvent = EventFields<AuditKind>;

/// What an event's hash covers, as stored text: a stored event may hold any kind's text (an
/// older or newer version's), so the verifier reads kinds as text.
pub type EventContent = EventFields<String>;

impl NewEvent {
    /// What its hash will cover.
    pub fn content(&self) -> EventContent {
        EventFields {
            kind: self.kind.as_str().to_owned(),
            run_id: self.run_id,
            subject: self.subject.clone(),
            step: self.step.clone(),
            actor: self.actor.clone(),
            outcome: self.outcome.clone(),
            detail: self.detail.clone(),
            duration_ms: self.duration_ms,
        }
    }
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

/// Appends one event, chained to the last one, in a transaction of its own.
pub async fn append(pool: &PgPool, key: &AuditKey, ev: NewEvent) -> anyhow::Result<i64> {
    let mut tx = pool.begin().await?;
    let id = append_in(&mut tx, key, ev).await?;
    tx.commit().await?;
    Ok(id)
}

/// Appends one event inside the caller's transaction (so that a decision and its event are
/// stored together or not at all). Serialised by a transaction-scoped advisory lock so that
/// two writers never chain to the same predecessor.
pub async fn append_in(
    conn: &mut PgConnection,
    key: &AuditKey,
    ev: NewEvent,
) -> anyhow::Result<i64> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('onboard_bot.audit_chain'))")
        .execute(&mut *conn)
        .await?;
    let prev: Option<String> =
        sqlx::query_scalar("SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    let prev = prev.unwrap_or_else(|| GENESIS.to_owned());
    // Microseconds: what timestamptz stores, so the hash recomputes from the stored value.
    let at = DateTime::from_timestamp_micros(Utc::now().timestamp_micros())
        .expect("now is representable");
    let hash = event_hash(key, &prev, at, &ev.content());
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO audit_events (at, run_id, subject, step, actor, kind, outcome, detail, duration_ms, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(at)
    .bind(ev.run_id)
    .bind(&ev.subject)
    .bind(&ev.step)
    .bind(&ev.actor)
    .bind(ev.kind.as_str())
    .bind(&ev.outcome)
    .bind(&ev.detail)
    .bind(ev.duration_ms)
    .bind(&prev)
    .bind(&hash)
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

/// The hash of an event: HMAC-SHA256 under the audit key over a canonical JSON array of every
/// field, the previous event's hash first.
pub fn event_hash(key: &AuditKey, prev: &str, at: DateTime<Utc>, ev: &EventContent) -> String {
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
    let mut mac = key.mac();
    mac.update(fields.to_string().as_bytes());
    hex::encode(mac.finalize().into_bytes())
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

impl Event {
    /// What the event's hash covers (every field but its id and the two hashes).
    pub fn content(&self) -> EventContent {
        EventContent {
            run_id: self.run_id,
            subject: self.subject.clone(),
            step: self.step.clone(),
            actor: self.actor.clone(),
            kind: self.kind.clone(),
            outcome: self.outcome.clone(),
            detail: self.detail.clone(),
            duration_ms: self.duration_ms,
        }
    }
}
/// How many writes of a run an approval authorised (its `step.applied` events that name an
/// approver): a run with none wrote nothing to production.
pub async fn approved_writes(pool: &PgPool, run_id: Uuid) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE run_id = $1 AND kind = $2 AND detail ? 'approved_by' AND detail->>'approved_by' IS NOT NULL",
    )
    .bind(run_id)
    .bind(AuditKind::StepApplied.as_str())
    .fetch_one(pool)
    .await?)
}

/// The newest event: what an anchor records.
pub async fn head(pool: &PgPool) -> anyhow::Result<Option<Anchor>> {
    let row: Option<(i64, String)> =
        sqlx::query_as("SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1")
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(id, hash)| Anchor { id, hash }))
}
/// Whether an event grants approval: one plan's `approval.granted`, or an Approve all's
/// `approval.granted_all` (which grants each plan it lists).
pub fn is_grant(kind: &str) -> bool {
    matches!(
        AuditKind::parse(kind),
        Some(AuditKind::ApprovalGranted | AuditKind::ApprovalGrantedAll)
    )
}

/// Whether an `approval.granted_all` event lists `plan_hash` for `step` in its `covers`.
fn covers(e: &Event, step: &str, plan_hash: &str) -> bool {
    e.detail["covers"].as_array().is_some_and(|pairs| {
        pairs
            .iter()
            .any(|p| p["step"].as_str() == Some(step) && p["plan_hash"].as_str() == Some(plan_hash))
    })
}

/// One person's decision event on a plan, as the chain has it: the newest `approval.granted`
/// or `approval.rejected` by `actor` for (run, step, plan hash) that no later event voided (a
/// plan change voids grants of other plans; a resumed rejected run voids rejections). A plan
/// that needs several approvers has one such event per approver.
pub fn standing_decision<'a>(
    events: &'a [Event],
    step: &str,
    plan_hash: &str,
    actor: &str,
) -> Option<&'a Event> {
    let mut standing: Option<&Event> = None;
    for e in events {
        let hash_of = |k: &str| e.detail.get(k).and_then(Value::as_str);
        match AuditKind::parse(&e.kind) {
            Some(AuditKind::ApprovalGranted | AuditKind::ApprovalRejected)
                if e.step.as_deref() == Some(step)
                    && hash_of("plan_hash") == Some(plan_hash)
                    && e.actor == actor =>
            {
                standing = Some(e)
            }
            // An Approve all by this person that lists exactly this plan of the step.
            Some(AuditKind::ApprovalGrantedAll)
                if e.actor == actor && covers(e, step, plan_hash) =>
            {
                standing = Some(e)
            }
            Some(AuditKind::ApprovalVoided)
                if e.step.as_deref() == Some(step)
                    && hash_of("new_plan_hash") != Some(plan_hash) =>
            {
                standing = standing.filter(|d| !is_grant(&d.kind))
            }
            Some(AuditKind::ApprovalReasked) => {
                standing = standing.filter(|d| d.kind != AuditKind::ApprovalRejected)
            }
            _ => {}
        }
    }
    standing
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn key() -> AuditKey {
        AuditKey::new(SecretString::from("test-audit-key"))
    }

    fn chain(n: usize) -> Vec<Event> {
        let mut prev = GENESIS.to_owned();
        (0..n)
            .map(|i| {
                let ev = NewEvent {
                    run_id: None,
                    subject: "merche".into(),
                    step: Some(format!("s{i}")),
                    actor: "ops".into(),
                    kind: AuditKind::StepDone,
                    outcome: "ok".into(),
                    detail: serde_json::json!({"b": 1, "a": [i]}),
                    duration_ms: Some(5),
                };
                let at = DateTime::from_timestamp_micros(1_700_000_000_000_000 + i as i64).unwrap();
                let hash = event_hash(&key(), &prev, at, &ev.content());
                let e = Event {
                    id: i as i64 + 1,
                    at,
                    run_id: ev.run_id,
                    subject: ev.subject,
                    step: ev.step,
                    actor: ev.actor,
                    kind: ev.kind.as_str().to_owned(),
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
        assert!(verify_events(&key(), GENESIS, &chain(5)).is_empty());
    }

    #[test]
    fn edit_and_delete_are_caught() {
        let mut edited = chain(5);
        edited[2].actor = "mallory".into();
        assert_eq!(
            verify_events(&key(), GENESIS, &edited),
            vec![ChainBreak {
                id: 3,
                problem: verify_events(&key(), GENESIS, &edited)[0].problem.clone()
            }]
        );
        let mut deleted = chain(5);
        deleted.remove(1);
        let breaks = verify_events(&key(), GENESIS, &deleted);
        assert_eq!(breaks.len(), 1);
        assert_eq!(breaks[0].id, 3);
    }

    #[test]
    fn key_order_does_not_matter() {
        let a: Value = serde_json::from_str(r#"{"x":1,"a":{"z":2,"b":3}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"b":3,"z":2},"x":1}"#).unwrap();
        assert_eq!(canonical(&a), canonical(&b));
    }

    #[test]
    fn a_chain_rehashed_without_the_key_does_not_verify() {
        // What a database writer can do: recompute every hash with a key of their own.
        let mut forged = chain(3);
        let other = AuditKey::new(SecretString::from("not-the-bot's-key"));
        let mut prev = GENESIS.to_owned();
        for e in forged.iter_mut() {
            e.actor = "mallory".into();
            let ev = e.content();
            e.prev_hash = prev.clone();
            e.hash = event_hash(&other, &prev, e.at, &ev);
            prev = e.hash.clone();
        }
        assert!(verify_events(&other, GENESIS, &forged).is_empty());
        assert_eq!(verify_events(&key(), GENESIS, &forged).len(), 3);
    }

    #[test]
    fn anchors_catch_a_chain_cut_short_or_rewritten() {
        let full = chain(5);
        let anchor = Anchor {
            id: 5,
            hash: full[4].hash.clone(),
        };
        assert!(check_anchors(&full, std::slice::from_ref(&anchor)).is_empty());
        let cut = &full[..3];
        assert!(
            verify_events(&key(), GENESIS, cut).is_empty(),
            "a cut chain verifies alone"
        );
        let breaks = check_anchors(cut, std::slice::from_ref(&anchor));
        assert_eq!(breaks.len(), 1);
        assert!(
            breaks[0].problem.contains("cut short"),
            "{}",
            breaks[0].problem
        );
        let mut rewritten = full.clone();
        rewritten[4].hash = "0".repeat(64);
        assert!(
            check_anchors(&rewritten, &[anchor])[0]
                .problem
                .contains("rewritten")
        );
    }

    #[test]
    fn anchors_parse_as_posted() {
        let h = "ab".repeat(32);
        assert_eq!(
            Anchor::parse(&format!("`#12:{h}`")).unwrap(),
            Anchor {
                id: 12,
                hash: h.clone()
            }
        );
        assert!(Anchor::parse("12").is_err());
        assert!(Anchor::parse(&format!("x:{h}")).is_err());
        assert!(Anchor::parse("12:abc").is_err());
        assert!(Anchor::parse(&format!("0:{h}")).is_err());
    }

    #[test]
    fn a_decision_stands_until_voided() {
        let ev = |id: i64, kind: &str, detail: Value| Event {
            id,
            at: DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap(),
            run_id: None,
            subject: "s".into(),
            step: (kind != "approval.reasked").then(|| "cert".to_owned()),
            actor: "a".into(),
            kind: kind.into(),
            outcome: "ok".into(),
            detail,
            duration_ms: None,
            prev_hash: String::new(),
            hash: String::new(),
        };
        let granted = ev(
            1,
            "approval.granted",
            serde_json::json!({"plan_hash": "h1"}),
        );
        let voided = ev(
            2,
            "approval.voided",
            serde_json::json!({"new_plan_hash": "h2"}),
        );
        let again = ev(
            3,
            "approval.granted",
            serde_json::json!({"plan_hash": "h1"}),
        );
        assert_eq!(
            standing_decision(std::slice::from_ref(&granted), "cert", "h1", "a").map(|e| e.id),
            Some(1)
        );
        assert!(standing_decision(std::slice::from_ref(&granted), "cert", "h2", "a").is_none());
        assert!(
            standing_decision(std::slice::from_ref(&granted), "deploy-stub", "h1", "a").is_none()
        );
        assert!(
            standing_decision(std::slice::from_ref(&granted), "cert", "h1", "b").is_none(),
            "a's approval is not b's"
        );
        let by_b = Event {
            id: 9,
            actor: "b".into(),
            ..granted.clone()
        };
        let both = [granted.clone(), by_b];
        assert_eq!(
            standing_decision(&both, "cert", "h1", "a").map(|e| e.id),
            Some(1)
        );
        assert_eq!(
            standing_decision(&both, "cert", "h1", "b").map(|e| e.id),
            Some(9)
        );
        assert!(standing_decision(&[granted.clone(), voided.clone()], "cert", "h1", "a").is_none());
        assert_eq!(
            standing_decision(&[granted, voided, again], "cert", "h1", "a").map(|e| e.id),
            Some(3)
        );
        let rejected = ev(
            4,
            "approval.rejected",
            serde_json::json!({"plan_hash": "h1"}),
        );
        let reasked = ev(5, "approval.reasked", serde_json::json!({}));
        assert!(standing_decision(&[rejected, reasked], "cert", "h1", "a").is_none());
    }
}
