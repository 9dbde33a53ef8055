//! /cert when the ACME CA is really down: the lab's pebble is stopped for this test (run
//! `exclusive`ly, so no other test shares the lab meanwhile) and started again after.

use crate::support::harness::exclusive;
use crate::support::{lab, scripted};

use std::sync::Arc;
use std::time::Duration;

use lab::{Lab, Restart, lab_service};
use onboard_bot::commands::onboard::OnboardArgs;
use onboard_bot::config::OnboardingConfig;
use onboard_bot::engine::{Engine, StartOptions};
use onboard_bot::state::runs::RunStatus;
use scripted::Scripted;

#[tokio::test(flavor = "multi_thread")]
async fn pebble_stopped_gives_a_clear_failure_and_a_resumable_run() {
    exclusive(Duration::from_secs(480), async {
        let lab = Lab::get();
        let slug = format!("cert-down-{}", std::process::id());
        lab.serve_domains(&[&format!("{slug}.com")]);
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let engine = Engine::new(
            dbs.config(tmp.path(), |t| t),
            Arc::new(Scripted::approve_all()),
        )
        .await
        .unwrap();
        let req = OnboardArgs {
            slug: slug.clone(),
            name: "Down".into(),
            email: "down@example.com".into(),
            mode: "person-only".into(),
            ..Default::default()
        }
        .parse(&OnboardingConfig::default())
        .unwrap();
        let id = engine
            .start(req, &scripted::actor("ops"), StartOptions::default())
            .await
            .unwrap();
        {
            let _restart = Restart("pebble");
            lab_service("stop-service", "pebble");
            let out = engine.execute(id).await.unwrap();
            assert_eq!(out.status, RunStatus::Failed);
            assert!(
                out.message.contains("the ACME CA could not be reached"),
                "{}",
                out.message
            );
            assert!(out.message.contains("can be resumed"), "{}", out.message);
        }
        // With the CA back, the same run resumes to its end.
        let out = engine.execute(id).await.unwrap();
        assert_eq!(out.status, RunStatus::Done, "{out:?}");
    })
    .await;
}
