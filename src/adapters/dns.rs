//! DNS through hickory-resolver: one resolver per server, so each server's answer is seen on
//! its own (authoritative vs. recursive, one broken server among good ones).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RecordType;
use hickory_resolver::{Resolver, TokioResolver};

use crate::config::DnsConfig;

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
