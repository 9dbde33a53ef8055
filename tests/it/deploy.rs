//! /onboard part 2 in the lab: the templated deploy config (a real git checkout pushing to a
//! bare origin) and the HTTP stub deploy (the platform's ./run over SSH to nginx).

use crate::support::harness::within;
use crate::support::{lab, scripted};

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use lab::{Lab, commit, git, origin_file, origin_file_at};
use onboard_bot::commands::onboard::OnboardArgs;
use onboard_bot::config::OnboardingConfig;
use onboard_bot::engine::{Engine, StartOptions};
use onboard_bot::request::Request;
use onboard_bot::state::runs::RunStatus;
use scripted::Scripted;

const TIMEOUT: Duration = Duration::from_secs(180);

fn owns_org(slug: &str) -> Request {
    OnboardArgs {
        slug: slug.into(),
        name: "Deploy Person".into(),
        email: format!("{slug}@example.com"),
        mode: "person-owns-org".into(),
        org: Some(format!("{slug}-org")),
        org_name: Some("Deploy: \"Org\"".into()),
        mail: onboard_bot::domain::MailPlan::Mailbox,
        feature: Some("agency-site".into()),
        brand_copy: Some("Hello # not a comment\nSecond line".into()),
        palette: Some("#112233,#aabbcc".into()),
        ..Default::default()
    }
    .parse(&OnboardingConfig::default())
    .unwrap()
}

/// What origin's main holds at `path`.
fn mail_zone(domain: &str) -> String {
    Lab::zone_text(
        domain,
        &format!(
            "@ MX 10 mail.{domain}.\nmail A 127.0.0.1\n@ TXT \"v=spf1 mx -all\"\ndefault._domainkey TXT \"v=DKIM1; k=rsa; p=AAAA\"\n_dmarc TXT \"v=DMARC1; p=quarantine\"\n"
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deploy_config_is_a_template_copy_with_only_values_changed_and_the_stub_is_served() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        lab.put_zone("deploy-one.com", &mail_zone("deploy-one.com"));
        let dbs = lab.fresh().await;
        dbs.own_vps_sites(&["deploy-one.com"]).await;
        let tmp = tempfile::tempdir().unwrap();
        let front = Arc::new(Scripted::approve_all());
        let engine = Engine::new(dbs.config(tmp.path(), |t| t), front.clone()).await.unwrap();
        let (id, out) = engine.run(owns_org("deploy-one"), &scripted::actor("ops"), StartOptions::default()).await.unwrap();
        assert_eq!(out.status, RunStatus::Done, "{out:?}");

        // The plan a person approved was the diff against the template.
        let plan = front.requests().into_iter().find(|r| r.step == "deploy-config").expect("deploy-config asked for approval");
        assert!(plan.detail.contains("copy deployments/@domains/_template/{provider}.com/services.yaml -> deployments/@domains/deploy-one.com/services.yaml"), "{}", plan.detail);
        // The template's own `{provider}` in a comment is left, and the approver is told first.
        assert!(
            plan.detail.starts_with("left as in the template: {provider} on 1 line(s)")
                && plan.detail.contains("deployments/@domains/deploy-one.com/services.yaml line 2: # Onboarding: cp -r _template/{provider}.com"),
            "{}",
            plan.detail
        );

        // services.yaml in origin: the template with exactly domain, feature and alias changed.
        let site = "deployments/@domains/deploy-one.com";
        // As the deploy-config commit left it (later steps sync the TLS conf and release it).
        let commit = git(&tmp.path().join("origin.git"), &["log", "--format=%H", "--grep=deploy config for", "main"]);
        let commit = commit.lines().next().expect("a deploy-config commit").to_owned();
        let at = |path: &str| origin_file_at(tmp.path(), &commit, path);
        let services = at(&format!("{site}/services.yaml")).expect("services.yaml pushed");
        let template = origin_file(tmp.path(), "deployments/@domains/_template/{provider}.com/services.yaml").unwrap();
        let changed: Vec<(&str, &str)> = template.lines().zip(services.lines()).filter(|(a, b)| a != b).collect();
        assert_eq!(template.lines().count(), services.lines().count(), "lines were added or removed:\n{services}");
        assert_eq!(changed.len(), 3, "{changed:#?}");
        // The comment keeps its column: two spaces fewer for a name two letters longer.
        assert!(services.contains("domain: deploy-one.com        # apex domain served by this site"), "{services}");
        assert!(services.contains("feature: agency-site") && services.contains("- www.deploy-one.com"));
        assert!(services.contains("held_back: true             # stays true until TLS is live"), "{services}");
        let deploy_sh = at(&format!("{site}/deploy.sh")).unwrap();
        assert!(deploy_sh.contains(&format!("REMOTE_DEST={}/vps/www/deploy-one.com\n", lab.dir.display())), "{deploy_sh}");
        let conf = at(&format!("{site}/nginx/prod.conf")).unwrap();
        assert!(conf.contains("server_name deploy-one.com www.deploy-one.com;"), "{conf}");
        // The brand went into org-site.yaml (quoted safely), the domain into the brand-mail config.
        let org_site: serde_norway::Value = serde_norway::from_str(&origin_file(tmp.path(), &format!("{site}/org-site.yaml")).unwrap()).unwrap();
        assert_eq!(org_site["brand"]["name"].as_str(), Some("Deploy: \"Org\""));
        assert_eq!(org_site["brand"]["copy"].as_str(), Some("Hello # not a comment\nSecond line"));
        assert_eq!(org_site["brand"]["palette"][1].as_str(), Some("#aabbcc"));
        let brands = origin_file(tmp.path(), "deployments/@domains/quinn.www/scripts/agency-brands.conf").unwrap();
        assert!(brands.ends_with("brand deploy-one.com mailbox dkim-selector=default\n"), "{brands}");
        // One commit naming the run, the slug and the approver.
        let log = git(&tmp.path().join("origin.git"), &["log", "-1", "--format=%B", &commit]);
        assert!(log.contains("onboard deploy-one") && log.contains(&id.to_string()) && log.contains("test:approver-1"), "{log}");

        // nginx on the VPS serves the stub for the domain (asked directly, not through the bot).
        let body = Command::new("curl")
            .args(["-sfL", "--resolve", "deploy-one.com:80:127.0.0.1", "--resolve", "deploy-one.com:443:127.0.0.1", "--cacert"])
            .arg(lab.dir.join("pebble/issuing-root.pem"))
            .arg("http://deploy-one.com/")
            .output()
            .unwrap();
        assert!(body.status.success() && String::from_utf8_lossy(&body.stdout).contains("coming soon"));

        // The same onboarding again: "already done", no new commit.
        let head = git(&tmp.path().join("origin.git"), &["rev-parse", "main"]);
        let (_, out) = engine.run(owns_org("deploy-one"), &scripted::actor("ops"), StartOptions::default()).await.unwrap();
        assert_eq!(out.status, RunStatus::Done);
        assert_eq!(git(&tmp.path().join("origin.git"), &["rev-parse", "main"]), head);
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dirty_or_diverged_checkout_is_refused_and_nothing_is_pushed() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        lab.put_zone("dirty-one.com", &mail_zone("dirty-one.com"));
        let dbs = lab.fresh().await;
        dbs.own_vps_sites(&["dirty-one.com"]).await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.config(tmp.path(), |t| t);
        let origin = tmp.path().join("origin.git");
        let checkout = tmp.path().join("checkout");
        git(
            tmp.path(),
            &[
                "clone",
                "-q",
                origin.to_str().unwrap(),
                checkout.to_str().unwrap(),
            ],
        );
        std::fs::write(
            checkout.join("stray.txt"),
            "someone edited the bot's checkout by hand\n",
        )
        .unwrap();
        let head = git(&origin, &["rev-parse", "main"]);

        let engine = Engine::new(cfg.clone(), Arc::new(Scripted::approve_all()))
            .await
            .unwrap();
        let (_, out) = engine
            .run(
                owns_org("dirty-one"),
                &scripted::actor("ops"),
                StartOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(out.status, RunStatus::Failed);
        assert!(
            out.message.contains("uncommitted changes") && out.message.contains("stray.txt"),
            "{}",
            out.message
        );
        assert_eq!(
            git(&origin, &["rev-parse", "main"]),
            head,
            "something was pushed"
        );

        // Diverged: a local commit and a different remote one.
        std::fs::remove_file(checkout.join("stray.txt")).unwrap();
        std::fs::write(checkout.join("local.txt"), "local\n").unwrap();
        git(&checkout, &["add", "local.txt"]);
        commit(&checkout, "local");
        let other = tmp.path().join("other");
        git(
            tmp.path(),
            &[
                "clone",
                "-q",
                origin.to_str().unwrap(),
                other.to_str().unwrap(),
            ],
        );
        std::fs::write(other.join("remote.txt"), "remote\n").unwrap();
        git(&other, &["add", "remote.txt"]);
        git(
            &other,
            &[
                "-c",
                "user.name=y",
                "-c",
                "user.email=y@y",
                "commit",
                "-qm",
                "remote",
            ],
        );
        git(&other, &["push", "-q", "origin", "main"]);
        let head = git(&origin, &["rev-parse", "main"]);
        let out = engine.execute(engine_run_id(&engine).await).await.unwrap();
        assert_eq!(out.status, RunStatus::Failed);
        assert!(
            out.message.contains("diverged") && out.message.contains("1 local and 1 remote"),
            "{}",
            out.message
        );
        assert_eq!(git(&origin, &["rev-parse", "main"]), head);
    })
    .await
}

async fn engine_run_id(engine: &Engine) -> uuid::Uuid {
    sqlx::query_scalar("SELECT id FROM runs ORDER BY created_at DESC LIMIT 1")
        .fetch_one(engine.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stub_deploy_is_refused_while_dns_does_not_point_at_the_vps() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        lab.put_zone("moved-one.com", &mail_zone("moved-one.com"));
        let dbs = lab.fresh().await;
        dbs.own_vps_sites(&["moved-one.com"]).await;
        let tmp = tempfile::tempdir().unwrap();
        // The DNS gate passed; then, while the deploy config is being approved, someone points
        // the domain elsewhere. The stub deploy must check again and refuse.
        let front = Arc::new(Scripted::new(|req, _| {
            if req.step == "deploy-config" {
                Lab::get().put_zone(
                    "moved-one.com",
                    &mail_zone("moved-one.com").replace("@ A 127.0.0.1", "@ A 10.7.7.7"),
                );
            }
            scripted::approve("approver-1")
        }));
        let engine = Engine::new(dbs.config(tmp.path(), |t| t), front.clone())
            .await
            .unwrap();
        let (_, out) = engine
            .run(
                owns_org("moved-one"),
                &scripted::actor("ops"),
                StartOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(out.status, RunStatus::Failed);
        assert!(
            out.message.contains("deploy refused for moved-one.com")
                && out.message.contains("10.7.7.7")
                && out.message.contains("points at 127.0.0.1"),
            "{}",
            out.message
        );
        assert!(
            front.requests().iter().all(|r| r.step != "deploy-stub"),
            "a refused deploy asked for approval"
        );
        let served = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--resolve",
                "moved-one.com:80:127.0.0.1",
                "http://moved-one.com/",
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&served.stdout),
            "404",
            "the site must not be deployed"
        );
    })
    .await
}

/// nginx itself accepts the site file edited from every template style of the corpus
/// (tests/fixtures/templates), quoted arguments and CRLF line ends included, with a root that
/// needs quoting (`nginx -t`, as deploy-stub's `--nginx` runs it on the VPS).
#[test]
fn nginx_accepts_the_site_file_edited_from_every_template_style() {
    crate::support::harness::blocking(Duration::from_secs(60), || {
        let corpus =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates");
        let tmp = tempfile::tempdir().unwrap();
        let mut styles = 0;
        for entry in std::fs::read_dir(&corpus).unwrap() {
            let template = entry.unwrap().path().join("template/nginx/prod.conf");
            let Ok(text) = std::fs::read_to_string(&template) else {
                continue;
            };
            let domain = onboard_bot::domain::DomainName::parse("merche.com").unwrap();
            let site = onboard_bot::templating::nginx_conf(&text, &domain, "/var/www/merche site")
                .unwrap();
            let site_path = tmp.path().join("site.conf");
            std::fs::write(&site_path, &site).unwrap();
            let main = tmp.path().join("nginx.conf");
            std::fs::write(
                &main,
                format!(
                    "error_log stderr;\npid {}/nginx.pid;\nevents {{}}\nhttp {{ access_log off; include {}; }}\n",
                    tmp.path().display(),
                    site_path.display()
                ),
            )
            .unwrap();
            let out = Command::new("nginx")
                .arg("-p")
                .arg(tmp.path())
                .arg("-c")
                .arg(&main)
                .args(["-q", "-T"])
                .output()
                .unwrap();
            let dump = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{}: {}\n{site}",
                template.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                dump.contains("merche.com") && dump.contains("merche site"),
                "{dump}"
            );
            styles += 1;
        }
        assert!(styles >= 6, "{styles} template styles");
    });
}
