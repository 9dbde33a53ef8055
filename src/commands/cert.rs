//! `/cert issue|status` and `onboard-bot cert issue|status`: issue or re-issue a domain's
//! certificate (a run of the `cert` runbook), or inspect the one it serves.

use std::time::Duration;

use super::{Caller, CommandError, Listing, Reply};
use crate::config::Config;
use crate::domain::{DomainName, Email, InputError};
use crate::engine::{Engine, StartOptions};

/// How long `cert status` waits for the TLS handshake.
const STATUS_TIMEOUT: Duration = Duration::from_secs(10);

/// `cert issue`'s input as typed.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CertIssueArgs {
    /// The domain (already deployed by an onboarding).
    pub domain: String,
    /// ACME account email; by default the one its onboarding recorded.
    #[arg(long)]
    pub email: Option<String>,
}

/// A validated `cert issue`: the email is looked up at run time when none was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueInput {
    pub domain: DomainName,
    pub email: Option<Email>,
}

impl CertIssueArgs {
    /// Parses the domain and the optional email.
    pub fn parse(&self) -> Result<IssueInput, InputError> {
        let domain = DomainName::parse(&self.domain)?;
        // certbot is asked for the apex and www together: `www.x` is part of the site `x`.
        domain.check_site_name("domain")?;
        Ok(IssueInput {
            domain,
            email: self.email.as_deref().map(Email::parse).transpose()?,
        })
    }
}

/// Starts a `cert` run for a site on record, with the email given or its owner's (the
/// engine's one fallback).
pub async fn issue(
    engine: &Engine,
    caller: &Caller,
    input: IssueInput,
    opts: StartOptions,
) -> Result<Reply, CommandError> {
    let request = engine.cert_request(input.domain, input.email).await?;
    super::start(engine, caller, request, opts).await
}

/// `cert status`'s input as typed.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CertStatusArgs {
    /// The domain.
    pub domain: String,
}

impl CertStatusArgs {
    pub fn parse(&self) -> Result<DomainName, InputError> {
        DomainName::parse(&self.domain)
    }
}

/// The TLS handshake with the domain on the VPS: issuer, names, expiry, chain validity. Needs
/// no state database, so it takes the config only: with a fleet, each VPS is asked in order
/// and the first serving a good certificate answers (else the first that answered at all).
pub async fn status(config: &Config, domain: &DomainName) -> Result<Reply, CommandError> {
    let mut first: Option<(&crate::config::VpsConfig, anyhow::Result<_>)> = None;
    for vps in &config.fleet {
        let status = crate::adapters::tls::status(
            domain.as_str(),
            vps.ipv4.into(),
            vps.cert.trusted_roots.as_deref(),
            STATUS_TIMEOUT,
        )
        .await;
        let good = status.as_ref().is_ok_and(|s| s.is_good());
        if good
            || first
                .as_ref()
                .is_none_or(|(_, s)| s.is_err() && status.is_ok())
        {
            first = Some((vps, status));
        }
        if good {
            break;
        }
    }
    let (vps, status) = first.ok_or_else(|| anyhow::anyhow!("the config lists no VPS"))?;
    let status = status?;
    let title = if config.fleet.len() > 1 {
        format!("cert status {domain} on {}", vps.name)
    } else {
        format!("cert status {domain}")
    };
    Ok(Reply::Listing(Listing {
        title,
        text: status.render(),
        ok: status.is_good(),
        card: None,
    }))
}
