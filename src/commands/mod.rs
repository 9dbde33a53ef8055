//! One file per command, for both front-ends: its input (one struct that clap and poise both
//! fill), `parse` into a request of domain types, and `run`, which answers a [`Reply`] or a
//! [`CommandError`]. The Discord front-end (`chat/discord/commands/reply.rs`) and the console
//! (`cli.rs`) only render those. Commands reach the outside world through the engine (and
//! `config check`, which tries each connection, through the adapters).

pub mod abandon;
pub mod audit;
pub mod cancel;
pub mod cert;
pub mod config_check;
pub mod dns_check;
pub mod locks;
pub mod onboard;
pub mod resume;
pub mod runs;
pub mod status;
pub mod verify;

use uuid::Uuid;

use crate::domain::InputError;
use crate::engine::{Engine, StartError, StartOptions};
use crate::frontend::Actor;
use crate::request::Request;

/// Approval options for runs started from the console.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConsoleRunArgs {
    /// Plan every step and show the plans; ask nothing and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Approve every plan without asking (recorded in the audit trail as `console --yes`).
    #[arg(long, conflicts_with = "reject_reason")]
    pub yes: bool,
    /// Reject the first plan asked for, with this reason (recorded in the audit trail), without
    /// asking: the run stops before that write, resumable.
    #[arg(long, value_name = "REASON")]
    pub reject_reason: Option<String>,
    /// Required against a config marked production: why the console is used instead of Discord.
    #[arg(long, value_name = "REASON")]
    pub break_glass: Option<String>,
}

impl ConsoleRunArgs {
    /// How the console answers the plans of this run.
    pub fn answers(&self) -> Result<Answers, InputError> {
        Answers::from_flags(self.yes, self.reject_reason.as_deref())
    }

    pub fn start_options(&self) -> StartOptions {
        StartOptions {
            dry_run: self.dry_run,
            break_glass: self.break_glass.clone(),
        }
    }
}

/// How the console answers the plans it is asked to approve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answers {
    /// Ask on the terminal (refuse without one).
    Ask,
    /// `--yes`: approve every plan.
    Yes,
    /// `--reject-reason R`: reject the first plan, with this reason.
    Reject(String),
}

impl Answers {
    /// From the flags as typed; a blank reason is refused (a rejection says why).
    pub fn from_flags(yes: bool, reject_reason: Option<&str>) -> Result<Self, InputError> {
        match (yes, reject_reason.map(str::trim)) {
            (_, Some("")) => Err(InputError::new(
                "reject-reason",
                "give the reason for rejecting the plan (it is recorded in the audit trail)",
            )),
            (true, Some(_)) => Err(InputError::new(
                "reject-reason",
                "--yes and --reject-reason cannot both be given",
            )),
            (_, Some(r)) => Ok(Self::Reject(r.to_owned())),
            (true, None) => Ok(Self::Yes),
            (false, None) => Ok(Self::Ask),
        }
    }
}

/// Which front-end a command came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frontend {
    Console,
    Discord,
}

/// Who invokes a command, and from where.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    /// Holds an approver role (Discord); the console's user is trusted as one.
    pub approver: bool,
    pub frontend: Frontend,
}

impl Caller {
    /// The OS user at the console.
    pub fn console() -> Self {
        Self {
            actor: Actor::console_user(),
            approver: true,
            frontend: Frontend::Console,
        }
    }
}

/// What a command answers; each front-end renders it.
#[derive(Debug)]
pub enum Reply {
    /// A short message: Discord's ephemeral answer, a line on the console.
    Text(String),
    /// A listing: a code block in Discord (a file when long), printed as is on the console.
    Listing(Listing),
    /// A run to execute: Discord spawns it and answers with its thread; the console executes it
    /// in the foreground and prints its summary.
    Run(RunToExecute),
}

/// A text shown as it is (fixed-width columns, a report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// What it is (`dns-check x.com`): the attachment's name when it does not fit a message.
    pub title: String,
    pub text: String,
    /// Whether what it reports holds (a failed check: the console exits 1).
    pub ok: bool,
    /// The same report as a card, for a chat front-end that shows embeds (the console prints
    /// `text`); when the card is not complete, the text goes with it as a file.
    pub card: Option<crate::messages::ReportCard>,
}

/// A run the front-end is to execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunToExecute {
    pub id: Uuid,
    /// Taken over from the process executing it: who and why.
    pub take_over: Option<(Actor, String)>,
    /// Resumed from its recorded state (rather than just started).
    pub resumed: bool,
}

/// Why a command did nothing, kept apart as rust-lang/triagebot does: what the user got wrong
/// and what the bot refuses are shown as they are; an internal error is logged in full and the
/// user sees a reference (Discord) or the chain (the console's own operator).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A field broke its rule.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Some other mistake in what was asked (no such run, a malformed anchor).
    #[error("{0}")]
    User(String),
    /// A run was not started: a lock is held, the subject is not on record, production
    /// without --break-glass.
    #[error("{0}")]
    NotStarted(String),
    /// Valid input the bot will not act on (not theirs to act on, not now).
    #[error("{0}")]
    Refused(String),
    /// The bot's own failure (a database, a server): nothing of it is the user's doing.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The three kinds of [`CommandError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    User,
    Refused,
    Internal,
}

impl CommandError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Input(_) | Self::User(_) => ErrorKind::User,
            Self::NotStarted(_) | Self::Refused(_) => ErrorKind::Refused,
            Self::Internal(_) => ErrorKind::Internal,
        }
    }

    /// The console's exit code: 2 bad input or refused, 3 internal (see `cli_docs`' EXIT STATUS).
    pub fn exit_code(&self) -> u8 {
        match self.kind() {
            ErrorKind::User | ErrorKind::Refused => 2,
            ErrorKind::Internal => 3,
        }
    }
}

impl From<StartError> for CommandError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Internal(e) => Self::Internal(e),
            refused => Self::NotStarted(refused.to_string()),
        }
    }
}

/// Starts a run of any runbook (its locks taken, or refused naming who holds them); the
/// front-end executes it.
pub async fn start(
    engine: &Engine,
    caller: &Caller,
    request: Request,
    opts: StartOptions,
) -> Result<Reply, CommandError> {
    let id = engine.start(request, &caller.actor, opts).await?;
    Ok(Reply::Run(RunToExecute {
        id,
        take_over: None,
        resumed: false,
    }))
}

/// A run id as typed or pasted (with the backticks the bot quotes it in).
pub fn parse_run_id(raw: &str) -> Result<Uuid, InputError> {
    Uuid::try_parse(raw.trim().trim_matches('`'))
        .map_err(|_| InputError::new("run", format!("`{}` is not a run id", raw.trim())))
}

#[cfg(test)]
mod answers_tests {
    use super::*;

    #[test]
    fn a_rejection_needs_a_reason_and_excludes_yes() {
        assert_eq!(Answers::from_flags(false, None), Ok(Answers::Ask));
        assert_eq!(Answers::from_flags(true, None), Ok(Answers::Yes));
        assert_eq!(
            Answers::from_flags(false, Some(" wrong e-mail ")),
            Ok(Answers::Reject("wrong e-mail".into()))
        );
        assert_eq!(
            Answers::from_flags(false, Some("  ")).unwrap_err().field,
            "reject-reason"
        );
        assert!(Answers::from_flags(true, Some("no")).is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::runs::LockHeld;

    #[test]
    fn run_ids_are_parsed_at_the_edge() {
        let id = Uuid::new_v4();
        assert_eq!(parse_run_id(&format!(" `{id}` ")).unwrap(), id);
        assert_eq!(parse_run_id("nope").unwrap_err().field, "run");
    }

    #[test]
    fn errors_keep_user_refused_and_internal_apart_in_exit_codes() {
        let input = CommandError::from(InputError::new("slug", "bad"));
        assert_eq!((input.kind(), input.exit_code()), (ErrorKind::User, 2));
        assert_eq!(input.to_string(), "slug: bad");
        let user = CommandError::User("no such run".into());
        assert_eq!((user.kind(), user.exit_code()), (ErrorKind::User, 2));
        let refused = CommandError::from(StartError::Refused("production".into()));
        assert!(matches!(refused, CommandError::NotStarted(ref r) if r == "production"));
        assert_eq!(
            (refused.kind(), refused.exit_code()),
            (ErrorKind::Refused, 2)
        );
        let held = LockHeld {
            key: crate::state::locks::LockKey::parse("slug:xy").expect("a lock key"),
            run_id: Uuid::nil(),
            status: "running".into(),
            started_by: "console:me".into(),
            acquired_at: chrono::Utc::now(),
        };
        let locked = CommandError::from(StartError::Locked(held));
        assert_eq!(locked.kind(), ErrorKind::Refused);
        assert!(locked.to_string().starts_with("slug:xy is locked by run"));
        let not_allowed = CommandError::Refused("not yours".into());
        assert_eq!(not_allowed.exit_code(), 2);
        let internal = CommandError::from(StartError::Internal(anyhow::anyhow!("db down")));
        assert_eq!(
            (internal.kind(), internal.exit_code()),
            (ErrorKind::Internal, 3)
        );
    }
}
