//! `/status`: the unfinished runs with their threads, or one run's steps (the console's
//! counterparts are `runs list` and `runs show`).

use super::{CommandError, Reply, runs};
use crate::engine::Engine;
use crate::messages;

/// How many unfinished runs `/status` lists (one message's worth).
const OVERVIEW_LIMIT: i64 = 15;

/// The input as typed.
#[derive(Debug, Clone, Default)]
pub struct StatusArgs {
    /// A run id; none: every unfinished run.
    pub run: Option<String>,
}

pub async fn run(engine: &Engine, args: &StatusArgs) -> Result<Reply, CommandError> {
    let text = match &args.run {
        None => messages::status_overview(&runs::recent(engine, OVERVIEW_LIMIT, true).await?),
        Some(raw) => {
            let id = super::parse_run_id(raw)?;
            match runs::find_with_steps(engine, id).await? {
                None => format!("No run `{id}`."),
                Some((r, steps)) => messages::status_of_run(&r, &steps),
            }
        }
    };
    Ok(Reply::Text(text))
}
