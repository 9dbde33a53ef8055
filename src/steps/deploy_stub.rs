//! Runbook "Deploy config", second half: once the domain points at the VPS and the webroot
//! exists, run the platform's deploy command (`./run deploy:{site} --from-local --nginx`) for
//! the HTTP stub, then fetch the stub over HTTP to prove nginx serves it.

use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::common::{Precondition, Site, a_records, onboard};
use super::{ApprovedPlan, CheckReport, Plan, Step, StepContext, StepError, StepName};
use crate::adapters::repo::Checkout;
use crate::adapters::{http, ssh};
use crate::domain::DomainName;
use crate::messages;

pub struct DeployStub;

const SSH_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether the apex A record points at the VPS on the authoritative servers.
async fn a_record_ok(cx: &StepContext, domain: &DomainName) -> Result<Precondition, StepError> {
    let vps = cx.vps()?;
    let rec = a_records(cx, domain, false)
        .await?
        .into_iter()
        .find(|r| r.rtype == crate::dnscheck::Rtype::A)
        .ok_or_else(|| {
            StepError::Internal(anyhow::anyhow!("no A record is expected for {domain}"))
        })?;
    Ok(Precondition {
        what: rec.points_at(vps),
        ok: rec.ok,
        found: rec.found,
    })
}

async fn webroot_exists(cx: &StepContext, webroot: &str) -> Result<bool, StepError> {
    let session = cx.vps_session().await?;
    Ok(ssh::run(&session, "test", &["-d", webroot], SSH_TIMEOUT)
        .await?
        .success)
}

/// The deployed site is live when the VPS serves the repo's nginx conf and the stub answers.
async fn live(cx: &StepContext, domain: &DomainName) -> Result<Result<String, String>, StepError> {
    let vps = cx.vps()?;
    let site = Site::of(cx, domain)?;
    let local = cx.services.repo.lock().await.read(&site.nginx_conf())?;
    let session = cx.vps_session().await?;
    let remote = ssh::run(&session, "cat", &[site.vps_nginx_site()], SSH_TIMEOUT).await?;
    // certbot rewrites the site file on the VPS: until it is synced back the repo's copy is
    // older, and deploying it again would drop TLS. A certbot-managed file counts as deployed.
    let certbot_managed = remote.stdout.contains("managed by Certbot");
    if !remote.success || (local.as_deref() != Some(remote.stdout.as_str()) && !certbot_managed) {
        return Ok(Err(format!(
            "the VPS does not serve the repo's nginx/prod.conf for {domain} yet"
        )));
    }
    // On each of the VPS's addresses: with IPv6, the AAAA records point at the second.
    let mut said = Vec::new();
    for ip in std::iter::once(std::net::IpAddr::from(vps.ipv4))
        .chain(vps.ipv6.map(std::net::IpAddr::from))
    {
        match served(cx, domain, ip).await {
            Ok(s) => said.push(s),
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(Ok(said.join("; ")))
}

/// What `http://{domain}/` answers on one address of the VPS: the stub, or a redirect to
/// HTTPS once the certificate is set up.
async fn served(
    cx: &StepContext,
    domain: &DomainName,
    ip: std::net::IpAddr,
) -> Result<String, String> {
    let on = if ip.is_ipv6() {
        format!(" on {ip}")
    } else {
        String::new()
    };
    let fetched = http::get(
        "http",
        domain.as_str(),
        "/",
        ip,
        None,
        Duration::from_secs(10),
    )
    .await
    .map_err(|e| format!("{e:#}"))?;
    match fetched.status {
        200 if fetched.body.contains(&cx.services.config.deploy.stub_text) => Ok(format!(
            "http://{domain}/ answers 200 with the stub page{on}"
        )),
        // After /cert, the HTTP server redirects to HTTPS: the stub deploy is still in place.
        301 | 308
            if fetched
                .location
                .as_deref()
                .is_some_and(|l| l.starts_with("https://")) =>
        {
            Ok(format!(
                "http://{domain}/ redirects to HTTPS (TLS already set up){on}"
            ))
        }
        s => Err(format!(
            "http://{domain}/ answered {s}{on}, not the stub page"
        )),
    }
}

#[async_trait]
impl Step for DeployStub {
    fn id(&self) -> StepName {
        StepName::DeployStub
    }

    fn description(&self) -> &'static str {
        "Deploy the HTTP stub: ./run deploy:{site} --from-local --nginx, once DNS points at the VPS and the webroot exists"
    }

    fn writes_production(&self) -> bool {
        true
    }

    fn timeout(&self) -> Option<Duration> {
        Some(Duration::from_secs(600))
    }

    async fn plan(&self, cx: &StepContext) -> Result<Plan, StepError> {
        let req = onboard(cx)?;
        let mut detail = String::new();
        let mut todo = Vec::new();
        for domain in &req.domains {
            if let Ok(evidence) = live(cx, domain).await? {
                detail.push_str(&format!("{domain}: already deployed — {evidence}\n"));
                continue;
            }
            let site = Site::of(cx, domain)?;
            let webroot = site.webroot();
            let a = a_record_ok(cx, domain).await?;
            // DNS a person must fix; a missing webroot the apply makes.
            let refusal = (!a.ok).then(|| {
                format!(
                    "deploy refused for {domain}: precondition failed: {} (found: {}). Fix DNS (see dns-check {domain}), then resume the run.",
                    a.what, a.found
                )
            });
            let webroot_ok = webroot_exists(cx, webroot).await?;
            let pre = [
                a,
                Precondition {
                    what: format!("webroot {webroot} exists on the VPS"),
                    ok: webroot_ok,
                    found: String::new(),
                },
            ];
            detail.push_str(&messages::preconditions(domain.as_str(), &pre));
            if let Some(refusal) = refusal {
                return Err(StepError::refused(refusal));
            }
            if !webroot_ok {
                detail.push_str(&format!(
                    "  then: mkdir -p {webroot} on {} (ssh {})\n",
                    cx.vps()?.name,
                    cx.vps()?.ssh_host
                ));
            }
            detail.push_str(&format!(
                "  run in the repo checkout: {}\n",
                site.deploy_command().join(" ")
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
                "deploy the HTTP stub of {} to {}",
                todo.join(", "),
                cx.vps()?.name
            ),
            detail,
        })
    }

    async fn apply(&self, cx: &StepContext, _plan: &ApprovedPlan) -> Result<(), StepError> {
        let req = onboard(cx)?;
        for domain in &req.domains {
            if live(cx, domain).await?.is_ok() {
                continue;
            }
            let site = Site::of(cx, domain)?;
            let webroot = site.webroot();
            if !webroot_exists(cx, webroot).await? {
                let session = cx.vps_session().await?;
                let out = ssh::run(&session, "mkdir", &["-p", "--", webroot], SSH_TIMEOUT).await?;
                if !out.success {
                    return Err(StepError::refused(format!(
                        "mkdir -p {webroot} on the VPS failed: {}",
                        out.stderr.trim()
                    )));
                }
            }
            let repo = cx.services.repo.lock().await;
            run_deploy(cx, &repo, &site.deploy_command()).await?;
        }
        Ok(())
    }

    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError> {
        let req = onboard(cx)?;
        let mut evidence = Vec::new();
        for domain in &req.domains {
            match live(cx, domain).await? {
                Ok(e) => evidence.push(e),
                Err(e) => return Ok(CheckReport::failed(e)),
            }
        }
        Ok(CheckReport::ok(evidence.join("; ")))
    }
}

/// Runs the deploy command in the checkout, streaming its output into the run's log. On a
/// non-zero exit the last lines are in the error.
async fn run_deploy(
    cx: &StepContext,
    repo: &Checkout<'_>,
    argv: &[String],
) -> Result<(), StepError> {
    let cfg = &cx.services.config;
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| StepError::refused("deploy.command is empty"))?;
    // From a cleared environment: the deploy command is the platform's, not the bot's.
    let mut child = crate::adapters::child_command(program, &cfg.deploy.env)
        .args(args)
        .current_dir(repo.root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A cancelled or timed-out step drops this future: the deploy is killed with it.
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            StepError::Internal(anyhow::anyhow!("cannot start `{}`: {e}", argv.join(" ")))
        })?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(StepError::Internal(anyhow::anyhow!(
            "`{}` started without its output pipes",
            argv.join(" ")
        )));
    };
    let (stdout, stderr) = (
        BufReader::new(stdout).lines(),
        BufReader::new(stderr).lines(),
    );
    let mut tail: Vec<String> = Vec::new();
    let mut streams = tokio_stream_lines(stdout, stderr);
    while let Some(line) = streams.recv().await {
        cx.log(&line);
        tail.push(line);
        if tail.len() > 15 {
            tail.remove(0);
        }
    }
    let status = tokio::time::timeout(Duration::from_secs(cfg.deploy.timeout_secs), child.wait())
        .await
        .map_err(|_| {
            StepError::refused(format!(
                "`{}` did not finish within {}s",
                argv.join(" "),
                cfg.deploy.timeout_secs
            ))
        })?
        .map_err(|e| StepError::Internal(e.into()))?;
    if !status.success() {
        return Err(StepError::refused(format!(
            "`{}` failed ({status}); last lines:\n{}",
            argv.join(" "),
            tail.join("\n")
        )));
    }
    Ok(())
}

/// Merges two line streams into one channel.
fn tokio_stream_lines(
    mut a: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    mut b: tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
) -> tokio::sync::mpsc::Receiver<String> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let tx2 = tx.clone();
    tokio::spawn(async move {
        while let Ok(Some(l)) = a.next_line().await {
            if tx.send(l).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Ok(Some(l)) = b.next_line().await {
            if tx2.send(l).await.is_err() {
                break;
            }
        }
    });
    rx
}
