//! Runbook steps: one file per step, each implementing [`Step`].
//!
//! A step can `plan` (read-only: the exact change it would make, "already done", or "wait"),
//! `apply` (idempotent, and only with an [`ApprovedPlan`] the engine hands out) and `check`
//! (prove the result holds). The engine owns ordering, approvals, retries, timeouts and the
//! audit trail; a step only knows its own piece of the runbook.

pub mod adopt_site;
pub mod cert;
pub mod common;
pub mod create_org;
pub mod create_person;
pub mod deploy_config;
pub mod deploy_stub;
pub mod dns_leftovers;
pub mod dns_records;
pub mod forget_site;
pub mod join_org;
pub mod ownership;
pub mod preflight;
pub mod release;
mod runbook;
pub mod sync_back;
pub mod undo_cert;
pub mod undo_database;
pub mod undo_deploy_config;
pub mod undo_release;
pub mod undo_site;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::adapters::{self, Services};
use crate::report::Check;
use common::Request;

/// What a step would do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to change; `evidence` says how we know (ids, values found).
    AlreadyDone { evidence: String },
    /// The exact change. `detail` is what a person approves (SQL with its bound values, a
    /// diff, a command line): the approval covers the hash of this text.
    Change { summary: String, detail: String },
    /// An external condition does not hold yet (DNS not propagated): park and re-check.
    Wait { reason: String, recheck: Duration },
}

impl Plan {
    /// The hash an approval is bound to: the step's name and the full detail text.
    pub fn hash(&self, step: &str) -> String {
        let text = match self {
            Plan::Change { detail, .. } => detail.as_str(),
            Plan::AlreadyDone { evidence } => evidence.as_str(),
            Plan::Wait { reason, .. } => reason.as_str(),
        };
        let mut h = Sha256::new();
        h.update(step.as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        hex::encode(h.finalize())
    }
}

/// A plan the engine allows a step to apply: for a production write, one a person approved.
/// Only the engine can build one, so no step can write without going through it.
#[derive(Debug)]
pub struct ApprovedPlan {
    plan: Plan,
    hash: String,
    approver: Option<String>,
}

impl ApprovedPlan {
    pub(crate) fn new(plan: Plan, hash: String, approver: Option<String>) -> Self {
        Self {
            plan,
            hash,
            approver,
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Who approved it (`None` for steps that do not write to production).
    pub fn approver(&self) -> Option<&str> {
        self.approver.as_deref()
    }

    /// Refuses to go on unless `now` — the step's plan made again inside `apply`, under the
    /// lock (or in the transaction) its write is made in — is the plan approved. Between the
    /// engine's last plan and that lock anything may have changed (a push to the repo, a row
    /// replaced); what is written must be what a person read.
    pub fn ensure_current(&self, step: &str, now: &Plan) -> Result<(), StepError> {
        if now.hash(step) == self.hash {
            return Ok(());
        }
        Err(StepError::PlanChanged(format!(
            "{step}: the plan changed between its approval and the write (approved plan {}, now {}); nothing was written",
            &self.hash[..12.min(self.hash.len())],
            &now.hash(step)[..12]
        )))
    }
}

/// One line of a plan naming a file as it will be written: its size and the SHA-256 of its
/// content, so the approval covers every byte, not only the lines a diff shows.
pub fn written_as(path: &str, text: &str) -> String {
    let sha = hex::encode(Sha256::digest(text.as_bytes()));
    format!("{path}: sha256 {} ({} bytes)\n", &sha[..16], text.len())
}

/// The result of `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub ok: bool,
    pub evidence: String,
}

impl CheckReport {
    pub fn ok(evidence: impl Into<String>) -> Self {
        Self {
            ok: true,
            evidence: evidence.into(),
        }
    }
    pub fn failed(evidence: impl Into<String>) -> Self {
        Self {
            ok: false,
            evidence: evidence.into(),
        }
    }
}

/// How a step failed; the engine branches on the kind.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Worth retrying: connection refused, timeout, a server restarting.
    #[error("{0:#}")]
    Transient(anyhow::Error),
    /// Retrying will not help; a person must act. The message is shown as is (a conflict
    /// showing the difference, a refused precondition).
    #[error("{0}")]
    Refused(String),
    /// An internal failure; the full chain goes to the log.
    #[error("{0:#}")]
    Internal(anyhow::Error),
    /// `apply` planned again under its lock and got something other than the approved plan:
    /// it wrote nothing, and the engine plans and asks again.
    #[error("{0}")]
    PlanChanged(String),
}

impl StepError {
    pub fn refused(msg: impl Into<String>) -> Self {
        Self::Refused(msg.into())
    }
}

impl From<adapters::Error> for StepError {
    fn from(e: adapters::Error) -> Self {
        match e {
            adapters::Error::Transient(e) => StepError::Transient(e),
            adapters::Error::Refused(m) => StepError::Refused(m),
            adapters::Error::Internal(e) => StepError::Internal(e),
        }
    }
}

/// Steps that query a database themselves (verify) get the adapters' classification.
impl From<sqlx::Error> for StepError {
    fn from(e: sqlx::Error) -> Self {
        adapters::Error::from(e).into()
    }
}

impl From<anyhow::Error> for StepError {
    fn from(e: anyhow::Error) -> Self {
        adapters::Error::from(e).into()
    }
}

/// Everything a step may use: the run's request, what earlier steps produced, the adapters.
pub struct StepContext {
    pub run_id: Uuid,
    pub request: Arc<Request>,
    pub services: Arc<Services>,
    pub cancel: CancellationToken,
    /// A dry run: plans may not rely on what earlier steps would have written.
    pub dry_run: bool,
    /// The bot's own state database, for the records steps read and keep (sites).
    state_db: Option<sqlx::PgPool>,
    outputs: Mutex<serde_json::Map<String, Value>>,
    log: Arc<dyn Fn(&str) + Send + Sync>,
}

impl StepContext {
    /// The VPS this run acts on ([`Request::vps`]: the one its onboarding chose, the one a
    /// cert run's site is on, else the first). A name the config no longer lists stops the
    /// run, naming those it does.
    pub fn vps(&self) -> Result<&crate::config::VpsConfig, StepError> {
        let config = &self.services.config;
        config.vps(self.request.vps()).ok_or_else(|| {
            StepError::refused(format!(
                "this run is for the VPS `{}`, which the config no longer lists (it lists {})",
                self.request.vps().map(|n| n.as_str()).unwrap_or_default(),
                config.vps_names()
            ))
        })
    }

    /// The SSH master to this run's VPS.
    pub async fn vps_session(&self) -> Result<Arc<openssh::Session>, StepError> {
        Ok(self.services.vps(self.vps()?).await?)
    }

    pub fn new(
        run_id: Uuid,
        request: Arc<Request>,
        services: Arc<Services>,
        outputs: serde_json::Map<String, Value>,
        cancel: CancellationToken,
        log: Arc<dyn Fn(&str) + Send + Sync>,
    ) -> Self {
        Self {
            run_id,
            request,
            services,
            cancel,
            dry_run: false,
            state_db: None,
            outputs: Mutex::new(outputs),
            log,
        }
    }

    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    pub fn with_state_db(mut self, pool: sqlx::PgPool) -> Self {
        self.state_db = Some(pool);
        self
    }

    /// The bot's state database (the engine always hands it over).
    pub fn state_db(&self) -> Result<&sqlx::PgPool, StepError> {
        self.state_db.as_ref().ok_or_else(|| {
            StepError::Internal(anyhow::anyhow!("no state database in this step context"))
        })
    }

    /// The Person's `users.id` (create-person, or found by a later step).
    pub async fn user_id(&self) -> Option<Uuid> {
        self.output(Output::UserId).await
    }

    pub async fn set_user_id(&self, id: Uuid) -> Result<(), StepError> {
        self.set_output(Output::UserId, &id).await
    }

    /// The org's `orgs.id` (create-org, join-org).
    pub async fn org_id(&self) -> Option<Uuid> {
        self.output(Output::OrgId).await
    }

    pub async fn set_org_id(&self, id: Uuid) -> Result<(), StepError> {
        self.set_output(Output::OrgId, &id).await
    }

    /// The success check's report (verify).
    pub async fn verify_report(&self) -> Option<Vec<Check>> {
        self.output(Output::VerifyReport).await
    }

    pub async fn set_verify_report(&self, checks: &[Check]) -> Result<(), StepError> {
        self.set_output(Output::VerifyReport, checks).await
    }

    /// A value an earlier step recorded; `None` when absent or not of its type.
    async fn output<T: serde::de::DeserializeOwned>(&self, key: Output) -> Option<T> {
        let value = self.outputs.lock().await.get(key.as_str()).cloned()?;
        serde_json::from_value(value).ok()
    }

    /// Records a value for later steps; the engine persists it with the run.
    async fn set_output<T: serde::Serialize + ?Sized>(
        &self,
        key: Output,
        value: &T,
    ) -> Result<(), StepError> {
        let value = serde_json::to_value(value).map_err(|e| StepError::Internal(e.into()))?;
        self.outputs
            .lock()
            .await
            .insert(key.as_str().to_owned(), value);
        Ok(())
    }

    /// Every output, as the engine stores it with the run.
    pub async fn outputs(&self) -> serde_json::Map<String, Value> {
        self.outputs.lock().await.clone()
    }

    /// A progress line for the run's log (console and Discord thread).
    pub fn log(&self, line: &str) {
        (self.log)(line)
    }
}

/// What steps hand to later steps, by the key it is stored under in the run's outputs (the
/// same JSON as before these were typed, so stored runs read as they did).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    UserId,
    OrgId,
    VerifyReport,
}

impl Output {
    fn as_str(self) -> &'static str {
        match self {
            Output::UserId => "user_id",
            Output::OrgId => "org_id",
            Output::VerifyReport => "verify_report",
        }
    }
}

/// One step of the runbook.
#[async_trait]
pub trait Step: Send + Sync {
    /// Which step this is.
    fn id(&self) -> StepName;
    /// Stable, unique, kebab-case: stored in the database and shown in chat.
    fn name(&self) -> &'static str {
        self.id().as_str()
    }
    /// One line for people: which runbook line this step carries out.
    fn description(&self) -> &'static str;
    /// Whether `apply` writes to production (then it waits for an approval of its plan).
    fn writes_production(&self) -> bool;
    /// Upper bound for one plan/apply/check call; the engine's default when `None`.
    fn timeout(&self) -> Option<Duration> {
        None
    }
    async fn plan(&self, cx: &StepContext) -> Result<Plan, StepError>;
    /// The plan this step will have once the earlier writes of its run are done, for the
    /// whole plan shown before the first write, with what it presumes of those writes (`None`:
    /// nothing; by default it is [`Step::plan`]). Approve all covers it only as it is: the step
    /// still plans for real before its write and applies on it only if that plan has the same
    /// hash, so a presumption that does not hold is asked for on its own.
    async fn plan_ahead(&self, cx: &StepContext) -> Result<(Plan, Option<String>), StepError> {
        Ok((self.plan(cx).await?, None))
    }
    async fn apply(&self, cx: &StepContext, plan: &ApprovedPlan) -> Result<(), StepError>;
    async fn check(&self, cx: &StepContext) -> Result<CheckReport, StepError>;
}

/// Declares the steps, each once: its name as stored and shown, and what carries it out.
macro_rules! steps {
    ($($variant:ident => $name:literal, $step:expr;)+) => {
        /// A step, by name: the one list of steps. Stored as [`StepName::as_str`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum StepName {
            $($variant),+
        }

        impl StepName {
            /// Every step.
            pub const ALL: &'static [StepName] = &[$(StepName::$variant),+];

            /// The name as stored in the database and shown in chat.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(StepName::$variant => $name),+
                }
            }

            /// The step that carries this name out.
            pub fn step(self) -> Arc<dyn Step> {
                match self {
                    $(StepName::$variant => Arc::new($step)),+
                }
            }
        }
    };
}

steps! {
    Preflight => "preflight", preflight::Preflight;
    AdoptSite => "adopt-site", adopt_site::AdoptSite;
    CreatePerson => "create-person", create_person::CreatePerson;
    CreateOrg => "create-org", create_org::CreateOrg;
    JoinOrg => "join-org", join_org::JoinOrg;
    DnsRecords => "dns-records", dns_records::DnsRecords;
    DeployConfig => "deploy-config", deploy_config::DeployConfig;
    DeployStub => "deploy-stub", deploy_stub::DeployStub;
    Cert => "cert", cert::Cert;
    SyncBack => "sync-back", sync_back::SyncBack;
    Release => "release", release::Release;
    Verify => "verify", verify::Verify;
    // Abandon: each compensation beside the step it undoes, run in reverse order.
    UndoRelease => "undo-release", undo_release::UndoRelease;
    UndoSite => "undo-site", undo_site::UndoSite;
    UndoCert => "undo-cert", undo_cert::UndoCert;
    UndoDeployConfig => "undo-deploy-config", undo_deploy_config::UndoDeployConfig;
    UndoDatabase => "undo-database", undo_database::UndoDatabase;
    DnsLeftovers => "dns-leftovers", dns_leftovers::DnsLeftovers;
    ForgetSite => "forget-site", forget_site::ForgetSite;
}

impl StepName {
    /// The step of a stored name; `None` for a name this version does not know.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|n| n.as_str() == name)
    }
}

impl std::fmt::Display for StepName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name as stored (the engine keeps a run's steps as text).
impl From<StepName> for String {
    fn from(n: StepName) -> Self {
        n.as_str().to_owned()
    }
}

/// Compares with a stored or written name.
impl PartialEq<&str> for StepName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Every step, in the runbook's order.
pub fn registry() -> Vec<Arc<dyn Step>> {
    StepName::ALL.iter().map(|n| n.step()).collect()
}

/// Looks a step up by its stored name.
pub fn by_name(name: &str) -> Option<Arc<dyn Step>> {
    StepName::parse(name).map(StepName::step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_are_unique_and_kebab_case() {
        let names: Vec<&str> = registry().iter().map(|s| s.name()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            names.len(),
            "duplicate step names in {names:?}"
        );
        for n in names {
            crate::domain::Slug::parse(n).unwrap_or_else(|e| panic!("step name {n}: {e}"));
            assert!(!by_name(n).unwrap().description().is_empty());
        }
    }

    #[test]
    fn every_runbooks_step_names_resolve_to_the_step_of_that_name() {
        use crate::domain::{DisplayName, DomainName, Email, MailPlan, OperatingMode, Slug};
        use crate::request::{CertRequest, OnboardRequest, VerifyRequest};
        let slug = |s: &str| Slug::parse(s).unwrap();
        let domain = DomainName::parse("merche.com").unwrap();
        let email = Email::parse("merche@example.com").unwrap();
        let modes = [
            OperatingMode::PersonOnly,
            OperatingMode::PersonOwnsOrg {
                org_slug: slug("merche-collective"),
                org_name: DisplayName::parse_field("org-name", "Merche Collective").unwrap(),
            },
            OperatingMode::PersonJoinsOrg {
                org_slug: slug("cocotte"),
            },
        ];
        let mut requests = vec![
            Request::Cert(CertRequest {
                domain: domain.clone(),
                email: email.clone(),
                vps: None,
            }),
            Request::Verify(VerifyRequest {
                slug: slug("merche"),
            }),
        ];
        for mode in modes {
            for adopt_site in [false, true] {
                requests.push(Request::Onboard(OnboardRequest {
                    slug: slug("merche"),
                    display_name: DisplayName::parse_field("name", "Merche").unwrap(),
                    email: email.clone(),
                    mode: mode.clone(),
                    domains: vec![domain.clone()],
                    brand: None,
                    mail: MailPlan::None,
                    feature: "provider-site".into(),
                    adopt_site,
                    vps: None,
                }));
            }
        }
        let onboarding = requests[2].as_onboard().unwrap().clone();
        requests.push(Request::Abandon(crate::request::AbandonRequest {
            run_id: uuid::Uuid::nil(),
            reason: "typo".into(),
            onboarding,
            applied: StepName::ALL
                .iter()
                .map(|n| n.as_str().to_owned())
                .collect(),
            user_id: None,
            org_id: None,
        }));
        let mut used = std::collections::HashSet::new();
        for request in &requests {
            for name in request.steps() {
                let step = name.step();
                assert_eq!(step.id(), name, "{name} is carried out by another step");
                assert_eq!(step.name(), name.as_str());
                assert_eq!(StepName::parse(name.as_str()), Some(name));
                assert!(by_name(name.as_str()).is_some());
                used.insert(name);
            }
        }
        // Every step is part of some runbook, and a name no step has resolves to none.
        assert_eq!(used.len(), StepName::ALL.len());
        assert!(StepName::parse("deploy").is_none());
    }

    #[test]
    fn plan_hash_depends_on_step_and_detail() {
        let a = Plan::Change {
            summary: "s".into(),
            detail: "INSERT 1".into(),
        };
        let b = Plan::Change {
            summary: "other summary".into(),
            detail: "INSERT 1".into(),
        };
        let c = Plan::Change {
            summary: "s".into(),
            detail: "INSERT 2".into(),
        };
        assert_eq!(a.hash("x"), b.hash("x"));
        assert_ne!(a.hash("x"), c.hash("x"));
        assert_ne!(a.hash("x"), a.hash("y"));
    }
}
