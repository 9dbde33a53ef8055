//! Faults injected into the lab's real services (run `exclusive`ly: it stops shared services,
//! so no other test runs meanwhile): the VPS's sshd down, and PostgreSQL restarted under a
//! running bot. Each gives a clear message, a resumable run, nothing lost. (DNS SERVFAIL and
//! timeouts: dns_check.rs; the ACME CA down: cert_faults.rs; Discord 5xx, 429 and a dropped
//! gateway: discord.rs.)

use crate::support::harness::exclusive;
use crate::support::{lab, onboarding, scripted};

use std::sync::Arc;
use std::time::Duration;

use lab::{Lab, Restart, lab_service};
use onboard_bot::engine::{Engine, StartOptions};
use onboard_bot::frontend::RunEvent;
use onboard_bot::request::Request;
use onboard_bot::state::runs::{RunStatus, StepStatus};
use scripted::Scripted;

fn person(slug: &str) -> Request {
    onboarding::request(onboarding::person_only(slug, "Fault Person"))
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_give_clear_messages_and_resumable_runs() {
    exclusive(Duration::from_secs(400), async {
        let lab = Lab::get();
        let run_tag = std::process::id();

        // 1. sshd down on the VPS: the first step that needs it (preflight, which looks for
        // an existing site of the domain there) fails after its retries, saying SSH failed.
        let slug = format!("fault-ssh-{run_tag}");
        lab.serve_domains(&[&format!("{slug}.com")]);
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let engine = Engine::new(
            dbs.config(tmp.path(), |t| t.replace("retries: 3", "retries: 1")),
            Arc::new(Scripted::approve_all()),
        )
        .await
        .unwrap();
        let id = engine
            .start(
                person(&slug),
                &scripted::actor("ops"),
                StartOptions::default(),
            )
            .await
            .unwrap();
        {
            let _restart = Restart("sshd");
            lab_service("stop-service", "sshd");
            let out = engine.execute(id).await.unwrap();
            assert_eq!(out.status, RunStatus::Failed);
            assert!(
                out.message.contains("cannot open SSH to vps-0"),
                "{}",
                out.message
            );
        }
        let out = engine.execute(id).await.unwrap();
        assert_eq!(
            out.status,
            RunStatus::Done,
            "after sshd is back the run resumes: {out:?}"
        );

        // 2. PostgreSQL (state and tenant DB) restarted while a run waits on DNS: the run
        // carries on once the database and the records are back.
        let slug = format!("fault-pg-{run_tag}");
        lab.put_zone(
            &format!("{slug}.com"),
            &Lab::zone_text(&format!("{slug}.com"), "").replace("@ A 127.0.0.1", "@ A 10.4.4.4"),
        );
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let front = Arc::new(Scripted::approve_all());
        let engine = Engine::new(dbs.config(tmp.path(), |t| t), front.clone())
            .await
            .unwrap();
        let runner = {
            let (engine, req) = (engine.clone(), person(&slug));
            tokio::spawn(async move {
                engine
                    .run(req, &scripted::actor("ops"), StartOptions::default())
                    .await
            })
        };
        front
            .wait_for_event(|e| {
                matches!(
                    e,
                    RunEvent::Step {
                        status: StepStatus::Parked,
                        ..
                    }
                )
            })
            .await;
        lab_service("stop-service", "pg-primary");
        lab_service("start-service", "pg-primary");
        lab.serve_domains(&[&format!("{slug}.com")]);
        let (_, out) = runner.await.unwrap().expect("the run survives the restart");
        assert_eq!(out.status, RunStatus::Done, "{out:?}");
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE slug = $1")
            .bind(&slug)
            .fetch_one(&dbs.platform_admin().await)
            .await
            .unwrap();
        assert_eq!(rows, 1, "nothing lost, nothing duplicated");
    })
    .await
}
