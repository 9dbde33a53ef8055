//! /abandon in the lab: an onboarding undone step by step, each compensation planned, approved,
//! applied, checked and audited; the lab's live state as before the onboarding (no tenant rows,
//! no site in the repo head, no nginx site, no certificate, no webroot) while the git history
//! and the audit trail keep both; a tenant with a booking refuses the database compensation and
//! says why; the slug is free again for a fresh onboarding.

use crate::support::harness::within;
use crate::support::{lab, onboarding, scripted};

use std::sync::Arc;
use std::time::Duration;

use lab::{Lab, git, origin_file};
use onboard_bot::commands::onboard::OnboardArgs;
use onboard_bot::config::OnboardingConfig;
use onboard_bot::engine::{Engine, StartOptions};
use onboard_bot::frontend::Decision;
use onboard_bot::request::Request;
use onboard_bot::state::runs::RunStatus;
use scripted::Scripted;

const TIMEOUT: Duration = Duration::from_secs(400);

fn owns_org(slug: &str) -> Request {
    OnboardArgs {
        slug: slug.into(),
        name: "Abandon Person".into(),
        email: format!("{slug}@example.com"),
        mode: "person-owns-org".into(),
        org: Some(format!("{slug}-org")),
        org_name: Some("Abandon Org".into()),
        mail: onboard_bot::domain::MailPlan::Mailbox,
        feature: Some("agency-site".into()),
        ..Default::default()
    }
    .parse(&OnboardingConfig::default())
    .unwrap()
}

fn mail_zone(domain: &str) -> String {
    Lab::zone_text(
        domain,
        &format!(
            "@ MX 10 mail.{domain}.\nmail A 127.0.0.1\n@ TXT \"v=spf1 mx -all\"\ndefault._domainkey TXT \"v=DKIM1; k=rsa; p=AAAA\"\n_dmarc TXT \"v=DMARC1; p=quarantine\"\n"
        ),
    )
}

/// Approves every plan but the first of `step`, which it rejects.
fn reject_at(step: &'static str) -> Scripted {
    Scripted::new(move |r, _| {
        if r.step == step {
            Decision {
                approved: false,
                actor: scripted::actor("approver-1"),
                how: "test".into(),
                reason: Some("stop here".into()),
            }
        } else {
            scripted::approve("approver-1")
        }
    })
}

/// What the lab VPS has of `domain`: nginx site, its link, webroot, certificate lineage.
fn on_vps(lab: &Lab, domain: &str) -> Vec<String> {
    let vps = lab.dir.join("vps");
    [
        vps.join("nginx/sites-available").join(domain),
        vps.join("nginx/sites-enabled").join(domain),
        vps.join("www").join(domain),
        vps.join("letsencrypt/live").join(domain),
    ]
    .into_iter()
    .filter(|p| p.symlink_metadata().is_ok())
    .map(|p| p.display().to_string())
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finished_onboarding_is_abandoned_to_the_state_before_it_and_onboarded_again() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let domain = "abandon-full.com";
        lab.put_zone(domain, &mail_zone(domain));
        let dbs = lab.fresh().await;
        dbs.own_vps_sites(&[domain]).await;
        let tmp = tempfile::tempdir().unwrap();
        let front = Arc::new(Scripted::approve_all());
        let engine = Engine::new(dbs.config(tmp.path(), |t| t), front.clone())
            .await
            .unwrap();
        let platform = lab.admin(&dbs.platform).await;
        let brand_file = "deployments/@domains/quinn.www/scripts/agency-brands.conf";
        // The onboarding's commit is the first to touch origin: the state before it.
        let brand_before = origin_file(tmp.path(), brand_file);
        let ops = scripted::actor("ops");

        let (onboard_id, out) = engine
            .run(owns_org("abandon-full"), &ops, StartOptions::default())
            .await
            .unwrap();
        assert_eq!(out.status, RunStatus::Done, "{out:?}");
        assert_eq!(
            on_vps(&lab, domain).len(),
            4,
            "the onboarding deployed and certified the site"
        );
        assert!(
            origin_file(tmp.path(), brand_file)
                .unwrap()
                .contains(&format!("brand {domain} mailbox"))
        );

        let request = engine
            .abandon_request(onboard_id, &ops, "the Provider pulled out")
            .await
            .unwrap();
        let (abandon_id, out) = engine
            .run(request, &ops, StartOptions::default())
            .await
            .unwrap();
        assert_eq!(out.status, RunStatus::Done, "{out:?}");
        let steps: Vec<String> = engine
            .run_steps(abandon_id)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(
            steps,
            [
                "undo-release",
                "undo-site",
                "undo-cert",
                "undo-deploy-config",
                "undo-database",
                "dns-leftovers",
                "forget-site"
            ]
        );
        // Every production write of the abandon was shown exactly and approved.
        let asked: Vec<_> = front
            .requests()
            .into_iter()
            .filter(|r| r.run_id == abandon_id)
            .collect();
        let asked_steps: Vec<&str> = asked.iter().map(|r| r.step.as_str()).collect();
        assert_eq!(
            asked_steps,
            [
                "undo-release",
                "undo-site",
                "undo-cert",
                "undo-deploy-config",
                "undo-database"
            ]
        );
        let db_plan = &asked
            .iter()
            .find(|r| r.step == "undo-database")
            .unwrap()
            .detail;
        assert!(
            db_plan.contains("DELETE FROM org_members")
                && db_plan.contains("DELETE FROM orgs")
                && db_plan.contains("DELETE FROM users"),
            "{db_plan}"
        );
        let cert_plan = &asked.iter().find(|r| r.step == "undo-cert").unwrap().detail;
        assert!(
            cert_plan.contains(&format!("delete --cert-name {domain}"))
                && cert_plan.contains("not revoked"),
            "{cert_plan}"
        );

        // The lab's live state is as before the onboarding.
        assert_eq!(onboarding::users(&platform, "abandon-full").await, 0);
        let orgs: i64 =
            sqlx::query_scalar("SELECT count(*) FROM orgs WHERE slug = 'abandon-full-org'")
                .fetch_one(&platform)
                .await
                .unwrap();
        assert_eq!(orgs, 0);
        assert_eq!(
            origin_file(
                tmp.path(),
                &format!("deployments/@domains/{domain}/services.yaml")
            ),
            None
        );
        assert_eq!(origin_file(tmp.path(), brand_file), brand_before);
        let site_plan = &asked.iter().find(|r| r.step == "undo-site").unwrap().detail;
        assert_eq!(on_vps(&lab, domain), Vec::<String>::new(), "{site_plan}");
        // The history keeps both the onboarding and its undoing.
        let log = git(
            &tmp.path().join("origin.git"),
            &["log", "--format=%s", "main"],
        );
        assert!(
            log.contains("onboard abandon-full: deploy config for")
                && log.contains("abandon abandon-full: remove the deploy config"),
            "{log}"
        );
        // The DNS leftovers name the records to remove at the registrar.
        let records = engine.audit_of_run(abandon_id).await.unwrap();
        let leftovers = records
            .iter()
            .find(|e| e.step.as_deref() == Some("dns-leftovers"))
            .expect("dns-leftovers audited");
        assert!(
            leftovers
                .detail
                .to_string()
                .contains(&format!("{domain}.\\tIN\\tA")),
            "{}",
            leftovers.detail
        );
        for step in &steps {
            assert!(
                records.iter().any(|e| e.step.as_deref() == Some(step)),
                "{step} is not in the audit trail"
            );
        }
        let (_, breaks) = engine.verify_audit_chain(&[]).await.unwrap();
        assert!(breaks.is_empty(), "{breaks:?}");

        // The slug and the domain are free again: a fresh onboarding goes through.
        let (_, again) = engine
            .run(owns_org("abandon-full"), &ops, StartOptions::default())
            .await
            .unwrap();
        assert_eq!(again.status, RunStatus::Done, "{again:?}");
        assert_eq!(onboarding::users(&platform, "abandon-full").await, 1);
        // The first onboarding, abandoned already, is not abandoned again: that would take the
        // new onboarding's site down.
        let refused = engine
            .abandon_request(onboard_id, &ops, "again")
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("already abandoned"), "{refused}");
        assert_eq!(on_vps(&lab, domain).len(), 4);
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_with_a_booking_refuses_the_database_compensation_and_says_why() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let domain = "abandon-booked.com";
        lab.serve_domains(&[domain]);
        let dbs = lab.fresh().await;
        dbs.own_vps_sites(&[domain]).await;
        let tmp = tempfile::tempdir().unwrap();
        // Stopped before its deploy config: only the database steps applied.
        let front = Arc::new(reject_at("deploy-config"));
        let engine = Engine::new(dbs.config(tmp.path(), |t| t), front.clone()).await.unwrap();
        let platform = lab.admin(&dbs.platform).await;
        let ops = scripted::actor("ops");
        let request = onboarding::request(onboarding::person_only("abandon-booked", "Booked Person"));
        let (onboard_id, out) = engine.run(request, &ops, StartOptions::default()).await.unwrap();
        assert_eq!(out.status, RunStatus::Rejected, "{out:?}");
        assert_eq!(onboarding::users(&platform, "abandon-booked").await, 1);
        sqlx::query("INSERT INTO bookings (user_id, starts_at, note) SELECT id, now(), 'first client' FROM users WHERE slug = 'abandon-booked'")
            .execute(&platform)
            .await
            .unwrap();

        // The onboarding was stopped (rejected): the abandon cancels it first.
        let request = engine.abandon_request(onboard_id, &ops, "wrong person").await.unwrap();
        let onboarding_run = engine.run_record(onboard_id).await.unwrap().unwrap();
        assert_eq!(onboarding_run.status, RunStatus::Cancelled);
        let (abandon_id, out) = engine.run(request, &ops, StartOptions::default()).await.unwrap();
        let steps: Vec<String> = engine.run_steps(abandon_id).await.unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(steps, ["undo-database", "dns-leftovers", "forget-site"]);
        assert_eq!(out.status, RunStatus::Failed, "{out:?}");
        assert!(
            out.message.contains("nothing was deleted") && out.message.contains("1 row(s) of public.bookings (by user_id)"),
            "{}",
            out.message
        );
        assert_eq!(onboarding::users(&platform, "abandon-booked").await, 1, "nothing cascaded");

        // Once the booking is gone, the abandon resumes to its end.
        sqlx::query("DELETE FROM bookings WHERE note = 'first client'").execute(&platform).await.unwrap();
        let out = engine.execute(abandon_id).await.unwrap();
        assert_eq!(out.status, RunStatus::Done, "{out:?}");
        assert_eq!(onboarding::users(&platform, "abandon-booked").await, 0);
        let (_, breaks) = engine.verify_audit_chain(&[]).await.unwrap();
        assert!(breaks.is_empty(), "{breaks:?}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_onboarding_stopped_after_each_applying_step_is_abandoned_to_nothing() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        // (the step whose plan is rejected, the abandon's steps): each stop leaves what the
        // steps before it applied, and only that is undone.
        let stops: [(&'static str, &[&str]); 5] = [
            ("create-org", &["undo-database"]),
            ("deploy-stub", &["undo-deploy-config", "undo-database"]),
            (
                "cert",
                &["undo-site", "undo-deploy-config", "undo-database"],
            ),
            (
                "sync-back",
                &[
                    "undo-site",
                    "undo-cert",
                    "undo-deploy-config",
                    "undo-database",
                ],
            ),
            (
                "release",
                &[
                    "undo-site",
                    "undo-cert",
                    "undo-deploy-config",
                    "undo-database",
                ],
            ),
        ];
        for (n, (stop, undo)) in stops.into_iter().enumerate() {
            let slug = format!("abandon-stop{n}");
            let domain = format!("{slug}.com");
            lab.serve_domains(&[&domain]);
            let dbs = lab.fresh().await;
            dbs.own_vps_sites(&[&domain]).await;
            let tmp = tempfile::tempdir().unwrap();
            let front = Arc::new(reject_at(stop));
            let engine = Engine::new(dbs.config(tmp.path(), |t| t), front.clone())
                .await
                .unwrap();
            let platform = lab.admin(&dbs.platform).await;
            let ops = scripted::actor("ops");
            let request = onboarding::request(onboarding::in_mode(
                &slug,
                "Stop Person",
                &format!("{slug}@example.com"),
                "person-owns-org",
                Some(&format!("{slug}-org")),
                Some("Stop Org"),
            ));
            let (onboard_id, out) = engine
                .run(request, &ops, StartOptions::default())
                .await
                .unwrap();
            assert_eq!(out.status, RunStatus::Rejected, "{stop}: {out:?}");

            let request = engine
                .abandon_request(onboard_id, &ops, "stopped half-way")
                .await
                .unwrap();
            let (abandon_id, out) = engine
                .run(request, &ops, StartOptions::default())
                .await
                .unwrap();
            assert_eq!(out.status, RunStatus::Done, "{stop}: {out:?}");
            let steps: Vec<String> = engine
                .run_steps(abandon_id)
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.name)
                .collect();
            let want: Vec<&str> = undo
                .iter()
                .copied()
                .chain(["dns-leftovers", "forget-site"])
                .collect();
            assert_eq!(steps, want, "{stop}");

            assert_eq!(onboarding::users(&platform, &slug).await, 0, "{stop}");
            assert_eq!(
                origin_file(
                    tmp.path(),
                    &format!("deployments/@domains/{domain}/services.yaml")
                ),
                None,
                "{stop}"
            );
            assert_eq!(on_vps(&lab, &domain), Vec::<String>::new(), "{stop}");
            let (_, breaks) = engine.verify_audit_chain(&[]).await.unwrap();
            assert!(breaks.is_empty(), "{stop}: {breaks:?}");
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_abandons_with_a_reason_and_refuses_without_one() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let domain = "abandon-console.com";
        lab.serve_domains(&[domain]);
        let dbs = lab.fresh().await;
        dbs.own_vps_sites(&[domain]).await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.write_config(tmp.path(), |t| t);
        let platform = lab.admin(&dbs.platform).await;
        let bin = env!("CARGO_BIN_EXE_onboard-bot");
        // Stopped at its first plan (rejected): a run that wrote nothing is abandoned too.
        let out = std::process::Command::new(bin)
            .args([
                "onboard",
                "--slug",
                "abandon-console",
                "--name",
                "Console Person",
                "--email",
                "c@example.com",
                "--reject-reason",
                "stop",
                "--config",
            ])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let state = dbs.state_admin().await;
        let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM runs WHERE runbook = 'onboard'")
            .fetch_one(&state)
            .await
            .unwrap();

        let blank = std::process::Command::new(bin)
            .args([
                "runs",
                "abandon",
                &id.to_string(),
                "--reason",
                " ",
                "--yes",
                "--config",
            ])
            .arg(&cfg)
            .output()
            .unwrap();
        assert_eq!(
            blank.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&blank.stderr)
        );
        assert!(String::from_utf8_lossy(&blank.stderr).contains("reason"));
        let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM runs WHERE runbook = 'abandon'")
            .fetch_one(&state)
            .await
            .unwrap();
        assert_eq!(runs, 0, "a refused abandon starts nothing");

        let ok = std::process::Command::new(bin)
            .args([
                "runs",
                "abandon",
                &id.to_string(),
                "--reason",
                "typo in the slug",
                "--yes",
                "--config",
            ])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let status: String =
            sqlx::query_scalar("SELECT status FROM runs WHERE runbook = 'abandon'")
                .fetch_one(&state)
                .await
                .unwrap();
        assert_eq!(status, "done");
        let onboarding: String =
            sqlx::query_scalar("SELECT status FROM runs WHERE runbook = 'onboard'")
                .fetch_one(&state)
                .await
                .unwrap();
        assert_eq!(onboarding, "cancelled");
        assert_eq!(onboarding::users(&platform, "abandon-console").await, 0);
        // The abandon is recorded with its reason.
        let reason: String =
            sqlx::query_scalar("SELECT input->>'reason' FROM runs WHERE runbook = 'abandon'")
                .fetch_one(&state)
                .await
                .unwrap();
        assert_eq!(reason, "typo in the slug");
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn with_revoke_on_abandon_the_certificate_is_revoked_then_deleted() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let slug = "abandon-revoke";
        let domain = "abandon-revoke.com";
        lab.serve_domains(&[domain]);
        let dbs = lab.fresh().await;
        dbs.own_vps_sites(&[domain]).await;
        let tmp = tempfile::tempdir().unwrap();
        let revoke = |t: String| {
            t.replace(
                "cert:\n  certbot: certbot\n",
                "cert:\n  certbot: certbot\n  revoke_on_abandon: true\n",
            )
        };
        let front = Arc::new(reject_at("sync-back"));
        let engine = Engine::new(dbs.config(tmp.path(), revoke), front.clone())
            .await
            .unwrap();
        let ops = scripted::actor("ops");
        let request = onboarding::request(onboarding::person_only(slug, "Revoke Person"));
        let (onboard_id, out) = engine
            .run(request, &ops, StartOptions::default())
            .await
            .unwrap();
        assert_eq!(out.status, RunStatus::Rejected, "{out:?}");
        assert_eq!(on_vps(&lab, domain).len(), 4);

        let request = engine
            .abandon_request(onboard_id, &ops, "certificate for a typo")
            .await
            .unwrap();
        let (abandon_id, out) = engine
            .run(request, &ops, StartOptions::default())
            .await
            .unwrap();
        assert_eq!(out.status, RunStatus::Done, "{out:?}");
        let plan = front
            .requests()
            .into_iter()
            .find(|r| r.run_id == abandon_id && r.step == "undo-cert")
            .expect("undo-cert asked");
        assert!(
            plan.detail.contains(&format!(
                "certbot revoke --delete-after-revoke --cert-name {domain}"
            )) && plan.detail.contains("revoked at the CA first"),
            "{}",
            plan.detail
        );
        assert_eq!(on_vps(&lab, domain), Vec::<String>::new());
    })
    .await
}
