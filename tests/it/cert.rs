//! /cert in the lab: certbot --nginx over SSH against pebble, the conf synced back into the
//! repo, held_back flipped, HTTPS served with a certificate from the lab CA; failures reported
//! with certbot's useful lines; two runs on the same VPS serialised.

use crate::support::harness::within;
use crate::support::{lab, onboarding, scripted};

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use lab::{Lab, origin_file};
use onboard_bot::adapters::tls;
use onboard_bot::engine::{Engine, RunOutcome, StartOptions};
use onboard_bot::request::Request;
use onboard_bot::state::runs::RunStatus;
use scripted::Scripted;

const TIMEOUT: Duration = Duration::from_secs(300);

fn person(slug: &str) -> Request {
    onboarding::request(onboarding::person_only(slug, "Cert Person"))
}

/// Onboards `slug` with `{slug}.com`; the returned databases hold the domain on the lab VPS
/// until the test drops them.
async fn onboard<'l>(
    lab: &'l Lab,
    slug: &str,
    edit: impl FnOnce(String) -> String,
) -> (
    RunOutcome,
    tempfile::TempDir,
    Arc<Scripted>,
    lab::TestDbs<'l>,
) {
    lab.serve_domains(&[&format!("{slug}.com")]);
    let dbs = lab.fresh().await;
    dbs.own_vps_sites(&[&format!("{slug}.com")]).await;
    let tmp = tempfile::tempdir().unwrap();
    let front = Arc::new(Scripted::approve_all());
    let engine = Engine::new(dbs.config(tmp.path(), edit), front.clone())
        .await
        .unwrap();
    let (_, out) = engine
        .run(
            person(slug),
            &scripted::actor("ops"),
            StartOptions::default(),
        )
        .await
        .unwrap();
    (out, tmp, front, dbs)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_domain_gets_a_certificate_its_conf_synced_back_and_is_released() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let (out, tmp, front, _dbs) = onboard(&lab, "cert-one", |t| t).await;
        assert_eq!(out.status, RunStatus::Done, "{out:?}");
        let cert_plan = front.requests().into_iter().find(|r| r.step == "cert").expect("cert asked for approval");
        assert!(
            cert_plan.detail.contains("certbot --nginx -d cert-one.com -d www.cert-one.com --non-interactive --agree-tos -m cert-one@example.com --redirect"),
            "{}",
            cert_plan.detail
        );

        // The synced conf in the repo carries the ssl lines certbot added.
        let conf = origin_file(tmp.path(), "deployments/@domains/cert-one.com/nginx/prod.conf").unwrap();
        assert!(conf.contains("listen 443 ssl; # managed by Certbot"), "{conf}");
        assert!(conf.contains("ssl_certificate ") && conf.contains("return 301 https://$host$request_uri;"), "{conf}");
        // held_back flipped, comments kept.
        let services = origin_file(tmp.path(), "deployments/@domains/cert-one.com/services.yaml").unwrap();
        assert!(services.contains("held_back: false") && services.contains("# stays true until TLS is live"), "{services}");

        // HTTPS serves a certificate issued by the lab CA, for the apex and www.
        let roots = lab.dir.join("pebble/issuing-root.pem");
        let status = tls::status("cert-one.com", "127.0.0.1".parse().unwrap(), Some(&roots), Duration::from_secs(10)).await.unwrap();
        assert!(status.is_good(), "{}", status.render());
        assert!(status.issuer.contains("Pebble"), "{}", status.render());
        // ... and it does not validate against the public roots: the check can fail.
        let public = tls::status("cert-one.com", "127.0.0.1".parse().unwrap(), None, Duration::from_secs(10)).await.unwrap();
        assert!(public.chain.is_err());

        // `cert status` on the command line says the same.
        let cfg = tmp.path().join("bot.yaml");
        let out = Command::new(env!("CARGO_BIN_EXE_onboard-bot")).args(["cert", "status", "cert-one.com", "--config"]).arg(&cfg).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && stdout.contains("apex yes, www yes") && stdout.contains("valid against the configured roots"), "{stdout}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_acme_ca_fails_clearly_and_commits_nothing() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        // certbot pointed at a CA that is not there (as when pebble is stopped): connection refused.
        let (out, tmp, _, _dbs) = onboard(&lab, "cert-noca", |t| {
            // vps-0's ACME server (config/lab.yaml fills `--server` from each VPS's vars).
            let (from, to) = (
                "ACME_DIRECTORY: \"https://127.0.0.1:14000/dir\"",
                "ACME_DIRECTORY: \"https://127.0.0.1:14999/dir\"",
            );
            assert!(
                t.contains(from),
                "config/lab.yaml names vps-0's ACME server"
            );
            t.replace(from, to)
        })
        .await;
        assert_eq!(out.status, RunStatus::Failed);
        assert!(
            out.message.contains("the ACME CA could not be reached"),
            "{}",
            out.message
        );
        assert!(out.message.contains("certbot said:"), "{}", out.message);
        assert!(
            out.message
                .contains("nothing was committed and the run can be resumed"),
            "{}",
            out.message
        );
        let conf = origin_file(
            tmp.path(),
            "deployments/@domains/cert-noca.com/nginx/prod.conf",
        )
        .unwrap();
        assert!(
            !conf.contains("Certbot"),
            "a failed cert step changed the repo"
        );
        let services = origin_file(
            tmp.path(),
            "deployments/@domains/cert-noca.com/services.yaml",
        )
        .unwrap();
        assert!(services.contains("held_back: true"));
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn two_cert_runs_on_the_same_vps_both_succeed_one_after_the_other() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        // Two bot instances (two engines, two SSH masters): only the lock on the VPS keeps
        // their certbots apart.
        let (a, b) = tokio::join!(
            onboard(&lab, "cert-par-a", |t| t),
            onboard(&lab, "cert-par-b", |t| t)
        );
        assert_eq!(a.0.status, RunStatus::Done, "{:?}", a.0);
        assert_eq!(b.0.status, RunStatus::Done, "{:?}", b.0);
        let roots = lab.dir.join("pebble/issuing-root.pem");
        for d in ["cert-par-a.com", "cert-par-b.com"] {
            let s = tls::status(
                d,
                "127.0.0.1".parse().unwrap(),
                Some(&roots),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
            assert!(s.is_good(), "{}", s.render());
        }
    })
    .await
}
