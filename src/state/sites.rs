//! Which tenant each Provider site belongs to, in the bot's own records: written when
//! deploy-config first creates a site (`created`) or when an approved adopt-site takes one over
//! (`adopted`); read by the ownership guards of preflight and deploy-config, `/cert` and
//! `/verify`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// How a site came to belong to its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteOrigin {
    /// deploy-config copied it from the template for this tenant.
    Created,
    /// An approved adopt-site took over a site that existed before.
    Adopted,
}

impl SiteOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Adopted => "adopted",
        }
    }

    fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "created" => Self::Created,
            "adopted" => Self::Adopted,
            other => anyhow::bail!("unknown site origin {other}"),
        })
    }
}

/// A site as the bot has it on record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteRecord {
    pub domain: String,
    pub slug: String,
    pub vps: String,
    /// The run that created or adopted it.
    pub run_id: Uuid,
    pub how: SiteOrigin,
    /// For an adoption: the slug on record before, if any.
    pub adopted_from: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Who a site is recorded for, and by which run.
#[derive(Debug, Clone)]
pub struct NewSite<'a> {
    pub domain: &'a str,
    pub slug: &'a str,
    pub vps: &'a str,
    pub run_id: Uuid,
}

const COLUMNS: &str = "domain, slug, vps, run_id, how, adopted_from, created_at, updated_at";

fn from_row(r: &sqlx::postgres::PgRow) -> anyhow::Result<SiteRecord> {
    Ok(SiteRecord {
        domain: r.get("domain"),
        slug: r.get("slug"),
        vps: r.get("vps"),
        run_id: r.get("run_id"),
        how: SiteOrigin::parse(r.get::<&str, _>("how"))?,
        adopted_from: r.get("adopted_from"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    })
}

/// The record of `domain` (normalised, as `DomainName` holds it), if the bot has one.
pub async fn get(pool: &PgPool, domain: &str) -> anyhow::Result<Option<SiteRecord>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sites WHERE domain = $1"
    )))
    .bind(domain)
    .fetch_optional(pool)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// Every site recorded for `slug`.
pub async fn for_slug(pool: &PgPool, slug: &str) -> anyhow::Result<Vec<SiteRecord>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sites WHERE slug = $1 ORDER BY domain"
    )))
    .bind(slug)
    .fetch_all(pool)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Records that `site.run_id` creates the site for `site.slug`, unless the domain is already
/// on record; returns the record as it stands, so the caller sees whose it is.
pub async fn record_created(pool: &PgPool, site: &NewSite<'_>) -> anyhow::Result<SiteRecord> {
    sqlx::query(
        "INSERT INTO sites (domain, slug, vps, run_id, how) VALUES ($1, $2, $3, $4, 'created')
         ON CONFLICT (domain) DO NOTHING",
    )
    .bind(site.domain)
    .bind(site.slug)
    .bind(site.vps)
    .bind(site.run_id)
    .execute(pool)
    .await?;
    get(pool, site.domain)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the site record of {} vanished", site.domain))
}

/// Records that `site.run_id` adopted the site for `site.slug`, replacing any earlier owner
/// (kept in `adopted_from`; the adoption's approval and plan are in the audit trail).
pub async fn record_adopted(pool: &PgPool, site: &NewSite<'_>) -> anyhow::Result<SiteRecord> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO sites (domain, slug, vps, run_id, how) VALUES ($1, $2, $3, $4, 'adopted')
         ON CONFLICT (domain) DO UPDATE SET
             adopted_from = CASE WHEN sites.slug = EXCLUDED.slug THEN sites.adopted_from ELSE sites.slug END,
             slug = EXCLUDED.slug, vps = EXCLUDED.vps, run_id = EXCLUDED.run_id,
             how = 'adopted', updated_at = now()
         RETURNING {COLUMNS}"
    )))
    .bind(site.domain)
    .bind(site.slug)
    .bind(site.vps)
    .bind(site.run_id)
    .fetch_one(pool)
    .await?;
    from_row(&row)
}

/// The contact email of the onboarding that created or adopted `domain`'s site: the owner's
/// own, never that of another tenant's onboarding that merely named the domain.
pub async fn owner_email(pool: &PgPool, domain: &str) -> anyhow::Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT r.input->>'email' FROM sites s JOIN runs r ON r.id = s.run_id
         WHERE s.domain = $1 AND r.runbook = 'onboard'",
    )
    .bind(domain)
    .fetch_optional(pool)
    .await?
    .flatten())
}

/// Whether the bot has a record of the tenant `slug`: a site recorded for it, or an
/// onboarding (not a dry run) whose create-person step created its person.
pub async fn slug_on_record(pool: &PgPool, slug: &str) -> anyhow::Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sites WHERE slug = $1)
             OR EXISTS (SELECT 1 FROM runs r JOIN step_runs s ON s.run_id = r.id
                        WHERE r.runbook = 'onboard' AND NOT r.dry_run AND r.subject = $1
                          AND s.name = 'create-person' AND s.status = 'done')",
    )
    .bind(slug)
    .fetch_one(pool)
    .await?)
}

/// Releases `domain`'s record when it is `slug`'s (an abandoned onboarding): the domain is
/// free for a new onboarding. The record's history stays in the audit trail.
pub async fn release(pool: &PgPool, domain: &str, slug: &str) -> anyhow::Result<bool> {
    Ok(
        sqlx::query("DELETE FROM sites WHERE domain = $1 AND slug = $2")
            .bind(domain)
            .bind(slug)
            .execute(pool)
            .await?
            .rows_affected()
            > 0,
    )
}
