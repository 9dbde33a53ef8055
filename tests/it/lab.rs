//! The lab itself: every component answers, through the bot's own adapters where it has one
//! (so `config check` and the steps talk to the same servers the lab runs).

use crate::support::harness::within;
use crate::support::lab;

use std::process::Command;
use std::time::Duration;

use lab::Lab;
use onboard_bot::adapters::{dns, http, ssh};
use onboard_bot::dnscheck::{Answer, Role, Rtype};

#[tokio::test(flavor = "multi_thread")]
async fn every_lab_component_answers() {
    within(Duration::from_secs(120), async {
        let lab = Lab::get();
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.config(tmp.path(), |t| t);

        // SQL: the primary, and the standby in recovery.
        let primary = lab.admin("platform").await;
        let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&primary).await.unwrap();
        assert!(users >= 3, "the seed tenants are there");
        let standby = lab.admin_on("platform", 5433).await;
        let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()").fetch_one(&standby).await.unwrap();
        assert!(in_recovery);

        // Each VPS of the fleet over SSH, key-only, host key checked.
        let names: Vec<&str> = cfg.fleet.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["vps-0", "vps-1"]);
        for vps in &cfg.fleet {
            let detail = ssh::check(vps).await.unwrap_or_else(|e| panic!("ssh {} true: {e:#}", vps.ssh_host));
            assert!(detail.contains("runs commands"));
        }
        // vps-1 is another host: its own addresses (IPv4 and IPv6), its own nginx answering
        // on both, and its certbot reaches the ACME CA.
        let vps1 = &cfg.fleet[1];
        assert_eq!((vps1.ipv4.to_string(), vps1.ipv6.map(|a| a.to_string())), (lab.env("LAB_VPS1_IPV4"), Some(lab.env("LAB_VPS1_IPV6"))));
        let session = ssh::connect(vps1).await.unwrap();
        let out = ssh::run(&session, "ip", &["-brief", "address", "show", "eth0"], Duration::from_secs(10)).await.unwrap();
        assert!(out.stdout.contains(&lab.env("LAB_VPS1_IPV4")) && out.stdout.contains(&lab.env("LAB_VPS1_IPV6")), "{}", out.stdout);
        let out = ssh::run(&session, "sh", &["-c", "echo $NGINX_CMD"], Duration::from_secs(10)).await.unwrap();
        assert_eq!(out.stdout.trim(), lab.env("LAB_VPS1_NGINX_CMD"));
        let acme = lab.env("LAB_VPS1_ACME_DIRECTORY");
        let out = ssh::run(&session, "curl", &["-fsS", "-o", "/dev/null", "--cacert", &lab.dir.join("pebble/ca.pem").display().to_string(), &acme], Duration::from_secs(10)).await.unwrap();
        assert!(out.success, "vps-1 reaches pebble at {acme}: {}", out.stderr);
        for ip in [std::net::IpAddr::from(vps1.ipv4), vps1.ipv6.unwrap().into()] {
            let got = http::get("http", "unknown.invalid", "/", ip, None, Duration::from_secs(10)).await.unwrap();
            assert_eq!(got.status, 404, "vps-1's nginx default server on {ip}");
        }
        // And a wrong host key is refused.
        let mut bad = cfg.fleet[0].clone();
        let empty = tmp.path().join("empty_known_hosts");
        std::fs::write(&empty, "").unwrap();
        bad.known_hosts = empty;
        assert!(ssh::check(&bad).await.is_err(), "an unknown host key must be refused");

        // DNS: the authoritative server answers for a seeded zone.
        let obs = dns::observe(&[("127.0.0.1:53".parse().unwrap(), Role::Authoritative)], &[("quinn.com".into(), Rtype::A)], Duration::from_secs(2))
            .await
            .unwrap();
        let answer = obs.values().next().unwrap().values().next().unwrap();
        assert!(matches!(answer, Answer::Records { values, .. } if values == &vec!["127.0.0.1".to_string()]), "{answer:?}");

        // The ACME CA's directory, over its own lab CA (pebble listens on 14000).
        let ca = reqwest::Certificate::from_pem(&std::fs::read(lab.dir.join("pebble/ca.pem")).unwrap()).unwrap();
        let client = reqwest::Client::builder().tls_built_in_root_certs(false).add_root_certificate(ca).no_proxy().build().unwrap();
        let dir = client.get("https://127.0.0.1:14000/dir").send().await.expect("ACME directory");
        assert_eq!(dir.status(), 200);
        assert!(dir.text().await.unwrap().contains("newAccount"));

        // The portal stand-in, over HTTPS with the lab CA. In one test binary this may run
        // right after a test that restarted PostgreSQL (the portal reads it) or beside one
        // whose new tenant makes the portal re-issue its certificate and reload nginx: a
        // first request was seen to take over 5 s then, so it gets 30.
        let portal = http::get("https", "quinn.my", "/", "127.0.0.1".parse().unwrap(), Some(&lab.dir.join("pebble/ca.pem")), Duration::from_secs(30)).await.unwrap();
        assert_eq!(portal.status, 200);
        assert!(portal.body.contains("Signed in as Quinn (quinn)"), "{}", portal.body);

        // The platform repo's bare origin.
        let out = Command::new("git").args(["--git-dir"]).arg(lab.dir.join("platform.git")).args(["rev-parse", "main"]).output().unwrap();
        assert!(out.status.success());

        // And the bot's own `config check` agrees, one OK line per connection.
        let cfg_path = tmp.path().join("bot.yaml");
        let out = Command::new(env!("CARGO_BIN_EXE_onboard-bot")).args(["config", "check", "--config"]).arg(&cfg_path).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        for what in ["state DB", "tenant DB", "SSH", "DNS"] {
            assert!(stdout.lines().any(|l| l.starts_with("OK") && l.contains(what)), "{what} in:\n{stdout}");
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn config_check_reports_each_failure_on_its_own_line() {
    within(Duration::from_secs(120), async {
        let lab = Lab::get();
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        // The tenant DB on the standby (its `platform` database), and an SSH host that does not exist.
        let copy = format!(
            "port: 5432\n  user: onboard_writer\n  database: {}",
            dbs.platform
        );
        let cfg = dbs.write_config(tmp.path(), |t| {
            t.replace(
                &copy,
                "port: 5433\n  user: onboard_writer\n  database: platform",
            )
            .replace("ssh_host: quinn-vps", "ssh_host: no-such-host")
        });
        let out = Command::new(env!("CARGO_BIN_EXE_onboard-bot"))
            .args(["config", "check", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("OK") && l.contains("state DB")),
            "{stdout}"
        );
        assert!(
            stdout.lines().any(|l| l.starts_with("FAIL")
                && l.contains("tenant DB")
                && l.contains("in recovery: true")),
            "{stdout}"
        );
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("FAIL") && l.contains("SSH")),
            "{stdout}"
        );
    })
    .await;
}
