//! Runbook "Success check": the portal loads with their identity; a test row in each tenant
//! table lands with the right user_id (and org_id) and is invisible to other tenants; an
//! intentional cross-tenant read returns 0 rows; for Org-shaped providers the membership is
//! visible in the org context. Test rows are removed; nothing is backfilled.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::common::{Request, tenant_conn};
use super::{ApprovedPlan, CheckReport, Plan, Step, StepContext, StepError, StepName};
use crate::adapters::{dns, http, tenant_db};
use crate::config::VerifyConfig;
use crate::domain::{OperatingMode, Slug};

pub use crate::report::Check;

pub struct Verify;

/// Who is being verified.
struct Tenant {
    slug: Slug,
    user_id: Uuid,
    display_name: String,
    /// The org context RLS uses for Org-shaped providers.
    org: Option<(Slug, Uuid)>,
    /// That org's name, as its portal lists it.
    org_name: Option<String>,
    /// Joining talent: the portal is the org's.
    joins_org: bool,
}

fn settings(cx: &StepContext) -> Result<&VerifyConfig, StepError> {
    cx.services.config.verify.as_ref().ok_or_else(|| {
        StepError::refused("the success check is not configured (verify section of the config)")
    })
}

async fn tenant(cx: &StepContext) -> Result<Tenant, StepError> {
    let (slug, mode) = match cx.request.as_ref() {
        Request::Onboard(r) => (r.slug.clone(), Some(r.mode.clone())),
        Request::Verify(r) => (r.slug.clone(), None),
        Request::Cert(_) | Request::Abandon(_) => {
            return Err(StepError::Internal(anyhow::anyhow!(
                "verify in a cert or abandon run"
            )));
        }
    };
    let mut conn = tenant_conn(cx).await?;
    let user = tenant_db::find_user(&mut conn, &slug)
        .await?
        .ok_or_else(|| StepError::refused(format!("there is no user `{slug}` to verify")))?;
    // The org: from the onboarding's mode, else the one the person owns or belongs to.
    let org_slug: Option<Slug> = match &mode {
        Some(m) => m.org_slug().cloned(),
        None => {
            let found: Option<String> = sqlx::query_scalar(
                "SELECT o.slug FROM org_members m JOIN orgs o ON o.id = m.org_id WHERE m.user_id = $1 ORDER BY (m.role = 'owner') DESC, o.slug LIMIT 1",
            )
            .bind(user.id)
            .fetch_optional(&mut *conn)
            .await?;
            found
                .map(|s| Slug::parse(&s))
                .transpose()
                .map_err(|e| StepError::Internal(e.into()))?
        }
    };
    let (org, org_name) = match org_slug {
        Some(s) => {
            let o = tenant_db::find_org(&mut conn, &s)
                .await?
                .ok_or_else(|| StepError::refused(format!("org `{s}` does not exist")))?;
            (Some((s, o.id)), Some(o.name))
        }
        None => (None, None),
    };
    let joins_org = match &mode {
        Some(m) => matches!(m, OperatingMode::PersonJoinsOrg { .. }),
        None => match &org {
            Some((_, org_id)) => {
                tenant_db::membership(&mut conn, *org_id, user.id)
                    .await?
                    .as_deref()
                    == Some("member")
            }
            None => false,
        },
    };
    Ok(Tenant {
        slug,
        user_id: user.id,
        display_name: user.display_name,
        org,
        org_name,
        joins_org,
    })
}

async fn app_pool(v: &VerifyConfig) -> Result<PgPool, StepError> {
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(v.app_db.connect_timeout)
        .connect_with(v.app_db.connect_options())
        .await
        .map_err(|e| {
            StepError::Transient(anyhow::anyhow!(
                "cannot connect to the platform as the application role {}: {e}",
                v.app_db.describe()
            ))
        })
}

/// Sets the tenant context for the rest of the transaction (bound, never interpolated).
async fn as_tenant(
    conn: &mut PgConnection,
    v: &VerifyConfig,
    user: Uuid,
    org: Option<Uuid>,
) -> Result<(), StepError> {
    sqlx::query("SELECT set_config($1, $2, true), set_config($3, $4, true)")
        .bind(&v.user_setting)
        .bind(user.to_string())
        .bind(&v.org_setting)
        .bind(org.map(|o| o.to_string()).unwrap_or_default())
        .execute(conn)
        .await?;
    Ok(())
}

fn marker(cx: &StepContext) -> String {
    format!("onboard-bot verify test row (run {})", cx.run_id)
}

/// The portal check.
async fn portal(cx: &StepContext, v: &VerifyConfig, t: &Tenant) -> Check {
    let (portal_slug, expect) = match (&t.org, t.joins_org) {
        // A sub-account's portal is the org's; the member shows in its org context.
        (Some((org, _)), true) => (org.to_string(), format!("{} (", t.display_name)),
        _ => (
            t.slug.to_string(),
            v.portal_expect
                .replace("{display_name}", &t.display_name)
                .replace("{slug}", t.slug.as_str()),
        ),
    };
    let Some(url) = v
        .portal_url
        .as_ref()
        .map(|u| u.replace("{slug}", &portal_slug))
    else {
        return Check::skipped(
            "portal loads with their identity",
            "skipped: no verify.portal_url configured",
        );
    };
    let name = format!("portal {url} loads with their identity");
    let (passed, evidence) = page_shows(cx, v, &url, &expect).await;
    Check::new(name, passed, evidence)
}

/// The context switcher, as the Provider sees it: their own portal page lists the org (the
/// runbook: "confirm the membership is visible in the org context"). A membership row the
/// portal does not show is not a working context switcher.
async fn context_switcher(cx: &StepContext, v: &VerifyConfig, t: &Tenant) -> Option<Check> {
    let (org_slug, _) = t.org.as_ref()?;
    let name = format!("context switcher: {} is in org `{org_slug}`", t.slug);
    let (Some(url), Some(expect)) = (&v.portal_url, &v.portal_org_expect) else {
        let missing = if v.portal_url.is_none() {
            "verify.portal_url"
        } else {
            "verify.portal_org_expect"
        };
        return Some(Check::skipped(
            name,
            format!("skipped: it is checked on the portal, and no {missing} is configured"),
        ));
    };
    let role = if t.joins_org { "member" } else { "owner" };
    let expect = expect
        .replace("{org_slug}", org_slug.as_str())
        .replace("{org_name}", t.org_name.as_deref().unwrap_or_default())
        .replace("{role}", role)
        .replace("{display_name}", &t.display_name)
        .replace("{slug}", t.slug.as_str());
    let url = url.replace("{slug}", t.slug.as_str());
    let (passed, evidence) = page_shows(cx, v, &url, &expect).await;
    Some(Check::new(name, passed, evidence))
}

/// Whether the page at `url` answers 2xx and shows `expect`, with what was seen. A new
/// tenant's name may take a moment to reach the portal's certificate and cache: tried for
/// about ten seconds.
async fn page_shows(cx: &StepContext, v: &VerifyConfig, url: &str, expect: &str) -> (bool, String) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (false, format!("{url} is not a URL"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let default_port = if scheme == "https" { 443 } else { 80 };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => match p.parse::<u16>() {
            Ok(p) => (h, p),
            Err(_) => return (false, format!("{url}: `{p}` is not a port")),
        },
        None => (authority, default_port),
    };
    let cfg = &cx.services.config;
    let ip = match resolve(cfg, host).await {
        Ok(ip) => ip,
        Err(e) => return (false, format!("{host} does not resolve: {e:#}")),
    };
    let mut last = String::new();
    for _ in 0..20 {
        match http::get_at(
            scheme,
            host,
            port,
            path,
            ip,
            v.portal_ca.as_deref(),
            Duration::from_secs(10),
        )
        .await
        {
            Ok(f) if (200..300).contains(&f.status) && f.body.contains(expect) => {
                return (
                    true,
                    format!("HTTP {} from {ip}, page shows {expect:?}", f.status),
                );
            }
            Ok(f) => last = format!("HTTP {} from {ip}; page does not show {expect:?}", f.status),
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    (false, last)
}

async fn resolve(cfg: &crate::config::Config, host: &str) -> anyhow::Result<std::net::IpAddr> {
    let server = cfg
        .dns
        .resolvers
        .first()
        .or(cfg.dns.authoritative.first())
        .ok_or_else(|| anyhow::anyhow!("no DNS server configured"))?;
    let resolver = dns::resolver_for(*server, Duration::from_secs(cfg.dns.timeout_secs))?;
    let ips = resolver.lookup_ip(format!("{host}.")).await?;
    ips.iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no address"))
}

/// Test row in one table: lands with the right ids, invisible to another tenant, removed.
async fn table_check(
    pool: &PgPool,
    v: &VerifyConfig,
    table: &crate::config::TenantTable,
    t: &Tenant,
    other: Uuid,
    marker: &str,
) -> Result<Check, StepError> {
    let name = format!(
        "{}: a test row lands as {} and no other tenant sees it",
        table.name, t.slug
    );
    let org_id = t.org.as_ref().map(|o| o.1);
    let mut tx = pool.begin().await?;
    as_tenant(&mut tx, v, t.user_id, org_id).await?;
    let id: Uuid = match sqlx::query_scalar(sqlx::AssertSqlSafe(table.insert.clone()))
        .bind(t.user_id)
        .bind(org_id)
        .bind(marker)
        .fetch_one(&mut *tx)
        .await
    {
        Ok(id) => id,
        Err(e) => {
            return Ok(Check::new(
                name,
                false,
                format!("the tenant could not insert its own row: {e}"),
            ));
        }
    };
    tx.commit().await?;
    let select = format!("SELECT user_id, org_id FROM {} WHERE id = $1", table.name);
    let result = async {
        let mut tx = pool.begin().await?;
        as_tenant(&mut tx, v, t.user_id, org_id).await?;
        let own = sqlx::query(sqlx::AssertSqlSafe(select.clone()))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.rollback().await?;
        let Some(own) = own else {
            return Ok::<_, StepError>((
                false,
                format!("row {id} is not visible to its own tenant"),
            ));
        };
        let (u, o): (Uuid, Option<Uuid>) = (own.try_get(0)?, own.try_get(1)?);
        if u != t.user_id || o != org_id {
            return Ok((
                false,
                format!(
                    "row {id} landed with user_id {u}, org_id {o:?}; expected {}, {org_id:?}",
                    t.user_id
                ),
            ));
        }
        let mut tx = pool.begin().await?;
        as_tenant(&mut tx, v, other, None).await?;
        let seen = sqlx::query(sqlx::AssertSqlSafe(select.clone()))
            .bind(id)
            .fetch_all(&mut *tx)
            .await?
            .len();
        tx.rollback().await?;
        if seen != 0 {
            return Ok((
                false,
                format!(
                    "LEAK: another tenant ({other}) sees test row {id} of {} ({seen} row)",
                    t.slug
                ),
            ));
        }
        Ok((
            true,
            format!(
                "row {id} has user_id {u}, org_id {}; another tenant sees 0 rows",
                o.map(|o| o.to_string()).unwrap_or_else(|| "NULL".into())
            ),
        ))
    }
    .await;
    // Remove the test row whatever happened.
    let mut tx = pool.begin().await?;
    as_tenant(&mut tx, v, t.user_id, org_id).await?;
    let deleted = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {} WHERE id = $1",
        table.name
    )))
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    let (passed, mut evidence) = result?;
    if deleted != 1 {
        return Ok(Check::new(
            name,
            false,
            format!("{evidence}; the test row {id} could not be removed ({deleted} deleted)"),
        ));
    }
    evidence.push_str("; test row removed");
    Ok(Check::new(name, passed, evidence))
}

/// A cross-tenant read of another tenant's existing rows, as the new tenant: must be 0 rows.
async fn rls_check(
    pool: &PgPool,
    v: &VerifyConfig,
    table: &str,
    t: &Tenant,
    other: Uuid,
) -> Result<Check, StepError> {
    let name = format!("{table}: a direct read of another tenant's rows returns 0 rows");
    let mut tx = pool.begin().await?;
    as_tenant(&mut tx, v, other, None).await?;
    let ids: Vec<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM {table} WHERE user_id = $1 LIMIT 5"
    )))
    .bind(other)
    .fetch_all(&mut *tx)
    .await?;
    tx.rollback().await?;
    if ids.is_empty() {
        return Ok(Check::new(
            name,
            false,
            format!("the other tenant ({other}) has no rows in {table} to try to read"),
        ));
    }
    let mut tx = pool.begin().await?;
    as_tenant(&mut tx, v, t.user_id, t.org.as_ref().map(|o| o.1)).await?;
    let seen = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM {table} WHERE id = ANY($1)"
    )))
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?
    .len();
    tx.rollback().await?;
    Ok(Check::new(
        name,
        seen == 0,
        if seen == 0 {
            format!(
                "read {} row id(s) of the other tenant as {}: 0 rows",
                ids.len(),
                t.slug
            )
        } else {
            format!(
                "LEAK: {} sees {seen} of the other tenant's {} row(s) in {table}",
                t.slug,
                ids.len()
            )
        },
    ))
}

/// Every check, in order.
pub async fn run_checks(cx: &StepContext) -> Result<Vec<Check>, StepError> {
    let v = settings(cx)?;
    let t = tenant(cx).await?;
    // The plan names the tenant by slug; the ids it found are in the run's log.
    cx.log(&match &t.org {
        Some((org, id)) => format!("user `{}` is {}, org `{org}` is {id}", t.slug, t.user_id),
        None => format!("user `{}` is {}", t.slug, t.user_id),
    });
    let mut conn = tenant_conn(cx).await?;
    let other = tenant_db::find_user(&mut conn, &v.other_tenant)
        .await?
        .filter(|u| u.id != t.user_id)
        .ok_or_else(|| {
            StepError::refused(format!(
                "verify.other_tenant `{}` is not another existing user",
                v.other_tenant
            ))
        })?;
    let pool = app_pool(v).await?;
    let mut checks = vec![portal(cx, v, &t).await];
    let marker = marker(cx);
    for table in &v.tables {
        checks.push(table_check(&pool, v, table, &t, other.id, &marker).await?);
        checks.push(rls_check(&pool, v, &table.name, &t, other.id).await?);
    }
    checks.extend(context_switcher(cx, v, &t).await);
    pool.close().await;
    Ok(checks)
}

/// The report a finished run stored with its outputs (`runs.outputs`), for showing it later;
/// `None` when the run has none.
pub fn stored_report(outputs: &serde_json::Value) -> Option<Vec<Check>> {
    let report = outputs.get(super::Output::VerifyReport.as_str())?;
    serde_json::from_value(report.clone()).ok()
}

/// The report as text: the counts, then one line per check.
pub fn render(checks: &[Check]) -> String {
    crate::messages::success_check(checks)
}

/// Whether the report shows the check done: something passed, nothing failed (a skipped check
/// is neither, and the report counts it).
fn held(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.passed) && checks.iter().all(|c| c.passed || c.skipped)
}

/// The success check's plan for the user `slug` (and `org`): what it writes and reads, named
/// by slugs so it is the same before and after the rows exist (the apply logs the ids).
fn check_plan(cx: &StepContext, v: &VerifyConfig, slug: &Slug, org: Option<&Slug>) -> Plan {
    let mut detail = format!(
        "as the application role {} with {} = the id of user `{slug}`",
        v.app_db.describe(),
        v.user_setting,
    );
    if let Some(org) = org {
        detail.push_str(&format!(" and {} = the id of org `{org}`", v.org_setting));
    }
    detail.push_str(":\n");
    for table in &v.tables {
        detail.push_str(&format!(
            "  {}  -- $3 = '{}'; the row is deleted right after the check\n",
            table.insert,
            marker(cx)
        ));
    }
    detail.push_str(&format!(
        "then a cross-tenant read of `{}`'s rows, and the portal {}\n",
        v.other_tenant,
        v.portal_url
            .as_deref()
            .unwrap_or("(not configured: skipped)")
            .replace("{slug}", slug.as_str())
    ));
    if let Some(org) = org {
        detail.push_str(&match (&v.portal_url, &v.portal_org_expect) {
            (Some(url), Some(_)) => format!(
                "and the context switcher: org `{org}` listed on {}\n",
                url.replace("{slug}", slug.as_str())
            ),
            _ => format!(
                "and the context switcher for org `{org}` on the portal (not configured: skipped)\n"
            ),
        });
    }
    Plan::Change {
        summary: format!("run the success check for {slug} (test rows, removed after)"),
        detail,
    }
}

#[async_trait]
impl Step for Verify {
    fn id(&self) -> StepName {
        StepName::Verify
    }

    fn description(&self) -> &'static str {
        "Success check: portal loads with their identity; test rows land with the right user_id/org_id, invisible to others; RLS blocks a cross-tenant read"
    }

    /// The check writes test rows (removed again) into production tables: it asks first.
    fn writes_production(&self) -> bool {
        true
    }

    async fn plan(&self, cx: &StepContext) -> Result<Plan, StepError> {
        let v = settings(cx)?;
        let t = match tenant(cx).await {
            Ok(t) => t,
            // A dry run created nobody: the check is planned for when the tenant exists.
            Err(_) if cx.dry_run => {
                return Ok(Plan::Change {
                    summary: "run the success check".into(),
                    detail: "(after the tenant exists)".into(),
                });
            }
            Err(e) => return Err(e),
        };
        let org = t.org.as_ref().map(|(org, _)| org);
        Ok(check_plan(cx, v, &t.slug, org))
    }

    /// Up front, before create-person (and create-org) exist: the same plan, named by slugs,
    /// as it will be once they do. The ids are looked up by those slugs when the check runs.
    async fn plan_ahead(&self, cx: &StepContext) -> Result<(Plan, Option<String>), StepError> {
        let Request::Onboard(r) = cx.request.as_ref() else {
            return Ok((self.plan(cx).await?, None));
        };
        let v = settings(cx)?;
        Ok((
            check_plan(cx, v, &r.slug, r.mode.org_slug()),
            Some(crate::messages::verify_presumes().to_owned()),
        ))
    }

    async fn apply(&self, cx: &StepContext, _plan: &ApprovedPlan) -> Result<(), StepError> {
        let checks = run_checks(cx).await?;
        for c in &checks {
            cx.log(&crate::messages::success_check_line(c));
        }
        cx.set_verify_report(&checks).await?;
        if held(&checks) {
            Ok(())
        } else {
            Err(StepError::Refused(format!(
                "the success check failed:\n{}",
                render(&checks)
            )))
        }
    }

    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError> {
        let report = cx.verify_report().await.unwrap_or_default();
        let ok = held(&report);
        Ok(CheckReport {
            ok,
            evidence: render(&report),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_report_reads_back_from_the_runs_outputs() {
        let checks = vec![
            Check::new("portal", true, "HTTP 200"),
            Check::skipped("context switcher", "not configured"),
        ];
        let outputs = serde_json::json!({ "user_id": uuid::Uuid::nil(), "verify_report": checks });
        let read = stored_report(&outputs).expect("a report");
        assert_eq!(render(&read), render(&checks));
        assert!(held(&read));
        // A report stored before `skipped` existed reads as not skipped.
        let old = serde_json::json!({ "verify_report": [{"name": "n", "passed": false, "evidence": "e"}] });
        let read = stored_report(&old).expect("an old report");
        assert!(!read[0].skipped && !held(&read));
        assert!(stored_report(&serde_json::json!({})).is_none());
    }
}
