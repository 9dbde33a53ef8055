//! Abandon: undo deploy-stub and sync-back on the VPS: the nginx site file and its
//! `sites-enabled` link removed, `nginx -t`, reload, the webroot removed. The check proves the
//! site answers 404 afterwards.

use std::path::Path;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::cert::flock_args;
use super::common::{Site, onboard};
use super::{ApprovedPlan, CheckReport, Plan, Step, StepContext, StepError, StepName};
use crate::adapters::{http, ssh};
use crate::domain::DomainName;

pub struct UndoSite;

const SSH_TIMEOUT: Duration = Duration::from_secs(30);

/// One command on the VPS, as the plan shows it and the apply runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Command {
    program: String,
    args: Vec<String>,
}

impl Command {
    fn new(program: &str, args: &[&str]) -> Self {
        Self {
            program: program.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    fn shown(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The `sites-enabled` link the platform's deploy makes beside `sites-available/{site}`.
fn enabled_link(conf: &str) -> Option<String> {
    let conf = Path::new(conf);
    let name = conf.file_name()?;
    let root = conf.parent()?.parent()?;
    Some(
        root.join("sites-enabled")
            .join(name)
            .to_string_lossy()
            .into_owned(),
    )
}

/// The nginx program on the VPS: the one `cert.nginx_test` runs.
fn nginx(cx: &StepContext) -> Result<String, StepError> {
    cx.vps()?
        .cert
        .nginx_test
        .first()
        .cloned()
        .ok_or_else(|| StepError::refused("cert.nginx_test is empty"))
}

/// What `http://{name}/` answers from the VPS: its status, or why nothing answered.
async fn http_status(cx: &StepContext, name: &str) -> Result<u16, String> {
    http::get(
        "http",
        name,
        "/",
        cx.vps().map_err(|e| format!("{e}"))?.ipv4.into(),
        None,
        Duration::from_secs(10),
    )
    .await
    .map(|f| f.status)
    .map_err(|e| format!("{e:#}"))
}

async fn exists(cx: &StepContext, flag: &str, path: &str) -> Result<bool, StepError> {
    let session = cx.vps_session().await?;
    Ok(ssh::run(&session, "test", &[flag, path], SSH_TIMEOUT)
        .await?
        .success)
}

/// The commands still to run for `domain`, in order; none when the site is gone and 404s.
async fn todo(cx: &StepContext, domain: &DomainName) -> Result<Vec<Command>, StepError> {
    let site = Site::of(cx, domain)?;
    let conf = site.vps_nginx_site();
    let webroot = site.webroot();
    // The webroot is removed recursively: it must be this domain's own directory.
    if !Path::new(webroot).is_absolute()
        || Path::new(webroot).file_name().and_then(|n| n.to_str()) != Some(domain.as_str())
    {
        return Err(StepError::refused(format!(
            "refusing to remove the webroot {webroot}: deploy.webroot must end in the domain's own directory"
        )));
    }
    let link = enabled_link(conf).ok_or_else(|| {
        StepError::refused(format!(
            "the nginx site {conf} has no sites-available parent"
        ))
    })?;
    let nginx = nginx(cx)?;
    // The site file and its link go under the VPS's certbot lock: certbot's nginx plugin reads
    // every site and writes back what it changed, so one running meanwhile (another domain's
    // certificate) could bring a removed site back.
    let vps = cx.vps()?;
    let locked_rm = |path: &str| {
        let rm = ["rm", "-f", "--", path].map(str::to_owned);
        let args = flock_args(vps, Some(cx.services.config.cert.timeout_secs), &rm);
        Command {
            program: "flock".into(),
            args,
        }
    };
    let mut out = Vec::new();
    let mut reload = false;
    if exists(cx, "-L", &link).await? || exists(cx, "-e", &link).await? {
        out.push(locked_rm(&link));
        reload = true;
    }
    if exists(cx, "-e", conf).await? {
        out.push(locked_rm(conf));
        reload = true;
    }
    if !reload && http_status(cx, domain.as_str()).await != Ok(404) {
        // Removed, but nginx was not reloaded since (an interrupted apply).
        reload = true;
    }
    if reload {
        out.push(Command::new(&nginx, &["-t"]));
        out.push(Command::new(&nginx, &["-s", "reload"]));
    }
    if exists(cx, "-e", webroot).await? {
        out.push(Command::new("rm", &["-rf", "--", webroot]));
    }
    Ok(out)
}

#[async_trait]
impl Step for UndoSite {
    fn id(&self) -> StepName {
        StepName::UndoSite
    }

    fn description(&self) -> &'static str {
        "Undo the stub deploy and the synced conf: remove the nginx site and its sites-enabled link, nginx -t, reload, remove the webroot"
    }

    fn writes_production(&self) -> bool {
        true
    }

    async fn plan(&self, cx: &StepContext) -> Result<Plan, StepError> {
        let mut detail = String::new();
        let mut names = Vec::new();
        for domain in &onboard(cx)?.domains {
            let commands = todo(cx, domain).await?;
            if commands.is_empty() {
                detail.push_str(&format!(
                    "{domain}: no nginx site, link or webroot; http://{domain}/ answers 404\n"
                ));
                continue;
            }
            detail.push_str(&format!("{domain}: run on {}:\n", cx.vps()?.name));
            for c in &commands {
                detail.push_str(&format!("  {}\n", c.shown()));
            }
            names.push(domain.to_string());
        }
        if names.is_empty() {
            return Ok(Plan::AlreadyDone {
                evidence: detail.trim_end().to_owned(),
            });
        }
        Ok(Plan::Change {
            summary: format!(
                "take the site of {} down on {}",
                names.join(", "),
                cx.vps()?.name
            ),
            detail,
        })
    }

    async fn apply(&self, cx: &StepContext, plan: &ApprovedPlan) -> Result<(), StepError> {
        let now = self.plan(cx).await?;
        plan.ensure_current(self.name(), &now)?;
        for domain in &onboard(cx)?.domains {
            for c in todo(cx, domain).await? {
                let session = cx.vps_session().await?;
                let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
                // A command under the certbot lock may wait for a certbot to finish.
                let timeout = if c.program == "flock" {
                    SSH_TIMEOUT + Duration::from_secs(cx.services.config.cert.timeout_secs)
                } else {
                    SSH_TIMEOUT
                };
                let out = ssh::run(&session, &c.program, &args, timeout).await?;
                if !out.success {
                    return Err(StepError::refused(format!(
                        "`{}` failed on the VPS: {}; the run can be resumed once it passes",
                        c.shown(),
                        out.stderr.trim()
                    )));
                }
                cx.log(&format!("{domain}: {}", c.shown()));
            }
        }
        Ok(())
    }

    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError> {
        let mut evidence = Vec::new();
        for domain in &onboard(cx)?.domains {
            let site = Site::of(cx, domain)?;
            let link = enabled_link(site.vps_nginx_site()).unwrap_or_default();
            if exists(cx, "-L", &link).await? {
                return Ok(CheckReport::failed(format!("{link} is still on the VPS")));
            }
            for path in [site.vps_nginx_site(), site.webroot()] {
                if exists(cx, "-e", path).await? {
                    return Ok(CheckReport::failed(format!("{path} is still on the VPS")));
                }
            }
            // nginx's old workers answer for a moment after a reload: a bounded wait.
            for name in [domain.clone(), domain.www()] {
                let deadline = Instant::now() + Duration::from_secs(15);
                let mut last = http_status(cx, name.as_str()).await;
                while last != Ok(404) && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    last = http_status(cx, name.as_str()).await;
                }
                match last {
                    Ok(404) => evidence.push(format!("http://{name}/ answers 404")),
                    Ok(s) => {
                        return Ok(CheckReport::failed(format!(
                            "http://{name}/ still answers {s}"
                        )));
                    }
                    Err(e) => return Ok(CheckReport::failed(format!("http://{name}/: {e}"))),
                }
            }
        }
        Ok(CheckReport::ok(evidence.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_enabled_link_sits_beside_sites_available() {
        assert_eq!(
            enabled_link("/etc/nginx/sites-available/merche.com").as_deref(),
            Some("/etc/nginx/sites-enabled/merche.com")
        );
        assert_eq!(enabled_link("merche.com"), None);
    }
}
