//! Many onboardings at once through the real bot (serenity + poise) and the fake Discord, with
//! Discord's per-route rate limits enforced by the fake: every run ends done, nothing is mixed
//! up between them, and Discord never had to refuse a request.
//!
//! `ten_onboardings_at_once_end_done_and_apart` is the test; `load_figures` (ignored, run by
//! `scripts/bench`) adds one onboarding alone, the 10 at once, and `LOAD_SERIAL` (100) one
//! after another, and prints the figures. Times are printed, never asserted.
//!
//! **Which VPS an onboarding goes to** is [`vps_for`]: they alternate between the lab's vps-0
//! and vps-1 (chosen with `/onboard`'s `vps` option, as a person would), each domain's zone
//! pointing at its VPS. certbot runs one at a time per VPS and the two VPSes in parallel: the
//! test reads when each certbot ran from certbot's own logs on each VPS.

use crate::discord::{
    BotProcess, RUN, Setup, id_of, is_run_end, messages_json, open_approve, open_approve_all,
    set_up, set_up_without_bot, user_count,
};
use crate::support::fake_discord::FakeDiscord;
use crate::support::harness::{exclusive, init_tracing, within};
use crate::support::lab::TestDbs;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use onboard_bot::config::Config;
use onboard_bot::domain::DomainName;
use onboard_bot::state::audit;
use onboard_bot::steps::common::Site;
use serde_json::{Value, json};
use serenity::all::{ChannelId, MessageId};

/// The VPS onboarding number `i` goes to, as `/onboard`'s `vps` option: vps-0 and vps-1 in
/// turn.
fn vps_for(i: usize) -> &'static str {
    ["vps-0", "vps-1"][i % 2]
}

/// Where each VPS of the config keeps `domain`'s nginx site (the path the bot's steps use).
fn nginx_sites(cfg: &Config, domain: &str) -> Vec<(String, PathBuf)> {
    let domain = DomainName::parse(domain).expect("a test domain");
    cfg.fleet
        .iter()
        .map(|v| {
            let site = Site::new(&v.deploy, &v.cert, &domain);
            (v.name.to_string(), PathBuf::from(site.vps_nginx_site()))
        })
        .collect()
}

/// Where certbot logs on each VPS of the config: its `--logs-dir`.
fn certbot_log_dirs(cfg: &Config) -> Vec<(String, PathBuf)> {
    cfg.fleet
        .iter()
        .filter_map(|v| {
            let dir = v
                .cert
                .extra_args
                .iter()
                .find_map(|a| a.strip_prefix("--logs-dir="));
            dir.map(|d| (v.name.to_string(), PathBuf::from(d)))
        })
        .collect()
}

/// What the load runs use of a set-up, whether the bot runs in this process (the test) or as
/// its own (the figures, so that its memory is its own).
struct Rig<'a> {
    fake: &'a FakeDiscord,
    dbs: &'a TestDbs<'static>,
    cfg: &'a Arc<Config>,
}

impl<'a> From<&'a Setup> for Rig<'a> {
    fn from(s: &'a Setup) -> Self {
        Rig {
            fake: &s.fake,
            dbs: &s.dbs,
            cfg: &s.cfg,
        }
    }
}

/// One onboarding of a batch: its slug, domain, VPS and, once started, its thread.
struct Onboarding {
    slug: String,
    domain: String,
    vps: &'static str,
    thread: Option<ChannelId>,
}

fn onboardings(prefix: &str, from: usize, n: usize) -> Vec<Onboarding> {
    (from..from + n)
        .map(|i| {
            let slug = format!("{prefix}-n{i:03}");
            Onboarding {
                domain: format!("{slug}.com"),
                slug,
                vps: vps_for(i),
                thread: None,
            }
        })
        .collect()
}

/// What a batch measured.
#[derive(Default)]
struct Batch {
    elapsed: Duration,
    /// Interaction acknowledgement latencies (commands and clicks), ms.
    acks: Vec<f64>,
}

/// Starts every onboarding of `runs` at once, clicks every approval as soon as it is open
/// (Approve all where offered, each in a thread at the same moment as the others), and waits
/// until every run has ended.
async fn run_batch(s: &Rig<'_>, runs: &mut [Onboarding]) -> Batch {
    let fake = s.fake;
    let t0 = Instant::now();
    let handles: Vec<_> = runs
        .iter()
        .map(|r| {
            let opts = json!({"slug": r.slug, "name": format!("Load {}", r.slug),
                              "email": format!("{}@example.com", r.slug), "vps": r.vps});
            fake.send_command(fake.requester(), "onboard", opts)
        })
        .collect();
    let mut acks = Vec::new();
    for h in &handles {
        let resp = fake.interaction_response(h).await;
        assert!(resp.is_deferred() && resp.is_ephemeral(), "{resp:?}");
        acks.push(resp.latency.as_secs_f64() * 1000.0);
    }
    for r in runs.iter_mut() {
        let name = format!("onboard {} ", r.slug);
        let thread = fake
            .wait_for_thread(|t| t.name.starts_with(&name), RUN)
            .await;
        assert_eq!(thread.parent_id, Some(fake.ops_channel_id()));
        r.thread = Some(thread.id);
    }
    let threads: Vec<ChannelId> = runs.iter().filter_map(|r| r.thread).collect();
    let mut clicked = HashSet::new();
    loop {
        let open = fake
            .wait_for("an approval to click, or every run's end", RUN, |st| {
                let mut open: Vec<(MessageId, String)> = Vec::new();
                let mut ended = 0;
                for t in &threads {
                    let msgs = messages_json(st, *t);
                    if msgs.iter().any(is_run_end) {
                        ended += 1;
                        continue;
                    }
                    // An Approve all first: the cards it covers are then not clicked again.
                    let all = msgs.iter().find_map(|m| {
                        open_approve_all(m)
                            .filter(|id| !clicked.contains(id))
                            .map(|id| (id_of(m), id))
                    });
                    match all {
                        Some(a) => open.push(a),
                        None => open.extend(msgs.iter().filter_map(|m| {
                            open_approve(m)
                                .filter(|id| !clicked.contains(id))
                                .map(|id| (id_of(m), id))
                        })),
                    }
                }
                if ended == threads.len() {
                    Some(Vec::new())
                } else {
                    (!open.is_empty()).then_some(open)
                }
            })
            .await;
        if open.is_empty() {
            break;
        }
        // A card seen open may be closed by the bot before the click lands (an Approve all of
        // its thread covered it): that click is not made, as a person's would do nothing.
        let clicks: Vec<_> = open
            .into_iter()
            .filter_map(|(message, id)| {
                clicked.insert(id.clone());
                fake.click_button_if_enabled(fake.approver(), message, &id)
            })
            .collect();
        for h in &clicks {
            acks.push(fake.interaction_response(h).await.latency.as_secs_f64() * 1000.0);
        }
    }
    Batch {
        elapsed: t0.elapsed(),
        acks,
    }
}

/// Every run of the batch is done, and nothing is mixed up between them: each thread holds its
/// own run's messages only, each tenant's row is there once, each site is recorded for its
/// tenant on its VPS and served there with its own name and webroot.
async fn check_apart(s: &Rig<'_>, runs: &[Onboarding]) {
    let fake = s.fake;
    let state = s.dbs.state_admin().await;
    for r in runs {
        let thread = r.thread.expect("started");
        let msgs = fake.state().messages.clone();
        let texts: Vec<String> = msgs
            .values()
            .filter(|m| !m.deleted && m.json["channel_id"] == thread.to_string())
            .map(|m| text_of(&m.json))
            .collect();
        let end = texts
            .iter()
            .find(|t| t.starts_with("✓ run") || t.starts_with("✗ run") || t.starts_with("- run"));
        assert!(
            end.is_some_and(|e| e.starts_with("✓ run done")),
            "{}: {end:?}",
            r.slug
        );
        for other in runs.iter().filter(|o| o.slug != r.slug) {
            for t in &texts {
                assert!(
                    !t.contains(&other.slug),
                    "the thread of {} names {}: {t}",
                    r.slug,
                    other.slug
                );
            }
        }
        assert!(
            texts.iter().any(|t| t.contains(&r.slug)),
            "the thread of {} never names it",
            r.slug
        );
        assert_eq!(user_count(s.dbs, &r.slug).await, 1, "{}", r.slug);
        let site: (String, String) =
            sqlx::query_as("SELECT slug, vps FROM sites WHERE domain = $1")
                .bind(&r.domain)
                .fetch_one(&state)
                .await
                .unwrap_or_else(|e| panic!("{}: no site on record: {e}", r.domain));
        assert_eq!(site, (r.slug.clone(), r.vps.to_string()), "{}", r.domain);
        let mut conf = None;
        for (vps, path) in nginx_sites(s.cfg, &r.domain) {
            if vps == r.vps {
                conf = Some(
                    std::fs::read_to_string(&path)
                        .unwrap_or_else(|e| panic!("{} on {vps}: {e}", r.domain)),
                );
            } else {
                assert!(!path.exists(), "{} is on {vps} too", r.domain);
            }
        }
        let conf = conf.unwrap_or_else(|| panic!("{} is not a VPS of the config", r.vps));
        assert!(
            conf.contains(&format!("server_name {} www.{}", r.domain, r.domain)),
            "{conf}"
        );
        assert!(conf.contains(&format!("/www/{};", r.domain)), "{conf}");
    }
    let runs_done: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM runs WHERE runbook = 'onboard' AND status = 'done' AND subject = ANY($1)",
    )
    .bind(runs.iter().map(|r| r.slug.clone()).collect::<Vec<_>>())
    .fetch_one(&state)
    .await
    .unwrap();
    assert_eq!(runs_done, runs.len() as i64);
}

/// One certbot run on a VPS, from its log there: when it started and ended, and for which
/// onboarding.
#[derive(Debug)]
struct CertbotRun {
    vps: String,
    slug: String,
    start: chrono::NaiveDateTime,
    end: chrono::NaiveDateTime,
}

/// The certbot runs since `since` that issued the certificates of `runs`, from certbot's log on
/// each VPS: every invocation appends to it, starting with a `certbot version` line, then its
/// arguments; its lines are stamped (in local time).
fn certbot_runs(
    cfg: &Config,
    runs: &[Onboarding],
    since: chrono::NaiveDateTime,
) -> Vec<CertbotRun> {
    let stamp = |line: &str| {
        line.get(..23)
            .and_then(|t| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S,%3f").ok())
    };
    let mut found = Vec::new();
    for (vps, dir) in certbot_log_dirs(cfg) {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(log) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let mut invocations: Vec<Vec<&str>> = Vec::new();
            for line in log.lines() {
                if line.contains(":certbot._internal.main:certbot version:")
                    || invocations.is_empty()
                {
                    invocations.push(Vec::new());
                }
                invocations.last_mut().expect("one").push(line);
            }
            for lines in invocations {
                // An issuance: `certbot --nginx ... -d <domain> ...`.
                let Some(args) = lines.iter().find(|l| l.contains(":Arguments: ")) else {
                    continue;
                };
                let Some(r) = runs.iter().find(|r| {
                    args.contains(&format!("'{}'", r.domain)) && args.contains("'--nginx'")
                }) else {
                    continue;
                };
                let stamps: Vec<_> = lines.iter().filter_map(|l| stamp(l)).collect();
                if let (Some(start), Some(end)) = (stamps.first(), stamps.last())
                    && *start >= since
                {
                    found.push(CertbotRun {
                        vps: vps.clone(),
                        slug: r.slug.clone(),
                        start: *start,
                        end: *end,
                    });
                }
            }
        }
    }
    found
}

/// certbot ran for every onboarding on its own VPS only, one at a time per VPS (no two runs on
/// a VPS overlap), and the VPSes in parallel (some run on one overlaps some on another).
fn check_certbot_per_vps(cfg: &Config, runs: &[Onboarding], since: chrono::NaiveDateTime) {
    let mut seen = certbot_runs(cfg, runs, since);
    for r in runs {
        let own: Vec<_> = seen.iter().filter(|c| c.slug == r.slug).collect();
        assert!(
            !own.is_empty(),
            "no certbot run for {} in the logs of {}",
            r.domain,
            r.vps
        );
        assert!(own.iter().all(|c| c.vps == r.vps), "{}: {own:?}", r.domain);
    }
    seen.sort_by(|a, b| (&a.vps, a.start).cmp(&(&b.vps, b.start)));
    for w in seen.windows(2) {
        if w[0].vps == w[1].vps {
            assert!(
                w[1].start >= w[0].end,
                "two certbots at once on {}: {w:?}",
                w[0].vps
            );
        }
    }
    let vpses: HashSet<&str> = runs.iter().map(|r| r.vps).collect();
    if vpses.len() > 1 {
        let parallel = seen.iter().any(|a| {
            seen.iter()
                .any(|b| a.vps != b.vps && a.start < b.end && b.start < a.end)
        });
        assert!(
            parallel,
            "the VPSes never ran certbot at the same time: {seen:?}"
        );
    }
}

/// A message's content and its embeds' text.
fn text_of(m: &Value) -> String {
    let mut t = m["content"].as_str().unwrap_or_default().to_string();
    for e in m["embeds"].as_array().into_iter().flatten() {
        for k in ["title", "description"] {
            t += "\n";
            t += e[k].as_str().unwrap_or_default();
        }
        for f in e["fields"].as_array().into_iter().flatten() {
            t += &format!("\n{}: {}", f["name"], f["value"]);
        }
    }
    t
}

/// Discord never refused a request, and no bucket was exceeded.
fn check_no_429(s: &Rig<'_>) {
    let limited = s.fake.rate_limited();
    let over = s.fake.over_limit();
    assert!(
        limited.is_empty() && over.is_empty(),
        "429s: {:?}\nover a limit: {over:?}",
        limited
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect::<Vec<_>>()
    );
}

/// The audit chain of the whole state DB verifies.
async fn check_audit(s: &Rig<'_>) -> i64 {
    let pool = onboard_bot::state::connect(&s.cfg.state_db).await.unwrap();
    let (count, breaks) = audit::verify_chain(&pool, &s.cfg.audit_key, &[])
        .await
        .unwrap();
    assert!(breaks.is_empty(), "audit chain breaks: {breaks:?}");
    count as i64
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 * p).ceil() as usize)
        .saturating_sub(1)
        .min(v.len() - 1)]
}

/// Requests to one channel: the most in any 1 s and any 5 s, over the busiest channel among
/// `channels`.
fn channel_peaks(s: &Rig<'_>, channels: &[ChannelId]) -> (ChannelId, usize, usize) {
    channels
        .iter()
        .map(|c| {
            let at = s.fake.channel_requests(*c);
            (
                *c,
                crate::support::fake_discord::ratelimit::peak_in(&at, Duration::from_secs(1)),
                crate::support::fake_discord::ratelimit::peak_in(&at, Duration::from_secs(5)),
            )
        })
        .max_by_key(|p| (p.2, p.1))
        .expect("a channel")
}

/// How long the `cert` step of `slug`'s onboarding took, s.
async fn cert_secs(s: &Rig<'_>, slug: &str) -> f64 {
    sqlx::query_scalar(
        "SELECT extract(epoch FROM st.finished_at - st.started_at)::float8 FROM step_runs st \
         JOIN runs r ON r.id = st.run_id WHERE r.subject = $1 AND st.name = 'cert'",
    )
    .bind(slug)
    .fetch_one(&s.dbs.state_admin().await)
    .await
    .unwrap()
}

/// Connections to the bot's state DB right now (all of this process's pools on it).
async fn state_connections(s: &Rig<'_>) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
        .bind(&s.dbs.state)
        .fetch_one(&s.dbs.state_admin().await)
        .await
        .unwrap()
}

/// Samples the state DB's connections every 200 ms until dropped; the peak seen.
struct Sampler {
    peak: std::sync::Arc<std::sync::atomic::AtomicI64>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    fn start(s: &Rig<'_>) -> Sampler {
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
        let (db, lab) = (s.dbs.state.clone(), crate::support::lab::Lab::get());
        let p = peak.clone();
        let task = tokio::spawn(async move {
            let pool = lab.admin(&db).await;
            loop {
                let n: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
                        .bind(&db)
                        .fetch_one(&pool)
                        .await
                        .unwrap_or(0);
                p.fetch_max(n, std::sync::atomic::Ordering::Relaxed);
                // A measurement's sampling period, not a wait for an event.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Sampler { peak, task }
    }

    fn stop(self) -> i64 {
        self.task.abort();
        self.peak.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Each zone of `runs` pointing at its run's VPS.
fn point_zones(runs: &[Onboarding]) {
    // The set-up points every zone at vps-0; those of vps-1's onboardings point at vps-1.
    let lab = crate::support::lab::Lab::get();
    for r in runs.iter().filter(|r| r.vps == "vps-1") {
        lab.put_zone(&r.domain, &lab.vps1_zone_text(&r.domain));
    }
}

fn domains(runs: &[Onboarding]) -> Vec<&str> {
    runs.iter().map(|r| r.domain.as_str()).collect()
}

const TEN: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_onboardings_at_once_end_done_and_apart() {
    init_tracing();
    within(RUN * 3, async {
        let mut runs = onboardings("ld", 0, TEN);
        let setup = set_up(&domains(&runs)).await;
        point_zones(&runs);
        setup.fake.model_rate_limits(true);
        let s = Rig::from(&setup);
        let sampler = Sampler::start(&s);
        let since = chrono::Local::now().naive_local();
        let batch = run_batch(&s, &mut runs).await;
        let peak_conns = sampler.stop();
        check_apart(&s, &runs).await;
        check_certbot_per_vps(s.cfg, &runs, since);
        check_no_429(&s);
        let events = check_audit(&s).await;
        let mut channels: Vec<ChannelId> = runs.iter().filter_map(|r| r.thread).collect();
        channels.push(s.fake.ops_channel_id());
        let (busiest, per_s, per_5s) = channel_peaks(&s, &channels);
        println!(
            "{TEN} onboardings at once: {:.1} s; interaction acks p50 {:.2} ms, p99 {:.2} ms ({} acks); \
             busiest channel {busiest}: at most {per_s} requests in 1 s, {per_5s} in 5 s; 429s: 0; \
             state DB connections at most {peak_conns}; audit chain of {events} events verified",
            batch.elapsed.as_secs_f64(),
            pct(&batch.acks, 0.5),
            pct(&batch.acks, 0.99),
            batch.acks.len(),
        );
        setup.bot.shutdown().await;
        setup.fake.finish();
    })
    .await;
}

/// The figures `scripts/bench` prints: one onboarding alone, 10 at once, then `LOAD_SERIAL`
/// (default 100) one after another, on one bot. Holds the lab alone (it measures).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by scripts/bench"]
async fn load_figures() {
    init_tracing();
    let serial: usize = std::env::var("LOAD_SERIAL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    exclusive(RUN * (4 + serial as u32), async {
        let mut one = onboardings("lb", 0, 1);
        let mut ten = onboardings("lb", 1, TEN);
        let mut serial_runs = onboardings("lb", 1 + TEN, serial);
        let all: Vec<Onboarding> = onboardings("lb", 0, 1 + TEN + serial);
        let (dbs, tmp, fake, cfg) = set_up_without_bot(&domains(&all)).await;
        point_zones(&all);
        fake.model_rate_limits(true);
        let s = Rig {
            fake: &fake,
            dbs: &dbs,
            cfg: &cfg,
        };
        let bot = BotProcess::start(tmp.path(), &fake).await;
        let (rss0, _) = bot.rss_kb();

        let alone = run_batch(&s, &mut one).await;
        let sampler = Sampler::start(&s);
        let since = chrono::Local::now().naive_local();
        let at_once = run_batch(&s, &mut ten).await;
        let peak_conns = sampler.stop();
        let (rss_ten, hwm_ten) = bot.rss_kb();
        let mut channels: Vec<ChannelId> = ten.iter().filter_map(|r| r.thread).collect();
        channels.push(s.fake.ops_channel_id());
        let (busiest, per_s, per_5s) = channel_peaks(&s, &channels);
        check_apart(&s, &one).await;
        check_apart(&s, &ten).await;
        check_certbot_per_vps(s.cfg, &ten, since);

        println!("== load: {TEN} at once, {serial} one after another (one bot, fake Discord with Discord's rate limits)");
        println!("{:<44} {:>10.1} s", "one onboarding alone", alone.elapsed.as_secs_f64());
        // The floor: certbot runs one at a time per VPS, so the VPS with the most of the 10
        // runs its certbots one after another; everything else could overlap.
        let cert = cert_secs(&s, &one[0].slug).await;
        let mut per_vps: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &ten {
            *per_vps.entry(r.vps).or_default() += 1;
        }
        let most = per_vps.values().copied().max().unwrap_or(1);
        let floor = alone.elapsed.as_secs_f64() + (most - 1) as f64 * cert;
        println!(
            "{:<44} {:>10.1} s  ({:.2}x one onboarding)",
            format!("{TEN} at once ({per_vps:?})"),
            at_once.elapsed.as_secs_f64(),
            at_once.elapsed.as_secs_f64() / alone.elapsed.as_secs_f64()
        );
        println!(
            "{:<44} {:>10.1} s  (one onboarding + {} more certbots of {cert:.1} s on the busiest VPS); \
             the 10 took {:.2}x the floor",
            "floor: certbot one at a time per VPS",
            floor,
            most - 1,
            at_once.elapsed.as_secs_f64() / floor
        );
        println!(
            "{:<44} {:>10.2} ms p50 {:>8.2} ms p99  ({} acks; target: under 50 ms)",
            "interaction acks while the 10 run",
            pct(&at_once.acks, 0.5),
            pct(&at_once.acks, 0.99),
            at_once.acks.len()
        );
        println!(
            "{:<44} {:>10} in 1 s, {} in 5 s (channel {busiest}; Discord: 5 messages and 5 edits per 5 s)",
            "requests to the busiest channel", per_s, per_5s
        );
        println!("{:<44} {:>10}", "state DB connections (peak, all pools)", peak_conns);

        let mut serial_time = Duration::ZERO;
        let mut rss_after = Vec::new();
        for (k, chunk) in serial_runs.chunks_mut(TEN).enumerate() {
            for r in chunk.iter_mut() {
                let b = run_batch(&s, std::slice::from_mut(r)).await;
                serial_time += b.elapsed;
            }
            check_apart(&s, chunk).await;
            rss_after.push(bot.rss_kb().0);
            println!(
                "{:<44} {:>10.1} MB",
                format!("RSS after {} one after another", (k * TEN + chunk.len())),
                rss_after.last().copied().unwrap_or(0) as f64 / 1024.0
            );
        }
        if serial > 0 {
            println!(
                "{:<44} {:>10.1} s  ({:.1} s each; one alone took {:.1} s)",
                format!("{serial} one after another"),
                serial_time.as_secs_f64(),
                serial_time.as_secs_f64() / serial as f64,
                alone.elapsed.as_secs_f64()
            );
        }
        let (rss_end, hwm) = bot.rss_kb();
        println!(
            "{:<44} {:>10.1} MB at start, {:.1} MB after the 10 (peak {:.1}), {:.1} MB at the end, peak {:.1} MB",
            "RSS of the bot (onboard-bot serve)",
            rss0 as f64 / 1024.0,
            rss_ten as f64 / 1024.0,
            hwm_ten as f64 / 1024.0,
            rss_end as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
        println!("{:<44} {:>10}", "state DB connections at the end", state_connections(&s).await);
        let limited = s.fake.rate_limited().len();
        println!("{:<44} {:>10}", "429s seen", limited);
        let events = check_audit(&s).await;
        println!("{:<44} {:>10} events, verified", "audit chain", events);
        let mut by_vps: BTreeMap<&str, usize> = BTreeMap::new();
        for r in one.iter().chain(&ten).chain(&serial_runs) {
            *by_vps.entry(r.vps).or_default() += 1;
        }
        println!("{:<44} {by_vps:?}", "onboardings per VPS");
        check_no_429(&s);
        bot.stop().await;
        fake.finish();
    })
    .await;
}
