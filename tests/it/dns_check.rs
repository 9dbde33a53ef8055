//! /dns-check against the lab's authoritative server (knot), plus a SERVFAIL responder, a
//! silent server and a closed port; and an onboarding run parked on DNS that continues once
//! the records hold.

use crate::support::harness::within;
use crate::support::{lab, scripted};

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use lab::Lab;
use onboard_bot::adapters::dns;
use onboard_bot::commands::onboard::OnboardArgs;
use onboard_bot::config::{DnsConfig, OnboardingConfig};
use onboard_bot::dnscheck::{self, MailPattern, Status};
use onboard_bot::domain::{DomainName, MailPlan};
use onboard_bot::engine::{Engine, StartOptions};
use onboard_bot::frontend::RunEvent;
use onboard_bot::state::runs::{RunStatus, StepStatus};

const KNOT: &str = "127.0.0.1:53";
const DKIM: &str = "default._domainkey TXT \"v=DKIM1; k=rsa; p=MIIBIjANBgkq\"";

fn mail_zone(zone: &str, spf: &str, dmarc: &str, dkim: bool) -> String {
    let mut extra = format!("@ MX 10 mail.{zone}.\nmail A 127.0.0.1\n{spf}\n{dmarc}\n");
    if dkim {
        extra.push_str(DKIM);
        extra.push('\n');
    }
    Lab::zone_text(zone, &extra)
}

async fn check(servers: DnsConfig, domain: &str, mail: MailPlan) -> dnscheck::Report {
    let d = DomainName::parse(domain).unwrap();
    let p = MailPattern::default();
    let expected = dnscheck::expected_records(&d, "127.0.0.1".parse().unwrap(), None, mail, &p);
    dns::check_domain(&servers, &expected, domain, &p)
        .await
        .expect("check runs")
}

fn knot_only() -> DnsConfig {
    DnsConfig {
        authoritative: vec![KNOT.parse().unwrap()],
        resolvers: vec![],
        timeout_secs: 2,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_correct_zone_passes_and_each_broken_variant_is_diagnosed() {
    within(Duration::from_secs(120), async {
        let lab = Lab::get();
        let good = "dnsgood.com";
        lab.put_zone(good, &mail_zone(good, "@ TXT \"v=spf1 mx -all\"", "_dmarc TXT \"v=DMARC1; p=quarantine\"", true));
        let report = check(knot_only(), good, MailPlan::Mailbox).await;
        assert!(report.all_ok(), "{}", dnscheck::render(&report));
        assert_eq!(report.records[0].ttl, Some(300));

        let spf = "@ TXT \"v=spf1 mx -all\"";
        let dmarc = "_dmarc TXT \"v=DMARC1; p=quarantine\"";
        let cases: Vec<(&str, String, &str)> = vec![
            ("dns-a-elsewhere.com", Lab::zone_text("dns-a-elsewhere.com", "").replace("@ A 127.0.0.1", "@ A 10.9.9.9"), "points at 10.9.9.9, not the VPS 127.0.0.1"),
            ("dns-two-spf.com", mail_zone("dns-two-spf.com", &format!("{spf}\n@ TXT \"v=spf1 a -all\""), dmarc, true), "2 SPF records"),
            (
                "dns-spf-long.com",
                mail_zone("dns-spf-long.com", "@ TXT \"v=spf1 include:a.x include:b.x include:c.x include:d.x include:e.x include:f.x a mx ptr exists:x.y include:g.x -all\"", dmarc, true),
                "11 DNS lookups",
            ),
            ("dns-spf-syntax.com", mail_zone("dns-spf-syntax.com", "@ TXT \"v=spf1 mx allow-everyone -all\"", dmarc, true), "`allow-everyone` is not a valid SPF term"),
            ("dns-dmarc-nop.com", mail_zone("dns-dmarc-nop.com", spf, "_dmarc TXT \"v=DMARC1; rua=mailto:d@dns-dmarc-nop.com\"", true), "has no p= policy"),
            ("dns-no-dkim.com", mail_zone("dns-no-dkim.com", spf, dmarc, false), "DKIM selector missing"),
            // www exists (it has a TXT) but has no address: no data, not NXDOMAIN.
            ("dns-www-nodata.com", Lab::zone_text("dns-www-nodata.com", "").replace("www CNAME @", "www TXT \"placeholder\""), "no such record (no data)"),
            ("dns-www-nx.com", Lab::zone_text("dns-www-nx.com", "").replace("www CNAME @", ""), "does not exist (NXDOMAIN)"),
        ];
        for (zone, text, want) in cases {
            lab.put_zone(zone, &text);
            let mail = if text.contains("MX") { MailPlan::Mailbox } else { MailPlan::None };
            let report = check(knot_only(), zone, mail).await;
            let rendered = dnscheck::render(&report);
            assert!(!report.all_ok(), "{zone} passed:\n{rendered}");
            assert!(rendered.contains(want), "{zone}: expected {want:?} in\n{rendered}");
            assert!(report.diagnoses.iter().all(|d| !d.fix.is_empty()), "every problem has a fix");
        }

        // A domain with no zone at all is NXDOMAIN... from a server that is not authoritative
        // for it: knot refuses, which is reported as server trouble, not as "missing".
        let report = check(knot_only(), "never-delegated.com", MailPlan::None).await;
        assert!(report.records.iter().all(|r| r.status == Status::ServerTrouble), "{}", dnscheck::render(&report));
    })
    .await
}

/// A DNS server that answers every query with SERVFAIL.
async fn servfail_server() -> SocketAddr {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
            if n < 12 {
                continue;
            }
            let mut resp = buf[..n].to_vec();
            resp[2] = 0x80 | (buf[2] & 0x79); // QR=1, keep opcode and RD
            resp[3] = 0x80 | 2; // RA=1, RCODE=SERVFAIL
            resp[6..12].fill(0); // no answer, authority or additional records
            // Keep only the question section (drop an OPT record the query carried).
            let qend = 12 + question_len(&buf[12..n]).unwrap_or(n - 12);
            resp.truncate(qend);
            let _ = sock.send_to(&resp, peer).await;
        }
    });
    addr
}

fn question_len(q: &[u8]) -> Option<usize> {
    let mut i = 0;
    while *q.get(i)? != 0 {
        i += 1 + *q.get(i)? as usize;
    }
    Some(i + 1 + 4)
}

#[tokio::test(flavor = "multi_thread")]
async fn servfail_timeouts_and_dead_servers_are_reported_per_server() {
    within(Duration::from_secs(120), async {
        let lab = Lab::get();
        lab.serve_domains(&["dns-trouble.com"]);
        let servfail = servfail_server().await;
        // Bound but never answering: every query to it times out.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let silent_addr = silent.local_addr().unwrap();
        // Nothing listens here: the connection is refused.
        let closed: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let cfg = DnsConfig {
            authoritative: vec![KNOT.parse().unwrap()],
            resolvers: vec![servfail, silent_addr, closed],
            timeout_secs: 1,
        };
        let report = check(cfg, "dns-trouble.com", MailPlan::None).await;
        let rendered = dnscheck::render(&report);
        // The authoritative answers are judged despite the broken resolvers.
        assert!(report.authoritative_ok(), "{rendered}");
        for (server, what) in [(servfail, "SERVFAIL"), (silent_addr, "timed out")] {
            assert!(
                report
                    .diagnoses
                    .iter()
                    .any(|d| d.problem.contains(&server.to_string()) && d.problem.contains(what)),
                "{server} should be reported as {what}:\n{rendered}"
            );
        }
        assert!(
            report
                .diagnoses
                .iter()
                .any(|d| d.problem.contains(&closed.to_string())),
            "{rendered}"
        );
        drop(silent);
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_prints_the_report_and_a_zone_snippet() {
    within(Duration::from_secs(120), async {
        let lab = Lab::get();
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = dbs.write_config(tmp.path(), |t| {
            t.replace("resolvers: [\"127.0.0.1:53\"]", "resolvers: []")
        });
        lab.put_zone(
            "dns-cli.com",
            &Lab::zone_text("dns-cli.com", "").replace("www CNAME @", ""),
        );
        let bin = env!("CARGO_BIN_EXE_onboard-bot");
        let out = Command::new(bin)
            .args(["dns-check", "dns-cli.com", "--mail", "mailbox", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("Add these records at the DNS provider:"),
            "{stdout}"
        );
        assert!(
            stdout.contains("www.dns-cli.com.") && stdout.contains("IN A      127.0.0.1"),
            "{stdout}"
        );
        assert!(stdout.contains("IN MX    10 mail.dns-cli.com."), "{stdout}");

        lab.put_zone("dns-cli.com", &Lab::zone_text("dns-cli.com", ""));
        let out = Command::new(bin)
            .args([
                "dns-check",
                "dns-cli.com",
                "--wait",
                "--deadline-secs",
                "30",
                "--config",
            ])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let out = Command::new(bin)
            .args(["dns-check", "not a domain", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("invalid input: domain:"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_onboarding_parks_on_dns_and_continues_once_the_records_hold() {
    within(Duration::from_secs(120), async {
        let lab = Lab::get();
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        // A long re-check interval: only the nudge can make the run continue within the test.
        let cfg = dbs.config(tmp.path(), |t| {
            t.replace("recheck_secs: 1", "recheck_secs: 3600")
        });
        dbs.own_vps_sites(&["parked-one.com"]).await;
        lab.put_zone(
            "parked-one.com",
            &Lab::zone_text("parked-one.com", "").replace("@ A 127.0.0.1", "@ A 10.1.2.3"),
        );
        let front = Arc::new(scripted::Scripted::approve_all());
        let engine = Engine::new(cfg, front.clone()).await.unwrap();
        let req = OnboardArgs {
            slug: "parked-one".into(),
            name: "Parked One".into(),
            email: "p@example.com".into(),
            mode: "person-only".into(),
            ..Default::default()
        }
        .parse(&OnboardingConfig::default())
        .unwrap();
        let runner = {
            let engine = engine.clone();
            tokio::spawn(async move {
                engine
                    .run(req, &scripted::actor("ops"), StartOptions::default())
                    .await
                    .unwrap()
            })
        };
        let parked = front
            .wait_for_event(|e| {
                matches!(
                    e,
                    RunEvent::Step {
                        status: StepStatus::Parked,
                        ..
                    }
                )
            })
            .await;
        let RunEvent::Step { message, .. } = parked else {
            unreachable!()
        };
        assert!(
            message.contains("waiting for DNS") && message.contains("10.1.2.3"),
            "{message}"
        );
        // The operator fixes the record at the registrar, then runs /dns-check.
        lab.put_zone("parked-one.com", &Lab::zone_text("parked-one.com", ""));
        engine.nudge_domain("parked-one.com").await.unwrap();
        let (_, outcome) = runner.await.unwrap();
        assert_eq!(outcome.status, RunStatus::Done, "{outcome:?}");
    })
    .await
}
