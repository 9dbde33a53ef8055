//! Adapters for the outside world: concrete types with narrow interfaces. The lab provides a
//! real server for each, and the tests use those.

pub mod dns;
pub mod ssh;
pub mod tenant_db;

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::OnceCell;

use crate::config::Config;
use crate::steps::StepError;

/// Connections shared by every step of every run, opened on first use.
pub struct Services {
    pub config: Arc<Config>,
    tenant: OnceCell<PgPool>,
}

impl Services {
    pub fn new(config: Arc<Config>) -> Self {
        Self {
            config,
            tenant: OnceCell::new(),
        }
    }

    /// The platform's tenant database (users, orgs, org_members).
    pub async fn tenant_db(&self) -> Result<&PgPool, StepError> {
        self.tenant
            .get_or_try_init(|| tenant_db::connect(&self.config.tenant_db))
            .await
    }
}
