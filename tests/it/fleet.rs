//! The fleet in the lab: an onboarding onto vps-1 (its own sshd, nginx tree and certbot, an
//! IPv6 address) ends with its site on vps-1 only, its certificate served by vps-1's nginx on
//! both addresses, DNS checked against vps-1's addresses (A and AAAA), and the later commands
//! (`/cert`, `dns-check`, `/abandon`) acting on vps-1 from the records.

use crate::support::harness::within;
use crate::support::{lab, onboarding, scripted};

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lab::{Lab, origin_file};
use onboard_bot::adapters::tls;
use onboard_bot::dnscheck::{Rtype, Status};
use onboard_bot::domain::DomainName;
use onboard_bot::engine::{Engine, StartOptions};
use onboard_bot::request::{DnsCheckRequest, Request};
use onboard_bot::state::runs::RunStatus;
use scripted::Scripted;

const TIMEOUT: Duration = Duration::from_secs(300);

/// Whether `path` (a file, a symlink, a directory) is in the lab's tree of a VPS.
fn on(lab: &Lab, vps_dir: &str, path: &str) -> bool {
    Path::new(&lab.dir.join(vps_dir).join(path))
        .symlink_metadata()
        .is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_onboarding_onto_vps_1_ends_with_its_site_on_vps_1_only() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let domain = "fleet-one.com";
        let (v4, v6) = (lab.env("LAB_VPS1_IPV4"), lab.env("LAB_VPS1_IPV6"));
        lab.put_zone(domain, &lab.vps1_zone_text(domain));
        let dbs = lab.fresh().await;
        dbs.own_vps_sites(&[domain]).await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.config(tmp.path(), |t| t);
        let front = Arc::new(Scripted::approve_all());
        let engine = Engine::new(cfg.clone(), front.clone()).await.unwrap();
        let ops = scripted::actor("ops");
        let args = onboard_bot::commands::onboard::OnboardArgs {
            vps: Some("vps-1".into()),
            ..onboarding::person_only("fleet-one", "Fleet Person")
        };
        let request = args.parse_in(&cfg).unwrap();
        let (id, out) = engine.run(request, &ops, StartOptions::default()).await.unwrap();
        assert_eq!(out.status, RunStatus::Done, "{out:?}");
        // One SSH master per VPS for the whole run: vps-1 for its steps, vps-0 only for the
        // preflight's look at whether it already serves the domain.
        let masters = engine.services().ssh_masters_opened();
        assert_eq!(masters.get("vps-1"), Some(&1), "{masters:?}");
        assert!(masters.get("vps-0").is_none_or(|n| *n == 1), "{masters:?}");

        // The run and the site record name vps-1.
        let state = dbs.state_admin().await;
        let (recorded, site_vps): (Option<String>, String) = sqlx::query_as(
            "SELECT r.input->>'vps', s.vps FROM runs r JOIN sites s ON s.run_id = r.id WHERE r.id = $1 AND s.domain = $2",
        )
        .bind(id)
        .bind(domain)
        .fetch_one(&state)
        .await
        .unwrap();
        assert_eq!((recorded.as_deref(), site_vps.as_str()), (Some("vps-1"), "vps-1"));

        // DNS was checked against vps-1's addresses, A and AAAA, before certbot ran there.
        let cert_plan = front.requests().into_iter().find(|r| r.step == "cert").expect("cert asked for approval");
        for want in [
            format!("A record of {domain} points at {v4} (vps-1)"),
            format!("AAAA record of {domain} points at {v6} (vps-1)"),
            "run on vps-1: certbot --nginx".to_owned(),
        ] {
            assert!(cert_plan.detail.contains(&want), "{want} in:\n{}", cert_plan.detail);
        }

        // The site is on vps-1 only: site file, link, webroot, certificate lineage.
        for path in [
            format!("nginx/sites-available/{domain}"),
            format!("nginx/sites-enabled/{domain}"),
            format!("www/{domain}/index.html"),
            format!("letsencrypt/live/{domain}"),
        ] {
            assert!(on(&lab, "vps-1", &path), "{path} on vps-1");
            assert!(!on(&lab, "vps", &path), "{path} must not be on vps-0");
        }
        // The repo's deploy target is vps-1: its ssh host and its paths.
        let deploy_sh = origin_file(tmp.path(), &format!("deployments/@domains/{domain}/deploy.sh")).unwrap();
        assert!(deploy_sh.contains("\nREMOTE_HOST=quinn-vps-1\n"), "{deploy_sh}");
        assert!(deploy_sh.contains(&format!("\nREMOTE_DEST={}/vps-1/www/{domain}\n", lab.dir.display())), "{deploy_sh}");
        // The conf synced back is certbot's from vps-1, listening on IPv6 too.
        let conf = origin_file(tmp.path(), &format!("deployments/@domains/{domain}/nginx/prod.conf")).unwrap();
        assert!(conf.contains(&format!("{}/vps-1/letsencrypt/live/{domain}/fullchain.pem", lab.dir.display())), "{conf}");
        assert!(conf.contains("listen [::]:443 ssl"), "{conf}");

        // vps-1's nginx serves the certificate from the lab's ACME CA on both of its addresses;
        // vps-0's does not serve the domain at all.
        let roots = lab.dir.join("pebble/issuing-root.pem");
        for ip in [v4.as_str(), v6.as_str()] {
            let s = tls::status(domain, ip.parse().unwrap(), Some(&roots), Duration::from_secs(10)).await.unwrap();
            assert!(s.is_good(), "{ip}: {}", s.render());
        }
        let on_vps0 = tls::status(domain, "127.0.0.1".parse().unwrap(), Some(&roots), Duration::from_secs(10)).await;
        assert!(on_vps0.as_ref().is_err() || !on_vps0.as_ref().unwrap().is_good(), "vps-0 serves {domain}: {on_vps0:?}");

        // dns-check expects vps-1's addresses, from the site's record.
        let (report, _) = engine
            .dns_check(&DnsCheckRequest { domain: DomainName::parse(domain).unwrap(), mail: None, wait: None }, |_, _| {})
            .await
            .unwrap();
        let aaaa = report.records.iter().find(|r| r.expected.rtype == Rtype::AAAA).expect("an AAAA record is expected");
        assert!(format!("{:?}", aaaa.expected.want).contains(&v6), "{:?}", aaaa.expected);
        assert!(report.records.iter().all(|r| r.status == Status::Ok), "{report:?}");

        // /cert finds vps-1 from the site record: the certificate it serves there is good.
        let cert = engine.cert_request(DomainName::parse(domain).unwrap(), None).await.unwrap();
        assert!(matches!(&cert, Request::Cert(c) if c.vps.as_ref().map(|v| v.as_str()) == Some("vps-1")), "{cert:?}");
        let (_, out) = engine.run(cert, &ops, StartOptions::default()).await.unwrap();
        assert_eq!(out.status, RunStatus::Done, "{out:?}");

        // Abandoned, the site comes off vps-1 (vps-0 was never touched).
        let abandon = engine.abandon_request(id, &ops, "wrong VPS").await.unwrap();
        let (_, out) = engine.run(abandon, &ops, StartOptions::default()).await.unwrap();
        assert_eq!(out.status, RunStatus::Done, "{out:?}");
        for path in [format!("nginx/sites-available/{domain}"), format!("www/{domain}"), format!("letsencrypt/live/{domain}")] {
            assert!(!on(&lab, "vps-1", &path), "{path} left on vps-1 after the abandon");
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_domain_served_on_vps_0_is_refused_for_an_onboarding_onto_vps_1() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let domain = "fleet-taken.com";
        lab.put_zone(domain, &lab.vps1_zone_text(domain));
        let dbs = lab.fresh().await;
        dbs.own_vps_sites(&[domain]).await;
        // Somebody's nginx site for the domain on vps-0, in no record of the bot's.
        let theirs = lab.dir.join("vps/nginx/sites-available").join(domain);
        std::fs::write(
            &theirs,
            format!("server {{ listen 80; server_name {domain}; return 404; }}\n"),
        )
        .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.config(tmp.path(), |t| t);
        let engine = Engine::new(cfg.clone(), Arc::new(Scripted::approve_all()))
            .await
            .unwrap();
        let args = onboard_bot::commands::onboard::OnboardArgs {
            vps: Some("vps-1".into()),
            ..onboarding::person_only("fleet-taken", "Taken Person")
        };
        let (_, out) = engine
            .run(
                args.parse_in(&cfg).unwrap(),
                &scripted::actor("ops"),
                StartOptions::default(),
            )
            .await
            .unwrap();
        let _ = std::fs::remove_file(&theirs);
        assert_eq!(out.status, RunStatus::Failed, "{out:?}");
        let want = format!(
            "{domain} is already served: found the nginx site {} on vps-0",
            theirs.display()
        );
        assert!(out.message.contains(&want), "{want} in: {}", out.message);
        // Nothing was put on vps-1.
        assert!(!on(
            &lab,
            "vps-1",
            &format!("nginx/sites-available/{domain}")
        ));
    })
    .await
}
