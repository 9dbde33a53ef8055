//! The runbook engine against the lab's real PostgreSQL: approvals, voided plans, locks,
//! crash and resume, the audit chain, secrets. Run through scripts/test (inside the lab).

use crate::support::harness::within;
use crate::support::onboarding::engine;
use crate::support::{lab, onboarding, scripted};

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use lab::Lab;
use onboard_bot::commands::onboard::OnboardArgs;
use onboard_bot::config::OnboardingConfig;
use onboard_bot::engine::{StartError, StartOptions};
use onboard_bot::frontend::Actor;
use onboard_bot::request::Request;
use onboard_bot::state::audit;
use onboard_bot::state::runs::{self, RunStatus};
use scripted::{Scripted, approve};
use sqlx::{Executor, PgPool, Row};

const TIMEOUT: Duration = Duration::from_secs(120);

fn request(slug: &str, mode: &str, org: Option<&str>, org_name: Option<&str>) -> Request {
    let email = format!("{slug}@example.com");
    onboarding::request(onboarding::in_mode(
        slug,
        "Merche Biche",
        &email,
        mode,
        org,
        org_name,
    ))
}

async fn user_rows(platform: &PgPool, slug: &str) -> Vec<(String, String, String)> {
    sqlx::query("SELECT slug, email, display_name FROM users WHERE slug = $1")
        .bind(slug)
        .fetch_all(platform)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn no_production_write_without_approval() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        lab.serve_domains(&["np-merche.com", "dry-one.com", "talent-one.com"]);
        let dbs = lab.fresh().await;
        dbs.own_vps_sites(&["np-merche.com"]).await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.config(tmp.path(), |t| t);
        let platform = dbs.platform_admin().await;

        // Rejected: the run stops before the write, and says who rejected it.
        let front = Arc::new(Scripted::reject_all());
        let e = engine(cfg.clone(), front.clone()).await;
        let (id, outcome) = e
            .run(
                request("np-merche", "person-only", None, None),
                &scripted::actor("ops"),
                StartOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(outcome.status, RunStatus::Rejected, "{outcome:?}");
        let rejected = id;
        assert!(
            outcome
                .message
                .contains("rejected by test:approver-1: not today"),
            "{}",
            outcome.message
        );
        assert!(
            user_rows(&platform, "np-merche").await.is_empty(),
            "a rejected plan wrote a row"
        );
        let reqs = front.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].step, "create-person");
        assert!(
            reqs[0].detail.contains("INSERT INTO users"),
            "{}",
            reqs[0].detail
        );
        assert!(
            reqs[0].detail.contains("'np-merche'"),
            "the plan shows the bound values"
        );
        let events: Vec<(String, Option<String>)> = audit::for_run(e.pool(), id)
            .await
            .unwrap()
            .into_iter()
            .map(|ev| (ev.kind, ev.step))
            .collect();
        let create_person = Some("create-person".to_string());
        assert!(
            events.contains(&("approval.rejected".into(), create_person.clone())),
            "{events:?}"
        );
        assert!(
            !events.contains(&("step.applied".into(), create_person)),
            "{events:?}"
        );

        // A dry run plans every step and writes nothing, asking nobody.
        let front = Arc::new(Scripted::approve_all());
        let e = engine(cfg.clone(), front.clone()).await;
        let (_, outcome) = e
            .run(
                request(
                    "dry-one",
                    "person-owns-org",
                    Some("dry-org"),
                    Some("Dry Org"),
                ),
                &scripted::actor("ops"),
                StartOptions {
                    dry_run: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(outcome.status, RunStatus::Done);
        assert!(front.requests().is_empty(), "a dry run asked for approval");
        assert!(user_rows(&platform, "dry-one").await.is_empty());

        // Approved: exactly one row, and the approval is recorded with who and which plan.
        let (id, outcome) = e
            .run(
                request("np-merche", "person-only", None, None),
                &scripted::actor("ops"),
                StartOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(outcome.status, RunStatus::Done, "{outcome:?}");
        assert_eq!(user_rows(&platform, "np-merche").await.len(), 1);
        let approvals =
            sqlx::query("SELECT actor, plan_hash, approved FROM approvals WHERE run_id = $1 AND step = 'create-person'")
                .bind(id)
                .fetch_all(e.pool())
                .await
                .unwrap();
        assert_eq!(approvals.len(), 1);
        assert_eq!(approvals[0].get::<String, _>("actor"), "test:approver-1");
        assert_eq!(
            approvals[0].get::<String, _>("plan_hash"),
            front.requests()[0].plan_hash
        );

        // The rejected run, resumed, asks again instead of re-reading its rejection; its
        // person now exists with the same data, so that step is already done.
        let outcome = e.execute(rejected).await.unwrap();
        assert_eq!(outcome.status, RunStatus::Done, "{outcome:?}");
        let kinds: Vec<String> = audit::for_run(e.pool(), rejected).await.unwrap().into_iter().map(|ev| ev.kind).collect();
        assert!(kinds.contains(&"approval.reasked".to_string()), "{kinds:?}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_plan_voids_its_approval() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        lab.serve_domains(&["merche-biche.com", "talent-one.com"]);
        let dbs = lab.fresh().await;
        dbs.own_vps_sites(&["talent-one.com"]).await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.config(tmp.path(), |t| t);
        let platform = dbs.platform_admin().await;
        let platform2 = platform.clone();
        let replaced = std::sync::atomic::AtomicBool::new(false);
        // When join-org's plan is first approved, the org it names is replaced by a new one
        // (same slug, new id) before the engine applies: the approved plan no longer holds.
        let front = Arc::new(Scripted::new(move |req, _| {
            if req.step == "join-org" && !replaced.swap(true, std::sync::atomic::Ordering::SeqCst) {
                let p = platform2.clone();
                tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current().block_on(async move {
                        recreate_org(&p, "cocotte").await;
                    })
                });
            }
            approve("approver-1")
        }));
        let e = engine(cfg, front.clone()).await;
        let (id, outcome) = e
            .run(request("talent-one", "person-joins-org", Some("cocotte"), None), &scripted::actor("ops"), StartOptions::default())
            .await
            .unwrap();
        assert_eq!(outcome.status, RunStatus::Done, "{outcome:?}");
        let joins: Vec<_> = front.requests().into_iter().filter(|r| r.step == "join-org").collect();
        assert_eq!(joins.len(), 2, "the changed plan must be approved again");
        assert_ne!(joins[0].plan_hash, joins[1].plan_hash);
        let voided: i64 = sqlx::query_scalar("SELECT count(*) FROM approvals WHERE run_id = $1 AND step = 'join-org' AND voided_at IS NOT NULL")
            .bind(id)
            .fetch_one(e.pool())
            .await
            .unwrap();
        assert_eq!(voided, 1);
        let kinds: Vec<String> = audit::for_run(e.pool(), id).await.unwrap().into_iter().map(|ev| ev.kind).collect();
        assert!(kinds.contains(&"approval.voided".to_string()), "{kinds:?}");
        // The member row points at the org that exists now.
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM org_members m JOIN orgs o ON o.id = m.org_id JOIN users u ON u.id = m.user_id
             WHERE o.slug = 'cocotte' AND u.slug = 'talent-one' AND m.role = 'member'",
        )
        .fetch_one(&platform)
        .await
        .unwrap();
        assert_eq!(n, 1);
    })
    .await
}

/// Replaces an org by one with the same slug and a new id (members move along).
async fn recreate_org(platform: &PgPool, slug: &str) {
    let mut tx = platform.begin().await.unwrap();
    let old: uuid::Uuid = sqlx::query_scalar("SELECT id FROM orgs WHERE slug = $1")
        .bind(slug)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let new = uuid::Uuid::new_v4();
    sqlx::query("INSERT INTO orgs (id, slug, name, owner_id) SELECT $2, slug || '-tmp', name, owner_id FROM orgs WHERE id = $1")
        .bind(old)
        .bind(new)
        .execute(&mut *tx)
        .await
        .unwrap();
    for table in [
        "org_members",
        "bookings",
        "inbox_messages",
        "analytics_events",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET org_id = $2 WHERE org_id = $1"
        )))
        .bind(old)
        .bind(new)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    sqlx::query("DELETE FROM orgs WHERE id = $1")
        .bind(old)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE orgs SET slug = $2 WHERE id = $1")
        .bind(new)
        .bind(slug)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_on_the_same_slug_is_refused() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        lab.serve_domains(&["lock-merche.com", "talent-one.com"]);
        let dbs = lab.fresh().await;
        dbs.own_vps_sites(&["lock-merche.com"]).await;
        let tmp = tempfile::tempdir().unwrap();
        let e = engine(
            dbs.config(tmp.path(), |t| t),
            Arc::new(Scripted::approve_all()),
        )
        .await;
        let alice = scripted::actor("alice");
        let first = e
            .start(
                request("lock-merche", "person-only", None, None),
                &alice,
                StartOptions::default(),
            )
            .await
            .unwrap();
        let err = e
            .start(
                request("lock-merche", "person-only", None, None),
                &scripted::actor("bob"),
                StartOptions::default(),
            )
            .await
            .unwrap_err();
        let StartError::Locked(held) = &err else {
            panic!("expected a lock refusal, got {err}")
        };
        assert_eq!(held.run_id, first);
        assert_eq!(held.started_by, "test:alice");
        let msg = err.to_string();
        assert!(
            msg.contains(&first.to_string()) && msg.contains("test:alice"),
            "{msg}"
        );
        // Same domain under another slug: refused too.
        let mut other = OnboardArgs {
            slug: "someone-else".into(),
            name: "X".into(),
            email: "x@example.com".into(),
            mode: "person-only".into(),
            ..Default::default()
        };
        other.domains = vec!["lock-merche.com".into()];
        let err = e
            .start(
                other.parse(&OnboardingConfig::default()).unwrap(),
                &alice,
                StartOptions::default(),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("domain:lock-merche.com"), "{err}");
        // Once the first run is done, its locks are gone.
        let outcome = e.execute(first).await.unwrap();
        assert_eq!(outcome.status, RunStatus::Done);
        assert!(runs::list_locks(e.pool()).await.unwrap().is_empty());
        // And a finished onboarding re-run is "already done" at every writing step.
        let (id, outcome) = e
            .run(
                request("lock-merche", "person-only", None, None),
                &alice,
                StartOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(outcome.status, RunStatus::Done);
        let steps = runs::steps(e.pool(), id).await.unwrap();
        assert_eq!(steps[1].status, runs::StepStatus::AlreadyDone, "{steps:?}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_mid_step_resumes_to_the_same_end_state() {
    // Four whole onboardings in a row (a killed one, its resume, a reference run and the
    // take-over check): on a loaded 2-core machine 120 s was seen to be too short.
    within(TIMEOUT * 3, async {
        let lab = Lab::get();
        lab.serve_domains(&["kill-merche.com", "talent-one.com"]);
        let bin = env!("CARGO_BIN_EXE_onboard-bot");
        let args = [
            "onboard",
            "--slug",
            "kill-merche",
            "--name",
            "Merche Biche",
            "--email",
            "merche@example.com",
            "--mode",
            "person-owns-org",
            "--org",
            "merche-collective",
            "--org-name",
            "Merche Collective",
            "--yes",
        ];

        // The reference: an uninterrupted run.
        let clean = lab.fresh().await;
        clean.own_vps_sites(&["kill-merche.com"]).await;
        let tmp_clean = tempfile::tempdir().unwrap();
        let cfg_clean = clean.write_config(tmp_clean.path(), |t| t);
        let status = Command::new(bin)
            .args(args)
            .arg("--config")
            .arg(&cfg_clean)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());

        for fault in [
            "after-apply:create-person",
            "before-apply:create-org",
            "after-apply:create-org",
        ] {
            // Each run starts with a fresh state database: the bot has no record of the site
            // the previous one deployed.
            let dbs = lab.fresh().await;
            dbs.own_vps_sites(&["kill-merche.com"]).await;
            let tmp = tempfile::tempdir().unwrap();
            let cfg = dbs.write_config(tmp.path(), |t| t);
            let reached = lab::kill_at_fault_point(&args, &cfg, fault).await;
            assert!(reached, "{fault}: the process ended before its fault point");

            let state = dbs.state_admin().await;
            let run_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM runs")
                .fetch_one(&state)
                .await
                .unwrap();
            let out = Command::new(bin)
                .args(["runs", "resume", &run_id.to_string(), "--yes", "--config"])
                .arg(&cfg)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{fault}: resume failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );

            assert_eq!(
                tenant_snapshot(&dbs.platform_admin().await).await,
                tenant_snapshot(&clean.platform_admin().await).await,
                "{fault}"
            );
            let statuses: Vec<String> =
                sqlx::query_scalar("SELECT status FROM step_runs WHERE run_id = $1 ORDER BY idx")
                    .bind(run_id)
                    .fetch_all(&state)
                    .await
                    .unwrap();
            assert!(
                statuses.iter().all(|s| s == "done" || s == "already_done"),
                "{fault}: {statuses:?}"
            );
            let resumed: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM audit_events WHERE run_id = $1 AND kind = 'run.taken_over'",
            )
            .bind(run_id)
            .fetch_one(&state)
            .await
            .unwrap();
            assert_eq!(
                resumed, 1,
                "{fault}: the dead executor's claim was taken over once"
            );
        }
    })
    .await
}

/// Everything the onboarding wrote, without generated ids and timestamps.
async fn tenant_snapshot(platform: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT 'user ' || slug || ' ' || email || ' ' || display_name FROM users
         UNION ALL SELECT 'org ' || o.slug || ' ' || o.name || ' owner=' || u.slug FROM orgs o JOIN users u ON u.id = o.owner_id
         UNION ALL SELECT 'member ' || o.slug || ' ' || u.slug || ' ' || m.role FROM org_members m JOIN orgs o ON o.id = m.org_id JOIN users u ON u.id = m.user_id
         ORDER BY 1",
    )
    .fetch_all(platform)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_chain_catches_an_edited_or_deleted_event() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        lab.serve_domains(&["audit-merche.com", "talent-one.com"]);
        let dbs = lab.fresh().await;
        dbs.own_vps_sites(&["audit-merche.com"]).await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg_path = dbs.write_config(tmp.path(), |t| t);
        let cfg = Arc::new(onboard_bot::config::Config::load(&cfg_path).unwrap());
        let e = engine(cfg, Arc::new(Scripted::approve_all())).await;
        e.run(request("audit-merche", "person-only", None, None), &Actor::console_user(), StartOptions::default()).await.unwrap();
        let (count, breaks) = audit::verify_chain(e.pool(), &e.config().audit_key, &[]).await.unwrap();
        assert!(count >= 5 && breaks.is_empty(), "{count} {breaks:?}");

        // The bot's own role cannot rewrite history (it has no UPDATE or DELETE on the table),
        // and even its owner is stopped by the triggers.
        let err = sqlx::query("UPDATE audit_events SET actor = 'mallory'").execute(e.pool()).await.unwrap_err();
        assert!(err.to_string().contains("permission denied"), "{err}");
        let err = sqlx::query("DELETE FROM audit_events").execute(e.pool()).await.unwrap_err();
        assert!(err.to_string().contains("permission denied"), "{err}");
        let admin = dbs.state_admin().await;
        let err = admin.execute("DELETE FROM audit_events").await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");

        // A superuser who disables the trigger can, but the chain shows it.
        admin.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update").await.unwrap();
        admin.execute("UPDATE audit_events SET actor = 'mallory' WHERE id = (SELECT min(id) + 2 FROM audit_events)").await.unwrap();
        let edited: i64 = sqlx::query_scalar("SELECT min(id) + 2 FROM audit_events").fetch_one(&admin).await.unwrap();
        let (_, breaks) = audit::verify_chain(e.pool(), &e.config().audit_key, &[]).await.unwrap();
        assert_eq!(breaks.len(), 1, "{breaks:?}");
        assert_eq!(breaks[0].id, edited);
        assert!(breaks[0].problem.contains("edited"));

        admin.execute("DELETE FROM audit_events WHERE id = (SELECT min(id) + 4 FROM audit_events)").await.unwrap();
        let (_, breaks) = audit::verify_chain(e.pool(), &e.config().audit_key, &[]).await.unwrap();
        assert!(breaks.iter().any(|b| b.problem.contains("deleted")), "{breaks:?}");

        let out = Command::new(env!("CARGO_BIN_EXE_onboard-bot")).args(["audit", "audit-merche", "--verify", "--config"]).arg(&cfg_path).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(&format!("BROKEN at event #{edited}")), "{stdout}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_reach_output_or_the_audit_table() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        lab.serve_domains(&["secret-merche.com", "talent-one.com"]);
        let dbs = lab.fresh().await;
        dbs.own_vps_sites(&["secret-merche.com"]).await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.write_config(tmp.path(), |t| t);
        let secrets = [lab.secret("bot_db"), lab.secret("tenant_db")];
        let bin = env!("CARGO_BIN_EXE_onboard-bot");
        let mut transcript = String::new();
        for args in [
            vec!["config", "check"],
            vec![
                "onboard",
                "--slug",
                "secret-merche",
                "--name",
                "Merche Biche",
                "--email",
                "merche@example.com",
                "--yes",
            ],
            vec!["audit", "secret-merche", "--verify"],
            vec!["runs", "list"],
        ] {
            let out = Command::new(bin)
                .args(&args)
                .arg("--config")
                .arg(&cfg)
                .env("RUST_LOG", "trace")
                .output()
                .unwrap();
            transcript.push_str(&String::from_utf8_lossy(&out.stdout));
            transcript.push_str(&String::from_utf8_lossy(&out.stderr));
        }
        assert!(
            transcript.contains("secret-merche"),
            "the commands ran: {transcript}"
        );
        let state = dbs.state_admin().await;
        let table: String = sqlx::query_scalar(
            "SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM audit_events t",
        )
        .fetch_one(&state)
        .await
        .unwrap();
        let runs_text: String =
            sqlx::query_scalar("SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM runs t")
                .fetch_one(&state)
                .await
                .unwrap();
        for s in &secrets {
            assert!(
                !transcript.contains(s.as_str()),
                "a secret leaked into the output"
            );
            assert!(
                !table.contains(s.as_str()),
                "a secret leaked into the audit table"
            );
            assert!(
                !runs_text.contains(s.as_str()),
                "a secret leaked into the runs table"
            );
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parked_run_is_cancelled_from_another_process_and_releases_its_locks() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        // The domain points elsewhere: the run parks on DNS.
        lab.put_zone(
            "cancel-merche.com",
            &Lab::zone_text("cancel-merche.com", "").replace("@ A 127.0.0.1", "@ A 10.3.3.3"),
        );
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.config(tmp.path(), |t| t);
        let front = Arc::new(Scripted::approve_all());
        let runner_engine = engine(cfg.clone(), front.clone()).await;
        let id = runner_engine
            .start(
                request("cancel-merche", "person-only", None, None),
                &scripted::actor("ops"),
                StartOptions::default(),
            )
            .await
            .unwrap();
        let runner = {
            let e = runner_engine.clone();
            tokio::spawn(async move { e.execute(id).await.unwrap() })
        };
        front
            .wait_for_event(|e| {
                matches!(
                    e,
                    onboard_bot::frontend::RunEvent::Step {
                        status: runs::StepStatus::Parked,
                        ..
                    }
                )
            })
            .await;
        // A second engine (as `onboard-bot runs cancel` would be) has no handle on the run:
        // it asks the executing process through the database.
        let other = engine(cfg, Arc::new(Scripted::approve_all())).await;
        let msg = other
            .cancel(id, &scripted::actor("bob"), "wrong domain")
            .await
            .unwrap();
        assert!(msg.contains("asked"), "{msg}");
        let outcome = runner.await.unwrap();
        assert_eq!(outcome.status, RunStatus::Cancelled, "{outcome:?}");
        assert!(
            runs::list_locks(other.pool()).await.unwrap().is_empty(),
            "locks released"
        );
        let kinds: Vec<String> = audit::for_run(other.pool(), id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert!(
            kinds.contains(&"run.cancel_requested".to_string())
                && kinds.contains(&"run.cancelled".to_string()),
            "{kinds:?}"
        );
        let step: String = sqlx::query_scalar(
            "SELECT status FROM step_runs WHERE run_id = $1 AND name = 'dns-records'",
        )
        .bind(id)
        .fetch_one(other.pool())
        .await
        .unwrap();
        assert_eq!(step, "cancelled");
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_show_of_an_unknown_id_is_the_users_mistake_and_says_where_to_look() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.write_config(tmp.path(), |t| t);
        let id = uuid::Uuid::new_v4();
        let out = Command::new(env!("CARGO_BIN_EXE_onboard-bot"))
            .args(["runs", "show", &id.to_string(), "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Exit 2 (bad input), not 3 (internal): the id is wrong, nothing failed.
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("No run `{id}`: check the id with `runs list`.")),
            "{stderr}"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_rejects_with_a_reason_given_by_reject_reason() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        lab.serve_domains(&["cli-reject.com"]);
        let dbs = lab.fresh().await;
        dbs.own_vps_sites(&["cli-reject.com"]).await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.write_config(tmp.path(), |t| t);
        let onboard = |extra: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_onboard-bot"))
                .args([
                    "onboard",
                    "--slug",
                    "cli-reject",
                    "--name",
                    "Cli Reject",
                    "--email",
                    "cli@example.com",
                ])
                .args(extra)
                .arg("--config")
                .arg(&cfg)
                .stdin(Stdio::null())
                .output()
                .unwrap()
        };
        // A blank reason, or a reason with --yes, is bad input: nothing starts.
        for extra in [
            &["--reject-reason", "  "][..],
            &["--yes", "--reject-reason", "no"][..],
        ] {
            let out = onboard(extra);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{extra:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // The first plan asked for is rejected with the reason: exit 1, nothing written.
        let out = onboard(&["--reject-reason", "the e-mail is a typo"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("the e-mail is a typo"), "{stderr}");
        // One run: the refused ones above started nothing.
        let state = dbs.state_admin().await;
        let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM runs")
            .fetch_one(&state)
            .await
            .unwrap();
        assert_eq!(runs, 1);
        let (status, error): (String, Option<String>) =
            sqlx::query_as("SELECT status, error FROM runs WHERE subject = 'cli-reject'")
                .fetch_one(&state)
                .await
                .unwrap();
        assert_eq!(status, "rejected");
        assert!(
            error
                .as_deref()
                .unwrap_or_default()
                .ends_with(": the e-mail is a typo"),
            "{error:?}"
        );
        let detail: serde_json::Value =
            sqlx::query_scalar("SELECT detail FROM audit_events WHERE kind = 'approval.rejected'")
                .fetch_one(&state)
                .await
                .unwrap();
        assert_eq!(detail["reason"], "the e-mail is a typo");
        assert_eq!(detail["how"], "console --reject-reason");
        let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE slug = 'cli-reject'")
            .fetch_one(&dbs.platform_admin().await)
            .await
            .unwrap();
        assert_eq!(users, 0);
    })
    .await
}
