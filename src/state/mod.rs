//! The bot's own state in PostgreSQL: runs, step runs, approvals, locks, the audit trail and
//! which tenant each site belongs to.
//!
//! Free query functions over a concrete pool (as bors does): no repository trait, because
//! there is exactly one database and the tests run against a real one.
//!
//! Two roles: an owner that runs the migrations (`onboard-bot migrate`), and the runtime role
//! the bot logs in as (`state_db.user`), which owns nothing. The runtime role may read and
//! write the run tables but only INSERT and SELECT on `audit_events`, so it can neither edit
//! the trail nor disable its triggers (only a table's owner can).

pub mod approvals;
pub mod audit;
pub mod dns_writes;
pub mod executor;
pub mod locks;
pub mod notify;
pub mod runs;
pub mod sites;
pub mod stats;

use anyhow::{Context, bail};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tracing::warn;

use crate::config::{Config, DbConfig, Environment, MIGRATE_PASSWORD_ENV, MIGRATE_USER_ENV};

/// The bot's schema, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connects to the state database; does not migrate.
pub async fn connect(db: &DbConfig) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(db.connect_timeout)
        .connect_with(db.connect_options())
        .await
        .with_context(|| {
            format!(
                "cannot connect to the bot's state database {}",
                db.describe()
            )
        })
}

/// The owner role's connection (from `migrate:` or the environment, see [`Config`]); `None`
/// when neither names one.
pub fn owner_db(config: &Config) -> anyhow::Result<Option<DbConfig>> {
    Ok(config.migrate.as_ref().map(|m| DbConfig {
        user: m.user.clone(),
        password: m.password.clone(),
        ..config.state_db.clone()
    }))
}

/// Applies pending migrations as the owner role and grants the runtime role what it needs
/// (and no more); safe to run at every start-up. Without an owner role configured, a runtime
/// role that still owns the tables (a database set up before the two roles) migrates them
/// itself, outside production, with a warning.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let runtime = &config.state_db.user;
    match owner_db(config)? {
        Some(owner) if &owner.user != runtime => {
            let pool = connect(&owner)
                .await
                .context("connecting as the owner role to migrate")?;
            MIGRATOR
                .run(&pool)
                .await
                .context("migrating the bot's state database")?;
            grant_runtime(&pool, runtime).await?;
            pool.close().await;
            Ok(())
        }
        Some(_) => bail!(
            "the migrate role is the runtime role `{runtime}`: use a separate owner role (see docs/operations.md, \"The audit trail\")"
        ),
        None => {
            let pool = connect(&config.state_db).await?;
            if pending_migrations(&pool).await? == 0 {
                return Ok(());
            }
            if !runtime_owns_audit(&pool).await? {
                bail!(
                    "the bot's state database needs migrating: run `onboard-bot migrate` as the owner role ({MIGRATE_USER_ENV} and {MIGRATE_PASSWORD_ENV}, or `migrate:` in the config)"
                );
            }
            if config.environment == Environment::Production {
                bail!(
                    "the runtime role `{runtime}` owns the bot's tables, so it could disable the audit trail's triggers: in production migrate with a separate owner role (docs/operations.md)"
                );
            }
            warn!(role = %runtime, "the runtime role owns the bot's tables and migrates them itself; give them to a separate owner role (docs/operations.md)");
            MIGRATOR
                .run(&pool)
                .await
                .context("migrating the bot's state database")
        }
    }
}

/// How many of the embedded migrations the database has not applied.
pub async fn pending_migrations(pool: &PgPool) -> anyhow::Result<usize> {
    let applied: Vec<i64> =
        match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
        {
            Ok(v) => v,
            // No table yet: nothing applied.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Vec::new(),
            Err(e) => return Err(e.into()),
        };
    Ok(MIGRATOR
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .count())
}

/// Whether the role we are logged in as owns the audit table (and so could disable its
/// triggers). True too when there is no table yet and the role owns the database.
pub async fn runtime_owns_audit(pool: &PgPool) -> anyhow::Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT coalesce(
            (SELECT tableowner = current_user FROM pg_tables WHERE schemaname = 'public' AND tablename = 'audit_events'),
            (SELECT pg_get_userbyid(datdba) = current_user FROM pg_database WHERE datname = current_database()))",
    )
    .fetch_one(pool)
    .await?)
}

/// The runtime role's rights: the run tables in full, the audit trail INSERT and SELECT only,
/// the migrations table SELECT only (to see the schema is current).
async fn grant_runtime(pool: &PgPool, runtime: &str) -> anyhow::Result<()> {
    let role = quote_ident(runtime);
    let mut tx = pool.begin().await?;
    for stmt in [
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"),
        format!("REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_events FROM {role}"),
        format!("REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON _sqlx_migrations FROM {role}"),
        format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(stmt))
            .execute(&mut *tx)
            .await
            .with_context(|| format!("granting the runtime role {runtime} its rights"))?;
    }
    tx.commit().await?;
    Ok(())
}

/// A PostgreSQL identifier, quoted (the role name comes from the config).
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("onboard_bot"), "\"onboard_bot\"");
        assert_eq!(
            quote_ident("a\"; DROP TABLE x; --"),
            "\"a\"\"; DROP TABLE x; --\""
        );
    }
}
