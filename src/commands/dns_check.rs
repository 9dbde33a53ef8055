//! `/dns-check` and `onboard-bot dns-check`: which records a domain needs and whether they hold.

use crate::domain::{DomainName, InputError, MailPlan};
use crate::engine::request::DnsCheckRequest;

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
    #[arg(long, default_value_t = 600)]
    pub deadline_secs: u64,
}

impl DnsCheckArgs {
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
