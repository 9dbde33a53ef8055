//! Operating the bot: the `/healthz` and `/metrics` HTTP listener of `serve`.
//!
//! - [`Health`] is what `/healthz` reports on besides the state database: whether the Discord
//!   gateway is connected, set by the Discord front-end through [`set_gateway_connected`].
//! - [`metrics`] gathers the Prometheus text at scrape time, mostly from the state database
//!   (runs by status, approvals waiting, step durations), so every process sharing that
//!   database reports the same numbers and nothing is lost on restart. The one in-process
//!   counter is Discord API errors ([`metrics::discord_api_error`]).
//!
//! The listener is off unless `ops.listen` is set in the config.

pub mod http;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::config::Config;

/// The gateway is not part of this process's health (console commands, tests).
const GATEWAY_UNWATCHED: u8 = 0;
const GATEWAY_DOWN: u8 = 1;
const GATEWAY_UP: u8 = 2;

/// What `/healthz` reports on besides the state database. Cheap to clone; clones share state.
#[derive(Debug, Clone, Default)]
pub struct Health {
    gateway: Arc<AtomicU8>,
}

impl Health {
    /// Only the state database counts.
    pub fn new() -> Self {
        Self::default()
    }

    /// The handle `serve` reports on; the Discord front-end sets it with
    /// [`set_gateway_connected`].
    pub fn global() -> &'static Health {
        static GLOBAL: OnceLock<Health> = OnceLock::new();
        GLOBAL.get_or_init(Health::new)
    }

    /// From now on the gateway counts: down until it is reported connected. Keeps an
    /// "up" already reported (READY may come first). Returns a clone for chaining.
    pub fn expect_gateway(&self) -> Health {
        let _ = self.gateway.compare_exchange(
            GATEWAY_UNWATCHED,
            GATEWAY_DOWN,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        self.clone()
    }

    /// The gateway connected (READY, RESUMED) or dropped (disconnect, shard stopped).
    pub fn set_gateway_connected(&self, connected: bool) {
        let v = if connected { GATEWAY_UP } else { GATEWAY_DOWN };
        self.gateway.store(v, Ordering::SeqCst);
    }

    /// `None` when the gateway does not count, else whether it is connected.
    pub fn gateway(&self) -> Option<bool> {
        match self.gateway.load(Ordering::SeqCst) {
            GATEWAY_UNWATCHED => None,
            v => Some(v == GATEWAY_UP),
        }
    }
}

/// For the Discord front-end: the gateway is connected (`true` on READY and RESUMED) or not
/// (`false` on a disconnect). Sets [`Health::global`].
pub fn set_gateway_connected(connected: bool) {
    Health::global().set_gateway_connected(connected);
}

/// The running listener; dropping it stops it.
#[derive(Debug)]
pub struct OpsServer {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OpsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the listener on `ops.listen` when the config sets it (`None` otherwise), with a small
/// pool of its own on the state database so that health checks never queue behind runs. The
/// pool connects lazily: a database that is down shows in `/healthz` instead of failing here.
pub async fn start(config: &Config, health: Health) -> anyhow::Result<Option<OpsServer>> {
    let Some(addr) = config.ops.listen else {
        return Ok(None);
    };
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(config.state_db.connect_timeout.min(Duration::from_secs(5)))
        .connect_lazy_with(config.state_db.connect_options());
    let server = listen(addr, pool, health)
        .await
        .map_err(|e| anyhow::anyhow!("{}: ops.listen: {e:#}", config.source.display()))?;
    Ok(Some(server))
}

/// Serves `/healthz` and `/metrics` on `addr` (port 0 picks a free one).
pub async fn listen(addr: SocketAddr, pool: PgPool, health: Health) -> anyhow::Result<OpsServer> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let addr = listener.local_addr()?;
    let app = http::router(http::OpsState { pool, health });
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the ops listener stopped");
        }
    });
    tracing::info!(%addr, "ops listener: /healthz and /metrics");
    Ok(OpsServer { addr, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_counts_once_expected_and_keeps_an_early_up() {
        let h = Health::new();
        assert_eq!(h.gateway(), None);
        h.expect_gateway();
        assert_eq!(h.gateway(), Some(false));
        h.set_gateway_connected(true);
        assert_eq!(h.gateway(), Some(true));

        let early = Health::new();
        early.set_gateway_connected(true);
        assert_eq!(early.expect_gateway().gateway(), Some(true));
    }
}
