//! The routes: `GET /healthz` and `GET /metrics`.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use sqlx::PgPool;

use super::Health;

/// How long `/healthz` waits for the state database: a probe must answer quickly.
const DB_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// What the handlers share.
#[derive(Clone)]
pub struct OpsState {
    pub pool: PgPool,
    pub health: Health,
}

pub fn router(state: OpsState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// 200 when the state database answers `SELECT 1` and, under `serve`, the Discord gateway is
/// connected; 503 otherwise. Either way a JSON body names each check and what is down.
async fn healthz(State(st): State<OpsState>) -> Response {
    let mut down = Vec::new();
    let db = match tokio::time::timeout(DB_CHECK_TIMEOUT, crate::state::stats::ping(&st.pool)).await
    {
        Ok(Ok(_)) => "ok".to_owned(),
        Ok(Err(e)) => format!("down: {e}"),
        Err(_) => format!("down: no answer within {}s", DB_CHECK_TIMEOUT.as_secs()),
    };
    if db != "ok" {
        down.push("state_db");
    }
    let gateway = match st.health.gateway() {
        None => "not running",
        Some(true) => "connected",
        Some(false) => {
            down.push("discord_gateway");
            "disconnected"
        }
    };
    let (code, status) = if down.is_empty() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "down")
    };
    let body = json!({
        "status": status,
        "down": down,
        "checks": {"state_db": db, "discord_gateway": gateway},
    });
    (code, axum::Json(body)).into_response()
}

async fn metrics(State(st): State<OpsState>) -> Response {
    let snap = super::metrics::gather(&st.pool, st.health.gateway()).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        super::metrics::render(&snap),
    )
        .into_response()
}
