//! `/abandon` and `onboard-bot runs abandon`: undo an onboarding, step by step, with
//! approvals: a runbook of compensations built from what the run applied, in reverse order.

use uuid::Uuid;

use super::{Caller, CommandError, Reply, runs};
use crate::domain::InputError;
use crate::engine::{Engine, StartOptions};

/// The input as typed.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AbandonArgs {
    /// The onboarding run to undo.
    #[arg(value_name = "ID")]
    pub run: String,
    /// Why (recorded in the audit trail, in the commits and in the run's thread).
    #[arg(long)]
    pub reason: String,
}

/// A validated abandon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbandonInput {
    pub id: Uuid,
    pub reason: String,
}

/// Longest reason kept (it goes into commit messages and the thread).
const MAX_REASON: usize = 500;

impl AbandonArgs {
    pub fn parse(&self) -> Result<AbandonInput, InputError> {
        let reason = self.reason.trim();
        if reason.is_empty() {
            return Err(InputError::new(
                "reason",
                "say why the onboarding is abandoned (it is recorded in the audit trail)",
            ));
        }
        if reason.chars().count() > MAX_REASON || reason.chars().any(char::is_control) {
            return Err(InputError::new(
                "reason",
                format!("one line of at most {MAX_REASON} characters"),
            ));
        }
        Ok(AbandonInput {
            id: super::parse_run_id(&self.run)?,
            reason: reason.to_owned(),
        })
    }
}

/// Cancels the onboarding if it is still going, then starts the abandon run (the caller must
/// be allowed to act on the onboarding: who started it, or an approver).
pub async fn run(
    engine: &Engine,
    caller: &Caller,
    input: AbandonInput,
    opts: StartOptions,
) -> Result<Reply, CommandError> {
    let record = runs::to_act_on(engine, caller, input.id, "abandon").await?;
    let request = engine
        .abandon_request(record.id, &caller.actor, &input.reason)
        .await?;
    super::start(engine, caller, request, opts).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_required_and_one_line() {
        let id = Uuid::new_v4();
        let args = |reason: &str| AbandonArgs {
            run: id.to_string(),
            reason: reason.into(),
        };
        assert_eq!(
            args(" typo in the domain ").parse().unwrap(),
            AbandonInput {
                id,
                reason: "typo in the domain".into()
            }
        );
        assert_eq!(args("  ").parse().unwrap_err().field, "reason");
        assert_eq!(args("a\nb").parse().unwrap_err().field, "reason");
        assert_eq!(args(&"x".repeat(501)).parse().unwrap_err().field, "reason");
        let bad = AbandonArgs {
            run: "nope".into(),
            reason: "r".into(),
        };
        assert_eq!(bad.parse().unwrap_err().field, "run");
    }
}
