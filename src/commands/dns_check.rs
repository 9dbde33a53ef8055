//! `/dns-check` and `onboard-bot dns-check`: which records a domain needs and whether they hold.

use super::{CommandError, Listing, Reply};
use crate::domain::{DomainName, InputError, MailPlan};
use crate::engine::Engine;
use crate::request::DnsCheckRequest;

/// The options as typed.
#[derive(Debug, Clone, clap::Args)]
pub struct DnsCheckArgs {
    /// The domain to check (e.g. merche-biche.com).
    pub domain: String,
    /// Mail plan to check records for; by default the one its onboarding recorded, else none.
    #[arg(long, value_enum)]
    pub mail: Option<MailPlan>,
    /// Poll until every record holds or the deadline passes.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds.
    #[arg(long, default_value_t = DEFAULT_DEADLINE_SECS)]
    pub deadline_secs: u64,
}

/// `--deadline-secs` when not given.
pub const DEFAULT_DEADLINE_SECS: u64 = 600;

impl DnsCheckArgs {
    /// One check now (Discord's form: it answers within the interaction).
    pub fn once(domain: String, mail: Option<MailPlan>) -> Self {
        Self {
            domain,
            mail,
            wait: false,
            deadline_secs: DEFAULT_DEADLINE_SECS,
        }
    }

    pub fn parse(&self) -> Result<DnsCheckRequest, InputError> {
        if self.wait && !(1..=86_400).contains(&self.deadline_secs) {
            return Err(InputError::new("deadline", "must be 1 to 86400 seconds"));
        }
        Ok(DnsCheckRequest {
            domain: DomainName::parse(&self.domain)?,
            mail: self.mail,
            wait: self
                .wait
                .then(|| std::time::Duration::from_secs(self.deadline_secs)),
        })
    }
}

/// Checks the records (and makes runs parked on the domain re-check); with `--wait`, each
/// attempt is reported through `progress`.
pub async fn run(
    engine: &Engine,
    req: &DnsCheckRequest,
    mut progress: impl FnMut(String),
) -> Result<Reply, CommandError> {
    let (report, mail) = engine
        .dns_check(req, |n, r| progress(attempt_line(n, r)))
        .await?;
    let written = engine.dns_writes(req.domain.as_str()).await?;
    let written = crate::messages::dns_written_by_bot(&written);
    let view = crate::dnscheck::view(&report);
    Ok(Reply::Listing(Listing {
        title: format!("dns-check {}", req.domain),
        text: format!(
            "{}{written}mail plan checked: {}\n",
            crate::dnscheck::table(&view),
            mail.name()
        ),
        ok: report.all_ok(),
        card: Some(crate::messages::dns_card(&view, mail.name(), &written)),
    }))
}

/// One attempt of `--wait`.
fn attempt_line(n: u32, r: &crate::dnscheck::Report) -> String {
    crate::messages::dns_attempt(n, r.records_ok(), r.records.len())
}
