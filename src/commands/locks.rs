//! `onboard-bot locks list|take-over`: the held locks, and taking one over (the run holding it
//! is cancelled, audited with the reason).

use super::{Caller, CommandError, Listing, Reply};
use crate::engine::Engine;
use crate::messages;

/// Every held lock and the run holding it.
pub async fn list(engine: &Engine) -> Result<Reply, CommandError> {
    let locks = engine.held_locks().await?;
    Ok(Reply::Listing(Listing {
        title: "locks".into(),
        text: messages::locks_listing(&locks),
        ok: true,
        card: None,
    }))
}

/// `locks take-over`'s input.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TakeOverArgs {
    /// The lock key, e.g. slug:merche-biche or domain:merche-biche.com.
    pub key: String,
    /// Why (recorded in the audit trail).
    #[arg(long)]
    pub reason: String,
}

/// Cancels the run holding the lock and releases it.
pub async fn take_over(
    engine: &Engine,
    caller: &Caller,
    args: &TakeOverArgs,
) -> Result<Reply, CommandError> {
    let message = engine
        .take_over_lock(&args.key, &caller.actor, &args.reason)
        .await?;
    Ok(Reply::Text(message))
}
