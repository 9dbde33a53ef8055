//! Locks: one active run per slug and per domain.

use std::fmt;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::domain::{DomainName, InputError, Slug};

/// What a lock is on. Stored and shown as `slug:NAME` or `domain:NAME`, the text the locks
/// table has always held.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LockKey {
    /// A person's or an org's slug: one run creates it.
    Slug(Slug),
    /// A Provider's domain: one run configures its site and certificate.
    Domain(DomainName),
}

impl LockKey {
    /// `slug:NAME` or `domain:NAME`, the name validated as a slug or a domain.
    pub fn parse(text: &str) -> Result<Self, InputError> {
        let text = text.trim();
        match text.split_once(':') {
            Some(("slug", name)) => Slug::parse_field("lock", name).map(Self::Slug),
            Some(("domain", name)) => DomainName::parse(name)
                .map(Self::Domain)
                .map_err(|e| InputError::new("lock", e.message)),
            _ => Err(InputError::new(
                "lock",
                format!(
                    "`{text}` is not a lock key: expected `slug:NAME` or `domain:NAME`, as `locks list` shows them"
                ),
            )),
        }
    }

    /// The slug or domain the lock is on (what the audit trail files its events under).
    pub fn subject(&self) -> &str {
        match self {
            Self::Slug(s) => s.as_str(),
            Self::Domain(d) => d.as_str(),
        }
    }

    /// The domain, for a domain lock.
    pub fn domain(&self) -> Option<&DomainName> {
        match self {
            Self::Domain(d) => Some(d),
            Self::Slug(_) => None,
        }
    }
}

impl fmt::Display for LockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Slug(s) => write!(f, "slug:{s}"),
            Self::Domain(d) => write!(f, "domain:{d}"),
        }
    }
}

impl std::str::FromStr for LockKey {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// As text, so audit details and JSON output read as they always have.
impl Serialize for LockKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Compares with the stored text (`"slug:x"`).
impl PartialEq<&str> for LockKey {
    fn eq(&self, other: &&str) -> bool {
        let (kind, name) = match self {
            Self::Slug(s) => ("slug", s.as_str()),
            Self::Domain(d) => ("domain", d.as_str()),
        };
        other.split_once(':') == Some((kind, name))
    }
}

/// A lock held by another run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockHeld {
    pub key: LockKey,
    pub run_id: Uuid,
    pub started_by: String,
    pub status: String,
    pub acquired_at: DateTime<Utc>,
}

fn row_to_held(r: &sqlx::postgres::PgRow) -> anyhow::Result<LockHeld> {
    let key: String = r.try_get("key")?;
    Ok(LockHeld {
        key: LockKey::parse(&key)
            .map_err(|e| anyhow::anyhow!("{}", e.message))
            .with_context(|| {
                format!("the locks table holds a key this version cannot read: {key}")
            })?,
        run_id: r.try_get("run_id")?,
        started_by: r.try_get("started_by")?,
        status: r.try_get("status")?,
        acquired_at: r.try_get("acquired_at")?,
    })
}

async fn lock_holder(
    ex: impl sqlx::PgExecutor<'_>,
    key: &LockKey,
) -> anyhow::Result<Option<LockHeld>> {
    let row = sqlx::query(
        "SELECT l.key, l.run_id, l.acquired_at, r.started_by, r.status FROM locks l JOIN runs r ON r.id = l.run_id WHERE l.key = $1",
    )
    .bind(key.to_string())
    .fetch_optional(ex)
    .await?;
    row.as_ref().map(row_to_held).transpose()
}

/// How often a lock that was released between our insert and our look at its holder is
/// tried again before giving up.
const LOCK_ATTEMPTS: u32 = 3;

/// Takes `key` for `run_id` inside the caller's transaction; a lock the run holds already is
/// kept. Returns the holder when another run holds it. A holder that lets go in the moment
/// between the insert and the look-up is no holder: the insert is tried again.
pub(super) async fn take_in(
    conn: &mut PgConnection,
    run_id: Uuid,
    key: &LockKey,
) -> anyhow::Result<Result<(), LockHeld>> {
    for _ in 0..LOCK_ATTEMPTS {
        let inserted = sqlx::query(
            "INSERT INTO locks (key, run_id) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key.to_string())
        .bind(run_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Ok(()));
        }
        match lock_holder(&mut *conn, key).await? {
            Some(held) if held.run_id == run_id => return Ok(Ok(())),
            Some(held) => return Ok(Err(held)),
            None => continue,
        }
    }
    anyhow::bail!("lock {key} kept changing hands while it was being taken; try again")
}

/// Takes (again) the locks of a resumed run; returns the holder of the first lock another run
/// holds. Locks a run already holds are kept.
pub async fn reacquire_locks(
    pool: &PgPool,
    run_id: Uuid,
    keys: &[LockKey],
) -> anyhow::Result<Result<(), LockHeld>> {
    let mut tx = pool.begin().await?;
    for key in keys {
        if let Err(held) = take_in(&mut tx, run_id, key).await? {
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
    rows.iter().map(row_to_held).collect()
}

/// The run holding `key`, if any.
pub async fn holder(pool: &PgPool, key: &LockKey) -> anyhow::Result<Option<LockHeld>> {
    lock_holder(pool, key).await
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
pub async fn remove_lock(pool: &PgPool, key: &LockKey) -> anyhow::Result<Option<LockHeld>> {
    let held = lock_holder(pool, key).await?;
    sqlx::query("DELETE FROM locks WHERE key = $1")
        .bind(key.to_string())
        .execute(pool)
        .await?;
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_print_as_stored_and_parse_back() {
        let slug = LockKey::Slug(Slug::parse("merche-biche").unwrap());
        let domain = LockKey::Domain(DomainName::parse("merche-biche.com").unwrap());
        assert_eq!(slug.to_string(), "slug:merche-biche");
        assert_eq!(domain.to_string(), "domain:merche-biche.com");
        for key in [&slug, &domain] {
            assert_eq!(&LockKey::parse(&key.to_string()).unwrap(), key);
        }
        assert_eq!(slug.subject(), "merche-biche");
        assert_eq!(domain.subject(), "merche-biche.com");
        assert_eq!(
            domain.domain().map(|d| d.as_str()),
            Some("merche-biche.com")
        );
        assert_eq!(slug.domain(), None);
        assert_eq!(
            serde_json::to_value(&domain).unwrap(),
            serde_json::json!("domain:merche-biche.com")
        );
        assert_eq!(slug, "slug:merche-biche");
        // A domain is read as it is stored: lowercase, without the final dot.
        assert_eq!(
            LockKey::parse(" domain:Merche-Biche.com. ").unwrap(),
            domain
        );
        for bad in [
            "merche-biche",
            "slug:",
            "slug:Not A Slug",
            "domain:*.x.com",
            "site:x",
            "",
        ] {
            let e = LockKey::parse(bad).unwrap_err();
            assert_eq!(e.field, "lock", "{bad}");
        }
    }
}
