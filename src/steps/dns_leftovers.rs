//! Abandon: the DNS records are the registrar's. This step removes nothing and waits for
//! nothing: it lists the records the onboarding asked for, which can now be removed at the
//! registrar (a zone snippet), and those the bot wrote itself through `dns.update`.

use async_trait::async_trait;

use super::common::onboard;
use super::{ApprovedPlan, CheckReport, Plan, Step, StepContext, StepError, StepName};
use crate::dnscheck::{self, Expected, Want};
use crate::state::dns_writes::{self, DnsWrite};

pub struct DnsLeftovers;

/// One zone line per record a person may remove (a TXT or CNAME choice shown as a comment).
fn zone_lines(expected: &[Expected]) -> Vec<String> {
    let mut out = Vec::new();
    for e in expected {
        match &e.want {
            Want::Values(values) => {
                for v in values {
                    out.push(format!("{}.\tIN\t{}\t{v}", e.name, e.rtype));
                }
            }
            Want::AOrCname { ip, target } => {
                out.push(format!("{}.\tIN\tA\t{ip}\t; or CNAME {target}.", e.name));
            }
            Want::TxtTag { tag, .. } => {
                out.push(format!("{}.\tIN\tTXT\t\"{tag}...\"", e.name));
            }
        }
    }
    out
}

/// The summary: what the registrar still has, what the bot wrote. Pure, snapshot-tested.
fn summary(domains: &[(String, Vec<String>)], written: &[DnsWrite]) -> String {
    let mut out = String::from(
        "DNS is the registrar's: these records of the abandoned onboarding can now be removed there (nothing waits for it):\n",
    );
    for (domain, lines) in domains {
        out.push_str(&format!("; {domain}\n"));
        for l in lines {
            out.push_str(l);
            out.push('\n');
        }
    }
    if !written.is_empty() {
        out.push_str("written by the bot (dns.update), to remove from their zone as well:\n");
        for w in written {
            out.push_str(&format!(
                "{}.\t{}\tIN\t{}\t{}\t; zone {}, run {}\n",
                w.name, w.ttl, w.rtype, w.value, w.zone, w.run_id
            ));
        }
    }
    out.trim_end().to_owned()
}

#[async_trait]
impl Step for DnsLeftovers {
    fn id(&self) -> StepName {
        StepName::DnsLeftovers
    }

    fn description(&self) -> &'static str {
        "List the DNS records that can now be removed at the registrar (and those the bot wrote); waits for nothing"
    }

    fn writes_production(&self) -> bool {
        false
    }

    async fn plan(&self, cx: &StepContext) -> Result<Plan, StepError> {
        let req = onboard(cx)?;
        let cfg = &cx.services.config;
        let mut domains = Vec::new();
        let mut written = Vec::new();
        for d in &req.domains {
            let expected =
                dnscheck::expected_records(d, cx.vps()?.ipv4, cx.vps()?.ipv6, req.mail, &cfg.mail);
            domains.push((d.to_string(), zone_lines(&expected)));
            written.extend(dns_writes::for_domain(cx.state_db()?, d.as_str()).await?);
        }
        Ok(Plan::AlreadyDone {
            evidence: summary(&domains, &written),
        })
    }

    async fn apply(&self, _cx: &StepContext, _plan: &ApprovedPlan) -> Result<(), StepError> {
        Ok(())
    }

    async fn check(&self, _cx: &StepContext) -> Result<CheckReport, StepError> {
        Ok(CheckReport::ok("listed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DomainName, MailPlan};

    #[test]
    fn the_summary_is_a_zone_snippet_per_domain() {
        let d = DomainName::parse("merche.com").unwrap();
        let expected = dnscheck::expected_records(
            &d,
            "192.0.2.10".parse().unwrap(),
            None,
            MailPlan::None,
            &crate::dnscheck::MailPattern::default(),
        );
        let text = summary(&[(d.to_string(), zone_lines(&expected))], &[]);
        insta::assert_snapshot!(text);
    }
}
