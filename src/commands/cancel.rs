//! `/cancel` and `onboard-bot runs cancel`: stop a run's step, record it, release its locks.

use uuid::Uuid;

use super::{Caller, CommandError, Frontend, Reply, runs};
use crate::domain::InputError;
use crate::engine::Engine;

/// The input as typed.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CancelArgs {
    /// The run id.
    #[arg(value_name = "ID")]
    pub run: String,
    /// Why (recorded in the audit trail); by default "cancelled from the console".
    #[arg(long)]
    pub reason: Option<String>,
}

/// A validated cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRequest {
    pub id: Uuid,
    pub reason: Option<String>,
}

impl CancelArgs {
    pub fn parse(&self) -> Result<CancelRequest, InputError> {
        Ok(CancelRequest {
            id: super::parse_run_id(&self.run)?,
            reason: self.reason.clone(),
        })
    }
}

/// Cancels the run when the caller may (the person who started it, or an approver).
pub async fn run(
    engine: &Engine,
    caller: &Caller,
    req: CancelRequest,
) -> Result<Reply, CommandError> {
    let record = runs::to_act_on(engine, caller, req.id, "cancel").await?;
    let reason = req.reason.unwrap_or_else(|| match caller.frontend {
        Frontend::Console => "cancelled from the console".into(),
        Frontend::Discord => format!("cancelled in Discord by {}", caller.actor.display),
    });
    let message = engine
        .cancel(record.id, &caller.actor, &reason)
        .await
        .map_err(|e| CommandError::Internal(e.context("cancelling the run")))?;
    Ok(Reply::Text(message))
}
