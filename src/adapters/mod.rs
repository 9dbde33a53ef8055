//! Adapters for the outside world: concrete types with narrow interfaces. The lab provides a
//! real server for each, and the tests use those.

pub mod dns;
pub mod dns_update;
mod error;
pub mod http;
pub mod repo;
pub mod ssh;
pub mod tenant_db;
pub mod tls;

pub use error::Error;

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::OnceCell;

use crate::config::{Config, StringMap, VpsConfig};

/// What a process the bot starts may inherit from the bot's environment: where programs and
/// the home directory are, the locale, the time zone, the temporary directory and the SSH
/// agent. Nothing else (`DISCORD_TOKEN`, `{env: ...}` passwords, whatever else the bot was
/// started with); what a command needs beyond this is given to it explicitly (`deploy.env`).
pub const INHERITED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "TMPDIR",
    "SSH_AUTH_SOCK",
];

/// A command for `program` that starts from an empty environment plus [`INHERITED_ENV`] and
/// `env`: every process the bot starts itself is built here. (The SSH master the openssh
/// crate starts cannot be built here: `main` removes the secrets from the bot's own
/// environment before anything starts, see `src/main.rs`.)
pub fn child_command(
    program: impl AsRef<std::ffi::OsStr>,
    env: &StringMap,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.env_clear();
    for name in INHERITED_ENV {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    cmd.envs(env);
    cmd
}

/// The SSH master of each VPS, by name.
type VpsSlots =
    std::collections::HashMap<String, Arc<tokio::sync::Mutex<Option<Arc<openssh::Session>>>>>;

/// Connections shared by every step of every run, opened on first use.
pub struct Services {
    pub config: Arc<Config>,
    tenant: OnceCell<PgPool>,
    /// One SSH master per VPS (by name), shared by every command of every run in this
    /// process; each VPS's slot is locked on its own, so VPSes connect in parallel.
    vps: std::sync::Mutex<VpsSlots>,
    /// The platform repo's checkout: read and written only during a turn (`Repo::lock`).
    pub repo: repo::Repo,
    /// How many SSH masters were opened to each VPS (by name): one, unless one died.
    opened: std::sync::Mutex<std::collections::BTreeMap<String, usize>>,
}

impl Services {
    pub fn new(config: Arc<Config>) -> Self {
        let repo = repo::Repo::new(config.repo.clone());
        Self {
            config,
            tenant: OnceCell::new(),
            vps: Default::default(),
            repo,
            opened: Default::default(),
        }
    }

    /// The platform's tenant database (users, orgs, org_members).
    pub async fn tenant_db(&self) -> Result<&PgPool, Error> {
        self.tenant
            .get_or_try_init(|| tenant_db::connect(&self.config.tenant_db))
            .await
    }

    /// The SSH master to `vps`, opened on first use and again if it died.
    pub async fn vps(&self, vps: &VpsConfig) -> Result<Arc<openssh::Session>, Error> {
        let slot = self
            .vps
            .lock()
            .expect("VPS slots lock")
            .entry(vps.name.as_str().to_owned())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some(s) = slot.as_ref()
            && s.check().await.is_ok()
        {
            return Ok(s.clone());
        }
        let session = Arc::new(ssh::connect(vps).await.map_err(Error::Transient)?);
        *slot = Some(session.clone());
        *self
            .opened
            .lock()
            .expect("SSH masters count lock")
            .entry(vps.name.as_str().to_owned())
            .or_default() += 1;
        Ok(session)
    }

    /// The SSH masters opened so far, per VPS name (for the figures and the tests).
    pub fn ssh_masters_opened(&self) -> std::collections::BTreeMap<String, usize> {
        self.opened.lock().expect("SSH masters count lock").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_child_command_inherits_only_the_allowlist_and_what_it_is_given() {
        // cargo runs tests with CARGO_* and more in the environment: none may arrive.
        assert!(std::env::vars().any(|(k, _)| !INHERITED_ENV.contains(&k.as_str())));
        let given = StringMap::from([("ONLY_THIS".to_owned(), "given".to_owned())]);
        let out = child_command("env", &given)
            .output()
            .await
            .expect("run env");
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, _)| k)
            .collect();
        assert!(
            names.contains(&"ONLY_THIS") && names.contains(&"PATH"),
            "{text}"
        );
        for name in &names {
            assert!(
                INHERITED_ENV.contains(name) || *name == "ONLY_THIS",
                "{name} reached the child:\n{text}"
            );
        }
    }
}
