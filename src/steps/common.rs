//! What several steps share: the run's input as each runbook gives it, the person's id, where a
//! site lives, the DNS precondition of the VPS steps, and the one way a step writes the platform
//! repo (plan under the repo's lock, then write, commit and push the approved plan only).

use std::time::Duration;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::{ApprovedPlan, CheckReport, Plan, Step, StepContext, StepError, StepName, written_as};
use crate::adapters::repo::Checkout;
use crate::adapters::{dns, tenant_db, tls};
use crate::config::{CertConfig, DeployConfig};
use crate::dnscheck::{self, Rtype, Status};
use crate::domain::{DomainName, Email, MailPlan};
use crate::templating;
// The one place steps name the engine's request types (they are the run's input).
pub use crate::report::Precondition;
pub use crate::request::{AbandonRequest, OnboardRequest, Request};

/// The line an abandon's commits end with: which onboarding is undone, and why.
pub fn abandon_note(cx: &StepContext) -> Result<String, StepError> {
    let a = abandon(cx)?;
    Ok(format!("Abandons run {}: {}", a.run_id, a.reason))
}

/// The abandon request of this run; the engine only gives compensations to abandon runs.
pub fn abandon(cx: &StepContext) -> Result<&AbandonRequest, StepError> {
    cx.request
        .as_abandon()
        .ok_or_else(|| StepError::Internal(anyhow::anyhow!("not an abandon run")))
}

/// The onboarding request of this run, or of the onboarding an abandon run undoes; the engine
/// only gives onboarding steps and their compensations to those runs.
pub fn onboard(cx: &StepContext) -> Result<&OnboardRequest, StepError> {
    cx.request
        .tenant()
        .ok_or_else(|| StepError::Internal(anyhow::anyhow!("not an onboarding run")))
}

/// The domains a run certifies and the contact email for the ACME account.
pub fn cert_targets(cx: &StepContext) -> Result<Vec<(DomainName, Email)>, StepError> {
    match cx.request.as_ref() {
        Request::Onboard(r) | Request::Abandon(AbandonRequest { onboarding: r, .. }) => Ok(r
            .domains
            .iter()
            .map(|d| (d.clone(), r.email.clone()))
            .collect()),
        Request::Cert(r) => Ok(vec![(r.domain.clone(), r.email.clone())]),
        Request::Verify(_) => Err(StepError::Internal(anyhow::anyhow!(
            "certificate steps in a verify run"
        ))),
    }
}

/// Whether the run's VPS already serves a good certificate for the domain and www.
pub async fn served_ok(cx: &StepContext, domain: &DomainName) -> Option<tls::CertStatus> {
    let vps = cx.vps().ok()?;
    tls::status(
        domain.as_str(),
        vps.ipv4.into(),
        vps.cert.trusted_roots.as_deref(),
        Duration::from_secs(10),
    )
    .await
    .ok()
    .filter(tls::CertStatus::is_good)
}

/// The Person's id: recorded by create-person, or looked up (a resumed run, a re-run).
pub async fn person_id(cx: &StepContext, conn: &mut sqlx::PgConnection) -> Result<Uuid, StepError> {
    if let Some(id) = cx.user_id().await {
        return Ok(id);
    }
    let req = onboard(cx)?;
    let user = tenant_db::find_user(conn, &req.slug).await?;
    if user.is_none() && cx.dry_run {
        // The dry run did not create the person: plan with a placeholder id.
        return Ok(Uuid::nil());
    }
    let user = user.ok_or_else(|| {
        StepError::refused(format!(
            "no users row for `{}`: create-person must run first",
            req.slug
        ))
    })?;
    cx.set_user_id(user.id).await?;
    Ok(user.id)
}

/// A connection to the tenant DB, for a plan or a check.
pub async fn tenant_conn(cx: &StepContext) -> Result<PoolConnection<Postgres>, StepError> {
    Ok(cx.services.tenant_db().await?.acquire().await?)
}

/// The transaction a tenant-DB step writes in. It reads one snapshot, so the plan made again
/// inside it is made from the state the write sees.
pub async fn tenant_write(cx: &StepContext) -> Result<Transaction<'static, Postgres>, StepError> {
    Ok(tenant_db::begin_snapshot(cx.services.tenant_db().await?).await?)
}

/// Where one site lives: its directory in the platform repo and its files on the VPS, from
/// the config's templates with the domain put in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub domain: DomainName,
    dir: String,
    nginx_site: String,
    webroot: String,
    deploy_command: String,
    lineages: String,
}

impl Site {
    pub fn new(deploy: &DeployConfig, cert: &CertConfig, domain: &DomainName) -> Self {
        Self {
            domain: domain.clone(),
            dir: format!("{}/{domain}", deploy.domains_dir),
            nginx_site: fill(&deploy.nginx_site, domain),
            webroot: fill(&deploy.webroot, domain),
            deploy_command: fill(&deploy.command, domain),
            lineages: format!("{}/live", certbot_config_dir(&cert.extra_args)),
        }
    }

    /// The site of `domain` on this run's VPS.
    pub fn of(cx: &StepContext, domain: &DomainName) -> Result<Self, StepError> {
        let vps = cx.vps()?;
        Ok(Self::new(&vps.deploy, &vps.cert, domain))
    }

    /// `{domains_dir}/{domain}`: the site's directory in the repo (the same on every VPS).
    pub fn repo_dir(cx: &StepContext, domain: &DomainName) -> String {
        format!("{}/{domain}", cx.services.config.deploy.domains_dir)
    }

    /// `{domains_dir}/{domain}`: the site's directory in the repo.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// A file of the site in the repo, by its path inside the site's directory.
    pub fn file(&self, rel: &str) -> String {
        format!("{}/{rel}", self.dir)
    }

    /// The site's services.yaml in the repo (domain, feature, aliases, held_back).
    pub fn services_yaml(&self) -> String {
        self.file("services.yaml")
    }

    /// The repo's copy of the site's nginx conf (certbot's edits are synced back into it).
    pub fn nginx_conf(&self) -> String {
        self.file("nginx/prod.conf")
    }

    /// The nginx site file on the VPS (deploy.sh `REMOTE_NGINX_CONF`).
    pub fn vps_nginx_site(&self) -> &str {
        &self.nginx_site
    }

    /// The webroot on the VPS (deploy.sh `REMOTE_DEST`).
    pub fn webroot(&self) -> &str {
        &self.webroot
    }

    /// The platform's deploy command for the site, as an argument vector (no shell).
    pub fn deploy_command(&self) -> Vec<String> {
        self.deploy_command
            .split_whitespace()
            .map(String::from)
            .collect()
    }

    /// certbot's `live/` folder on the VPS, holding one folder per certificate lineage (the
    /// site's is named after it: `{domain}`, `{domain}-0001`, ...).
    pub fn lineages_dir(&self) -> &str {
        &self.lineages
    }
}

/// A config template with the site's domain put in (`{domain}`, `{site}`).
fn fill(template: &str, domain: &DomainName) -> String {
    template
        .replace("{domain}", domain.as_str())
        .replace("{site}", domain.as_str())
}

/// certbot's configuration directory on the VPS: `--config-dir` of `cert.extra_args`, else
/// certbot's default.
pub fn certbot_config_dir(extra_args: &[String]) -> String {
    let mut args = extra_args.iter();
    while let Some(a) = args.next() {
        if let Some(dir) = a.strip_prefix("--config-dir=") {
            return dir.to_owned();
        }
        if a == "--config-dir"
            && let Some(dir) = args.next()
        {
            return dir.clone();
        }
    }
    "/etc/letsencrypt".into()
}

/// An A record the VPS steps need before they change anything, as the authoritative servers
/// answer it.
pub struct ARecord {
    /// The name it is for (the apex or www).
    pub name: String,
    /// A, or AAAA (expected when the VPS has an IPv6 address).
    pub rtype: Rtype,
    /// It points at the VPS (or will once propagated).
    pub ok: bool,
    /// What the servers answered.
    pub found: String,
}

/// The A records of `domain` on the authoritative servers (and its AAAA records when the run's
/// VPS has IPv6): the apex, and www when asked for.
pub async fn a_records(
    cx: &StepContext,
    domain: &DomainName,
    with_www: bool,
) -> Result<Vec<ARecord>, StepError> {
    let cfg = &cx.services.config;
    let vps = cx.vps()?;
    let expected: Vec<_> =
        dnscheck::expected_records(domain, vps.ipv4, vps.ipv6, MailPlan::None, &cfg.mail)
            .into_iter()
            .filter(|e| {
                matches!(e.rtype, Rtype::A | Rtype::AAAA) && (with_www || e.name == domain.as_str())
            })
            .collect();
    let report = dns::check_domain(&cfg.dns, &expected, domain.as_str(), &cfg.mail)
        .await
        .map_err(StepError::Transient)?;
    Ok(report
        .records
        .iter()
        .map(|r| ARecord {
            name: r.expected.name.clone(),
            rtype: r.expected.rtype,
            ok: matches!(r.status, Status::Ok | Status::NotYetPropagated),
            found: r
                .found
                .iter()
                .map(|f| f.2.clone())
                .collect::<Vec<_>>()
                .join("; "),
        })
        .collect())
}

impl ARecord {
    /// "A record of D points at 10.0.0.1 (vps-0)", for a precondition.
    pub fn points_at(&self, vps: &crate::config::VpsConfig) -> String {
        let addr = match (self.rtype, vps.ipv6) {
            (Rtype::AAAA, Some(v6)) => v6.to_string(),
            _ => vps.ipv4.to_string(),
        };
        format!(
            "{} record of {} points at {addr} ({})",
            self.rtype, self.name, vps.name
        )
    }
}

/// What a repo-writing step would write now.
pub struct RepoEdits {
    /// The plan's one-line summary.
    pub summary: String,
    /// The diffs a person reads.
    pub diffs: String,
    /// Each file to write, with its whole new text.
    pub files: Vec<(String, String)>,
    /// Each file to remove, with the text it has now (the plan pins it).
    pub removed: Vec<(String, String)>,
    /// What the plan says when there is nothing to write or push.
    pub done: String,
}

impl RepoEdits {
    /// Edits that write each changed file whole, each shown as a plain diff against what the
    /// repo has: `changes` holds (path, the repo's text or none, the new text).
    pub fn rewrites(
        summary: String,
        changes: Vec<(String, Option<String>, String)>,
        done: impl Into<String>,
    ) -> Self {
        Self {
            summary,
            diffs: changes
                .iter()
                .map(|(p, old, new)| templating::unified_diff(p, old.as_deref(), new))
                .collect(),
            files: changes
                .into_iter()
                .map(|(path, _, text)| (path, text))
                .collect(),
            removed: Vec::new(),
            done: done.into(),
        }
    }
}

/// The paths of the files a commit writes, for its subject line.
pub fn paths(files: &[(String, String)]) -> String {
    files
        .iter()
        .map(|f| f.0.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A commit message of the bot: the step's subject, the run and its approver (every commit
/// traces back to one approved plan), and the step's note if it has one.
fn commit_message(subject: &str, run_id: Uuid, approver: &str, note: Option<&str>) -> String {
    let mut message = format!("{subject}\n\nRun {run_id} of onboard-bot, approved by {approver}.");
    if let Some(note) = note {
        message.push('\n');
        message.push_str(note);
    }
    message
}

/// A step that writes the platform repo: deploy-config, sync-back and release. Each is a
/// [`Step`] through the one impl below, so each plans under the repo's lock from a checkout
/// synced with origin, and writes, commits and pushes only the approved plan, in the same turn.
#[async_trait]
pub trait RepoWrite: Send + Sync {
    /// Which step this is ([`Step::id`]).
    fn id(&self) -> StepName;

    /// [`Step::description`].
    fn description(&self) -> &'static str;

    /// The edits, from the checkout synced with origin just now.
    async fn edits(&self, cx: &StepContext, co: &Checkout<'_>) -> Result<RepoEdits, StepError>;

    /// Whether the change may be made now; asked only when there is one (release refuses
    /// until TLS is live).
    async fn ready(&self, _cx: &StepContext) -> Result<(), StepError> {
        Ok(())
    }

    /// Runs once the plan is confirmed, before the commit (deploy-config records its sites).
    async fn before_commit(&self, _cx: &StepContext, _co: &Checkout<'_>) -> Result<(), StepError> {
        Ok(())
    }

    /// The commit message's first line.
    fn subject(&self, cx: &StepContext, files: &[(String, String)]) -> Result<String, StepError>;

    /// A line the commit message ends with, after the run and its approver.
    fn note(&self, _cx: &StepContext) -> Result<Option<String>, StepError> {
        Ok(None)
    }

    /// Runs once the commit `head` is pushed (deploy-config logs it).
    fn pushed(&self, _cx: &StepContext, _head: &str) {}

    /// [`Step::check`].
    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError>;

    /// The edits as they will be once the earlier writes of the run are done, and what that
    /// presumes (see [`Step::plan_ahead`]); `None`: planned as now.
    async fn edits_ahead(
        &self,
        _cx: &StepContext,
        _repo: &Checkout<'_>,
    ) -> Result<Option<(RepoEdits, String)>, StepError> {
        Ok(None)
    }
}

/// Every repo-writing step writes production (the platform repo deploys from it), plans with
/// [`repo_plan`] and applies with [`repo_apply`].
#[async_trait]
impl<W: RepoWrite> Step for W {
    fn id(&self) -> StepName {
        RepoWrite::id(self)
    }

    fn description(&self) -> &'static str {
        RepoWrite::description(self)
    }

    fn writes_production(&self) -> bool {
        true
    }

    async fn plan(&self, cx: &StepContext) -> Result<Plan, StepError> {
        repo_plan(cx, self).await
    }

    async fn plan_ahead(&self, cx: &StepContext) -> Result<(Plan, Option<String>), StepError> {
        let co = cx.services.repo.lock().await;
        co.sync().await?;
        match self.edits_ahead(cx, &co).await? {
            // As `planned` writes it once the earlier writes are pushed (nothing unpushed then,
            // and `ready` is asked again at the real plan).
            Some((edits, presumes)) if !edits.files.is_empty() || !edits.removed.is_empty() => {
                Ok((plan_of(edits, String::new()), Some(presumes)))
            }
            _ => Ok((planned(cx, self, &co).await?.0, None)),
        }
    }

    async fn apply(&self, cx: &StepContext, plan: &ApprovedPlan) -> Result<(), StepError> {
        let head = repo_apply(cx, self.name(), self, plan).await?;
        self.pushed(cx, &head);
        Ok(())
    }

    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError> {
        RepoWrite::check(self, cx).await
    }
}

/// The plan and the files it writes. The caller holds the checkout's turn.
async fn planned(
    cx: &StepContext,
    w: &dyn RepoWrite,
    co: &Checkout<'_>,
) -> Result<(Plan, Vec<(String, String)>, Vec<String>), StepError> {
    co.sync().await?;
    let edits = w.edits(cx, co).await?;
    let unpushed = co.unpushed().await?;
    if edits.files.is_empty() && edits.removed.is_empty() && unpushed.is_empty() {
        let evidence = edits.done;
        return Ok((Plan::AlreadyDone { evidence }, Vec::new(), Vec::new()));
    }
    w.ready(cx).await?;
    let files = edits.files.clone();
    let removed = edits.removed.iter().map(|r| r.0.clone()).collect();
    Ok((plan_of(edits, unpushed), files, removed))
}

/// A repo write's plan: the diffs, the files as written, and the commits left unpushed.
fn plan_of(edits: RepoEdits, unpushed: String) -> Plan {
    let mut detail = edits.diffs;
    if !edits.files.is_empty() {
        // The diffs show what changes; these lines pin every byte written (a template line far
        // from the edits is in a copy too).
        detail.push_str("\nfiles as written:\n");
        for (path, text) in &edits.files {
            detail.push_str(&written_as(path, text));
        }
    }
    if !edits.removed.is_empty() {
        detail.push_str("\nfiles removed, as they are now:\n");
        for (path, text) in &edits.removed {
            detail.push_str(&written_as(path, text));
        }
    }
    if !unpushed.is_empty() {
        detail.push('\n');
        detail.push_str(&unpushed);
    }
    let summary = edits.summary;
    Plan::Change { summary, detail }
}

/// A repo-writing step's plan.
pub async fn repo_plan(cx: &StepContext, w: &dyn RepoWrite) -> Result<Plan, StepError> {
    let co = cx.services.repo.lock().await;
    Ok(planned(cx, w, &co).await?.0)
}

/// A repo-writing step's apply: one turn from the fetch to the push, so the plan checked
/// against the approval is the one written and no other run of this process touches the
/// checkout in between. Returns the pushed commit.
pub async fn repo_apply(
    cx: &StepContext,
    step: &str,
    w: &dyn RepoWrite,
    approved: &ApprovedPlan,
) -> Result<String, StepError> {
    let co = cx.services.repo.lock().await;
    let (now, files, removed) = planned(cx, w, &co).await?;
    approved.ensure_current(step, &now)?;
    w.before_commit(cx, &co).await?;
    let message = commit_message(
        &w.subject(cx, &files)?,
        cx.run_id,
        approved.approver().unwrap_or("nobody"),
        w.note(cx)?.as_deref(),
    );
    Ok(co.write_commit_push(&files, &removed, &message).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> DomainName {
        DomainName::parse(s).unwrap()
    }

    #[test]
    fn a_site_puts_its_domain_into_the_configured_paths() {
        let cert = CertConfig {
            extra_args: vec!["--config-dir".into(), "/lab/le".into()],
            ..CertConfig::default()
        };
        let site = Site::new(&DeployConfig::default(), &cert, &d("merche.com"));
        assert_eq!(site.dir(), "deployments/@domains/merche.com");
        assert_eq!(
            site.services_yaml(),
            "deployments/@domains/merche.com/services.yaml"
        );
        assert_eq!(
            site.nginx_conf(),
            "deployments/@domains/merche.com/nginx/prod.conf"
        );
        assert_eq!(
            site.vps_nginx_site(),
            "/etc/nginx/sites-available/merche.com"
        );
        assert_eq!(site.webroot(), "/var/www/merche.com");
        assert_eq!(
            site.deploy_command(),
            ["./run", "deploy:merche.com", "--from-local", "--nginx"]
        );
        assert_eq!(site.lineages_dir(), "/lab/le/live");
        let default = Site::new(
            &DeployConfig::default(),
            &CertConfig::default(),
            &d("a.com"),
        );
        assert_eq!(default.lineages_dir(), "/etc/letsencrypt/live");
    }

    #[test]
    fn a_commit_message_names_the_run_and_its_approver_then_the_note() {
        let run = Uuid::nil();
        assert_eq!(
            commit_message(
                "release a/services.yaml: held_back: false",
                run,
                "ana",
                None
            ),
            "release a/services.yaml: held_back: false\n\nRun 00000000-0000-0000-0000-000000000000 of onboard-bot, approved by ana."
        );
        assert_eq!(
            commit_message(
                "onboard x: deploy config for x.com",
                run,
                "nobody",
                Some("Templated from t.")
            ),
            "onboard x: deploy config for x.com\n\nRun 00000000-0000-0000-0000-000000000000 of onboard-bot, approved by nobody.\nTemplated from t."
        );
        let files = [
            ("a".to_owned(), String::new()),
            ("b".to_owned(), String::new()),
        ];
        assert_eq!(paths(&files), "a, b");
    }

    #[test]
    fn certbot_config_dir_follows_the_extra_args() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(certbot_config_dir(&[]), "/etc/letsencrypt");
        assert_eq!(
            certbot_config_dir(&args(&["--server=x", "--config-dir=/lab/le"])),
            "/lab/le"
        );
        assert_eq!(
            certbot_config_dir(&args(&["--config-dir", "/lab/le2"])),
            "/lab/le2"
        );
        // A trailing --config-dir without a value leaves certbot's default.
        assert_eq!(
            certbot_config_dir(&args(&["--config-dir"])),
            "/etc/letsencrypt"
        );
    }

    #[test]
    fn preconditions_render_one_line_each_with_what_was_found() {
        let pre = [
            Precondition {
                what: "A record of merche.com points at 10.0.0.1 (vps-0)".into(),
                ok: true,
                found: "10.0.0.1 from 127.0.0.1:53".into(),
            },
            Precondition {
                what: "webroot /var/www/merche.com exists on the VPS".into(),
                ok: false,
                found: String::new(),
            },
        ];
        assert_eq!(
            crate::messages::preconditions("merche.com", &pre),
            "merche.com: preconditions\n  [ok] A record of merche.com points at 10.0.0.1 (vps-0) — 10.0.0.1 from 127.0.0.1:53\n  [FAIL] webroot /var/www/merche.com exists on the VPS\n"
        );
    }
}
