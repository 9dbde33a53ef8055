//! The platform's tenant database: the runbook's "Database steps".
//!
//! Only the runbook's statements, always with bound parameters. The role the bot logs in as
//! may only read and insert into users, orgs and org_members; these functions are the only
//! SQL the bot runs there.

use serde::Serialize;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::Error;
use crate::config::DbConfig;
use crate::domain::{DisplayName, Email, Slug};

pub async fn connect(db: &DbConfig) -> Result<PgPool, Error> {
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(db.connect_timeout)
        .connect_with(db.connect_options())
        .await
        .map_err(|e| match Error::from(e) {
            Error::Internal(e) | Error::Transient(e) => Error::Transient(e.context(format!(
                "cannot connect to the tenant database {}",
                db.describe()
            ))),
            other => other,
        })
}

/// A write transaction in which every statement reads one snapshot (REPEATABLE READ): the
/// plan a step makes again in it is the state its inserts see, whatever commits meanwhile
/// (a conflicting write fails with a serialisation error, which is retried).
pub async fn begin_snapshot(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// What the server says about itself.
#[derive(Debug, Clone, Serialize)]
pub struct HostFacts {
    /// `host:port` as the server reports it (`inet_server_addr()`), or `unix socket`.
    pub address: String,
    pub in_recovery: bool,
    pub database: String,
}

pub async fn host_facts(conn: &mut PgConnection) -> Result<HostFacts, Error> {
    let row = sqlx::query(
        "SELECT pg_is_in_recovery() AS rec, host(inet_server_addr()) AS addr, inet_server_port() AS port, current_database() AS db",
    )
    .fetch_one(&mut *conn)
    .await?;
    let addr: Option<String> = row.try_get("addr")?;
    let port: Option<i32> = row.try_get("port")?;
    Ok(HostFacts {
        address: match (addr, port) {
            (Some(a), Some(p)) => format!("{a}:{p}"),
            _ => "unix socket".into(),
        },
        in_recovery: row.try_get("rec")?,
        database: row.try_get("db")?,
    })
}

/// Refuses unless the connection is the authoritative primary the config names (runbook:
/// "Run on the authoritative Postgres host"). Called inside every write transaction, so the
/// check and the write happen on the same connection.
pub async fn ensure_authoritative(
    conn: &mut PgConnection,
    authoritative: &str,
) -> Result<HostFacts, Error> {
    let facts = host_facts(conn).await?;
    if facts.in_recovery {
        return Err(Error::refused(format!(
            "refusing to write: connected to {} (database {}), which is a standby in recovery (pg_is_in_recovery() = true). \
             Writes go to the authoritative primary {authoritative}; point tenant_db at it.",
            facts.address, facts.database
        )));
    }
    if facts.address != authoritative {
        return Err(Error::refused(format!(
            "refusing to write: connected to {} (database {}), but the config names {authoritative} as the authoritative host \
             (tenant_db.authoritative). Point tenant_db at the authoritative primary, or fix tenant_db.authoritative.",
            facts.address, facts.database
        )));
    }
    Ok(facts)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRow {
    pub id: Uuid,
    pub slug: String,
    pub email: String,
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgRow {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub owner_id: Uuid,
}

pub async fn find_user(conn: &mut PgConnection, slug: &Slug) -> Result<Option<UserRow>, Error> {
    let row = sqlx::query("SELECT id, slug, email, display_name FROM users WHERE slug = $1")
        .bind(slug.as_str())
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| UserRow {
        id: r.get("id"),
        slug: r.get("slug"),
        email: r.get("email"),
        display_name: r.get("display_name"),
    }))
}

pub async fn find_org(conn: &mut PgConnection, slug: &Slug) -> Result<Option<OrgRow>, Error> {
    let row = sqlx::query("SELECT id, slug, name, owner_id FROM orgs WHERE slug = $1")
        .bind(slug.as_str())
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| OrgRow {
        id: r.get("id"),
        slug: r.get("slug"),
        name: r.get("name"),
        owner_id: r.get("owner_id"),
    }))
}

/// Slugs of every org, for messages and autocomplete.
pub async fn org_slugs(
    conn: &mut PgConnection,
    prefix: &str,
    limit: i64,
) -> Result<Vec<String>, Error> {
    Ok(sqlx::query_scalar(
        "SELECT slug FROM orgs WHERE starts_with(slug, $1) ORDER BY slug LIMIT $2",
    )
    .bind(prefix)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

pub async fn membership(
    conn: &mut PgConnection,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<Option<String>, Error> {
    Ok(
        sqlx::query_scalar("SELECT role FROM org_members WHERE org_id = $1 AND user_id = $2")
            .bind(org_id)
            .bind(user_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// Runbook 1: create the Person tenant.
pub const INSERT_USER: &str = "INSERT INTO users (id, slug, email, display_name)\nVALUES (gen_random_uuid(), $1, $2, $3)\nRETURNING id";

/// Runbook 2b: the Org the Person owns.
/// The owner is named by the Person's slug, so the plan shows every value before the Person's
/// row exists (the whole plan up front); the write runs in the transaction its plan was made
/// in, so the slug finds the row the plan saw.
pub const INSERT_ORG: &str = "INSERT INTO orgs (slug, name, owner_id)\nVALUES ($1, $2, (SELECT id FROM users WHERE slug = $3))\nRETURNING id";

/// Runbook 2b/2c: the membership row.
pub const INSERT_MEMBER: &str = "INSERT INTO org_members (org_id, user_id, role)\nVALUES ((SELECT id FROM orgs WHERE slug = $1), (SELECT id FROM users WHERE slug = $2), $3)";

pub async fn insert_user(
    conn: &mut PgConnection,
    slug: &Slug,
    email: &Email,
    name: &DisplayName,
) -> Result<Uuid, Error> {
    Ok(sqlx::query_scalar(INSERT_USER)
        .bind(slug.as_str())
        .bind(email.as_str())
        .bind(name.as_str())
        .fetch_one(conn)
        .await?)
}

pub async fn insert_org(
    conn: &mut PgConnection,
    slug: &Slug,
    name: &DisplayName,
    owner: &Slug,
) -> Result<Uuid, Error> {
    Ok(sqlx::query_scalar(INSERT_ORG)
        .bind(slug.as_str())
        .bind(name.as_str())
        .bind(owner.as_str())
        .fetch_one(conn)
        .await?)
}

pub async fn insert_member(
    conn: &mut PgConnection,
    org_slug: &Slug,
    user: &Slug,
    role: &str,
) -> Result<(), Error> {
    sqlx::query(INSERT_MEMBER)
        .bind(org_slug.as_str())
        .bind(user.as_str())
        .bind(role)
        .execute(conn)
        .await?;
    Ok(())
}

/// Abandon: the membership an onboarding created.
pub const DELETE_MEMBER: &str = "DELETE FROM org_members WHERE org_id = $1 AND user_id = $2";

/// Abandon: the org an onboarding created.
pub const DELETE_ORG: &str = "DELETE FROM orgs WHERE id = $1";

/// Abandon: the Person an onboarding created.
pub const DELETE_USER: &str = "DELETE FROM users WHERE id = $1";

/// Rows of one table that refer to a row by one column (a foreign key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reference {
    /// `schema.table`, as the catalog names it.
    pub table: String,
    pub column: String,
    pub rows: i64,
    /// The key's `ON DELETE` action cascades, sets null or sets a default: a delete would
    /// change those rows rather than fail.
    pub changes_on_delete: bool,
}

/// Every foreign key that refers to a row of `table` (`users` or `orgs`), with how many rows
/// refer to `id` through it. Read from the catalog, so a table the platform adds is counted
/// too. The bot's role must see the referring rows' key columns (in the lab: a column grant
/// and a read policy); a count it may not make is an error, never a zero.
pub async fn references(
    conn: &mut PgConnection,
    table: &str,
    id: Uuid,
) -> Result<Vec<Reference>, Error> {
    let keys = sqlx::query(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(r.relname) AS tbl,
                quote_ident(a.attname) AS col, n.nspname || '.' || r.relname AS shown,
                a.attname AS column, c.confdeltype::text AS action
         FROM pg_constraint c
         JOIN pg_class r ON r.oid = c.conrelid
         JOIN pg_namespace n ON n.oid = r.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
         WHERE c.contype = 'f' AND c.confrelid = to_regclass($1) AND cardinality(c.conkey) = 1
         ORDER BY 3, 4",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    for k in keys {
        let (tbl, col): (String, String) = (k.get("tbl"), k.get("col"));
        // Identifiers quoted by the server itself (quote_ident), the value bound.
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {tbl} WHERE {col} = $1"
        )))
        .bind(id)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| {
            Error::refused(format!(
                "cannot count the rows of {} that refer to {table} {id} ({e}); the bot's role needs to read {}.{}. Nothing was deleted.",
                k.get::<String, _>("shown"),
                k.get::<String, _>("shown"),
                k.get::<String, _>("column")
            ))
        })?;
        let action: String = k.get("action");
        out.push(Reference {
            table: k.get("shown"),
            column: k.get("column"),
            rows,
            changes_on_delete: matches!(action.as_str(), "c" | "n" | "d"),
        });
    }
    Ok(out)
}

pub async fn delete_member(conn: &mut PgConnection, org: Uuid, user: Uuid) -> Result<u64, Error> {
    Ok(sqlx::query(DELETE_MEMBER)
        .bind(org)
        .bind(user)
        .execute(conn)
        .await?
        .rows_affected())
}

pub async fn delete_org(conn: &mut PgConnection, org: Uuid) -> Result<u64, Error> {
    Ok(sqlx::query(DELETE_ORG)
        .bind(org)
        .execute(conn)
        .await?
        .rows_affected())
}

pub async fn delete_user(conn: &mut PgConnection, user: Uuid) -> Result<u64, Error> {
    Ok(sqlx::query(DELETE_USER)
        .bind(user)
        .execute(conn)
        .await?
        .rows_affected())
}

pub async fn find_user_by_id(conn: &mut PgConnection, id: Uuid) -> Result<Option<UserRow>, Error> {
    let row = sqlx::query("SELECT id, slug, email, display_name FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| UserRow {
        id: r.get("id"),
        slug: r.get("slug"),
        email: r.get("email"),
        display_name: r.get("display_name"),
    }))
}

/// Renders a statement with its bound values as SQL comments: what a person approves.
pub fn show_sql(sql: &str, params: &[(&str, String)]) -> String {
    let mut out = format!("{sql};");
    for (i, (name, value)) in params.iter().enumerate() {
        out.push_str(&format!(
            "\n-- ${} ({name}) = {}",
            i + 1,
            quote_literal(value)
        ));
    }
    out
}

/// A value as an SQL literal, for display only (execution always binds).
fn quote_literal(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_bound_values() {
        let s = show_sql(
            INSERT_USER,
            &[
                ("slug", "merche-biche".into()),
                ("display_name", "O'Brien".into()),
            ],
        );
        assert!(s.contains("-- $1 (slug) = 'merche-biche'"));
        assert!(s.contains("-- $2 (display_name) = 'O''Brien'"));
    }
}
