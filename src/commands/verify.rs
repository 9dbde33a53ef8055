//! `/verify` and `onboard-bot verify`: the runbook's success check for an onboarded Provider.

use super::{Caller, CommandError, Reply};
use crate::domain::{InputError, Slug};
use crate::engine::{Engine, StartOptions};
use crate::request::{Request, VerifyRequest};

/// The input as typed.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct VerifyArgs {
    /// The Provider's slug.
    pub slug: String,
}

impl VerifyArgs {
    pub fn parse(&self) -> Result<Request, InputError> {
        Ok(Request::Verify(VerifyRequest {
            slug: Slug::parse(&self.slug)?,
        }))
    }
}

/// Starts the `verify` run (the engine refuses a slug the bot has not on record).
pub async fn run(
    engine: &Engine,
    caller: &Caller,
    request: Request,
    opts: StartOptions,
) -> Result<Reply, CommandError> {
    super::start(engine, caller, request, opts).await
}
