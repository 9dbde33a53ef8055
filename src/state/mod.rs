//! The bot's own state in PostgreSQL: runs, step runs, approvals, locks, the audit trail and
//! which tenant each site belongs to.
//!
//! Free query functions over a concrete pool (as bors does): no repository trait, because
//! there is exactly one database and the tests run against a real one.

pub mod audit;
pub mod runs;
pub mod sites;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::config::DbConfig;

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

/// Applies pending migrations; safe to call at every start-up.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("migrating the bot's state database")
}
