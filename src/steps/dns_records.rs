//! Runbook "DNS": the records each domain needs (A → VPS, www, AAAA when set, the mail trio),
//! checked on the authoritative servers and the resolvers. A person creates them at the
//! registrar, so until they hold the run parks here and re-checks; it never writes DNS.

use async_trait::async_trait;

use super::common::onboard;
use super::{ApprovedPlan, CheckReport, Plan, Step, StepContext, StepError, StepName};
use crate::adapters::dns;
use crate::dnscheck::{self, Report};

pub struct DnsRecords;

async fn reports(cx: &StepContext) -> Result<Vec<Report>, StepError> {
    let req = onboard(cx)?;
    let cfg = &cx.services.config;
    let mut out = Vec::new();
    for domain in &req.domains {
        let expected =
            dnscheck::expected_records(domain, cfg.vps.ipv4, cfg.vps.ipv6, req.mail, &cfg.mail);
        let report = dns::check_domain(&cfg.dns, &expected, domain.as_str(), &cfg.mail)
            .await
            .map_err(StepError::Transient)?;
        out.push(report);
    }
    Ok(out)
}

fn summary(reports: &[Report]) -> String {
    reports
        .iter()
        .map(|r| {
            let ok = r
                .records
                .iter()
                .filter(|x| matches!(x.status, dnscheck::Status::Ok | dnscheck::Status::Warning))
                .count();
            format!("{}: {ok}/{} records ok", r.domain, r.records.len())
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[async_trait]
impl Step for DnsRecords {
    fn id(&self) -> StepName {
        StepName::DnsRecords
    }

    fn description(&self) -> &'static str {
        "DNS: A → VPS for apex and www, AAAA when set, MX/SPF/DKIM/DMARC when hosting mail"
    }

    fn writes_production(&self) -> bool {
        false
    }

    async fn plan(&self, cx: &StepContext) -> Result<Plan, StepError> {
        let reports = reports(cx).await?;
        if reports.iter().all(Report::authoritative_ok) {
            return Ok(Plan::AlreadyDone {
                evidence: summary(&reports),
            });
        }
        let mut reason = String::from("waiting for DNS: these records are missing or wrong\n");
        for r in reports.iter().filter(|r| !r.authoritative_ok()) {
            for d in r.diagnoses.iter().filter(|d| d.blocking()) {
                reason.push_str(&format!("- {} (fix: {})\n", d.problem, d.fix));
            }
            for l in &r.snippet {
                reason.push_str(&format!("  {l}\n"));
            }
            if !r.remove.is_empty() {
                reason.push_str("and remove these records:\n");
                for l in &r.remove {
                    reason.push_str(&format!("  {l}\n"));
                }
            }
        }
        Ok(Plan::Wait {
            reason,
            recheck: std::time::Duration::from_secs(cx.services.config.engine.recheck_secs),
        })
    }

    async fn apply(&self, _cx: &StepContext, _plan: &ApprovedPlan) -> Result<(), StepError> {
        Ok(())
    }

    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError> {
        let reports = reports(cx).await?;
        let ok = reports.iter().all(Report::authoritative_ok);
        Ok(CheckReport {
            ok,
            evidence: summary(&reports),
        })
    }
}
