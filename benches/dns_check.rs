//! /dns-check's wall time over N domains (all their records, every configured server, all
//! queries at once), printed as one line per repetition for scripts/bench to read.
//! Usage: cargo bench --bench dns_check -- <server ip:port> <domain>...

use std::sync::Arc;
use std::time::Instant;

use onboard_bot::adapters::dns;
use onboard_bot::config::DnsConfig;
use onboard_bot::dnscheck::{self, MailPattern};
use onboard_bot::domain::{DomainName, MailPlan};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    // `cargo test --all-targets` runs benches too, without arguments: nothing to measure then.
    let Some((server, domains)) = args.split_first() else {
        eprintln!("usage: dns_check <server ip:port> <domain>... (run by scripts/bench)");
        return;
    };
    // `cargo test --all-targets -- FILTER...` hands the test filters to benches too.
    let Ok(server) = server.parse() else {
        eprintln!("dns_check: `{server}` is not a server ip:port: nothing to measure");
        return;
    };
    // The lab's config asks the same server as authoritative and as resolver.
    let cfg = Arc::new(DnsConfig {
        authoritative: vec![server],
        resolvers: vec![server],
        timeout_secs: 2,
    });
    let pattern = Arc::new(MailPattern::default());
    let domains: Vec<DomainName> = domains
        .iter()
        .map(|d| DomainName::parse(d).expect("domain"))
        .collect();
    let expected: Vec<_> = domains
        .iter()
        .map(|d| {
            dnscheck::expected_records(
                d,
                "127.0.0.1".parse().unwrap(),
                None,
                MailPlan::Mailbox,
                &pattern,
            )
        })
        .collect();
    let queries: usize = expected
        .iter()
        .map(|e| dnscheck::queries(e).len() * 2)
        .sum();
    for round in 0..5 {
        let t0 = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for (d, e) in domains.iter().zip(&expected) {
            let (cfg, pattern, d, e) = (cfg.clone(), pattern.clone(), d.clone(), e.clone());
            set.spawn(async move { dns::check_domain(&cfg, &e, d.as_str(), &pattern).await });
        }
        let mut ok = 0;
        while let Some(r) = set.join_next().await {
            if r.expect("task").is_ok_and(|r| r.all_ok()) {
                ok += 1;
            }
        }
        println!(
            "round {round}: {} domains, {queries} queries, {:.1} ms, {ok} all ok",
            domains.len(),
            t0.elapsed().as_secs_f64() * 1000.0
        );
    }
}
