//! DNS through hickory-resolver: one resolver per server, so each server's answer is seen on
//! its own (authoritative vs. recursive, one broken server among good ones).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RecordType;
use hickory_resolver::{Resolver, TokioResolver};

use crate::config::DnsConfig;
use crate::dnscheck::{
    Answer, Expected, MailPattern, Observations, Report, Role, Rtype, evaluate, follow_ups,
    in_zone, queries,
};

/// A resolver that asks exactly one server, without cache or retries elsewhere.
pub fn resolver_for(server: SocketAddr, timeout: Duration) -> anyhow::Result<TokioResolver> {
    let mut ns = NameServerConfig::udp_and_tcp(server.ip());
    for c in &mut ns.connections {
        c.port = server.port();
    }
    let mut opts = ResolverOpts::default();
    opts.timeout = timeout;
    opts.attempts = 1;
    opts.cache_size = 0;
    opts.edns0 = true;
    Ok(Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![ns]),
        TokioRuntimeProvider::default(),
    )
    .with_options(opts)
    .build()?)
}

/// `config check`: every configured server answers a query (any DNS answer counts: only a
/// timeout or a refused connection fails).
pub async fn check(cfg: &DnsConfig) -> anyhow::Result<String> {
    let servers: Vec<SocketAddr> = cfg
        .authoritative
        .iter()
        .chain(&cfg.resolvers)
        .copied()
        .collect();
    if servers.is_empty() {
        anyhow::bail!("no DNS servers configured (dns.authoritative, dns.resolvers)");
    }
    let timeout = Duration::from_secs(cfg.timeout_secs);
    let mut ok = Vec::new();
    for server in servers {
        let resolver = resolver_for(server, timeout)?;
        match resolver.lookup(".", RecordType::NS).await {
            Ok(_) => ok.push(format!("{server} answers")),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => {
                ok.push(format!("{server} answers"))
            }
            Err(hickory_resolver::net::NetError::Timeout) => {
                anyhow::bail!("{server}: no answer within {timeout:?}")
            }
            Err(e) => {
                let text = e.to_string();
                // REFUSED or SERVFAIL for the root still proves the server is up and speaking DNS.
                if text.contains("Refused")
                    || text.contains("ServFail")
                    || text.contains("response code")
                {
                    ok.push(format!("{server} answers"));
                } else {
                    anyhow::bail!("{server}: {text}");
                }
            }
        }
    }
    Ok(ok.join(", "))
}

/// Turns a resolver error into what the server said.
fn classify(e: &hickory_resolver::net::NetError) -> Answer {
    use hickory_resolver::net::{DnsError, NetError};
    use hickory_resolver::proto::op::ResponseCode;
    match e {
        _ if e.is_nx_domain() => Answer::NxDomain,
        NetError::Dns(DnsError::NoRecordsFound(nr)) => match nr.response_code {
            ResponseCode::ServFail => Answer::ServFail,
            ResponseCode::Refused => Answer::Refused,
            _ => Answer::NoData,
        },
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => Answer::ServFail,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => Answer::Refused,
        NetError::Timeout => Answer::Timeout,
        other => {
            let text = other.to_string();
            if text.contains("ServFail") {
                Answer::ServFail
            } else if text.contains("Refused") {
                Answer::Refused
            } else if text.contains("timed out") || text.contains("Timeout") {
                Answer::Timeout
            } else {
                Answer::Unreachable(text)
            }
        }
    }
}

/// A record's value in the normalised text the checker compares.
fn rdata_text(data: &hickory_resolver::proto::rr::RData) -> Option<String> {
    use hickory_resolver::proto::rr::RData;
    let name = |n: &hickory_resolver::proto::rr::Name| {
        n.to_ascii().trim_end_matches('.').to_ascii_lowercase()
    };
    Some(match data {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(a) => a.0.to_string(),
        RData::CNAME(c) => name(&c.0),
        RData::MX(mx) => format!("{} {}", mx.preference, name(&mx.exchange)),
        RData::TXT(txt) => txt
            .txt_data
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect::<String>(),
        _ => return None,
    })
}

/// The wire type of a record type of the runbook (also the update client's).
pub(crate) fn record_type(t: Rtype) -> RecordType {
    match t {
        Rtype::A => RecordType::A,
        Rtype::AAAA => RecordType::AAAA,
        Rtype::CNAME => RecordType::CNAME,
        Rtype::MX => RecordType::MX,
        Rtype::TXT => RecordType::TXT,
    }
}

/// Asks every server every query, all at once. A dead or failing server costs at most one
/// timeout and never holds up the others.
pub async fn observe(
    servers: &[(SocketAddr, Role)],
    queries: &[(String, Rtype)],
    timeout: Duration,
) -> anyhow::Result<Observations> {
    let mut set = tokio::task::JoinSet::new();
    for &(server, role) in servers {
        let resolver = std::sync::Arc::new(resolver_for(server, timeout)?);
        for (name, rtype) in queries {
            let resolver = resolver.clone();
            let (name, rtype) = (name.clone(), *rtype);
            set.spawn(async move {
                let fqdn = format!("{name}.");
                let answer = match resolver.lookup(fqdn.as_str(), record_type(rtype)).await {
                    Ok(lookup) => {
                        let wanted = record_type(rtype);
                        let recs: Vec<_> = lookup
                            .answers()
                            .iter()
                            .filter(|r| r.record_type() == wanted)
                            .collect();
                        if recs.is_empty() {
                            Answer::NoData
                        } else {
                            let ttl = recs.iter().map(|r| r.ttl).min().unwrap_or(0);
                            let mut values: Vec<String> =
                                recs.iter().filter_map(|r| rdata_text(&r.data)).collect();
                            values.sort();
                            values.dedup();
                            // Records the asked name holds itself, or the CNAME target's.
                            let owner = |r: &&hickory_resolver::proto::rr::Record| {
                                r.name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
                            };
                            let via = recs
                                .iter()
                                .map(owner)
                                .find(|o| *o != name)
                                .filter(|_| recs.iter().all(|r| owner(r) != name));
                            Answer::Records { values, ttl, via }
                        }
                    }
                    Err(e) => classify(&e),
                };
                ((server, role), (name, rtype), answer)
            });
        }
    }
    let mut obs = Observations::new();
    while let Some(done) = set.join_next().await {
        let (key, query, answer) = done?;
        obs.entry(key).or_default().insert(query, answer);
    }
    Ok(obs)
}

/// The servers to ask about `domain`: the configured authoritative ones (or those its NS
/// records name, found through the resolvers) and every configured resolver.
pub async fn servers_for(cfg: &DnsConfig, domain: &str) -> anyhow::Result<Vec<(SocketAddr, Role)>> {
    let timeout = Duration::from_secs(cfg.timeout_secs);
    let mut out: Vec<(SocketAddr, Role)> = cfg
        .authoritative
        .iter()
        .map(|s| (*s, Role::Authoritative))
        .collect();
    if out.is_empty() {
        let resolver_addr = cfg
            .resolvers
            .first()
            .ok_or_else(|| anyhow::anyhow!("configure dns.authoritative or dns.resolvers"))?;
        let resolver = resolver_for(*resolver_addr, timeout)?;
        let ns = resolver
            .lookup(format!("{domain}."), RecordType::NS)
            .await?;
        for rec in ns.answers() {
            if let hickory_resolver::proto::rr::RData::NS(n) = &rec.data
                && let Ok(ips) = resolver.lookup_ip(n.0.to_ascii()).await
            {
                out.extend(
                    ips.iter()
                        .map(|ip| (SocketAddr::new(ip, 53), Role::Authoritative)),
                );
            }
        }
        anyhow::ensure!(
            !out.is_empty(),
            "no authoritative servers found for {domain} through NS records"
        );
    }
    out.extend(cfg.resolvers.iter().map(|s| (*s, Role::Recursive)));
    Ok(out)
}

/// How many rounds of follow-up queries a check asks at most: enough for SPF includes nested
/// past the 10-lookup limit.
const FOLLOW_UP_ROUNDS: usize = 12;

/// Every answer the check of `domain` needs: the records themselves from every server, then
/// the follow-ups their answers call for (`dnscheck::follow_ups`), round after round until
/// nothing new comes up. A follow-up in the zone is asked of the authoritative servers; one
/// outside it of the resolvers (of the authoritative servers when there are none).
pub async fn observe_domain(
    servers: &[(SocketAddr, Role)],
    expected: &[Expected],
    domain: &str,
    timeout: Duration,
) -> anyhow::Result<Observations> {
    let first = queries(expected);
    let mut obs = observe(servers, &first, timeout).await?;
    let auth: Vec<(SocketAddr, Role)> = servers
        .iter()
        .copied()
        .filter(|(_, r)| *r == Role::Authoritative)
        .collect();
    let resolvers: Vec<(SocketAddr, Role)> = servers
        .iter()
        .copied()
        .filter(|(_, r)| *r == Role::Recursive)
        .collect();
    let outside = if resolvers.is_empty() {
        &auth
    } else {
        &resolvers
    };
    let mut asked: std::collections::BTreeSet<(String, Rtype)> = first.into_iter().collect();
    for _ in 0..FOLLOW_UP_ROUNDS {
        let next: Vec<(String, Rtype)> = follow_ups(domain, expected, &obs)
            .into_iter()
            .filter(|q| asked.insert(q.clone()))
            .collect();
        if next.is_empty() {
            break;
        }
        let (inside, out): (Vec<_>, Vec<_>) =
            next.into_iter().partition(|(n, _)| in_zone(n, domain));
        for (to, qs) in [(&auth, inside), (outside, out)] {
            if qs.is_empty() {
                continue;
            }
            for (server, answers) in observe(to, &qs, timeout).await? {
                obs.entry(server).or_default().extend(answers);
            }
        }
    }
    Ok(obs)
}

/// The whole check of one domain.
pub async fn check_domain(
    cfg: &DnsConfig,
    expected: &[Expected],
    domain: &str,
    pattern: &MailPattern,
) -> anyhow::Result<Report> {
    let servers = servers_for(cfg, domain).await?;
    let obs = observe_domain(
        &servers,
        expected,
        domain,
        Duration::from_secs(cfg.timeout_secs),
    )
    .await?;
    Ok(evaluate(domain, expected, &obs, pattern))
}

/// Checks until every record holds on every server (or, past `deadline`, returns the last
/// report), backing off from 1 s to 30 s and reporting each attempt through `progress`.
pub async fn check_until(
    cfg: &DnsConfig,
    expected: &[Expected],
    domain: &str,
    pattern: &MailPattern,
    deadline: Duration,
    mut progress: impl FnMut(u32, &Report),
) -> anyhow::Result<Report> {
    let until = tokio::time::Instant::now() + deadline;
    let mut pause = Duration::from_secs(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let report = check_domain(cfg, expected, domain, pattern).await?;
        progress(attempt, &report);
        let now = tokio::time::Instant::now();
        if report.all_ok() || now >= until {
            return Ok(report);
        }
        tokio::time::sleep(pause.min(until - now)).await;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}
