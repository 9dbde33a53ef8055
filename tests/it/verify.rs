//! /verify in the lab: the runbook's success check passes for each operating mode (portal,
//! test rows, RLS, context switcher) and fails, naming the table, when RLS leaks.

use crate::support::harness::within;
use crate::support::{lab, scripted};

use std::sync::Arc;
use std::time::Duration;

use lab::Lab;
use onboard_bot::commands::onboard::OnboardArgs;
use onboard_bot::config::OnboardingConfig;
use onboard_bot::domain::Slug;
use onboard_bot::engine::{Engine, StartOptions};
use onboard_bot::request::{Request, VerifyRequest};
use onboard_bot::state::runs::{self, RunStatus};
use onboard_bot::state::sites;
use onboard_bot::steps::verify::Check;
use scripted::Scripted;
use sqlx::Executor;

const TIMEOUT: Duration = Duration::from_secs(300);

/// The portal stand-in serves the lab's `platform` database, so these runs write there
/// (idempotently: a second test run finds its tenants "already done").
fn on_platform_db(text: String, platform_copy: &str, lab: &Lab) -> String {
    let portal = std::fs::read_to_string(Lab::repo_root().join("config/lab.yaml"))
        .unwrap()
        .lines()
        .filter(|l| l.trim_start().starts_with("portal_"))
        .map(|l| l.replace("../.lab", &lab.dir.display().to_string()))
        .collect::<Vec<_>>()
        .join("\n");
    // `verify:` is the file's last section: its portal keys go back at the end.
    format!(
        "{}\n{portal}\n",
        text.replace(&format!("database: {platform_copy}"), "database: platform")
    )
}

/// Puts `slug` (a tenant of the lab's fixtures) on the bot's record, as an onboarding of it
/// would: /verify acts only on tenants the bot has a record of.
async fn on_record(engine: &Engine, slug: &str) {
    let onboarding = OnboardArgs {
        slug: slug.into(),
        name: slug.into(),
        email: format!("{slug}@example.com"),
        mode: "person-only".into(),
        ..Default::default()
    }
    .parse(&OnboardingConfig::default())
    .unwrap();
    let dry = StartOptions {
        dry_run: true,
        ..Default::default()
    };
    let run_id = engine
        .start(onboarding, &scripted::actor("ops"), dry)
        .await
        .unwrap();
    let domain = format!("{slug}.com");
    let site = sites::NewSite {
        domain: &domain,
        slug,
        vps: "vps-0",
        run_id,
    };
    sites::record_created(engine.pool(), &site).await.unwrap();
}

async fn report(engine: &Engine, id: uuid::Uuid) -> Vec<Check> {
    let run = runs::get(engine.pool(), id).await.unwrap().unwrap();
    serde_json::from_value(run.outputs["verify_report"].clone()).expect("a verify report")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_success_check_passes_for_every_operating_mode() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let cases: [(&str, &str, Option<&str>, Option<&str>); 3] = [
            ("vt-solo", "person-only", None, None),
            ("vt-owner", "person-owns-org", Some("vt-owner-org"), Some("VT Owner Org")),
            ("vt-talent", "person-joins-org", Some("cocotte"), None),
        ];
        for (slug, mode, org, org_name) in cases {
            lab.serve_domains(&[&format!("{slug}.com")]);
            let dbs = lab.fresh().await;
            dbs.own_vps_sites(&[&format!("{slug}.com")]).await;
            let tmp = tempfile::tempdir().unwrap();
            let platform_copy = dbs.platform.clone();
            let cfg = dbs.config(tmp.path(), |t| on_platform_db(t, &platform_copy, &lab));
            assert!(cfg.verify.as_ref().unwrap().portal_url.is_some());
            let engine = Engine::new(cfg, Arc::new(Scripted::approve_all())).await.unwrap();
            let req = OnboardArgs {
                slug: slug.into(),
                name: format!("VT {slug}"),
                email: format!("{slug}@example.com"),
                mode: mode.into(),
                org: org.map(String::from),
                org_name: org_name.map(String::from),
                ..Default::default()
            }
            .parse(&OnboardingConfig::default())
            .unwrap();
            let (id, out) = engine.run(req, &scripted::actor("ops"), StartOptions::default()).await.unwrap();
            assert_eq!(out.status, RunStatus::Done, "{slug}: {out:?}");
            let checks = report(&engine, id).await;
            assert!(checks.iter().all(|c| c.passed), "{slug}: {checks:#?}");
            let portal = checks.iter().find(|c| c.name.starts_with("portal")).unwrap();
            assert!(portal.evidence.contains("HTTP 200"), "{slug}: {portal:?}");
            assert_eq!(checks.iter().filter(|c| c.name.contains("a test row lands")).count(), 3);
            assert_eq!(checks.iter().filter(|c| c.name.contains("context switcher")).count(), usize::from(org.is_some()), "{slug}");

            // No test rows are left behind (read as the superuser, past RLS).
            let admin = lab.admin("platform").await;
            let left: i64 = sqlx::query_scalar(
                "SELECT (SELECT count(*) FROM bookings WHERE note LIKE 'onboard-bot verify%')
                      + (SELECT count(*) FROM inbox_messages WHERE body LIKE 'onboard-bot verify%')
                      + (SELECT count(*) FROM analytics_events WHERE event LIKE 'onboard-bot verify%')",
            )
            .fetch_one(&admin)
            .await
            .unwrap();
            assert_eq!(left, 0, "test rows left behind");
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leaky_table_makes_the_check_fail_naming_it() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let admin = dbs.platform_admin().await;
        // One table with RLS off, one with a policy that lets everyone read everything.
        admin.execute("ALTER TABLE inbox_messages NO FORCE ROW LEVEL SECURITY; ALTER TABLE inbox_messages DISABLE ROW LEVEL SECURITY").await.unwrap();
        admin.execute("CREATE POLICY leak ON bookings FOR SELECT TO platform_app USING (true)").await.unwrap();
        let front = Arc::new(Scripted::approve_all());
        let engine = Engine::new(dbs.config(tmp.path(), |t| t), front).await.unwrap();
        // /verify checks only tenants the bot has on record: sansonnet's site, as an
        // onboarding of it records it (a dry run stands in for that onboarding's run).
        let onboarding = OnboardArgs {
            slug: "sansonnet".into(),
            name: "Sansonnet".into(),
            email: "sansonnet@cocotte.com".into(),
            mode: "person-joins-org".into(),
            org: Some("cocotte".into()),
            ..Default::default()
        }
        .parse(&OnboardingConfig::default())
        .unwrap();
        let dry = StartOptions { dry_run: true, ..Default::default() };
        let run_id = engine.start(onboarding, &scripted::actor("ops"), dry).await.unwrap();
        let site = sites::NewSite { domain: "sansonnet.com", slug: "sansonnet", vps: "vps-0", run_id };
        sites::record_created(engine.pool(), &site).await.unwrap();
        let req = Request::Verify(VerifyRequest { slug: Slug::parse("sansonnet").unwrap() });
        let (id, out) = engine.run(req, &scripted::actor("ops"), StartOptions::default()).await.unwrap();
        assert_eq!(out.status, RunStatus::Failed, "{out:?}");
        assert!(out.message.contains("the success check failed"), "{}", out.message);
        let checks = report(&engine, id).await;
        let failed: Vec<&Check> = checks.iter().filter(|c| !c.passed).collect();
        assert!(failed.iter().any(|c| c.name.starts_with("bookings") && c.evidence.contains("LEAK")), "{checks:#?}");
        assert!(failed.iter().any(|c| c.name.starts_with("inbox_messages") && c.evidence.contains("LEAK")), "{checks:#?}");
        assert!(checks.iter().filter(|c| c.name.starts_with("analytics_events")).all(|c| c.passed), "{checks:#?}");
        // The message names the tables.
        assert!(out.message.contains("[FAIL] bookings") && out.message.contains("[FAIL] inbox_messages"), "{}", out.message);
        // The failing check still removed its test rows.
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox_messages WHERE body LIKE 'onboard-bot verify%'").fetch_one(&admin).await.unwrap();
        assert_eq!(left, 0);
    })
    .await
}

/// A portal that signs everyone in but lists no org: what a broken context switcher shows.
async fn portal_without_orgs(body: &'static str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(resp.as_bytes()).await;
            });
        }
    });
    port
}

fn step_done_message(front: &Scripted, step_idx: usize) -> String {
    front
        .events
        .lock()
        .unwrap()
        .iter()
        .find_map(|e| match e {
            onboard_bot::frontend::RunEvent::Step {
                idx,
                status,
                message,
            } if *idx == step_idx
                && matches!(status, onboard_bot::state::runs::StepStatus::Done) =>
            {
                Some(message.clone())
            }
            _ => None,
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_portal_not_configured_is_skipped_not_passed_and_counted() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        // The test config has no portal_* keys (see support/lab.rs).
        let cfg = dbs.config(tmp.path(), |t| t);
        assert!(cfg.verify.as_ref().unwrap().portal_url.is_none());
        let front = Arc::new(Scripted::approve_all());
        let engine = Engine::new(cfg, front.clone()).await.unwrap();
        on_record(&engine, "sansonnet").await;
        let req = Request::Verify(VerifyRequest {
            slug: Slug::parse("sansonnet").unwrap(),
        });
        let (id, out) = engine
            .run(req, &scripted::actor("ops"), StartOptions::default())
            .await
            .unwrap();
        assert_eq!(out.status, RunStatus::Done, "{out:?}");
        let run = runs::get(engine.pool(), id).await.unwrap().unwrap();
        let report = run.outputs["verify_report"]
            .as_array()
            .cloned()
            .expect("a verify report");
        // The portal and the context switcher (seen through the portal) were not checked: they
        // say so, and do not count as passed.
        for name in ["portal", "context switcher"] {
            let c = report
                .iter()
                .find(|c| c["name"].as_str().is_some_and(|n| n.starts_with(name)))
                .unwrap_or_else(|| panic!("no {name} check in {report:#?}"));
            assert_eq!(c["passed"], false, "{c}");
            assert_eq!(c["skipped"], true, "{c}");
        }
        let summary = step_done_message(&front, 0);
        assert!(
            summary.starts_with("success check: 6 passed, 0 failed, 2 skipped"),
            "{summary}"
        );
        assert!(summary.contains("[skip] portal"), "{summary}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_context_switcher_fails_when_the_portal_does_not_list_the_org() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        // Sansonnet is a member of cocotte (the org_members row is in the fixtures), but the
        // portal shows no org at all.
        let port = portal_without_orgs("<p>Signed in as Sansonnet (sansonnet)</p><p>No org memberships.</p>").await;
        let cfg = dbs.config(tmp.path(), |t| {
            format!(
                "{t}\n  portal_url: \"http://{{slug}}.my:{port}/\"\n  portal_expect: \"Signed in as {{display_name}} ({{slug}})\"\n  portal_org_expect: \"{{org_name}} ({{org_slug}}), {{role}}\"\n"
            )
        });
        let admin = dbs.platform_admin().await;
        let member: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM org_members m JOIN orgs o ON o.id = m.org_id JOIN users u ON u.id = m.user_id WHERE o.slug = 'cocotte' AND u.slug = 'sansonnet'",
        )
        .fetch_one(&admin)
        .await
        .unwrap();
        assert_eq!(member, 1, "the membership row exists");
        let engine = Engine::new(cfg, Arc::new(Scripted::approve_all())).await.unwrap();
        on_record(&engine, "sansonnet").await;
        let req = Request::Verify(VerifyRequest { slug: Slug::parse("sansonnet").unwrap() });
        let (id, out) = engine.run(req, &scripted::actor("ops"), StartOptions::default()).await.unwrap();
        assert_eq!(out.status, RunStatus::Failed, "{out:?}");
        let checks = report(&engine, id).await;
        let cs = checks.iter().find(|c| c.name.starts_with("context switcher")).expect("a context switcher check");
        assert!(!cs.passed, "{cs:?}");
        assert!(cs.evidence.contains("Cocotte (cocotte), member"), "{cs:?}");
        assert!(out.message.contains("[FAIL] context switcher"), "{}", out.message);
        // Everything else held.
        assert!(checks.iter().filter(|c| !c.name.starts_with("context switcher")).all(|c| c.passed), "{checks:#?}");
    })
    .await
}

/// The lab's portal stand-in (lab/portal.py), started for one test on its own port over plain
/// HTTP and reading that test's copy of the platform database; stopped when dropped.
struct OwnPortal {
    child: std::process::Child,
    port: u16,
}

impl OwnPortal {
    fn start(lab: &Lab, database: &str, dir: &std::path::Path) -> OwnPortal {
        use std::io::{BufRead, BufReader};
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = std::process::Command::new("python3")
            .arg(Lab::repo_root().join("lab/portal.py"))
            .args([
                "--lab-dir",
                dir.to_str().unwrap(),
                "--port",
                &port.to_string(),
            ])
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", "5432")
            .env("PGUSER", "platform_app")
            .env("PGPASSWORD", lab.secret("app_db"))
            .env("PGDATABASE", database)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start lab/portal.py");
        // It says so on stderr once it listens.
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains("listening on"));
        assert!(ready, "lab/portal.py did not start");
        std::thread::spawn(move || lines.for_each(drop));
        OwnPortal { child, port }
    }
}

impl Drop for OwnPortal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_context_switcher_is_read_from_the_portal_for_an_owner_and_a_member() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        // The fixtures' owner of cocotte and a member of it, through the portal stand-in reading
        // this test's database copy.
        for (slug, listed) in [("cocotte-owner", "Cocotte (cocotte), owner"), ("sansonnet", "Cocotte (cocotte), member")] {
            let dbs = lab.fresh().await;
            let tmp = tempfile::tempdir().unwrap();
            let portal = OwnPortal::start(&lab, &dbs.platform, tmp.path());
            let port = portal.port;
            let cfg = dbs.config(tmp.path(), |t| {
                format!(
                    "{t}\n  portal_url: \"http://{{slug}}.my:{port}/\"\n  portal_expect: \"Signed in as {{display_name}} ({{slug}})\"\n  portal_org_expect: \"{{org_name}} ({{org_slug}}), {{role}}\"\n"
                )
            });
            let engine = Engine::new(cfg, Arc::new(Scripted::approve_all())).await.unwrap();
            on_record(&engine, slug).await;
            let req = Request::Verify(VerifyRequest { slug: Slug::parse(slug).unwrap() });
            let (id, out) = engine.run(req, &scripted::actor("ops"), StartOptions::default()).await.unwrap();
            assert_eq!(out.status, RunStatus::Done, "{slug}: {out:?}");
            let checks = report(&engine, id).await;
            assert!(checks.iter().all(|c| c.passed && !c.skipped), "{slug}: {checks:#?}");
            let cs = checks.iter().find(|c| c.name.starts_with("context switcher")).expect("a context switcher check");
            assert!(cs.evidence.contains("HTTP 200") && cs.evidence.contains(listed), "{slug}: {cs:?}");
            drop(portal);
        }
    })
    .await
}
