//! The DNS records the bot wrote itself (dns-records into a zone of `dns.update`): recorded
//! right after the server accepted the update, read by `/dns-check` to mark them.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// One record the bot wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsWrite {
    pub domain: String,
    pub zone: String,
    pub server: String,
    /// Owner name, lowercase, without the final dot.
    pub name: String,
    pub rtype: String,
    pub ttl: i32,
    pub value: String,
    /// The values of the RRset the update replaced.
    pub replaced: Vec<String>,
    pub run_id: Uuid,
    pub written_at: DateTime<Utc>,
}

/// Records what one accepted update wrote, in one transaction.
pub async fn record(pool: &PgPool, writes: &[DnsWrite]) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    for w in writes {
        sqlx::query(
            "INSERT INTO dns_writes (domain, zone, server, name, rtype, ttl, value, replaced, run_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&w.domain)
        .bind(&w.zone)
        .bind(&w.server)
        .bind(&w.name)
        .bind(&w.rtype)
        .bind(w.ttl)
        .bind(&w.value)
        .bind(&w.replaced)
        .bind(w.run_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The latest write of each (name, type, value) for `domain`, oldest first.
pub async fn for_domain(pool: &PgPool, domain: &str) -> anyhow::Result<Vec<DnsWrite>> {
    let rows = sqlx::query(
        "SELECT DISTINCT ON (name, rtype, value)
                domain, zone, server, name, rtype, ttl, value, replaced, run_id, written_at
           FROM dns_writes WHERE domain = $1
          ORDER BY name, rtype, value, written_at DESC",
    )
    .bind(domain)
    .fetch_all(pool)
    .await?;
    let mut out: Vec<DnsWrite> = rows
        .iter()
        .map(|r| DnsWrite {
            domain: r.get("domain"),
            zone: r.get("zone"),
            server: r.get("server"),
            name: r.get("name"),
            rtype: r.get("rtype"),
            ttl: r.get("ttl"),
            value: r.get("value"),
            replaced: r.get("replaced"),
            run_id: r.get("run_id"),
            written_at: r.get("written_at"),
        })
        .collect();
    out.sort_by_key(|w| w.written_at);
    Ok(out)
}
