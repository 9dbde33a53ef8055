//! /onboard part 1 against the lab's PostgreSQL: the three operating modes, the replica and a
//! wrong host refused, duplicates and conflicts, unknown orgs, bad input, atomic steps.

use crate::support::harness::{blocking, within};
use crate::support::{lab, onboarding, scripted};

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use lab::Lab;
use onboard_bot::engine::{Engine, RunOutcome, StartOptions};
use onboard_bot::request::Request;
use onboard_bot::state::runs::{self, RunStatus, StepStatus};
use scripted::Scripted;
use sqlx::{Executor, PgPool, Row};

const TIMEOUT: Duration = Duration::from_secs(120);

fn onboard(
    slug: &str,
    email: &str,
    mode: &str,
    org: Option<&str>,
    org_name: Option<&str>,
) -> Request {
    onboarding::request(onboarding::in_mode(
        slug,
        "Test Person",
        email,
        mode,
        org,
        org_name,
    ))
}

/// Runs one onboarding with every plan approved; returns the outcome and the engine.
async fn run(
    cfg: Arc<onboard_bot::config::Config>,
    req: Request,
) -> (uuid::Uuid, RunOutcome, Engine) {
    let engine = Engine::new(cfg, Arc::new(Scripted::approve_all()))
        .await
        .unwrap();
    let (id, outcome) = engine
        .run(req, &scripted::actor("ops"), StartOptions::default())
        .await
        .unwrap();
    (id, outcome, engine)
}

async fn count(pool: &PgPool, sql: &'static str, slug: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(slug)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_operating_mode_writes_exactly_the_runbook_rows() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        lab.serve_domains(&["solo-one.com", "modes-merche.com", "talent-two.com"]);
        let dbs = lab.fresh().await;
        dbs.own_vps_sites(&["solo-one.com", "modes-merche.com", "talent-two.com"]).await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.config(tmp.path(), |t| t);
        let db = dbs.platform_admin().await;

        // 2a. Person-only: one users row, nothing else.
        let (id, out, engine) = run(cfg.clone(), onboard("solo-one", "solo@example.com", "person-only", None, None)).await;
        assert_eq!(out.status, RunStatus::Done, "{out:?}");
        let user_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE slug = 'solo-one'").fetch_one(&db).await.unwrap();
        let record = runs::get(engine.pool(), id).await.unwrap().unwrap();
        assert_eq!(record.outputs["user_id"], serde_json::json!(user_id), "the returned id is kept for later steps");
        assert_eq!(count(&db, "SELECT count(*) FROM org_members m JOIN users u ON u.id = m.user_id WHERE u.slug = $1", "solo-one").await, 0);

        // 2b. Owns a new Org: the org, owned by them, and their owner membership.
        let (_, out, _) = run(
            cfg.clone(),
            onboard("modes-merche", "merche@example.com", "person-owns-org", Some("modes-collective"), Some("Merche Collective")),
        )
        .await;
        assert_eq!(out.status, RunStatus::Done, "{out:?}");
        let row = sqlx::query(
            "SELECT o.name, m.role FROM orgs o JOIN users u ON u.id = o.owner_id
             JOIN org_members m ON m.org_id = o.id AND m.user_id = u.id WHERE o.slug = 'modes-collective' AND u.slug = 'modes-merche'",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        assert_eq!(row.get::<String, _>(0), "Merche Collective");
        assert_eq!(row.get::<String, _>(1), "owner");

        // 2c. Joins an existing Org as a member.
        let (_, out, _) = run(cfg.clone(), onboard("talent-two", "talent@example.com", "person-joins-org", Some("cocotte"), None)).await;
        assert_eq!(out.status, RunStatus::Done, "{out:?}");
        let role: String = sqlx::query_scalar(
            "SELECT m.role FROM org_members m JOIN orgs o ON o.id = m.org_id JOIN users u ON u.id = m.user_id WHERE o.slug = 'cocotte' AND u.slug = 'talent-two'",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        assert_eq!(role, "member");

        // Re-running a finished onboarding: every writing step is "already done", no new rows.
        let before: i64 = sqlx::query_scalar("SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM orgs) + (SELECT count(*) FROM org_members)")
            .fetch_one(&db)
            .await
            .unwrap();
        let (id, out, engine) = run(
            cfg.clone(),
            onboard("modes-merche", "merche@example.com", "person-owns-org", Some("modes-collective"), Some("Merche Collective")),
        )
        .await;
        assert_eq!(out.status, RunStatus::Done);
        let statuses: Vec<StepStatus> = runs::steps(engine.pool(), id).await.unwrap().into_iter().map(|s| s.status).collect();
        // Every step between preflight and the success check (which runs its checks again).
        let (last, middle) = statuses[1..].split_last().unwrap();
        assert!(middle.iter().all(|s| *s == StepStatus::AlreadyDone), "every writing step is already done: {statuses:?}");
        assert_eq!(*last, StepStatus::Done, "verify runs again: {statuses:?}");
        let after: i64 = sqlx::query_scalar("SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM orgs) + (SELECT count(*) FROM org_members)")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(before, after);
        // Nothing outside users, orgs and org_members was touched (no backfill).
        let tenant_rows: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM bookings b JOIN users u ON u.id = b.user_id WHERE u.slug IN ('solo-one','modes-merche','talent-two'))
                  + (SELECT count(*) FROM inbox_messages b JOIN users u ON u.id = b.user_id WHERE u.slug IN ('solo-one','modes-merche','talent-two'))
                  + (SELECT count(*) FROM analytics_events b JOIN users u ON u.id = b.user_id WHERE u.slug IN ('solo-one','modes-merche','talent-two'))",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        assert_eq!(tenant_rows, 0);
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_are_refused_on_the_replica_and_on_an_unnamed_host() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        lab.serve_domains(&["solo-one.com", "modes-merche.com", "talent-two.com"]);
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        // The streaming standby of the same cluster: a real server in recovery.
        let cfg = dbs.config(tmp.path(), |t| {
            t.replacen(
                "  port: 5432\n  user: onboard_writer\n  database: ",
                "  port: 5433\n  user: onboard_writer\n  database: ",
                1,
            )
            .replace(&format!("database: {}", dbs.platform), "database: platform")
        });
        assert_eq!(cfg.tenant_db.port, 5433);
        let (_, out, _) = run(
            cfg,
            onboard("replica-one", "r@example.com", "person-only", None, None),
        )
        .await;
        assert_eq!(out.status, RunStatus::Failed);
        assert!(
            out.message.contains("127.0.0.1:5433") && out.message.contains("standby in recovery"),
            "{}",
            out.message
        );
        let primary = lab.admin("platform").await;
        assert_eq!(
            count(
                &primary,
                "SELECT count(*) FROM users WHERE slug = $1",
                "replica-one"
            )
            .await,
            0
        );

        // A primary, but not the host the config names as authoritative.
        let tmp2 = tempfile::tempdir().unwrap();
        let cfg = dbs.config(tmp2.path(), |t| {
            t.replace(
                "authoritative: \"127.0.0.1:5432\"",
                "authoritative: \"10.20.30.40:5432\"",
            )
        });
        let (_, out, _) = run(
            cfg,
            onboard("wrong-host", "w@example.com", "person-only", None, None),
        )
        .await;
        assert_eq!(out.status, RunStatus::Failed);
        assert!(
            out.message.contains("connected to 127.0.0.1:5432")
                && out.message.contains("10.20.30.40:5432"),
            "{}",
            out.message
        );
        assert_eq!(
            count(
                &dbs.platform_admin().await,
                "SELECT count(*) FROM users WHERE slug = $1",
                "wrong-host"
            )
            .await,
            0
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_conflicts_and_unknown_orgs_change_nothing() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        lab.serve_domains(&["solo-one.com", "modes-merche.com", "talent-two.com"]);
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.config(tmp.path(), |t| t);
        let db = dbs.platform_admin().await;
        let total = || async {
            sqlx::query_scalar::<_, i64>("SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM orgs) + (SELECT count(*) FROM org_members)")
                .fetch_one(&db)
                .await
                .unwrap()
        };
        let start = total().await;

        // The slug exists as a user with other data: a conflict showing the difference.
        let existing_user: String = sqlx::query_scalar("SELECT slug FROM users ORDER BY slug LIMIT 1").fetch_one(&db).await.unwrap();
        let (_, out, _) = run(cfg.clone(), onboard(&existing_user, "someone-else@example.com", "person-only", None, None)).await;
        assert_eq!(out.status, RunStatus::Failed);
        assert!(out.message.contains("different data") && out.message.contains("someone-else@example.com"), "{}", out.message);

        // The slug is an org's: slugs are global across people and orgs.
        let (_, out, _) = run(cfg.clone(), onboard("cocotte", "c@example.com", "person-only", None, None)).await;
        assert_eq!(out.status, RunStatus::Failed);
        assert!(out.message.contains("already taken by the org"), "{}", out.message);

        // A new org whose slug is a person's.
        let (_, out, _) = run(cfg.clone(), onboard("new-person", "n@example.com", "person-owns-org", Some(&existing_user), Some("X"))).await;
        assert_eq!(out.status, RunStatus::Failed);
        assert!(out.message.contains("already taken by the user"), "{}", out.message);

        // An org to join that does not exist: named, with the ones that do.
        let (_, out, _) = run(cfg.clone(), onboard("joiner", "j@example.com", "person-joins-org", Some("no-such-org"), None)).await;
        assert_eq!(out.status, RunStatus::Failed);
        assert!(out.message.contains("no org `no-such-org`") && out.message.contains("cocotte"), "{}", out.message);

        assert_eq!(total().await, start, "a refused onboarding wrote something");
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_second_statement_leaves_no_first_row() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        lab.serve_domains(&["solo-one.com", "modes-merche.com", "talent-two.com"]);
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.config(tmp.path(), |t| t);
        let db = dbs.platform_admin().await;
        // Make the owner-membership INSERT (the second statement of create-org) fail.
        db.execute(
            "CREATE FUNCTION fail_members() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$;
             CREATE TRIGGER fail_members BEFORE INSERT ON org_members FOR EACH ROW EXECUTE FUNCTION fail_members();",
        )
        .await
        .unwrap();
        let (_, out, _) = run(cfg, onboard("atomic-one", "a@example.com", "person-owns-org", Some("atomic-org"), Some("Atomic Org"))).await;
        assert_eq!(out.status, RunStatus::Failed);
        assert!(out.message.contains("injected failure"), "{}", out.message);
        assert_eq!(count(&db, "SELECT count(*) FROM orgs WHERE slug = $1", "atomic-org").await, 0, "the org row survived a failed membership insert");
        // create-person was its own approved step and transaction: it stays, and a resume
        // after the fault is fixed finishes the job.
        assert_eq!(count(&db, "SELECT count(*) FROM users WHERE slug = $1", "atomic-one").await, 1);
    })
    .await
}

#[test]
fn invalid_input_is_refused_at_the_edge_with_its_reason() {
    blocking(TIMEOUT, || {
        let bin = env!("CARGO_BIN_EXE_onboard-bot");
        let cases: &[(&[&str], &str)] = &[
            (
                &["--slug", "Bad_Slug"],
                "invalid input: slug: `Bad_Slug` contains `B`",
            ),
            (
                &["--slug", "x'; DROP TABLE users; --"],
                "invalid input: slug:",
            ),
            (
                &["--slug", "admin"],
                "invalid input: slug: `admin` is reserved",
            ),
            (
                &["--email", "not-an-email"],
                "invalid input: email: `not-an-email` has no @",
            ),
            (
                &["--email", "a$(reboot)@example.com"],
                "invalid input: email:",
            ),
            (
                &["--domain", "*.example.com"],
                "invalid input: domain: `*.example.com` is a wildcard",
            ),
            (
                &["--domain", "10.0.0.1"],
                "invalid input: domain: `10.0.0.1` is an IP address",
            ),
            (
                &["--domain", "evil.com;\nserver_name x"],
                "invalid input: domain:",
            ),
            (
                &["--mode", "agency"],
                "invalid input: mode: `agency` is not a mode",
            ),
            (
                &["--mode", "person-joins-org"],
                "invalid input: org: person-joins-org needs the existing org's slug",
            ),
            (
                &["--feature", "good-slug-site"],
                "invalid input: feature: `good-slug-site` is named after the provider",
            ),
        ];
        // The config points at a state DB that does not exist: bad input must be refused before
        // anything is contacted, so these run even without the lab.
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("pw"), "x").unwrap();
        std::fs::write(tmp.path().join("audit.key"), "an-audit-key-for-tests").unwrap();
        let cfg = tmp.path().join("bot.yaml");
        std::fs::write(
            &cfg,
            "environment: lab
state_db: {host: 192.0.2.1, user: u, database: d, password: {file: pw}}
tenant_db: {host: 192.0.2.1, user: u, database: d, password: {file: pw}, authoritative: \"192.0.2.1:5432\"}
vps: {name: vps-x, ssh_host: v, known_hosts: kh, ipv4: 192.0.2.1}
dns: {}
repo: {checkout: co, remote: r}
audit: {key: {file: audit.key}}
",
        )
        .unwrap();
        for (overrides, want) in cases {
            let mut flags = vec![
                ("--slug", "good-slug"),
                ("--name", "Good Name"),
                ("--email", "good@example.com"),
            ];
            for pair in overrides.chunks(2) {
                flags.retain(|(flag, _)| *flag != pair[0]);
                flags.push((pair[0], pair[1]));
            }
            let mut args = vec!["onboard"];
            args.extend(flags.iter().flat_map(|(f, v)| [*f, *v]));
            let out = Command::new(bin)
                .args(&args)
                .arg("--config")
                .arg(&cfg)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{overrides:?}: {stderr}");
            assert!(
                stderr.contains(want),
                "{overrides:?}: expected {want:?} in {stderr:?}"
            );
        }
    });
}
