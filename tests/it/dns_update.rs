//! dns-records writing a Provider's records itself into a zone of `dns.update`: RFC 2136
//! updates signed with the lab's TSIG key, against the lab's knot. On approval the records are
//! written and served; a wrong key is refused in words; a record changed after the plan was
//! read is never overwritten; a zone not listed parks as before. The key shows nowhere.

use crate::support::harness::within;
use crate::support::lab::{Lab, TestDbs};
use crate::support::scripted::{self, Scripted, approve};

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use onboard_bot::adapters::{dns, dns_update};
use onboard_bot::commands::dns_check::DnsCheckArgs;
use onboard_bot::commands::onboard::OnboardArgs;
use onboard_bot::commands::{self, Reply};
use onboard_bot::config::{Config, DnsConfig, OnboardingConfig};
use onboard_bot::dnscheck::{self, MailPattern, Rtype};
use onboard_bot::domain::{DomainName, MailPlan};
use onboard_bot::engine::{Engine, StartOptions};
use onboard_bot::frontend::{Decision, RunEvent};
use onboard_bot::state::runs::{RunStatus, StepStatus};

const TIMEOUT: Duration = Duration::from_secs(180);
const KNOT: &str = "127.0.0.1:53";

fn fresh_zone(prefix: &str) -> String {
    format!(
        "{prefix}-{}.com",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// A zone as a DNS provider holds it before anything is added: SOA and NS only.
fn bare_zone(zone: &str, extra: &str) -> String {
    format!(
        "$ORIGIN {zone}.\n$TTL 300\n@ SOA ns1.lab.test. hostmaster.lab.test. 1 3600 600 86400 300\n@ NS ns1.lab.test.\n{extra}\n"
    )
}

fn lab_key(lab: &Lab) -> String {
    std::fs::read_to_string(lab.dir.join("secrets/dns_update.key"))
        .expect("the lab's TSIG key (scripts/lab up makes it)")
        .trim()
        .to_owned()
}

/// The test's config with `zone` in `dns.update`, signed with `key_name` and the secret in
/// `secret_file`.
fn config_with_zone(
    dbs: &TestDbs<'_>,
    dir: &Path,
    zone: &str,
    key_name: &str,
    secret_file: &Path,
) -> Arc<Config> {
    let entry = format!(
        "  update:\n    - {{zone: {zone}, server: \"{KNOT}\", key: {{name: {key_name}, algorithm: hmac-sha256, secret: {{file: {}}}}}}}\n",
        secret_file.display()
    );
    dbs.config(dir, |t| {
        assert!(
            t.contains("  update:\n"),
            "config/lab.yaml lists dns.update"
        );
        t.replacen("  update:\n", &entry, 1)
    })
}

fn request(slug: &str, domain: &str) -> onboard_bot::request::Request {
    OnboardArgs {
        slug: slug.into(),
        name: "Dns Update".into(),
        email: format!("{slug}@example.com"),
        mode: "person-only".into(),
        domains: vec![domain.into()],
        ..Default::default()
    }
    .parse(&OnboardingConfig::default())
    .unwrap()
}

/// Approves create-person and dns-records (through `on_dns`, which may act first), rejects
/// the next write: the run stops right after the DNS step.
fn front(on_dns: impl Fn(usize) + Send + Sync + 'static) -> Arc<Scripted> {
    let dns_asks = std::sync::atomic::AtomicUsize::new(0);
    Arc::new(Scripted::new(move |req, _| match req.step.as_str() {
        "create-person" => approve("approver-1"),
        "dns-records" => {
            on_dns(dns_asks.fetch_add(1, Ordering::SeqCst));
            approve("approver-1")
        }
        _ => Decision {
            approved: false,
            actor: scripted::actor("approver-1"),
            how: "test".into(),
            reason: Some("the test stops after DNS".into()),
        },
    }))
}

async fn knot_check(domain: &str) -> dnscheck::Report {
    let d = DomainName::parse(domain).unwrap();
    let p = MailPattern::default();
    let expected =
        dnscheck::expected_records(&d, "127.0.0.1".parse().unwrap(), None, MailPlan::None, &p);
    let servers = DnsConfig {
        authoritative: vec![KNOT.parse().unwrap()],
        resolvers: vec![],
        timeout_secs: 2,
    };
    dns::check_domain(&servers, &expected, domain, &p)
        .await
        .unwrap()
}

/// Every text the run left: front-end events, approval requests, audit events, step rows.
async fn everything_shown(engine: &Engine, front: &Scripted, run_id: uuid::Uuid) -> String {
    let mut all = format!(
        "{:?}\n{:?}\n",
        front.events.lock().unwrap(),
        front.requests()
    );
    let audit: Vec<String> =
        sqlx::query_scalar("SELECT detail::text FROM audit_events WHERE run_id = $1")
            .bind(run_id)
            .fetch_all(engine.pool())
            .await
            .unwrap();
    all.push_str(&audit.join("\n"));
    let steps: Vec<String> =
        sqlx::query_scalar("SELECT row_to_json(s)::text FROM step_runs s WHERE run_id = $1")
            .bind(run_id)
            .fetch_all(engine.pool())
            .await
            .unwrap();
    all.push_str(&steps.join("\n"));
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zone_in_dns_update_gets_its_records_from_the_bot_on_approval() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let zone = fresh_zone("upd-ok");
        lab.put_zone(&zone, &bare_zone(&zone, ""));
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let key_file = lab.dir.join("secrets/dns_update.key");
        let cfg = config_with_zone(&dbs, tmp.path(), &zone, "onboard-bot-lab", &key_file);
        let front = front(|_| {});
        let engine = Engine::new(cfg, front.clone()).await.unwrap();
        let slug = zone.trim_end_matches(".com");
        let (id, outcome) = engine
            .run(
                request(slug, &zone),
                &scripted::actor("ops"),
                StartOptions::default(),
            )
            .await
            .unwrap();
        // Stopped by the test's rejection of deploy-config, after the DNS step.
        assert_eq!(outcome.status, RunStatus::Rejected, "{outcome:?}");
        let dns: Vec<_> = front
            .requests()
            .into_iter()
            .filter(|r| r.step == "dns-records")
            .collect();
        assert_eq!(dns.len(), 1, "one plan, approved once");
        let detail = &dns[0].detail;
        for want in [
            format!("{zone}.").to_string(),
            "300 IN A 127.0.0.1".into(),
            format!("www.{zone}."),
            "signed with TSIG key onboard-bot-lab (hmac-sha256)".into(),
            "no record".into(),
        ] {
            assert!(detail.contains(&want), "the plan lacks {want:?}:\n{detail}");
        }
        // Served by knot now.
        let report = knot_check(&zone).await;
        assert!(report.all_ok(), "{}", dnscheck::render(&report));
        let steps = engine.run_steps(id).await.unwrap();
        let step = steps.iter().find(|s| s.name == "dns-records").unwrap();
        assert_eq!(step.status, StepStatus::Done, "{step:?}");
        // /dns-check says which records are the bot's.
        let req = DnsCheckArgs::once(zone.clone(), Some(MailPlan::None))
            .parse()
            .unwrap();
        let Reply::Listing(listing) = commands::dns_check::run(&engine, &req, |_| {})
            .await
            .unwrap()
        else {
            panic!("a listing")
        };
        assert!(
            listing.text.contains("Written by the bot"),
            "{}",
            listing.text
        );
        assert!(
            listing
                .text
                .contains(&format!("www.{zone}. 300 IN A 127.0.0.1: run {id}")),
            "{}",
            listing.text
        );
        // The key is nowhere.
        let shown = everything_shown(&engine, &front, id).await + &listing.text;
        assert!(!shown.contains(&lab_key(&lab)), "the TSIG secret was shown");
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_is_refused_in_words_and_the_run_stays_resumable() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let zone = fresh_zone("upd-badkey");
        lab.put_zone(&zone, &bare_zone(&zone, ""));
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        // Right name, wrong secret: BADSIG.
        let wrong = tmp.path().join("wrong.key");
        std::fs::write(
            &wrong,
            "c29tZS1vdGhlci1zZWNyZXQtdGhhdC1rbm90LWRvZXMtbm90LWtub3c=\n",
        )
        .unwrap();
        let cfg = config_with_zone(&dbs, tmp.path(), &zone, "onboard-bot-lab", &wrong);
        let front = front(|_| {});
        let engine = Engine::new(cfg, front.clone()).await.unwrap();
        let slug = zone.trim_end_matches(".com");
        let (id, outcome) = engine
            .run(
                request(slug, &zone),
                &scripted::actor("ops"),
                StartOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(outcome.status, RunStatus::Failed, "{outcome:?}");
        let steps = engine.run_steps(id).await.unwrap();
        let step = steps.iter().find(|s| s.name == "dns-records").unwrap();
        assert_eq!(step.status, StepStatus::Failed);
        let error = step.error.clone().unwrap_or_default();
        assert!(
            error.contains("NOTAUTH (BADSIG)") && error.contains("nothing was written"),
            "{error}"
        );
        // Nothing written; the run can be resumed (once the key is fixed).
        assert!(!knot_check(&zone).await.authoritative_ok());
        let run = engine.run_record(id).await.unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Failed);

        // A key the server does not know at all: BADKEY, said so.
        let unknown = config_with_zone(
            &dbs,
            &tmp.path().join("unknown"),
            &zone,
            "no-such-key",
            &wrong,
        );
        let z = unknown.dns_update.zone_for(&zone).unwrap().clone();
        let d = DomainName::parse(&zone).unwrap();
        let expected = dnscheck::expected_records(
            &d,
            "127.0.0.1".parse().unwrap(),
            None,
            MailPlan::None,
            &MailPattern::default(),
        );
        let held = dns_update::read(
            z.server,
            &dns_update::names_to_read(&expected),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        let up = dns_update::plan(&z, &knot_check(&zone).await, &held, 300).unwrap();
        let err = dns_update::send(&up, &z.key, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("NOTAUTH (BADKEY)"), "{err}");
        let shown = everything_shown(&engine, &front, id).await;
        assert!(
            !shown.contains("c29tZS1vdGhlci1zZWNyZXQ"),
            "the TSIG secret was shown"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_changed_after_the_plan_is_never_overwritten() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let key_file = lab.dir.join("secrets/dns_update.key");

        // The update itself: read, plan, then the zone changes, then send: the server refuses
        // its prerequisite and the record stays as the other party set it.
        let zone = fresh_zone("upd-prereq");
        lab.put_zone(&zone, &bare_zone(&zone, "@ A 10.1.2.3"));
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config_with_zone(&dbs, tmp.path(), &zone, "onboard-bot-lab", &key_file);
        let z = cfg.dns_update.zone_for(&zone).unwrap().clone();
        let d = DomainName::parse(&zone).unwrap();
        let expected = dnscheck::expected_records(
            &d,
            "127.0.0.1".parse().unwrap(),
            None,
            MailPlan::None,
            &MailPattern::default(),
        );
        let held = dns_update::read(
            z.server,
            &dns_update::names_to_read(&expected),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        assert_eq!(held[&(zone.clone(), Rtype::A)].len(), 1);
        let up = dns_update::plan(&z, &knot_check(&zone).await, &held, 300).unwrap();
        assert!(
            up.render().contains("replacing (deleted):"),
            "{}",
            up.render()
        );
        lab.put_zone(&zone, &bare_zone(&zone, "@ A 10.4.5.6"));
        let err = dns_update::send(&up, &z.key, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(err, dns_update::UpdateError::PrerequisiteFailed(_)),
            "{err}"
        );
        let report = knot_check(&zone).await;
        assert!(
            dnscheck::render(&report).contains("10.4.5.6"),
            "{}",
            dnscheck::render(&report)
        );

        // In a run: the zone changes while the plan waits for its approval; the approved plan
        // no longer holds, nothing is written, and the step asks again.
        let zone = fresh_zone("upd-replan");
        lab.put_zone(&zone, &bare_zone(&zone, "@ A 10.1.2.3"));
        let cfg = config_with_zone(
            &dbs,
            &tmp.path().join("run"),
            &zone,
            "onboard-bot-lab",
            &key_file,
        );
        let changed = Arc::new(AtomicBool::new(false));
        let (zone2, changed2) = (zone.clone(), changed.clone());
        let front = front(move |n| {
            if n == 0 {
                Lab::get().put_zone(&zone2, &bare_zone(&zone2, "@ A 10.7.7.7"));
                changed2.store(true, Ordering::SeqCst);
            }
        });
        let engine = Engine::new(cfg, front.clone()).await.unwrap();
        let slug = zone.trim_end_matches(".com");
        let (id, outcome) = engine
            .run(
                request(slug, &zone),
                &scripted::actor("ops"),
                StartOptions::default(),
            )
            .await
            .unwrap();
        assert!(changed.load(Ordering::SeqCst));
        assert_eq!(outcome.status, RunStatus::Rejected, "{outcome:?}");
        let dns: Vec<_> = front
            .requests()
            .into_iter()
            .filter(|r| r.step == "dns-records")
            .collect();
        assert_eq!(dns.len(), 2, "the changed plan is asked for again");
        assert!(
            dns[0].detail.contains("10.1.2.3") && dns[1].detail.contains("10.7.7.7"),
            "{}\n---\n{}",
            dns[0].detail,
            dns[1].detail
        );
        assert!(knot_check(&zone).await.all_ok());
        let written = engine.dns_writes(&zone).await.unwrap();
        let apex = written
            .iter()
            .find(|w| w.name == zone && w.rtype == "A")
            .unwrap();
        assert_eq!(
            apex.replaced,
            vec!["10.7.7.7".to_string()],
            "it replaced what it was shown"
        );
        assert_eq!(apex.run_id, id);
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zone_not_in_dns_update_parks_as_before() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let zone = fresh_zone("upd-notlisted");
        lab.put_zone(&zone, &bare_zone(&zone, ""));
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        // dns.update lists another zone only.
        let other = fresh_zone("upd-other");
        let cfg = config_with_zone(
            &dbs,
            tmp.path(),
            &other,
            "onboard-bot-lab",
            &lab.dir.join("secrets/dns_update.key"),
        );
        let cfg = Arc::new({
            let mut c = (*cfg).clone();
            c.engine.recheck_secs = 3600;
            c
        });
        let front = front(|_| {});
        let engine = Engine::new(cfg, front.clone()).await.unwrap();
        let slug = zone.trim_end_matches(".com");
        let runner = {
            let engine = engine.clone();
            let req = request(slug, &zone);
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
            message.contains("waiting for DNS")
                && message.lines().any(|l| {
                    l.split_whitespace()
                        .collect::<Vec<_>>()
                        .ends_with(&["IN", "A", "127.0.0.1"])
                }),
            "{message}"
        );
        assert!(
            front.requests().iter().all(|r| r.step != "dns-records"),
            "no DNS write is planned"
        );
        // The person adds the records; the nudge makes the run go on.
        lab.put_zone(&zone, &Lab::zone_text(&zone, ""));
        engine.nudge_domain(&zone).await.unwrap();
        let (_, outcome) = runner.await.unwrap();
        assert_eq!(
            outcome.status,
            RunStatus::Rejected,
            "stopped by the test after DNS: {outcome:?}"
        );
        assert!(engine.dns_writes(&zone).await.unwrap().is_empty());
    })
    .await
}

/// One run, two domains: one in `dns.update`, one a person must create. The bot writes the
/// first on approval; the check that follows finds the second still missing, so the step parks
/// (as a run waiting on DNS does), and it goes on once the person's records hold. Before, the
/// run failed there ("applied, but the check failed") and only a resume parked it.
#[tokio::test(flavor = "multi_thread")]
async fn records_the_bot_cannot_write_park_the_step_after_it_wrote_the_others() {
    within(TIMEOUT, async {
        let lab = Lab::get();
        let listed = fresh_zone("upd-mixed-w");
        let unlisted = fresh_zone("upd-mixed-p");
        lab.put_zone(&listed, &bare_zone(&listed, ""));
        lab.put_zone(&unlisted, &bare_zone(&unlisted, ""));
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config_with_zone(
            &dbs,
            tmp.path(),
            &listed,
            "onboard-bot-lab",
            &lab.dir.join("secrets/dns_update.key"),
        );
        let cfg = Arc::new({
            let mut c = (*cfg).clone();
            c.engine.recheck_secs = 3600;
            c
        });
        let front = front(|_| {});
        let engine = Engine::new(cfg, front.clone()).await.unwrap();
        let slug = listed.trim_end_matches(".com").to_owned();
        let runner = {
            let engine = engine.clone();
            let mut req = request(&slug, &listed);
            if let onboard_bot::request::Request::Onboard(o) = &mut req {
                o.domains.push(DomainName::parse(&unlisted).unwrap());
            } else {
                panic!("an onboarding request");
            }
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
                    } | RunEvent::Finished { .. }
                )
            })
            .await;
        let RunEvent::Step { message, .. } = parked else {
            panic!("the run ended instead of parking: {parked:?}")
        };
        assert!(
            message.contains(&unlisted) && !message.contains(&format!("- {listed} A")),
            "it waits for the person's records only: {message}"
        );
        let written = engine.dns_writes(&listed).await.unwrap();
        assert!(!written.is_empty(), "the bot wrote the listed zone first");
        assert!(knot_check(&listed).await.authoritative_ok());
        // The person adds theirs; the nudge makes the run go on.
        lab.put_zone(&unlisted, &Lab::zone_text(&unlisted, ""));
        engine.nudge_domain(&unlisted).await.unwrap();
        let (_, outcome) = runner.await.unwrap();
        assert_eq!(
            outcome.status,
            RunStatus::Rejected,
            "stopped by the test after DNS, not failed at the DNS check: {outcome:?}"
        );
        assert_eq!(
            front
                .requests()
                .iter()
                .filter(|r| r.step == "dns-records")
                .count(),
            1,
            "the write was asked for once"
        );
    })
    .await
}
