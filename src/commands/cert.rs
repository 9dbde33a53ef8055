//! `/cert` and `onboard-bot cert`: issue or re-issue a domain's certificate, or inspect it.

use crate::domain::{DomainName, Email, InputError};

/// What to do with a certificate.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum CertArgs {
    /// Run certbot for DOMAIN and www (over SSH), sync the conf back, release the site.
    Issue {
        /// The domain (already deployed by an onboarding).
        domain: String,
        /// ACME account email; by default the one its onboarding recorded.
        #[arg(long)]
        email: Option<String>,
        #[command(flatten)]
        run: super::ConsoleRunArgs,
    },
    /// TLS handshake with DOMAIN on the VPS: issuer, names, expiry, chain validity.
    Status {
        /// The domain.
        domain: String,
    },
}

/// Parses the domain and the optional email.
pub fn parse_issue(
    domain: &str,
    email: Option<&str>,
) -> Result<(DomainName, Option<Email>), InputError> {
    let domain = DomainName::parse(domain)?;
    // certbot is asked for the apex and www together: `www.x` is part of the site `x`.
    domain.check_site_name("domain")?;
    Ok((domain, email.map(Email::parse).transpose()?))
}
