//! HTTP(S) checks against a domain served by the VPS: the name is pinned to the VPS address
//! (as DNS says it should be), so the check sees exactly what nginx there serves.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

/// One response: status, `Location` header (redirects are not followed), body.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

/// GET `{scheme}://{host}{path}` from `ip`. For https, `root_ca` (PEM) is the only trusted root.
pub async fn get(
    scheme: &str,
    host: &str,
    path: &str,
    ip: IpAddr,
    root_ca: Option<&Path>,
    timeout: Duration,
) -> anyhow::Result<Fetched> {
    let port = if scheme == "https" { 443 } else { 80 };
    get_at(scheme, host, port, path, ip, root_ca, timeout).await
}

/// [`get`] on a given port (a URL that names one, like a portal's).
pub async fn get_at(
    scheme: &str,
    host: &str,
    port: u16,
    path: &str,
    ip: IpAddr,
    root_ca: Option<&Path>,
    timeout: Duration,
) -> anyhow::Result<Fetched> {
    let default = if scheme == "https" { 443 } else { 80 };
    let authority = if port == default {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    };
    let mut b = reqwest::Client::builder()
        .resolve(host, SocketAddr::new(ip, port))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .no_proxy();
    if let Some(ca) = root_ca {
        let pem = std::fs::read(ca).with_context(|| format!("reading CA file {}", ca.display()))?;
        b = b
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
    }
    let client = b.build()?;
    let resp = client
        .get(format!("{scheme}://{authority}{path}"))
        .send()
        .await
        .with_context(|| format!("GET {scheme}://{authority}{path} via {ip}"))?;
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = resp.text().await.unwrap_or_default();
    Ok(Fetched {
        status,
        location,
        body,
    })
}
