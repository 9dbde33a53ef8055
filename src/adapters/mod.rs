//! Adapters for the outside world: concrete types with narrow interfaces. The lab provides a
//! real server for each, and the tests use those.

pub mod dns;
pub mod http;
pub mod repo;
pub mod ssh;
pub mod tenant_db;
pub mod tls;

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::OnceCell;

use crate::config::Config;
use crate::steps::StepError;

/// Connections shared by every step of every run, opened on first use.
pub struct Services {
    pub config: Arc<Config>,
    tenant: OnceCell<PgPool>,
    /// One SSH master per VPS, shared by every command of every run in this process.
    vps: tokio::sync::Mutex<Option<Arc<openssh::Session>>>,
    /// The checkout has one working tree: repo steps of concurrent runs take turns.
    pub repo_lock: tokio::sync::Mutex<()>,
    pub repo: repo::Repo,
}

impl Services {
    pub fn new(config: Arc<Config>) -> Self {
        let repo = repo::Repo::new(config.repo.clone());
        Self {
            config,
            tenant: OnceCell::new(),
            vps: tokio::sync::Mutex::new(None),
            repo_lock: tokio::sync::Mutex::new(()),
            repo,
        }
    }

    /// The platform's tenant database (users, orgs, org_members).
    pub async fn tenant_db(&self) -> Result<&PgPool, StepError> {
        self.tenant
            .get_or_try_init(|| tenant_db::connect(&self.config.tenant_db))
            .await
    }

    /// The SSH master to the VPS, opened on first use and again if it died.
    pub async fn vps(&self) -> Result<Arc<openssh::Session>, StepError> {
        let mut slot = self.vps.lock().await;
        if let Some(s) = slot.as_ref()
            && s.check().await.is_ok()
        {
            return Ok(s.clone());
        }
        let session = Arc::new(
            ssh::connect(&self.config.vps)
                .await
                .map_err(StepError::Transient)?,
        );
        *slot = Some(session.clone());
        Ok(session)
    }
}
