//! Runbook "DNS": the records each domain needs (A → VPS, www, AAAA when set, the mail trio),
//! checked on the authoritative servers and the resolvers.
//!
//! For a domain in a zone of `dns.update` the bot writes them itself: the plan is the signed
//! RFC 2136 update (the records to add with their TTLs, the ones they replace, and the state
//! read from the primary, which the update requires as its prerequisites); on approval it is
//! sent once. For any other domain a person creates them at the registrar: until they hold the
//! run parks here with a zone-file snippet and re-checks.

use std::time::Duration;

use async_trait::async_trait;

use super::common::onboard;
use super::{ApprovedPlan, CheckReport, Plan, Step, StepContext, StepError, StepName};
use crate::adapters::dns;
use crate::adapters::dns_update::{self, UpdateError, ZoneUpdate};
use crate::config::{DnsConfig, DnsUpdateZone};
use crate::dnscheck::{self, Report};
use crate::messages;
use crate::state::dns_writes::{self, DnsWrite};

pub struct DnsRecords;

/// One domain as the step sees it: its check on every configured server and, for a domain the
/// bot may write, the update that makes it hold.
struct Domain {
    report: Report,
    update: Option<(DnsUpdateZone, ZoneUpdate)>,
}

async fn reports(cx: &StepContext) -> Result<Vec<Report>, StepError> {
    Ok(survey(cx, false)
        .await?
        .into_iter()
        .map(|d| d.report)
        .collect())
}

/// Checks every domain; with `updates`, reads the primary of each updatable one that does not
/// hold yet and plans its update.
async fn survey(cx: &StepContext, updates: bool) -> Result<Vec<Domain>, StepError> {
    let req = onboard(cx)?;
    let cfg = &cx.services.config;
    let mut out = Vec::new();
    for domain in &req.domains {
        let expected =
            dnscheck::expected_records(domain, cx.vps()?.ipv4, cx.vps()?.ipv6, req.mail, &cfg.mail);
        let report = dns::check_domain(&cfg.dns, &expected, domain.as_str(), &cfg.mail)
            .await
            .map_err(StepError::Transient)?;
        let zone = cfg.dns_update.zone_for(domain.as_str());
        let update = match zone {
            Some(zone) if updates && !report.authoritative_ok() => {
                let timeout = Duration::from_secs(cfg.dns.timeout_secs);
                // The records are judged as the primary alone serves them: that is what the
                // update changes and what its prerequisites are read from.
                let primary = DnsConfig {
                    authoritative: vec![zone.server],
                    resolvers: vec![],
                    timeout_secs: cfg.dns.timeout_secs,
                };
                let on_primary = dns::check_domain(&primary, &expected, domain.as_str(), &cfg.mail)
                    .await
                    .map_err(StepError::Transient)?;
                if on_primary
                    .records
                    .iter()
                    .any(|r| r.status == dnscheck::Status::ServerTrouble)
                {
                    return Err(StepError::Transient(anyhow::anyhow!(
                        "the primary {} of zone {} gave no usable answer for {domain}",
                        zone.server,
                        zone.zone
                    )));
                }
                let held =
                    dns_update::read(zone.server, &dns_update::names_to_read(&expected), timeout)
                        .await
                        .map_err(update_error)?;
                let up = dns_update::plan(zone, &on_primary, &held, cfg.mail.snippet_ttl)
                    .map_err(StepError::Refused)?;
                Some((zone.clone(), up))
            }
            _ => None,
        };
        out.push(Domain { report, update });
    }
    Ok(out)
}

fn update_error(e: UpdateError) -> StepError {
    match e {
        UpdateError::PrerequisiteFailed(m) => StepError::PlanChanged(m),
        UpdateError::Refused(m) => StepError::Refused(m),
        UpdateError::Transient(e) => StepError::Transient(e),
    }
}

fn summary(reports: &[Report]) -> String {
    reports
        .iter()
        .map(|r| messages::dns_records_ok(&r.domain, r.records_ok(), r.records.len()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a person must still create: the blocking problems and the zone snippet of each domain
/// that does not hold.
fn waiting_for(domains: &[&Domain]) -> String {
    let reports: Vec<&Report> = domains.iter().map(|d| &d.report).collect();
    messages::dns_waiting_for(&reports)
}

/// The plan, from a survey: done, the updates to send, or a wait for a person.
fn planned(cx: &StepContext, domains: &[Domain]) -> Plan {
    if domains.iter().all(|d| d.report.authoritative_ok()) {
        return Plan::AlreadyDone {
            evidence: summary(&domains.iter().map(|d| d.report.clone()).collect::<Vec<_>>()),
        };
    }
    let updates: Vec<&ZoneUpdate> = domains
        .iter()
        .filter_map(|d| d.update.as_ref().map(|(_, u)| u))
        .filter(|u| !u.is_empty())
        .collect();
    if !updates.is_empty() {
        let mut detail = String::new();
        for (d, u) in domains
            .iter()
            .filter_map(|d| d.update.as_ref().map(|(_, u)| (d, u)))
            .filter(|(_, u)| !u.is_empty())
        {
            detail.push_str(&format!("{}: ", d.report.domain));
            detail.push_str(&u.render());
        }
        // Records of domains the bot may not change are still a person's to create: the
        // approver sees that the run then waits for them. (Only their zone lines: stable text.)
        for d in domains
            .iter()
            .filter(|d| d.update.is_none() && !d.report.authoritative_ok())
        {
            detail.push_str(&format!(
                "{}: not in dns.update; then waits for a person to add:\n",
                d.report.domain
            ));
            for l in &d.report.snippet {
                detail.push_str(&format!("  {l}\n"));
            }
        }
        let records: usize = updates.iter().map(|u| u.add.len()).sum();
        let zones: Vec<&str> = updates.iter().map(|u| u.zone.as_str()).collect();
        return Plan::Change {
            summary: format!("write {records} DNS record(s) into {}", zones.join(", ")),
            detail,
        };
    }
    let pending: Vec<&Domain> = domains
        .iter()
        .filter(|d| !d.report.authoritative_ok())
        .collect();
    Plan::Wait {
        reason: format!(
            "waiting for DNS: these records are missing or wrong\n{}",
            waiting_for(&pending)
        ),
        recheck: Duration::from_secs(cx.services.config.engine.recheck_secs),
    }
}

/// The records an accepted update wrote, for the state DB.
fn writes(cx: &StepContext, domain: &str, zone: &DnsUpdateZone, up: &ZoneUpdate) -> Vec<DnsWrite> {
    up.add
        .iter()
        .map(|r| {
            let name = r.name.to_ascii().trim_end_matches('.').to_ascii_lowercase();
            let replaced = up
                .delete
                .iter()
                .filter(|d| d.name == r.name && d.record_type() == r.record_type())
                .map(|d| d.data.to_string())
                .collect();
            DnsWrite {
                domain: domain.to_owned(),
                zone: zone.zone.clone(),
                server: zone.server.to_string(),
                name,
                rtype: r.record_type().to_string(),
                ttl: i32::try_from(r.ttl).unwrap_or(i32::MAX),
                value: r.data.to_string(),
                replaced,
                run_id: cx.run_id,
                written_at: chrono::Utc::now(),
            }
        })
        .collect()
}

#[async_trait]
impl Step for DnsRecords {
    fn id(&self) -> StepName {
        StepName::DnsRecords
    }

    fn description(&self) -> &'static str {
        "DNS: A → VPS for apex and www, AAAA when set, MX/SPF/DKIM/DMARC when hosting mail"
    }

    /// It writes only into zones of `dns.update`, and then only with an approval; elsewhere it
    /// plans "wait" or "already done", which need none.
    fn writes_production(&self) -> bool {
        true
    }

    async fn plan(&self, cx: &StepContext) -> Result<Plan, StepError> {
        let domains = survey(cx, true).await?;
        Ok(planned(cx, &domains))
    }

    async fn apply(&self, cx: &StepContext, plan: &ApprovedPlan) -> Result<(), StepError> {
        // Planned again right before the write: what is sent is what was approved, and its
        // prerequisites are the state this plan read (a change after this read makes the
        // server refuse the whole update: nothing is overwritten).
        let domains = survey(cx, true).await?;
        plan.ensure_current(self.name(), &planned(cx, &domains))?;
        let cfg = &cx.services.config;
        let timeout = Duration::from_secs(cfg.dns.timeout_secs.max(5));
        for d in &domains {
            let Some((zone, up)) = &d.update else {
                continue;
            };
            if up.is_empty() {
                continue;
            }
            dns_update::send(up, &zone.key, timeout)
                .await
                .map_err(update_error)?;
            cx.log(&format!(
                "{}: zone {} updated at {} ({} record(s) added, {} replaced)",
                d.report.domain,
                zone.zone,
                zone.server,
                up.add.len(),
                up.delete.len()
            ));
            dns_writes::record(cx.state_db()?, &writes(cx, &d.report.domain, zone, up))
                .await
                .map_err(StepError::Internal)?;
        }
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
