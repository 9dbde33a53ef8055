//! The safety core against the lab: one executor per run even across a take-over, and
//! approvals and an audit trail that someone who can write to the state database cannot
//! forge, rewrite or cut short unnoticed.

use crate::support::harness::within;
use crate::support::onboarding::{engine, users};
use crate::support::{lab, onboarding, scripted};

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use lab::Lab;
use onboard_bot::engine::{Engine, LeaseLost, StartError, StartOptions};
use onboard_bot::frontend::RunEvent;
use onboard_bot::request::Request;
use onboard_bot::state::audit::{self, AuditKey, NewEvent};
use onboard_bot::state::runs::RunStatus;
use scripted::{Scripted, approve};
use sqlx::{Executor, PgPool};
use uuid::Uuid;

const TIMEOUT: Duration = Duration::from_secs(240);

fn person(slug: &str) -> Request {
    onboarding::request(onboarding::person_only(slug, "Safety Person"))
}

/// Runs `f` on the test's runtime from inside a synchronous approval callback.
fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

/// A run rejected at create-person; returns its id and the hash of the plan that was shown.
async fn rejected_at_create_person(e: &Engine, slug: &str) -> (Uuid, String) {
    let (id, outcome) = e
        .run(
            person(slug),
            &scripted::actor("ops"),
            StartOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.status, RunStatus::Rejected, "{outcome:?}");
    let hash: String = sqlx::query_scalar(
        "SELECT plan_hash FROM approvals WHERE run_id = $1 AND step = 'create-person'",
    )
    .bind(id)
    .fetch_one(e.pool())
    .await
    .unwrap();
    (id, hash)
}

/// What someone with write access to the state database does to authorise a plan: void the
/// real decision, insert an approval of their own, and make the run look merely failed so a
/// resume does not ask again.
async fn forge_approval(db: &PgPool, run: Uuid, hash: &str) {
    sqlx::query("UPDATE approvals SET voided_at = now() WHERE run_id = $1")
        .bind(run)
        .execute(db)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO approvals (run_id, step, plan_hash, approved, actor, frontend)
         VALUES ($1, 'create-person', $2, true, 'test:mallory', 'console')",
    )
    .bind(run)
    .bind(hash)
    .execute(db)
    .await
    .unwrap();
    sqlx::query("UPDATE runs SET status = 'failed' WHERE id = $1")
        .bind(run)
        .execute(db)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_approval_authorises_no_production_write() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.config(tmp.path(), |t| t);
        let platform = dbs.platform_admin().await;
        // The runtime role's own credentials: what the bot's database login can do.
        let writer = onboard_bot::state::connect(&cfg.state_db).await.unwrap();
        let e = engine(cfg.clone(), Arc::new(Scripted::reject_all())).await;

        // An approvals row alone.
        let (run, hash) = rejected_at_create_person(&e, "forged-row").await;
        forge_approval(&writer, run, &hash).await;
        let outcome = e.execute(run).await.unwrap();
        assert_eq!(outcome.status, RunStatus::Failed, "{outcome:?}");
        assert!(outcome.message.contains("refusing to apply"), "{}", outcome.message);
        assert_eq!(users(&platform, "forged-row").await, 0, "the forged approval applied");
        let refused: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audit_events WHERE run_id = $1 AND kind = 'approval.unbacked'",
        )
        .bind(run)
        .fetch_one(e.pool())
        .await
        .unwrap();
        assert_eq!(refused, 1);

        // An approvals row and a matching `approval.granted` event, chained to the head, but
        // hashed without the bot's key (the writer does not have it).
        let (run, hash) = rejected_at_create_person(&e, "forged-event").await;
        forge_approval(&writer, run, &hash).await;
        let head = audit::head(&writer).await.unwrap().unwrap();
        // The writer writes text: what the hash covers, not an event the bot would build.
        let ev = audit::EventContent {
            run_id: Some(run),
            subject: "forged-event".into(),
            step: Some("create-person".into()),
            actor: "test:mallory".into(),
            kind: "approval.granted".into(),
            outcome: "approved".into(),
            detail: serde_json::json!({"plan_hash": hash, "how": "test"}),
            duration_ms: None,
        };
        let at = chrono::DateTime::from_timestamp_micros(chrono::Utc::now().timestamp_micros())
            .unwrap();
        let guessed = AuditKey::new("a key that is not the bot's".to_owned().into());
        sqlx::query(
            "INSERT INTO audit_events (at, run_id, subject, step, actor, kind, outcome, detail, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(at)
        .bind(run)
        .bind(&ev.subject)
        .bind(&ev.step)
        .bind(&ev.actor)
        .bind(&ev.kind)
        .bind(&ev.outcome)
        .bind(&ev.detail)
        .bind(&head.hash)
        .bind(audit::event_hash(&guessed, &head.hash, at, &ev))
        .execute(&writer)
        .await
        .unwrap();
        let outcome = e.execute(run).await.unwrap();
        assert_eq!(outcome.status, RunStatus::Failed, "{outcome:?}");
        assert!(
            outcome.message.contains("does not verify"),
            "{}",
            outcome.message
        );
        assert_eq!(users(&platform, "forged-event").await, 0, "the forged event applied");
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_keeps_one_decision_per_person_and_plan() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.config(tmp.path(), |t| t);
        let e = engine(cfg.clone(), Arc::new(Scripted::reject_all())).await;
        let (run, hash) = rejected_at_create_person(&e, "one-decision").await;
        let insert = |actor: &'static str| {
            sqlx::query(
                "INSERT INTO approvals (run_id, step, plan_hash, approved, actor, frontend)
                 VALUES ($1, 'create-person', $2, true, $3, 'console')",
            )
            .bind(run)
            .bind(hash.clone())
            .bind(actor)
            .execute(e.pool())
        };
        let err = insert("test:approver-1")
            .await
            .expect_err("a second standing decision by one person on one plan was stored");
        assert!(
            err.to_string().contains("approvals_one_decision_per_actor"),
            "{err}"
        );
        // Another person's decision on the same plan is a row of its own (a quorum counts
        // them); written by hand, with no event in the chain, it authorises nothing.
        insert("test:someone-else")
            .await
            .expect("another person's decision is stored");
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_runtime_role_can_neither_edit_the_audit_trail_nor_disable_its_triggers() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.config(tmp.path(), |t| t);
        let e = engine(cfg.clone(), Arc::new(Scripted::reject_all())).await;
        rejected_at_create_person(&e, "role-check").await;
        let runtime = onboard_bot::state::connect(&cfg.state_db).await.unwrap();
        for stmt in [
            "ALTER TABLE audit_events DISABLE TRIGGER ALL",
            "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update",
            "UPDATE audit_events SET actor = 'mallory'",
            "DELETE FROM audit_events",
            "TRUNCATE audit_events",
            "DROP TABLE audit_events",
        ] {
            let err = runtime
                .execute(stmt)
                .await
                .expect_err(&format!("the runtime role may `{stmt}`"));
            let msg = err.to_string();
            assert!(
                msg.contains("permission denied") || msg.contains("must be owner"),
                "{stmt}: {msg}"
            );
        }
        // What it needs still works: appending and reading.
        let before = audit::head(&runtime).await.unwrap().unwrap();
        e.audit(NewEvent {
            run_id: None,
            subject: "role-check".into(),
            step: None,
            actor: "test".into(),
            // Any kind: what is checked is that the runtime role may append.
            kind: audit::AuditKind::CommandRefused,
            outcome: "ok".into(),
            detail: serde_json::json!({}),
            duration_ms: None,
        })
        .await
        .unwrap();
        assert!(audit::head(&runtime).await.unwrap().unwrap().id > before.id);
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_verify_against_an_anchor_reports_a_chain_cut_short() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg_path = dbs.write_config(tmp.path(), |t| t);
        let cfg = Arc::new(onboard_bot::config::Config::load(&cfg_path).unwrap());
        let e = engine(cfg.clone(), Arc::new(Scripted::reject_all())).await;
        rejected_at_create_person(&e, "anchored").await;
        // The run's end posted the head; post it again to read what was posted.
        let anchor = e.post_anchor().await.unwrap().expect("a head");
        let verify = |anchors: &[String]| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_onboard-bot"));
            cmd.args(["audit", "anchored", "--verify", "--config"])
                .arg(&cfg_path);
            for a in anchors {
                cmd.args(["--anchor", a]);
            }
            cmd.output().unwrap()
        };
        let out = verify(&[anchor.to_string()]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");

        // The newest events deleted (by someone who can disable the trigger): the chain that is
        // left verifies on its own, but not against the anchor.
        let admin = dbs.state_admin().await;
        admin
            .execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update")
            .await
            .unwrap();
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DELETE FROM audit_events WHERE id > {} - 3",
                anchor.id
            )))
            .await
            .unwrap();
        let out = verify(&[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "without an anchor a cut is invisible: {out:?}"
        );
        let out = verify(&[anchor.to_string()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(
            stdout.contains(&format!("BROKEN at event #{}", anchor.id)),
            "{stdout}"
        );
        assert!(stdout.contains("cut short"), "{stdout}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_process_that_lost_the_run_applies_nothing_more() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.config(tmp.path(), |t| t);
        let platform = dbs.platform_admin().await;
        let state = dbs.state_admin().await;
        // While the approver looks at the plan, another process claims the run (its lease ran
        // out here, say, while this one was cut off from the database).
        let front = Arc::new(Scripted::new(move |req, _| {
            block_on(
                sqlx::query(
                    "UPDATE runs SET executor = 'elsewhere:1', executor_until = now() + interval '1 minute',
                            lease_epoch = lease_epoch + 1 WHERE id = $1",
                )
                .bind(req.run_id)
                .execute(&state),
            )
            .unwrap();
            approve("approver-1")
        }));
        let e = engine(cfg.clone(), front.clone()).await;
        let err = match e
            .run(person("fenced"), &scripted::actor("ops"), StartOptions::default())
            .await
        {
            Err(StartError::Internal(err)) => err,
            other => panic!("the run went on after losing its lease: {other:?}"),
        };
        assert!(err.downcast_ref::<LeaseLost>().is_some(), "{err:#}");
        assert_eq!(users(&platform, "fenced").await, 0, "applied after losing the lease");
        let said = front.events.lock().unwrap().iter().any(|ev| {
            matches!(ev, RunEvent::Log { line, .. } if line.contains("stopped executing the run"))
        });
        assert!(said, "the thread was not told");
    })
    .await
}

/// Reads a child's stderr lines into a shared buffer and notifies on each.
fn collect_stderr(
    child: &mut std::process::Child,
) -> (
    Arc<std::sync::Mutex<Vec<String>>>,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let stderr = child.stderr.take().expect("piped stderr");
    let buf = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            buf.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
    });
    (lines, rx)
}

fn commit_subjects(origin: &Path) -> Vec<String> {
    lab::git(origin, &["log", "--format=%s", "main"])
        .lines()
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_take_over_stops_the_first_process_and_every_write_happens_once() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let slug = format!("takeover-{}", std::process::id());
        let domain = format!("{slug}.com");
        lab.serve_domains(&[&domain]);
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.write_config(tmp.path(), |t| t);
        let platform = dbs.platform_admin().await;
        let state = dbs.state_admin().await;
        let bin = env!("CARGO_BIN_EXE_onboard-bot");
        let commits_before = commit_subjects(&tmp.path().join("origin.git")).len();

        // The first process runs until it is about to deploy the stub, and hangs there.
        let mut first = Command::new(bin)
            .args([
                "onboard",
                "--slug",
                &slug,
                "--name",
                "Take Over",
                "--email",
                "to@example.com",
                "--mode",
                "person-only",
                "--mail",
                "none",
                "--yes",
                "--config",
            ])
            .arg(&cfg)
            .env("ONBOARD_BOT_FAULT", "before-apply:deploy-stub")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (first_log, mut first_lines) = collect_stderr(&mut first);
        while let Some(line) = first_lines.recv().await {
            if line.contains("FAULT-POINT") {
                break;
            }
        }
        let run: Uuid = sqlx::query_scalar("SELECT id FROM runs")
            .fetch_one(&state)
            .await
            .unwrap();

        // A second process takes it over and finishes it.
        let second = tokio::process::Command::new(bin)
            .args([
                "runs",
                "resume",
                &run.to_string(),
                "--take-over",
                "--reason",
                "the first one hangs",
                "--yes",
                "--config",
            ])
            .arg(&cfg)
            .output()
            .await
            .unwrap();
        assert!(
            second.status.success(),
            "{}",
            String::from_utf8_lossy(&second.stderr)
        );

        // The first process stopped on its own (it was not killed), and said why.
        let status = tokio::task::spawn_blocking(move || first.wait())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status.code(), Some(1));
        let log = first_log.lock().unwrap().join("\n");
        assert!(
            log.contains("stopped executing it before its next write"),
            "{log}"
        );

        // Each row, commit and certificate exactly once.
        assert_eq!(users(&platform, &slug).await, 1);
        let subjects = commit_subjects(&tmp.path().join("origin.git"));
        let mut unique = subjects.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            subjects.len(),
            "a commit was made twice: {subjects:?}"
        );
        assert_eq!(
            subjects.len() - commits_before,
            3,
            "deploy-config, sync-back, release: {subjects:?}"
        );
        let certs = std::fs::read_dir(lab.dir.join("vps/letsencrypt/live"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(&domain))
            .count();
        assert_eq!(certs, 1);
        let (status, kinds): (String, Vec<String>) = (
            sqlx::query_scalar("SELECT status FROM runs WHERE id = $1")
                .bind(run)
                .fetch_one(&state)
                .await
                .unwrap(),
            sqlx::query_scalar("SELECT kind FROM audit_events WHERE run_id = $1 ORDER BY id")
                .bind(run)
                .fetch_all(&state)
                .await
                .unwrap(),
        );
        assert_eq!(status, "done");
        assert!(
            kinds.contains(&"run.takeover_requested".to_owned()),
            "{kinds:?}"
        );
        let taken: Vec<serde_json::Value> = sqlx::query_scalar(
            "SELECT detail FROM audit_events WHERE run_id = $1 AND kind = 'run.taken_over'",
        )
        .bind(run)
        .fetch_all(&state)
        .await
        .unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0]["reason"], "the first one hangs");
    })
    .await
}

/// A decision by `who`: approve, or reject with a reason.
fn decision(who: &str, approved: bool) -> onboard_bot::frontend::Decision {
    onboard_bot::frontend::Decision {
        approved,
        reason: (!approved).then(|| "test over".into()),
        ..approve(who)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quorum_counts_each_approver_once_and_only_approvals_the_chain_backs() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let domain = "quorum-two.com";
        lab.serve_domains(&[domain]);
        let dbs = lab.fresh().await;
        dbs.own_vps_sites(&[domain]).await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.config(tmp.path(), |t| {
            t + "\napprovals:\n  required:\n    create-person: 2\n"
        });
        let platform = dbs.platform_admin().await;
        let writer = onboard_bot::state::connect(&cfg.state_db).await.unwrap();

        // The same person answers twice (the console: one person at every prompt): their
        // approval counts once, the run stops with nothing applied.
        let same = Arc::new(Scripted::new(|_, _| approve("approver-1")));
        let e = engine(cfg.clone(), same.clone()).await;
        let (run, outcome) = e
            .run(
                person("quorum-two"),
                &scripted::actor("ops"),
                StartOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(outcome.status, RunStatus::Failed, "{outcome:?}");
        assert!(
            outcome.message.contains("needs 2 different approvers"),
            "{}",
            outcome.message
        );
        assert_eq!(users(&platform, "quorum-two").await, 0);
        let asked = same.requests();
        assert_eq!(asked.len(), 2, "{asked:?}");
        assert_eq!((asked[0].required, asked[0].approved_by.len()), (2, 0));
        assert_eq!(asked[1].approved_by, ["test:approver-1"]);

        // A second approval written into the database by hand (no event in the chain) makes
        // up no quorum.
        let hash: String = sqlx::query_scalar(
            "SELECT plan_hash FROM approvals WHERE run_id = $1 AND step = 'create-person'",
        )
        .bind(run)
        .fetch_one(e.pool())
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO approvals (run_id, step, plan_hash, approved, actor, frontend)
             VALUES ($1, 'create-person', $2, true, 'test:mallory', 'console')",
        )
        .bind(run)
        .bind(&hash)
        .execute(&writer)
        .await
        .unwrap();
        let outcome = e.execute(run).await.unwrap();
        assert_eq!(outcome.status, RunStatus::Failed, "{outcome:?}");
        assert!(
            outcome.message.contains("refusing to apply"),
            "{}",
            outcome.message
        );
        assert!(
            outcome.message.contains("test:mallory"),
            "{}",
            outcome.message
        );
        assert_eq!(
            users(&platform, "quorum-two").await,
            0,
            "the forged row applied"
        );
        sqlx::query("UPDATE approvals SET voided_at = now() WHERE actor = 'test:mallory'")
            .execute(&writer)
            .await
            .unwrap();
        drop(e);

        // Resumed, a second person approves: the step applies, naming both; the next plan
        // (one approver) is rejected to end the test.
        let other = Arc::new(Scripted::new(|req, _| {
            decision("approver-2", req.step == "create-person")
        }));
        let e = engine(cfg.clone(), other.clone()).await;
        let outcome = e.execute(run).await.unwrap();
        assert_eq!(outcome.status, RunStatus::Rejected, "{outcome:?}");
        assert_eq!(users(&platform, "quorum-two").await, 1);
        let asked = other.requests();
        assert_eq!(asked[0].step, "create-person");
        assert_eq!(asked[0].approved_by, ["test:approver-1"]);
        assert_eq!(asked[1].required, 1, "{:?}", asked[1]);
        let events = e.audit_of_run(run).await.unwrap();
        let granted: Vec<&str> = events
            .iter()
            .filter(|ev| {
                ev.kind == "approval.granted" && ev.step.as_deref() == Some("create-person")
            })
            .map(|ev| ev.actor.as_str())
            .collect();
        assert_eq!(granted, ["test:approver-1", "test:approver-2"]);
        let applied = events
            .iter()
            .find(|ev| ev.kind == "step.applied" && ev.step.as_deref() == Some("create-person"))
            .expect("create-person applied");
        assert_eq!(
            applied.detail["approved_by"],
            "test:approver-1, test:approver-2"
        );
    })
    .await
}
