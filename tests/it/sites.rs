//! Site ownership in the lab: a Provider site belongs to the tenant the bot created (or
//! adopted) it for. Onboarding another slug onto a domain that is already served is refused at
//! preflight, naming the domain, what was found and its owner; a re-run of the same slug is
//! not; `/cert issue` and `/verify` act only on what the bot has on record.

use crate::support::harness::within;
use crate::support::onboarding::{request, users};
use crate::support::{lab, scripted};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use lab::{Lab, commit, git};
use onboard_bot::commands::onboard::OnboardArgs;
use onboard_bot::domain::DomainName;
use onboard_bot::engine::{Engine, RunOutcome, StartOptions};
use onboard_bot::request::Request;
use onboard_bot::state::runs::{self, RunStatus, StepStatus};
use onboard_bot::state::sites;
use scripted::Scripted;

const TIMEOUT: Duration = Duration::from_secs(180);

fn onboarding(slug: &str, domain: &str) -> OnboardArgs {
    OnboardArgs {
        slug: slug.into(),
        name: "Site Person".into(),
        email: format!("{slug}@example.com"),
        mode: "person-only".into(),
        domains: vec![domain.into()],
        ..Default::default()
    }
}

fn origin_head(tmp: &Path) -> String {
    git(&tmp.join("origin.git"), &["rev-parse", "main"])
}

async fn step_status(engine: &Engine, run: uuid::Uuid, step: &str) -> StepStatus {
    runs::steps(engine.pool(), run)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == step)
        .unwrap_or_else(|| panic!("run {run} has no step {step}"))
        .status
}

/// The bot binary with `args` and this test's config; (exit code, stdout, stderr).
fn bot(cfg: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_onboard-bot"))
        .args(args)
        .arg("--config")
        .arg(cfg)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Approves every plan except the stub deploy's: a run stops (rejected) once its site is in
/// the repo, before anything is deployed to the VPS.
fn stop_before_deploy() -> Scripted {
    Scripted::new(|req, _| {
        if req.step == "deploy-stub" {
            onboard_bot::frontend::Decision {
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

async fn run(engine: &Engine, req: Request) -> (uuid::Uuid, RunOutcome) {
    engine
        .run(req, &scripted::actor("ops"), StartOptions::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenants_site_in_the_repo_is_refused_at_preflight_and_nothing_is_written() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let front = Arc::new(Scripted::approve_all());
        let engine = Engine::new(dbs.config(tmp.path(), |t| t), front.clone())
            .await
            .unwrap();
        let head = origin_head(tmp.path());

        // The case: a dry run planned cocotte.com's takeover happily.
        let (dry, out) = engine
            .run(
                request(onboarding("evilnew", "cocotte.com")),
                &scripted::actor("ops"),
                StartOptions {
                    dry_run: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(out.status, RunStatus::Done, "{out:?}");
        let steps = runs::steps(engine.pool(), dry).await.unwrap();
        for name in ["preflight", "deploy-config"] {
            let s = steps.iter().find(|s| s.name == name).unwrap();
            assert!(
                s.plan_summary.as_deref() == Some("would refuse"),
                "{name} of a dry run: {s:?}"
            );
        }

        let (id, out) = run(&engine, request(onboarding("evilnew", "cocotte.com"))).await;
        assert_eq!(out.status, RunStatus::Failed, "{out:?}");
        assert_eq!(
            step_status(&engine, id, "preflight").await,
            StepStatus::Failed
        );
        let msg = &out.message;
        // The domain, what was found and who owns it.
        assert!(msg.contains("cocotte.com is already served"), "{msg}");
        assert!(
            msg.contains(
                "the site directory deployments/@domains/cocotte.com in the platform repo"
            ),
            "{msg}"
        );
        assert!(
            msg.contains("domain: cocotte.com") && msg.contains("held_back: false"),
            "{msg}"
        );
        assert!(msg.contains("not in the bot's records"), "{msg}");
        assert!(msg.contains("--adopt-site"), "{msg}");
        // Nothing was written: no user row, no commit, no approval asked.
        assert_eq!(users(&dbs.platform_admin().await, "evilnew").await, 0);
        assert_eq!(origin_head(tmp.path()), head, "something was pushed");
        assert!(
            front.requests().is_empty(),
            "a refused onboarding asked for approval: {:?}",
            front.requests()
        );
    })
    .await
}

/// Removes a file or directory the test put on the shared lab VPS, however the test ends.
struct Remove(PathBuf);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_nginx_site_a_certificate_or_a_site_dir_of_another_case_also_refuse() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let engine = Engine::new(
            dbs.config(tmp.path(), |t| t),
            Arc::new(Scripted::reject_all()),
        )
        .await
        .unwrap();

        // An nginx site on the VPS (the configured deploy.nginx_site path), made by hand.
        let nginx = lab.dir.join("vps/nginx/sites-available/squat-nginx.com");
        let _n = Remove(nginx.clone());
        std::fs::write(
            &nginx,
            "server { listen 80; server_name squat-nginx.com; }\n",
        )
        .unwrap();
        // A certificate in certbot's store on the VPS.
        let live = lab.dir.join("vps/letsencrypt/live/squat-cert.com");
        let _c = Remove(live.clone());
        std::fs::create_dir_all(&live).unwrap();
        std::fs::write(live.join("README"), "a certificate lineage made by hand\n").unwrap();
        // A site directory in the repo whose name differs only in case.
        let work = tmp.path().join("work");
        git(
            tmp.path(),
            &[
                "clone",
                "-q",
                tmp.path().join("origin.git").to_str().unwrap(),
                work.to_str().unwrap(),
            ],
        );
        let dir = work.join("deployments/@domains/Squat-Case.com/public");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.html"), "hand-made\n").unwrap();
        git(&work, &["add", "-A"]);
        commit(&work, "a hand-made site");
        git(&work, &["push", "-q", "origin", "main"]);
        let head = origin_head(tmp.path());

        let cases = [
            ("squat-one", "squat-nginx.com", nginx.display().to_string()),
            (
                "squat-two",
                "squat-cert.com",
                format!("the certificate {}", live.display()),
            ),
            (
                "squat-three",
                "SQUAT-case.com",
                "the site directory deployments/@domains/Squat-Case.com".to_owned(),
            ),
        ];
        for (slug, domain, found) in cases {
            let (id, out) = run(&engine, request(onboarding(slug, domain))).await;
            assert_eq!(out.status, RunStatus::Failed, "{slug}: {out:?}");
            assert_eq!(
                step_status(&engine, id, "preflight").await,
                StepStatus::Failed
            );
            let d = domain.to_ascii_lowercase();
            assert!(
                out.message.contains(&format!("{d} is already served")),
                "{slug}: {}",
                out.message
            );
            assert!(
                out.message.contains(&found),
                "{slug}: want {found:?} in {}",
                out.message
            );
            assert!(
                out.message.contains("not in the bot's records"),
                "{slug}: {}",
                out.message
            );
            assert_eq!(users(&dbs.platform_admin().await, slug).await, 0);
        }
        assert_eq!(origin_head(tmp.path()), head, "something was pushed");
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_site_belongs_to_the_slug_it_was_created_for() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        lab.serve_domains(&["site-own.com"]);
        let dbs = lab.fresh().await;
        dbs.own_vps_sites(&["site-own.com"]).await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.config(tmp.path(), |t| t);
        let engine = Engine::new(cfg.clone(), Arc::new(stop_before_deploy())).await.unwrap();

        // site-own's onboarding creates the site in the repo, then stops before the deploy.
        let (first, out) = run(&engine, request(onboarding("site-own", "site-own.com"))).await;
        assert_eq!(out.status, RunStatus::Rejected, "{out:?}");
        assert_eq!(step_status(&engine, first, "deploy-config").await, StepStatus::Done);
        engine.cancel(first, &scripted::actor("ops"), "test").await.unwrap();

        // The same slug and domain again (a re-run): not refused, the site is "already done".
        let (again, out) = run(&engine, request(onboarding("site-own", "site-own.com"))).await;
        assert_eq!(out.status, RunStatus::Rejected, "{out:?}");
        assert_eq!(step_status(&engine, again, "preflight").await, StepStatus::Done);
        assert_eq!(step_status(&engine, again, "deploy-config").await, StepStatus::AlreadyDone);
        engine.cancel(again, &scripted::actor("ops"), "test").await.unwrap();

        // Another slug on that domain: refused, naming the owner and the run that created it.
        let head = origin_head(tmp.path());
        let (thief, out) = run(&engine, request(onboarding("site-thief", "site-own.com"))).await;
        assert_eq!(out.status, RunStatus::Failed, "{out:?}");
        assert_eq!(step_status(&engine, thief, "preflight").await, StepStatus::Failed);
        assert!(out.message.contains("site-own.com is already served"), "{}", out.message);
        assert!(out.message.contains("the site directory deployments/@domains/site-own.com"), "{}", out.message);
        assert!(out.message.contains("belongs to `site-own`") && out.message.contains(&first.to_string()), "{}", out.message);
        assert_eq!(users(&dbs.platform_admin().await, "site-thief").await, 0);
        assert_eq!(origin_head(tmp.path()), head);
        // A dry run of the thief, newer than every other onboarding of the domain.
        let (_, out) = engine
            .run(request(onboarding("site-thief", "site-own.com")), &scripted::actor("ops"), StartOptions { dry_run: true, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(out.status, RunStatus::Done, "{out:?}");

        // /cert issue without --email takes the owner's onboarding email, never the thief's.
        let cfg_path = tmp.path().join("bot.yaml");
        let (code, stdout, stderr) = bot(&cfg_path, &["cert", "issue", "site-own.com", "--dry-run"]);
        assert!(code == 0 || code == 1, "{code}: {stdout}{stderr}");
        let email: String = sqlx::query_scalar("SELECT input->>'email' FROM runs WHERE runbook = 'cert' ORDER BY created_at DESC LIMIT 1")
            .fetch_one(engine.pool())
            .await
            .unwrap();
        assert_eq!(email, "site-own@example.com");

        // /verify of the owner runs; of a slug the bot has no record of, it is refused.
        let (code, stdout, stderr) = bot(&cfg_path, &["verify", "site-own", "--yes"]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        let (code, stdout, stderr) = bot(&cfg_path, &["verify", "sansonnet", "--yes"]);
        assert_eq!(code, 2, "{stdout}{stderr}");
        assert!(stderr.contains("sansonnet") && stderr.contains("not in the bot's records"), "{stderr}");
        // /cert issue of a domain the bot has no record of: refused, even as a dry run.
        let (code, stdout, stderr) = bot(&cfg_path, &["cert", "issue", "cocotte.com", "--email", "x@example.com", "--dry-run"]);
        assert_eq!(code, 2, "{stdout}{stderr}");
        assert!(stderr.contains("cocotte.com") && stderr.contains("not in the bot's records"), "{stderr}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn adopt_site_takes_over_an_existing_site_only_after_its_approval() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.config(tmp.path(), |t| t);
        let adopt = || request(OnboardArgs { adopt_site: true, ..onboarding("evilnew", "cocotte.com") });

        // Rejected: nothing is recorded and nothing is written.
        let engine = Engine::new(cfg.clone(), Arc::new(Scripted::reject_all())).await.unwrap();
        let (id, out) = run(&engine, adopt()).await;
        assert_eq!(out.status, RunStatus::Rejected, "{out:?}");
        assert!(out.message.starts_with("adopt-site: plan rejected"), "{}", out.message);
        assert!(sites::get(engine.pool(), "cocotte.com").await.unwrap().is_none());
        assert_eq!(users(&dbs.platform_admin().await, "evilnew").await, 0);
        engine.cancel(id, &scripted::actor("ops"), "test").await.unwrap();

        // Approved: the plan said plainly what is taken over, and the run goes on past the
        // deploy config (already there) to the stub deploy, which the test declines.
        let front = Arc::new(stop_before_deploy());
        let engine = Engine::new(cfg.clone(), front.clone()).await.unwrap();
        let head = origin_head(tmp.path());
        let (id, out) = run(&engine, adopt()).await;
        assert_eq!(out.status, RunStatus::Rejected, "{out:?}");
        let asked: Vec<String> = front.requests().iter().map(|r| r.step.clone()).collect();
        assert_eq!(asked.first().map(String::as_str), Some("adopt-site"), "{asked:?}");
        let plan = &front.requests()[0];
        assert!(
            plan.detail.contains("adopt the existing site of cocotte.com, currently the site directory deployments/@domains/cocotte.com in the platform repo (services.yaml: domain: cocotte.com, feature: agency-site, held_back: false)"),
            "{}",
            plan.detail
        );
        assert!(plan.detail.contains("not in the bot's records"), "{}", plan.detail);
        let site = sites::get(engine.pool(), "cocotte.com").await.unwrap().expect("the adoption is recorded");
        assert_eq!((site.slug.as_str(), site.how, site.run_id), ("evilnew", sites::SiteOrigin::Adopted, id));
        assert_eq!(step_status(&engine, id, "deploy-config").await, StepStatus::AlreadyDone);
        assert_eq!(origin_head(tmp.path()), head, "the adopted site was rewritten");
        // /cert issue now defaults to the adopter's email: the site is theirs.
        let req = engine.cert_request(DomainName::parse("cocotte.com").unwrap(), None).await.unwrap();
        let Request::Cert(c) = req else { panic!("a cert request") };
        assert_eq!(c.email.as_str(), "evilnew@example.com");
    })
    .await
}
