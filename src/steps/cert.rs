//! Runbook "Deploy config", TLS part: `certbot --nginx -d {domain} -d www.{domain}
//! --non-interactive --agree-tos -m <email> --redirect` over SSH, one certbot at a time per VPS.

use std::time::Duration;

use async_trait::async_trait;

use super::common::{Precondition, Site, a_records, cert_targets, served_ok};
use super::{ApprovedPlan, CheckReport, Plan, Step, StepContext, StepError, StepName};
use crate::adapters::{ssh, tls};
use crate::config::VpsConfig;
use crate::domain::{DomainName, Email};
use crate::messages;

pub struct Cert;

/// The certbot command line, as arguments (each escaped for the remote shell by openssh).
fn certbot_args(vps: &VpsConfig, domain: &DomainName, email: &Email) -> Vec<String> {
    let cfg = &vps.cert;
    let mut args: Vec<String> = vec![
        cfg.certbot.clone(),
        "--nginx".into(),
        "-d".into(),
        domain.to_string(),
        "-d".into(),
        domain.www().to_string(),
        "--non-interactive".into(),
        "--agree-tos".into(),
        "-m".into(),
        email.to_string(),
        "--redirect".into(),
    ];
    args.extend(cfg.extra_args.iter().cloned());
    args
}

/// What must hold before certbot runs: DNS points here, the nginx site exists, `nginx -t`
/// passes.
/// `presume_site`: the nginx site and `nginx -t` are taken as they will be once deploy-stub
/// has run (the plan ahead), not checked.
async fn preconditions(
    cx: &StepContext,
    domain: &DomainName,
    presume_site: bool,
) -> Result<Vec<Precondition>, StepError> {
    let vps = cx.vps()?;
    let mut out: Vec<Precondition> = a_records(cx, domain, true)
        .await?
        .into_iter()
        .map(|r| Precondition {
            what: r.points_at(vps),
            ok: r.ok,
            found: r.found,
        })
        .collect();
    let site = Site::of(cx, domain)?;
    let site = site.vps_nginx_site();
    if presume_site {
        out.push(Precondition {
            what: format!("nginx site {site} exists"),
            ok: true,
            found: String::new(),
        });
        out.push(Precondition {
            what: "`nginx -t` passes".into(),
            ok: true,
            found: String::new(),
        });
        return Ok(out);
    }
    let session = cx.vps_session().await?;
    let exists = ssh::run(&session, "test", &["-f", site], Duration::from_secs(30))
        .await?
        .success;
    out.push(Precondition {
        what: format!("nginx site {site} exists"),
        ok: exists,
        found: String::new(),
    });
    let (prog, args) = vps
        .cert
        .nginx_test
        .split_first()
        .ok_or_else(|| StepError::refused("cert.nginx_test is empty"))?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let t = ssh::run(&session, prog, &args, Duration::from_secs(30)).await?;
    out.push(Precondition {
        what: "`nginx -t` passes".into(),
        ok: t.success,
        found: if t.success {
            String::new()
        } else {
            t.stderr.trim().to_owned()
        },
    });
    Ok(out)
}

/// `flock` on the VPS's certbot lock file, then certbot: without waiting (`-n`), or waiting
/// up to `wait` seconds for another certbot to finish.
pub(super) fn flock_args(vps: &VpsConfig, wait: Option<u64>, certbot: &[String]) -> Vec<String> {
    let cfg = &vps.cert;
    let mut args: Vec<String> = match wait {
        None => vec!["-n".into()],
        Some(secs) => vec!["-w".into(), secs.to_string()],
    };
    args.extend(["-E".into(), LOCK_BUSY.to_string(), cfg.lock_file.clone()]);
    args.extend(certbot.iter().cloned());
    args
}

/// The lines of certbot's output a person needs when it fails.
pub fn useful_lines(output: &str) -> String {
    let keys = [
        "error",
        "challenge",
        "detail",
        "problem",
        "refused",
        "unreachable",
        "timeout",
        "timed out",
        "failed",
        "could not",
        "urn:ietf",
    ];
    let useful: Vec<&str> = output
        .lines()
        .filter(|l| keys.iter().any(|k| l.to_ascii_lowercase().contains(k)))
        .collect();
    let lines: Vec<&str> = if useful.is_empty() {
        output
            .lines()
            .rev()
            .take(10)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect()
    } else {
        useful
    };
    lines.into_iter().take(15).collect::<Vec<_>>().join("\n")
}

/// certbot's exit code when the VPS lock is held (flock -E).
pub(super) const LOCK_BUSY: i32 = 75;

#[async_trait]
impl Step for Cert {
    fn id(&self) -> StepName {
        StepName::Cert
    }

    fn description(&self) -> &'static str {
        "TLS: certbot --nginx -d {domain} -d www.{domain} --non-interactive --agree-tos -m <email> --redirect, over SSH"
    }

    fn writes_production(&self) -> bool {
        true
    }

    fn timeout(&self) -> Option<Duration> {
        None
    }

    async fn plan(&self, cx: &StepContext) -> Result<Plan, StepError> {
        plan_with(cx, false).await
    }

    /// Up front, before deploy-stub has installed the site: the plan as it will be then.
    async fn plan_ahead(&self, cx: &StepContext) -> Result<(Plan, Option<String>), StepError> {
        Ok((
            plan_with(cx, true).await?,
            Some(messages::cert_presumes().to_owned()),
        ))
    }

    async fn apply(&self, cx: &StepContext, plan: &ApprovedPlan) -> Result<(), StepError> {
        let cfg = &cx.services.config;
        // Planned again right before certbot: DNS still points here, the site and `nginx -t`
        // still pass, the command line is the approved one. (Not under the VPS lock: certbot
        // holds that only while it runs, and a lock kept across our checks would outlive a
        // crashed bot.)
        let now = self.plan(cx).await?;
        plan.ensure_current(self.name(), &now)?;
        for (domain, email) in cert_targets(cx)? {
            if served_ok(cx, &domain).await.is_some() {
                continue;
            }
            let vps = cx.vps()?;
            let session = cx.vps_session().await?;
            let certbot = certbot_args(vps, &domain, &email);
            let timeout = Duration::from_secs(cfg.cert.timeout_secs);
            // certbot refuses to run twice at once on a host: every bot process takes the
            // same lock on the VPS. First try without waiting, to say so when we must wait.
            let args = flock_args(vps, None, &certbot);
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut out = ssh::run(&session, "flock", &argv, timeout).await?;
            if out.code == Some(LOCK_BUSY) {
                cx.log(&format!(
                    "another certbot is running on {}; waiting for it to finish",
                    vps.name
                ));
                let args = flock_args(vps, Some(cfg.cert.timeout_secs), &certbot);
                let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                out = ssh::run(&session, "flock", &argv, timeout + Duration::from_secs(30)).await?;
            }
            let all = format!("{}{}", out.stdout, out.stderr);
            for line in all.lines().filter(|l| !l.trim().is_empty()) {
                cx.log(line);
            }
            if out.code == Some(LOCK_BUSY) {
                return Err(StepError::Transient(anyhow::anyhow!(
                    "certbot lock on {} still held after {}s",
                    vps.name,
                    cfg.cert.timeout_secs
                )));
            }
            if !out.success {
                let acme_down = all.contains("Connection refused")
                    || all.contains("Max retries exceeded")
                    || all.contains("Failed to establish");
                let hint = if acme_down {
                    "the ACME CA could not be reached from the VPS"
                } else if all.to_ascii_lowercase().contains("challenge") {
                    "the ACME challenge failed: the CA could not fetch the token from this domain"
                } else {
                    "certbot failed"
                };
                return Err(StepError::refused(format!(
                    "{hint} for {domain} (exit {}); nothing was committed and the run can be resumed. certbot said:\n{}",
                    out.code
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "signal".into()),
                    useful_lines(&all)
                )));
            }
        }
        Ok(())
    }

    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError> {
        let vps = cx.vps()?;
        let mut evidence = Vec::new();
        for (domain, _) in cert_targets(cx)? {
            // nginx may still be finishing its reload: a few quick tries before judging.
            let status = || {
                tls::status(
                    domain.as_str(),
                    vps.ipv4.into(),
                    vps.cert.trusted_roots.as_deref(),
                    Duration::from_secs(10),
                )
            };
            let mut last = status().await;
            for _ in 1..10 {
                if last.as_ref().is_ok_and(tls::CertStatus::is_good) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                last = status().await;
            }
            match last {
                Ok(s) if s.is_good() => evidence.push(format!(
                    "{domain}: {} until {} (chain valid)",
                    s.issuer, s.not_after
                )),
                Ok(s) => return Ok(CheckReport::failed(s.render())),
                Err(e) => return Ok(CheckReport::failed(format!("{domain}: {e:#}"))),
            }
        }
        Ok(CheckReport::ok(evidence.join("; ")))
    }
}

/// The plan of the certificate: each domain's preconditions and certbot's command line.
/// `presume_site`: see [`preconditions`].
async fn plan_with(cx: &StepContext, presume_site: bool) -> Result<Plan, StepError> {
    let mut detail = String::new();
    let mut todo = Vec::new();
    for (domain, email) in cert_targets(cx)? {
        if let Some(s) = served_ok(cx, &domain).await {
            detail.push_str(&format!(
                "{domain}: already serves a valid certificate from {} ({} days left)\n",
                s.issuer, s.days_left
            ));
            continue;
        }
        let pre = preconditions(cx, &domain, presume_site).await?;
        detail.push_str(&messages::preconditions(domain.as_str(), &pre));
        if let Some(failed) = pre.iter().find(|p| !p.ok) {
            return Err(StepError::refused(format!(
                "certbot refused for {domain}: precondition failed: {} ({})\n{detail}",
                failed.what, failed.found
            )));
        }
        detail.push_str(&format!(
            "  run on {}: {}\n",
            cx.vps()?.name,
            certbot_args(cx.vps()?, &domain, &email).join(" ")
        ));
        todo.push(domain.to_string());
    }
    if todo.is_empty() {
        return Ok(Plan::AlreadyDone {
            evidence: detail.trim_end().to_owned(),
        });
    }
    Ok(Plan::Change {
        summary: format!(
            "issue a certificate for {} (and www) with certbot",
            todo.join(", ")
        ),
        detail,
    })
}
