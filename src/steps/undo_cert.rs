//! Abandon: `certbot delete --cert-name ...` on the VPS for each certificate lineage of the
//! onboarding's domains, under the per-VPS certbot lock. The certificate is revoked first
//! only with `cert.revoke_on_abandon` (off by default; the plan says which).

use std::time::Duration;

use async_trait::async_trait;

use super::cert::{LOCK_BUSY, flock_args};
use super::common::{Site, onboard};
use super::{ApprovedPlan, CheckReport, Plan, Step, StepContext, StepError, StepName};
use crate::adapters::ssh;
use crate::domain::DomainName;

pub struct UndoCert;

/// Whether `name` is a lineage of `domain`: `{domain}`, or `{domain}-NNNN` (certbot's next).
fn is_lineage_of(name: &str, domain: &DomainName) -> bool {
    match name.strip_prefix(domain.as_str()) {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix('-')
            .is_some_and(|n| n.len() == 4 && n.bytes().all(|b| b.is_ascii_digit())),
        None => false,
    }
}

/// The lineages of the onboarding's domains on the VPS.
async fn lineages(cx: &StepContext) -> Result<Vec<String>, StepError> {
    let session = cx.vps_session().await?;
    let mut out = Vec::new();
    for domain in &onboard(cx)?.domains {
        let dir = Site::of(cx, domain)?.lineages_dir().to_owned();
        let ls = ssh::run(&session, "ls", &["-1", "--", &dir], Duration::from_secs(30)).await?;
        if !ls.success {
            // No live/ directory: certbot never issued anything here.
            continue;
        }
        out.extend(
            ls.stdout
                .lines()
                .map(str::trim)
                .filter(|n| is_lineage_of(n, domain))
                .map(str::to_owned),
        );
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// `certbot delete`, or with `cert.revoke_on_abandon` `certbot revoke --delete-after-revoke`.
fn delete_args(vps: &crate::config::VpsConfig, lineage: &str) -> Vec<String> {
    let cfg = &vps.cert;
    let mut args = vec![cfg.certbot.clone()];
    if cfg.revoke_on_abandon {
        args.extend(["revoke".into(), "--delete-after-revoke".into()]);
    } else {
        args.push("delete".into());
    }
    args.extend([
        "--cert-name".into(),
        lineage.to_owned(),
        "--non-interactive".into(),
    ]);
    args.extend(cfg.extra_args.iter().cloned());
    args
}

#[async_trait]
impl Step for UndoCert {
    fn id(&self) -> StepName {
        StepName::UndoCert
    }

    fn description(&self) -> &'static str {
        "Undo the certificate: certbot delete --cert-name {domain} on the VPS, under the certbot lock (revoked first only with cert.revoke_on_abandon)"
    }

    fn writes_production(&self) -> bool {
        true
    }

    async fn plan(&self, cx: &StepContext) -> Result<Plan, StepError> {
        let lineages = lineages(cx).await?;
        if lineages.is_empty() {
            return Ok(Plan::AlreadyDone {
                evidence: "no certificate lineage of the onboarding's domains on the VPS".into(),
            });
        }
        let vps = &cx.vps()?.name;
        let mut detail = String::new();
        for l in &lineages {
            detail.push_str(&format!(
                "run on {vps}, under the certbot lock: {}\n",
                delete_args(cx.vps()?, l).join(" ")
            ));
        }
        detail.push_str(if cx.services.config.cert.revoke_on_abandon {
            "The certificate is revoked at the CA first (cert.revoke_on_abandon), then deleted.\n"
        } else {
            "The certificate is not revoked (cert.revoke_on_abandon is off): it stays valid at the CA until it expires, and no server holds its key any more.\n"
        });
        Ok(Plan::Change {
            summary: format!("delete the certificate(s) {} on {vps}", lineages.join(", ")),
            detail,
        })
    }

    async fn apply(&self, cx: &StepContext, plan: &ApprovedPlan) -> Result<(), StepError> {
        let now = self.plan(cx).await?;
        plan.ensure_current(self.name(), &now)?;
        let cfg = &cx.services.config;
        let timeout = Duration::from_secs(cfg.cert.timeout_secs);
        for lineage in lineages(cx).await? {
            let session = cx.vps_session().await?;
            let certbot = delete_args(cx.vps()?, &lineage);
            // Waits for another certbot on the VPS rather than failing at once.
            let args = flock_args(cx.vps()?, Some(cfg.cert.timeout_secs), &certbot);
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = ssh::run(&session, "flock", &argv, timeout + Duration::from_secs(30)).await?;
            if out.code == Some(LOCK_BUSY) {
                return Err(StepError::Transient(anyhow::anyhow!(
                    "certbot lock on {} still held after {}s",
                    cx.vps()?.name,
                    cfg.cert.timeout_secs
                )));
            }
            if !out.success {
                return Err(StepError::refused(format!(
                    "`{}` failed: {}",
                    certbot.join(" "),
                    super::cert::useful_lines(&format!("{}{}", out.stdout, out.stderr))
                )));
            }
            cx.log(&format!("deleted the certificate {lineage}"));
        }
        Ok(())
    }

    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError> {
        let left = lineages(cx).await?;
        Ok(if left.is_empty() {
            CheckReport::ok("no certificate of the onboarding's domains left on the VPS")
        } else {
            CheckReport::failed(format!("still on the VPS: {}", left.join(", ")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lineages_are_the_domain_and_its_numbered_successors_only() {
        let d = DomainName::parse("merche.com").unwrap();
        assert!(is_lineage_of("merche.com", &d));
        assert!(is_lineage_of("merche.com-0001", &d));
        assert!(!is_lineage_of("merche.com-1", &d));
        assert!(!is_lineage_of("merche.com.au", &d));
        assert!(!is_lineage_of("www.merche.com", &d));
        assert!(!is_lineage_of("README", &d));
    }
}
