//! Verifying the chain: every event's hash and link, and the anchors posted outside the
//! database.

use serde::Serialize;
use sqlx::PgPool;

use super::{AuditKey, Event, GENESIS, event_hash, row_to_event};

/// One way the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    pub id: i64,
    pub problem: String,
}

/// Walks the whole chain (a subject's events are interleaved with others', so the links can
/// only be checked globally) and reports every event whose hash or link does not hold, and
/// every anchor the chain no longer matches (cut short, or rewritten).
pub async fn verify_chain(
    pool: &PgPool,
    key: &AuditKey,
    anchors: &[Anchor],
) -> anyhow::Result<(usize, Vec<ChainBreak>)> {
    let rows = sqlx::query("SELECT * FROM audit_events ORDER BY id")
        .fetch_all(pool)
        .await?;
    let events: Vec<Event> = rows.iter().map(row_to_event).collect::<Result<_, _>>()?;
    let mut breaks = verify_events(key, GENESIS, &events);
    breaks.extend(check_anchors(&events, anchors));
    Ok((events.len(), breaks))
}

/// The pure part of [`verify_chain`]: the events must follow `prev` (the hash of the event
/// before the first one given, or [`GENESIS`]).
pub fn verify_events(key: &AuditKey, prev: &str, events: &[Event]) -> Vec<ChainBreak> {
    let mut breaks = Vec::new();
    let mut expected_prev = prev.to_owned();
    for e in events {
        if e.prev_hash != expected_prev {
            breaks.push(ChainBreak {
                id: e.id,
                problem: "links to a previous event that is not the one before it: an event was deleted or reordered".into(),
            });
        }
        if event_hash(key, &e.prev_hash, e.at, &e.content()) != e.hash {
            breaks.push(ChainBreak {
                id: e.id,
                problem: "content does not match its hash under the audit key: the event was edited, or written by someone without the key".into(),
            });
        }
        expected_prev = e.hash.clone();
    }
    breaks
}

/// The head of the chain as posted outside the database: event `id` had hash `hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Anchor {
    pub id: i64,
    pub hash: String,
}

impl Anchor {
    /// `ID:HASH` as the bot posts it (a leading `#` is allowed).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim().trim_matches('`');
        let (id, hash) = text
            .trim_start_matches('#')
            .split_once(':')
            .ok_or_else(|| {
                format!("`{text}` is not an anchor: expected ID:HASH, as the bot posts it")
            })?;
        let id: i64 = id
            .trim()
            .parse()
            .map_err(|_| format!("`{text}`: the event number `{id}` is not a number"))?;
        let hash = hash.trim().to_ascii_lowercase();
        if id < 1 || hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "`{text}` is not an anchor: expected a positive event number and a 64-digit hex hash"
            ));
        }
        Ok(Self { id, hash })
    }
}

impl std::fmt::Display for Anchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.id, self.hash)
    }
}

/// Every anchor must name an event that is still there with the same hash: a missing one
/// beyond the end means the chain was cut short (its newest events deleted); a different hash
/// means the chain was rewritten from there on.
pub fn check_anchors(events: &[Event], anchors: &[Anchor]) -> Vec<ChainBreak> {
    let last = events.last().map(|e| e.id).unwrap_or(0);
    anchors
        .iter()
        .filter_map(|a| match events.binary_search_by_key(&a.id, |e| e.id) {
            Ok(i) if events[i].hash == a.hash => None,
            Ok(_) => Some(ChainBreak {
                id: a.id,
                problem: format!(
                    "does not have the hash anchored outside the database ({}): the chain was rewritten",
                    a.hash
                ),
            }),
            Err(_) if a.id > last => Some(ChainBreak {
                id: a.id,
                problem: format!(
                    "was anchored outside the database, but the chain ends at #{last}: it was cut short (the newest events deleted)"
                ),
            }),
            Err(_) => Some(ChainBreak {
                id: a.id,
                problem: "was anchored outside the database, but is missing from the chain: it was deleted".into(),
            }),
        })
        .collect()
}

/// Verifies the chain as it grows, remembering how far it got: the first call walks the
/// whole chain, later ones only the events appended since. The engine asks it before every
/// production write that an approval authorises.
#[derive(Default)]
pub struct ChainVerifier {
    verified: tokio::sync::Mutex<Option<(i64, String)>>,
}

impl ChainVerifier {
    /// Verifies every event up to and including `through`; the first break found is returned.
    pub async fn verify_through(
        &self,
        pool: &PgPool,
        key: &AuditKey,
        through: i64,
    ) -> anyhow::Result<Result<(), ChainBreak>> {
        let mut verified = self.verified.lock().await;
        let (from, prev) = verified.clone().unwrap_or_else(|| (0, GENESIS.to_owned()));
        if through <= from {
            return Ok(Ok(()));
        }
        let rows = sqlx::query("SELECT * FROM audit_events WHERE id > $1 AND id <= $2 ORDER BY id")
            .bind(from)
            .bind(through)
            .fetch_all(pool)
            .await?;
        let events: Vec<Event> = rows.iter().map(row_to_event).collect::<Result<_, _>>()?;
        if let Some(b) = verify_events(key, &prev, &events).into_iter().next() {
            return Ok(Err(b));
        }
        if let Some(last) = events.last() {
            *verified = Some((last.id, last.hash.clone()));
        }
        Ok(Ok(()))
    }
}
