//! `/resume` and `onboard-bot runs resume`: continue an unfinished or failed run from its
//! recorded state, or take it over from the process executing it.

use uuid::Uuid;

use super::{Caller, CommandError, Frontend, Reply, RunToExecute, runs};
use crate::config::Environment;
use crate::domain::InputError;
use crate::engine::Engine;
use crate::messages;
use crate::state::audit::{AuditKind, NewEvent};

/// The input as typed.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ResumeArgs {
    /// The run id.
    #[arg(value_name = "ID")]
    pub run: String,
    /// Take the run over from the process executing it: it is asked to let go and stops
    /// before its next write (or its lease runs out). Needs --reason.
    #[arg(long, requires = "reason")]
    pub take_over: bool,
    /// Why the run is taken over (recorded in the audit trail).
    #[arg(long, value_name = "REASON")]
    pub reason: Option<String>,
}

/// A validated resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeRequest {
    pub id: Uuid,
    pub take_over: bool,
    /// Trimmed; a blank reason is none.
    pub reason: Option<String>,
}

impl ResumeArgs {
    pub fn parse(&self) -> Result<ResumeRequest, InputError> {
        Ok(ResumeRequest {
            id: super::parse_run_id(&self.run)?,
            take_over: self.take_over,
            reason: self
                .reason
                .as_deref()
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(String::from),
        })
    }
}

/// Checks that the run may be resumed by this caller and now; the front-end executes it.
///
/// Discord executes a run in the background and must answer at once, so it is told here what
/// would stop the run (finished, running in this process — `running_here` —, leased by
/// another); the console executes in the foreground and reports what the engine says. The
/// console needs `break_glass` (recorded) against a production config.
pub async fn run(
    engine: &Engine,
    caller: &Caller,
    req: ResumeRequest,
    break_glass: Option<&str>,
    running_here: &(dyn Fn(Uuid) -> bool + Sync),
) -> Result<Reply, CommandError> {
    let record = runs::to_act_on(engine, caller, req.id, "resume").await?;
    let id = record.id;
    if req.take_over && (!caller.approver || req.reason.is_none()) {
        // An approver who gave no reason; anyone else is not allowed at all.
        let only_reason_missing = caller.approver;
        let why = if only_reason_missing {
            "no_reason"
        } else {
            "not_an_approver"
        };
        engine
            .audit(NewEvent {
                run_id: Some(id),
                subject: record.subject.clone(),
                step: None,
                actor: caller.actor.id.clone(),
                kind: AuditKind::RunTakeoverRefused,
                outcome: why.into(),
                detail: serde_json::json!({"actor_name": caller.actor.display}),
                duration_ms: None,
            })
            .await?;
        return Err(CommandError::Refused(messages::takeover_refused(
            only_reason_missing,
        )));
    }
    match caller.frontend {
        Frontend::Console => {
            if engine.config().environment == Environment::Production {
                let Some(reason) = break_glass else {
                    return Err(CommandError::Refused(messages::resume_needs_break_glass()));
                };
                engine.record_break_glass(id, &caller.actor, reason).await?;
            }
        }
        Frontend::Discord => {
            if record.status.is_terminal() {
                return Ok(Reply::Text(messages::resume_nothing_to_do(
                    id,
                    record.status.as_str(),
                )));
            }
            if running_here(id) {
                return Ok(Reply::Text(messages::resume_running_here(id)));
            }
            if let (Some(holder), Some(until)) = (&record.executor, record.executor_until)
                && until > chrono::Utc::now()
                && !req.take_over
            {
                return Ok(Reply::Text(messages::resume_leased_elsewhere(
                    id, holder, until,
                )));
            }
        }
    }
    let take_over = req
        .take_over
        .then(|| (caller.actor.clone(), req.reason.unwrap_or_default()));
    Ok(Reply::Run(RunToExecute {
        id,
        take_over,
        resumed: true,
    }))
}
