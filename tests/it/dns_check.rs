//! /dns-check against the lab's authoritative server (knot), plus a SERVFAIL responder, a
//! silent server and a closed port, a front to knot that serves a CNAME beside other records
//! (which knot refuses to load); and an onboarding run parked on DNS that continues once the
//! records hold.

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
use onboard_bot::dnscheck::{self, Answer, MailPattern, Role, Rtype, Severity, Status};
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

/// The row `name t` of a report.
fn row<'a>(r: &'a dnscheck::Report, name: &str, t: Rtype) -> &'a dnscheck::RecordReport {
    r.records
        .iter()
        .find(|x| x.expected.name == name && x.expected.rtype == t)
        .unwrap_or_else(|| panic!("no row {name} {t}:\n{}", dnscheck::render(r)))
}

/// Checks that a problem containing `problem` is reported on the row `name t`, which shows it
/// with `status`, and returns it.
fn shown<'a>(
    r: &'a dnscheck::Report,
    name: &str,
    t: Rtype,
    status: Status,
    problem: &str,
) -> &'a dnscheck::Diagnosis {
    let text = dnscheck::render(r);
    let x = row(r, name, t);
    assert_eq!(x.status, status, "{name} {t}:\n{text}");
    assert!(
        x.problems.iter().any(|p| p.contains(problem)),
        "{name} {t} should show {problem:?}:\n{text}"
    );
    let d = r
        .diagnoses
        .iter()
        .find(|d| d.problem.contains(problem))
        .unwrap();
    assert_eq!(d.record, Some((name.to_owned(), t)));
    assert!(!d.fix.is_empty());
    d
}

#[tokio::test(flavor = "multi_thread")]
async fn each_problem_the_check_used_to_miss_is_diagnosed_with_its_fix() {
    within(Duration::from_secs(120), async {
        let lab = Lab::get();
        let spf = "@ TXT \"v=spf1 mx -all\"";
        let dmarc = "_dmarc TXT \"v=DMARC1; p=quarantine\"";

        // An MX target without an address.
        let z = "dns-mx-noaddr.com";
        lab.put_zone(z, &mail_zone(z, spf, dmarc, true).replace("mail A 127.0.0.1", "mail TXT \"no address\""));
        let r = check(knot_only(), z, MailPlan::Mailbox).await;
        let d = shown(&r, z, Rtype::MX, Status::Invalid, &format!("MX target mail.{z} has no A or AAAA record"));
        assert!(d.blocking());
        assert_eq!(r.snippet, vec![format!("mail.{z}. 300 IN A <the mail server's IPv4 address>")]);
        assert!(!r.authoritative_ok());

        // SPF over 10 lookups only through its includes (3 at the top).
        let z = "dns-spf-deep.com";
        let deep = format!(
            "@ TXT \"v=spf1 include:_a.{z} include:_b.{z} mx -all\"\n\
             _a TXT \"v=spf1 a mx ptr exists:x.{z} include:_c.{z} ~all\"\n\
             _b TXT \"v=spf1 ip4:192.0.2.0/24 ~all\"\n\
             _c TXT \"v=spf1 a mx a:x.{z} ~all\""
        );
        lab.put_zone(z, &mail_zone(z, &deep, dmarc, true));
        let r = check(knot_only(), z, MailPlan::Mailbox).await;
        shown(&r, z, Rtype::TXT, Status::Invalid, &format!("SPF of {z} needs 11 DNS lookups counting its includes; the limit is 10"));

        // SPF with +all: the snippet changes it to -all.
        let z = "dns-spf-plusall.com";
        lab.put_zone(z, &mail_zone(z, "@ TXT \"v=spf1 mx +all\"", dmarc, true));
        let r = check(knot_only(), z, MailPlan::Mailbox).await;
        shown(&r, z, Rtype::TXT, Status::Invalid, &format!("lets anyone send mail as {z}"));
        assert_eq!(r.snippet, vec![format!("{z}. 300 IN TXT \"v=spf1 mx -all\"")]);
        assert_eq!(r.remove, vec![format!("{z}. 300 IN TXT \"v=spf1 mx +all\"")]);

        // Two SPF records: the row is not ok; both go, one merged record comes.
        let z = "dns-two-spf-merge.com";
        lab.put_zone(z, &mail_zone(z, &format!("{spf}\n@ TXT \"v=spf1 a ~all\""), dmarc, true));
        let r = check(knot_only(), z, MailPlan::Mailbox).await;
        shown(&r, z, Rtype::TXT, Status::Invalid, "2 SPF records");
        assert_eq!(r.snippet, vec![format!("{z}. 300 IN TXT \"v=spf1 a mx -all\"")]);
        assert_eq!(r.remove.len(), 2, "{:?}", r.remove);

        // A DMARC record that does not parse: the row is not ok; it is replaced.
        let z = "dns-dmarc-bad.com";
        lab.put_zone(z, &mail_zone(z, spf, "_dmarc TXT \"v=DMARC1; rua=mailto:d@dns-dmarc-bad.com\"", true));
        let r = check(knot_only(), z, MailPlan::Mailbox).await;
        shown(&r, &format!("_dmarc.{z}"), Rtype::TXT, Status::Invalid, "has no p= policy");
        assert_eq!(r.snippet, vec![format!("_dmarc.{z}. 300 IN TXT \"v=DMARC1; p=quarantine; rua=mailto:dmarc@{z}\"")]);
        assert_eq!(r.remove, vec![format!("_dmarc.{z}. 300 IN TXT \"v=DMARC1; rua=mailto:d@{z}\"")]);

        // DMARC reports to another domain that has not authorized them: a warning only.
        let z = "dns-dmarc-rua.com";
        let receiver = "dns-dmarc-reports.com";
        lab.put_zone(receiver, &Lab::zone_text(receiver, ""));
        lab.put_zone(z, &mail_zone(z, spf, &format!("_dmarc TXT \"v=DMARC1; p=reject; rua=mailto:agg@{receiver}\""), true));
        let r = check(knot_only(), z, MailPlan::Mailbox).await;
        let d = shown(&r, &format!("_dmarc.{z}"), Rtype::TXT, Status::Warning, &format!("{receiver} has not authorized DMARC reports for {z}"));
        assert_eq!(d.severity, Severity::Warning);
        assert!(d.fix.contains(&format!("{z}._report._dmarc.{receiver}")), "{}", d.fix);
        assert!(r.authoritative_ok() && r.all_ok(), "a warning parks nothing:\n{}", dnscheck::render(&r));
        lab.put_zone(receiver, &Lab::zone_text(receiver, &format!("{z}._report._dmarc TXT \"v=DMARC1\"")));
        let r = check(knot_only(), z, MailPlan::Mailbox).await;
        assert!(r.diagnoses.is_empty() && row(&r, &format!("_dmarc.{z}"), Rtype::TXT).status == Status::Ok, "{}", dnscheck::render(&r));

        // www through a CNAME: fine when the target points at the VPS, not when elsewhere.
        let other = "dns-www-targets.com";
        lab.put_zone(other, &Lab::zone_text(other, "vps A 127.0.0.1\naway A 10.9.9.9"));
        let z = "dns-www-away.com";
        lab.put_zone(z, &Lab::zone_text(z, "").replace("www CNAME @", &format!("www CNAME vps.{other}.")));
        let r = check(knot_only(), z, MailPlan::None).await;
        assert!(r.all_ok(), "{}", dnscheck::render(&r));
        lab.put_zone(z, &Lab::zone_text(z, "").replace("www CNAME @", &format!("www CNAME away.{other}.")));
        let r = check(knot_only(), z, MailPlan::None).await;
        shown(&r, &format!("www.{z}"), Rtype::A, Status::WrongValue, &format!("www.{z} points at 10.9.9.9 through CNAME away.{other}, not the apex {z} or the VPS 127.0.0.1"));
        assert_eq!(r.remove, vec![format!("www.{z}. 300 IN CNAME away.{other}.")]);
        assert_eq!(r.snippet, vec![format!("www.{z}. 300 IN A     127.0.0.1")]);
        // To a name no server here answers for: said so, and not taken for knot's trouble.
        lab.put_zone(z, &Lab::zone_text(z, "").replace("www CNAME @", "www CNAME cdn.not-served.net."));
        let r = check(knot_only(), z, MailPlan::None).await;
        shown(&r, &format!("www.{z}"), Rtype::A, Status::WrongValue, "is a CNAME to cdn.not-served.net, whose address could not be looked up");
        assert!(r.diagnoses.iter().all(|d| !d.problem.contains("authoritative server")), "{}", dnscheck::render(&r));
    })
    .await
}

/// Knot refuses to load a zone with a CNAME beside other records at one name, so that case
/// is tested on observations (`dnscheck::tests`); here, what it rests on: the adapter tells
/// records a name holds itself from those reached through its CNAME.
#[tokio::test(flavor = "multi_thread")]
async fn answers_tell_records_reached_through_a_cname() {
    within(Duration::from_secs(60), async {
        let lab = Lab::get();
        let z = "dns-via.com";
        lab.put_zone(z, &Lab::zone_text(z, ""));
        let knot = (KNOT.parse().unwrap(), Role::Authoritative);
        let www = format!("www.{z}");
        let obs = dns::observe(&[knot], &[(z.to_owned(), Rtype::A), (www.clone(), Rtype::A), (www.clone(), Rtype::CNAME)], Duration::from_secs(2))
            .await
            .unwrap();
        let a = &obs[&knot];
        assert!(matches!(&a[&(z.to_owned(), Rtype::A)], Answer::Records { via: None, .. }), "{a:?}");
        assert!(matches!(&a[&(www.clone(), Rtype::A)], Answer::Records { via: Some(v), .. } if v == z), "{a:?}");
        assert!(matches!(&a[&(www, Rtype::CNAME)], Answer::Records { via: None, values, .. } if *values == [z.to_owned()]), "{a:?}");
    })
    .await
}

/// The lab's knot in front of which a CNAME is added at `name` (to `target`): knot refuses to
/// load a zone with a CNAME beside other records (RFC 1034 §3.6.2), yet some DNS hosts serve
/// one. Every other query is passed to knot as it is; the CNAME query at `name` is answered
/// here, on the wire, as such a host would.
async fn knot_with_a_cname_at(name: &str, target: &str) -> SocketAddr {
    use hickory_proto::op::{Message, MessageType};
    use hickory_proto::rr::rdata::CNAME;
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let owner = Name::from_ascii(format!("{name}.")).unwrap();
    let target = Name::from_ascii(format!("{target}.")).unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let asked = query.queries.first().cloned();
            let reply = match asked {
                Some(q)
                    if q.query_type() == RecordType::CNAME
                        && q.name().to_lowercase() == owner.to_lowercase() =>
                {
                    let mut m = Message::new(
                        query.metadata.id,
                        MessageType::Response,
                        query.metadata.op_code,
                    );
                    m.metadata.authoritative = true;
                    m.metadata.recursion_desired = query.metadata.recursion_desired;
                    m.add_query(q);
                    m.add_answer(Record::from_rdata(
                        owner.clone(),
                        300,
                        RData::CNAME(CNAME(target.clone())),
                    ));
                    m.to_vec().unwrap()
                }
                _ => {
                    let knot = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                    knot.send_to(&buf[..n], KNOT).await.unwrap();
                    let mut answer = [0u8; 4096];
                    let Ok(Ok(len)) =
                        tokio::time::timeout(Duration::from_secs(2), knot.recv(&mut answer)).await
                    else {
                        continue;
                    };
                    answer[..len].to_vec()
                }
            };
            let _ = sock.send_to(&reply, peer).await;
        }
    });
    addr
}

/// A CNAME beside other records, served on the wire: the DMARC row is not ok, it shows the
/// problem, and the CNAME is among the records to remove.
#[tokio::test(flavor = "multi_thread")]
async fn a_cname_beside_other_records_on_the_wire_is_diagnosed_and_removed() {
    within(Duration::from_secs(60), async {
        let lab = Lab::get();
        let z = "dns-cname-beside.com";
        lab.put_zone(
            z,
            &mail_zone(
                z,
                "@ TXT \"v=spf1 mx -all\"",
                "_dmarc TXT \"v=DMARC1; p=quarantine\"",
                true,
            ),
        );
        let dmarc = format!("_dmarc.{z}");
        let front = knot_with_a_cname_at(&dmarc, "dmarc.provider.example").await;
        let servers = DnsConfig {
            authoritative: vec![front],
            resolvers: vec![],
            timeout_secs: 2,
        };
        let report = check(servers, z, MailPlan::Mailbox).await;
        let rendered = dnscheck::render(&report);
        let r = row(&report, &dmarc, Rtype::TXT);
        assert_eq!(r.status, Status::Invalid, "{rendered}");
        assert!(
            r.problems
                .iter()
                .any(|p| p.contains(&format!("CNAME beside other records at {dmarc}"))),
            "{rendered}"
        );
        assert!(
            report
                .remove
                .iter()
                .any(|l| l.starts_with(&format!("{dmarc}.")) && l.contains("CNAME")),
            "{rendered}"
        );
        assert!(!report.authoritative_ok(), "{rendered}");
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
            stdout.contains("www.dns-cli.com.") && stdout.contains("IN A   127.0.0.1"),
            "{stdout}"
        );
        assert!(stdout.contains("IN MX  10 mail.dns-cli.com."), "{stdout}");

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
        // The record to change: its new value to add, its old one to remove.
        let (add, remove) = message
            .split_once("and remove these records:\n")
            .expect(&message);
        assert!(
            add.contains("parked-one.com. 300 IN A 127.0.0.1"),
            "{message}"
        );
        assert_eq!(
            remove.trim(),
            "parked-one.com. 300 IN A 10.1.2.3",
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
