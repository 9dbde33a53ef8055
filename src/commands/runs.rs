//! `onboard-bot runs list|show` (resume and cancel are `resume.rs` and `cancel.rs`), and the
//! reads of the run records every command shares: each state query is written here once.

use anyhow::Context as _;
use uuid::Uuid;

use super::{CommandError, Listing, Reply};
use crate::domain::InputError;
use crate::engine::Engine;
use crate::messages;
use crate::state::runs::{RunRecord, StepRecord};

/// `runs list`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct RunsListArgs {
    /// Only runs not finished for good: running, waiting, parked, failed or rejected.
    #[arg(long)]
    pub unfinished: bool,
    /// How many runs to show.
    #[arg(long, default_value_t = 20)]
    pub limit: i64,
}

/// Recent runs, newest first.
pub async fn list(engine: &Engine, args: &RunsListArgs) -> Result<Reply, CommandError> {
    let runs = recent(engine, args.limit, args.unfinished).await?;
    Ok(Reply::Listing(Listing {
        title: "runs".into(),
        text: messages::runs_listing(&runs),
        ok: true,
        card: None,
    }))
}

/// `runs show`'s input.
#[derive(Debug, Clone, clap::Args)]
pub struct RunsShowArgs {
    /// The run id.
    #[arg(value_name = "ID")]
    pub id: String,
}

impl RunsShowArgs {
    pub fn parse(&self) -> Result<Uuid, InputError> {
        super::parse_run_id(&self.id)
    }
}

/// One run: its steps, statuses and plans.
pub async fn show(engine: &Engine, id: Uuid) -> Result<Reply, CommandError> {
    // Only the console has `runs show`; a wrong id is the user's, not an internal error.
    let Some((run, steps)) = find_with_steps(engine, id).await? else {
        return Err(CommandError::User(messages::no_such_run(id, "`runs list`")));
    };
    Ok(Reply::Listing(Listing {
        title: format!("run {id}"),
        text: messages::summary_table(&run, &steps),
        ok: true,
        card: None,
    }))
}

/// What the console prints once a run it executed stops: the summary table, the success
/// check's report when there is one, and the run's audit trail.
pub async fn report(engine: &Engine, id: Uuid) -> anyhow::Result<String> {
    let (run, steps) = find_with_steps(engine, id)
        .await?
        .with_context(|| format!("no run {id}"))?;
    let mut out = format!("{}\n", messages::summary_table(&run, &steps));
    if let Some(checks) = crate::steps::verify::stored_report(&run.outputs) {
        out.push_str(&format!("{}\n", crate::steps::verify::render(&checks)));
    }
    let events = engine.audit_of_run(id).await?;
    out.push_str(&messages::run_audit_trail(id, &events));
    Ok(out)
}

/// The run with this id, if there is one.
pub(crate) async fn find(engine: &Engine, id: Uuid) -> anyhow::Result<Option<RunRecord>> {
    engine.run_record(id).await
}

/// The run with this id and its steps, if there is one.
pub(crate) async fn find_with_steps(
    engine: &Engine,
    id: Uuid,
) -> anyhow::Result<Option<(RunRecord, Vec<StepRecord>)>> {
    let Some(run) = find(engine, id).await? else {
        return Ok(None);
    };
    let steps = engine.run_steps(id).await?;
    Ok(Some((run, steps)))
}

/// The newest runs, or only those not finished for good.
pub(crate) async fn recent(
    engine: &Engine,
    limit: i64,
    unfinished: bool,
) -> anyhow::Result<Vec<RunRecord>> {
    engine.list_runs(limit, unfinished).await
}

/// The run `id` names, when the caller may `verb` it: an approver (the console's user is
/// one), or the person who started it. Otherwise why not, as the user error or refusal it is.
pub(crate) async fn to_act_on(
    engine: &Engine,
    caller: &super::Caller,
    id: Uuid,
    verb: &str,
) -> Result<RunRecord, CommandError> {
    let Some(record) = find(engine, id).await? else {
        let hint = match caller.frontend {
            super::Frontend::Discord => "/status",
            super::Frontend::Console => "`runs list`",
        };
        return Err(CommandError::User(messages::no_such_run(id, hint)));
    };
    if !caller.approver && record.started_by != caller.actor.id {
        return Err(CommandError::Refused(format!(
            "Only the person who started a run or an approver may {verb} it."
        )));
    }
    Ok(record)
}
