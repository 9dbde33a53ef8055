//! The ops listener against the lab's PostgreSQL: `/healthz` follows the state database and the
//! Discord gateway, `/metrics` shows runs, approvals waiting and step durations. Run through
//! scripts/test (inside the lab).

use crate::support::harness::within;
use crate::support::{lab, onboarding, scripted};

use std::sync::Arc;
use std::time::Duration;

use lab::Lab;
use onboard_bot::engine::{Engine, StartOptions};
use onboard_bot::ops::{self, Health};
use onboard_bot::request::Request;
use onboard_bot::state::runs::{self, RunStatus};
use scripted::Scripted;
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(120);

fn request(slug: &str) -> Request {
    onboarding::request(onboarding::person_only(slug, "Ops Test"))
}

/// GET `path` on the listener: status and body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let resp = reqwest::get(format!("http://{addr}{path}"))
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

async fn healthz(addr: std::net::SocketAddr) -> (u16, Value) {
    let (status, body) = get(addr, "/healthz").await;
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, json)
}

/// The value of the sample line `series` (name and labels exactly as written).
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in\n{metrics}"))
        .parse()
        .expect("a number")
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_show_runs_approvals_and_step_durations() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.config(tmp.path(), |t| t);
        let engine = Engine::new(cfg.clone(), Arc::new(Scripted::reject_all()))
            .await
            .expect("engine starts against the lab");
        let server = ops::listen(
            "127.0.0.1:0".parse().unwrap(),
            engine.pool().clone(),
            Health::new(),
        )
        .await
        .expect("listener starts");

        // Before any run every status is there, at 0.
        let (status, text) = get(server.addr, "/metrics").await;
        assert_eq!(status, 200);
        assert_eq!(sample(&text, "onboard_bot_state_db_up"), 1.0);
        assert_eq!(sample(&text, "onboard_bot_runs{status=\"done\"}"), 0.0);
        assert_eq!(sample(&text, "onboard_bot_approvals_waiting"), 0.0);
        assert!(text.contains("# TYPE onboard_bot_step_duration_seconds histogram"));
        assert!(
            !text.contains("onboard_bot_discord_gateway_connected"),
            "no gateway here"
        );

        // One run rejected at its first production write: preflight done, create-person failed
        // (rejected), the rest never started.
        let (_, outcome) = engine
            .run(
                request("ops-rejected"),
                &scripted::actor("ops"),
                StartOptions::default(),
            )
            .await
            .expect("run starts");
        assert_eq!(outcome.status, RunStatus::Rejected, "{outcome:?}");
        // One run waiting for a person (started, then marked as the engine does while it asks).
        let waiting = engine
            .start(
                request("ops-waiting"),
                &scripted::actor("ops"),
                StartOptions::default(),
            )
            .await
            .expect("run starts");
        runs::set_status(engine.pool(), waiting, RunStatus::WaitingApproval, None)
            .await
            .unwrap();
        ops::metrics::discord_api_error();

        let (status, text) = get(server.addr, "/metrics").await;
        assert_eq!(status, 200);
        assert_eq!(sample(&text, "onboard_bot_runs{status=\"rejected\"}"), 1.0);
        assert_eq!(
            sample(&text, "onboard_bot_runs{status=\"waiting_approval\"}"),
            1.0
        );
        assert_eq!(sample(&text, "onboard_bot_runs{status=\"running\"}"), 0.0);
        assert_eq!(sample(&text, "onboard_bot_approvals_waiting"), 1.0);
        let h = "onboard_bot_step_duration_seconds";
        assert_eq!(
            sample(&text, &format!("{h}_count{{step=\"preflight\"}}")),
            1.0
        );
        assert_eq!(
            sample(
                &text,
                &format!("{h}_bucket{{step=\"preflight\",le=\"+Inf\"}}")
            ),
            1.0
        );
        assert_eq!(
            sample(
                &text,
                &format!("{h}_bucket{{step=\"preflight\",le=\"86400\"}}")
            ),
            1.0
        );
        let secs = sample(&text, &format!("{h}_sum{{step=\"preflight\"}}"));
        assert!((0.0..60.0).contains(&secs), "preflight took {secs}s");
        assert!(
            !text.contains("step=\"deploy-config\""),
            "a step that never ran has no duration:\n{text}"
        );
        // Other tests in this binary may count errors too: at least ours.
        assert!(sample(&text, "onboard_bot_discord_api_errors_total") >= 1.0);
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_follows_the_gateway_and_the_state_db() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.config(tmp.path(), |t| t);
        onboard_bot::state::migrate(&cfg).await.unwrap();
        let pool = onboard_bot::state::connect(&cfg.state_db).await.unwrap();

        // Without a Discord front-end only the database counts.
        let plain = ops::listen("127.0.0.1:0".parse().unwrap(), pool.clone(), Health::new())
            .await
            .unwrap();
        let (status, body) = healthz(plain.addr).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "ok");
        assert_eq!(body["checks"]["discord_gateway"], "not running");

        // Under `serve` the gateway counts: down until the front-end reports it connected.
        let health = Health::new().expect_gateway();
        let server = ops::listen("127.0.0.1:0".parse().unwrap(), pool.clone(), health.clone())
            .await
            .unwrap();
        let (status, body) = healthz(server.addr).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["down"], serde_json::json!(["discord_gateway"]));
        health.set_gateway_connected(true);
        let (status, body) = healthz(server.addr).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["checks"]["discord_gateway"], "connected");
        assert_eq!(body["checks"]["state_db"], "ok");
        let (_, text) = get(server.addr, "/metrics").await;
        assert_eq!(sample(&text, "onboard_bot_discord_gateway_connected"), 1.0);

        // The database going away: 503 naming it; /metrics still answers, saying so.
        pool.close().await;
        let (status, body) = healthz(server.addr).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["status"], "down");
        assert_eq!(body["down"], serde_json::json!(["state_db"]));
        assert!(
            body["checks"]["state_db"]
                .as_str()
                .unwrap()
                .starts_with("down: "),
            "{body}"
        );
        let (status, text) = get(server.addr, "/metrics").await;
        assert_eq!(status, 200);
        assert_eq!(sample(&text, "onboard_bot_state_db_up"), 0.0);
        assert!(!text.contains("onboard_bot_runs"), "{text}");

        let (status, _) = get(server.addr, "/nothing-here").await;
        assert_eq!(status, 404);
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_listener_follows_ops_listen_in_the_config() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();

        let off = dbs.config(tmp.path(), |t| t);
        assert!(ops::start(&off, Health::new()).await.unwrap().is_none());

        let on = dbs.config(tmp.path(), |t| {
            format!("{t}\nops:\n  listen: 127.0.0.1:0\n")
        });
        let server = ops::start(&on, Health::new())
            .await
            .unwrap()
            .expect("ops.listen set: a listener");
        assert_ne!(server.addr.port(), 0);
        // Its own pool on the state database (the migrations ran in none here: SELECT 1 only).
        let (status, body) = healthz(server.addr).await;
        assert_eq!(status, 200, "{body}");
        let addr = server.addr;
        drop(server);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            reqwest::get(format!("http://{addr}/healthz"))
                .await
                .is_err(),
            "dropping the handle stops the listener"
        );

        // The section refuses keys it does not know, naming them.
        let path = dbs.write_config(tmp.path(), |t| {
            format!("{t}\nops:\n  listen: 127.0.0.1:0\n  port: 9\n")
        });
        let err = onboard_bot::config::Config::load(&path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("port"), "{err}");
    })
    .await
}
