//! /verify in the lab: the runbook's success check passes for each operating mode (portal,
//! test rows, RLS, context switcher) and fails, naming the table, when RLS leaks.

#[path = "support/lab.rs"]
mod lab;
#[path = "support/scripted.rs"]
mod scripted;

use std::sync::Arc;
use std::time::Duration;

use lab::Lab;
use onboard_bot::commands::onboard::OnboardArgs;
use onboard_bot::config::OnboardingConfig;
use onboard_bot::domain::Slug;
use onboard_bot::engine::request::{Request, VerifyRequest};
use onboard_bot::engine::{Engine, StartOptions};
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

async fn report(engine: &Engine, id: uuid::Uuid) -> Vec<Check> {
    let run = runs::get(engine.pool(), id).await.unwrap().unwrap();
    serde_json::from_value(run.outputs["verify_report"].clone()).expect("a verify report")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_success_check_passes_for_every_operating_mode() {
    tokio::time::timeout(TIMEOUT, async {
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
    .expect("test timed out")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leaky_table_makes_the_check_fail_naming_it() {
    tokio::time::timeout(TIMEOUT, async {
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
    .expect("test timed out")
}
