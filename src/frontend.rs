//! The front-end boundary: the trait the engine talks to and the vocabulary both sides share
//! (who acted, a run's view, an approval request, a decision). The engine never knows which
//! front-end it talks to.
//!
//! This is the one trait at a real boundary (STYLE.md §5): there are two implementations,
//! the console and Discord (`src/chat/`). It is a module of its own, below the engine, so that
//! the engine, the commands and the messages depend on it without depending on a front-end.

use async_trait::async_trait;
use serde::Serialize;
use uuid::Uuid;

use crate::state::runs::{RunStatus, StepStatus};

/// Who did something: a Discord member, an OS user at the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// Stable id stored in the audit trail: `discord:<user id>`, `console:<os user>`.
    pub id: String,
    /// Name for people.
    pub display: String,
}

impl Actor {
    /// The OS user running the console.
    pub fn console_user() -> Self {
        let user = std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(os_user_name)
            .unwrap_or_else(|| "unknown".into());
        Self {
            id: format!("console:{user}"),
            display: user,
        }
    }

    /// The bot itself (resumes, scheduled re-checks).
    pub fn bot() -> Self {
        Self {
            id: "bot".into(),
            display: "onboard-bot".into(),
        }
    }
}

/// The name of this process's user from /etc/passwd (USER is not set under `ip netns exec`).
fn os_user_name() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_owned();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2] == uid).then(|| f[0].to_owned())
    })
}

/// A run as the front-end shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub id: Uuid,
    pub runbook: String,
    pub subject: String,
    pub started_by: String,
    pub dry_run: bool,
    pub chat_ref: Option<serde_json::Value>,
    pub steps: Vec<StepLine>,
}

/// One line of the progress view.
#[derive(Debug, Clone, Serialize)]
pub struct StepLine {
    pub name: String,
    pub status: StepStatus,
    pub note: Option<String>,
}

/// Something that happened in a run.
#[derive(Debug, Clone, Serialize)]
pub enum RunEvent {
    /// A step changed status; `message` is the outcome for people.
    Step {
        idx: usize,
        status: StepStatus,
        message: String,
    },
    /// A progress line from inside a step (command output, a check's result).
    Log { idx: usize, line: String },
    /// The run stopped (done, failed, cancelled, ...).
    Finished { status: RunStatus, message: String },
}

/// A plan waiting for a person's decision.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalRequest {
    pub run_id: Uuid,
    pub subject: String,
    pub step: String,
    pub step_description: String,
    pub summary: String,
    /// The exact change, secrets redacted.
    pub detail: String,
    pub plan_hash: String,
    pub started_by: String,
    /// How many distinct people must approve this plan (`approvals.required`).
    pub required: u32,
    /// Who has approved it already (actor ids, oldest first): each counts once, so a front-end
    /// waits for someone else and does not hand back their decision again.
    pub approved_by: Vec<String>,
    /// Why this plan is asked for on its own though the run's whole plan was shown with
    /// Approve all (not known up front, or changed since); `None` otherwise.
    pub why_asked: Option<String>,
}

/// Every production write a run will make, planned before the first one is applied, for one
/// Approve all.
#[derive(Debug, Clone, Serialize)]
pub struct UpFrontPlan {
    pub run_id: Uuid,
    pub subject: String,
    pub started_by: String,
    /// SHA-256 over the listed steps and their plan hashes: what an Approve all click names.
    pub hash: String,
    pub steps: Vec<UpFrontStep>,
}

/// One write of an [`UpFrontPlan`]: its plan, or why it cannot be known yet.
#[derive(Debug, Clone, Serialize)]
pub struct UpFrontStep {
    pub step: String,
    pub description: String,
    pub plan: Result<PlannedWrite, String>,
    /// What a plan made ahead presumes of the earlier writes (see `Step::plan_ahead`).
    pub presumes: Option<String>,
}

/// A plan known up front: what Approve all covers, if it still has this hash when applied.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedWrite {
    pub plan_hash: String,
    pub summary: String,
    pub detail: String,
}

impl UpFrontPlan {
    /// The (step, plan hash) pairs an Approve all covers.
    pub fn covered(&self) -> Vec<(String, String)> {
        self.steps
            .iter()
            .filter_map(|s| Some((s.step.clone(), s.plan.as_ref().ok()?.plan_hash.clone())))
            .collect()
    }
}

/// A person's decision on a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub approved: bool,
    pub actor: Actor,
    /// How it was given (`--yes`, a button, a prompt): recorded in the audit trail.
    pub how: String,
    pub reason: Option<String>,
}

#[async_trait]
pub trait ChatFrontend: Send + Sync {
    /// `console` or `discord`: stored with runs and approvals.
    fn name(&self) -> &'static str;

    /// A run starts or resumes here. Returns where the front-end reports it (a thread id), to
    /// be stored with the run so a restart keeps posting in the same place.
    async fn attach(&self, run: &RunView) -> anyhow::Result<Option<serde_json::Value>>;

    /// Progress. Failing to report must not fail the run, so this returns nothing.
    async fn event(&self, run: &RunView, event: &RunEvent);

    /// Shows a plan and waits for a decision. May wait for a long time (until a person
    /// clicks); the engine cancels the future when the run is cancelled.
    async fn request_approval(&self, req: &ApprovalRequest) -> anyhow::Result<Decision>;

    /// The plan of `req` has waited `waited` for its decision and expires in `left`: remind
    /// the approvers (once per request; the engine decides when). The `request_approval`
    /// future is still waiting. Failing to remind must not fail the run.
    async fn remind(
        &self,
        _req: &ApprovalRequest,
        _waited: std::time::Duration,
        _left: std::time::Duration,
    ) {
    }

    /// Whether this front-end shows a run's whole plan with an Approve all: the engine plans it
    /// up front only for one that does (Discord; the console asks step by step).
    fn shows_up_front(&self) -> bool {
        false
    }

    /// Shows every production write of a run, planned up front, with an Approve all. The
    /// engine goes on asking for each step's approval as before. Failing to show must not fail
    /// the run.
    async fn present_up_front(&self, _plan: &UpFrontPlan) {}

    /// Posts the audit chain's head where the database cannot reach it (Discord: the audit
    /// channel; the console: the terminal). Failing to post must not fail the run.
    async fn anchor(&self, _head: &crate::state::audit::Anchor) {}
}
