//! `/audit` and `onboard-bot audit`: the audit trail of a slug or domain, and optionally the
//! verification of the whole hash chain (against anchors copied from the audit channel).

use super::{Caller, CommandError, Frontend, Listing, Reply};
use crate::engine::Engine;
use crate::messages;
use crate::state::audit::Anchor;

/// The input as typed.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuditArgs {
    /// The slug or domain the events are about.
    pub subject: String,
    /// Also verify the whole hash chain and report any edited or deleted event.
    #[arg(long)]
    pub verify: bool,
    /// An anchor copied from the audit channel (`ID:HASH`, repeatable): the chain must still
    /// hold that event with that hash, which catches a chain cut short at its end.
    #[arg(long = "anchor", value_name = "ID:HASH", value_parser = check_anchor)]
    pub anchors: Vec<String>,
}

/// A validated audit query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRequest {
    pub subject: String,
    /// Verify the chain (asked for, or implied by anchors).
    pub verify: bool,
    pub anchors: Vec<Anchor>,
}

impl AuditArgs {
    pub fn parse(&self) -> Result<AuditRequest, CommandError> {
        let anchors = self
            .anchors
            .iter()
            .map(|a| Anchor::parse(a))
            .collect::<Result<Vec<_>, _>>()
            .map_err(CommandError::User)?;
        Ok(AuditRequest {
            subject: self.subject.trim().to_owned(),
            verify: self.verify || !anchors.is_empty(),
            anchors,
        })
    }
}

/// clap's check, so a malformed `--anchor` is refused like any bad option.
fn check_anchor(text: &str) -> Result<String, String> {
    Anchor::parse(text).map(|_| text.to_owned())
}

/// The events (the console shows each one's detail, to the millisecond); with `verify`, the
/// chain's verdict, and a broken chain is not ok.
pub async fn run(
    engine: &Engine,
    caller: &Caller,
    req: &AuditRequest,
) -> Result<Reply, CommandError> {
    let events = engine.audit_of_subject(&req.subject).await?;
    let mut text = match caller.frontend {
        Frontend::Console => messages::audit_events_console(&events),
        Frontend::Discord => messages::audit_listing(&req.subject, &events),
    };
    let mut ok = true;
    if req.verify {
        let (count, breaks) = engine.verify_audit_chain(&req.anchors).await?;
        ok = breaks.is_empty();
        // The console's verdict says how many anchors held; Discord's is the bare verdict.
        let anchors = (caller.frontend == Frontend::Console).then_some(req.anchors.len());
        text.push_str(&messages::audit_chain_verdict(count, &breaks, anchors));
    }
    Ok(Reply::Listing(Listing {
        title: format!("audit {}", req.subject),
        text,
        ok,
        card: None,
    }))
}
