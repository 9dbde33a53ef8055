//! A run's thread in Discord: its name, the progress card, step outcomes, log messages.
//!
//! Plain text and plain structs only: `src/chat/discord` turns them into embeds and buttons, so
//! these stay testable without a Discord client. Lengths are kept inside Discord's limits here
//! (content 2000, embed title 256, description 4096, footer 2048, thread name 100).

use super::run::{status_icon, status_words, step_event};
use super::text::{defuse, fence, mention, truncate};
use crate::frontend::RunView;
use crate::state::runs::{RunStatus, StepStatus};

/// A card to show as an embed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub title: String,
    pub description: String,
    pub footer: String,
    /// 0xRRGGBB.
    pub colour: u32,
    /// Named fields under the description (Discord: at most 25, each value 1024 characters).
    pub fields: Vec<CardField>,
}

/// One named field of a [`Card`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardField {
    pub name: String,
    pub value: String,
}

/// Plans longer than this go into an attached file (an embed description holds 4096).
pub const PLAN_INLINE_MAX: usize = 3000;

const NOTE_MAX: usize = 160;

fn run_colour(status: Option<RunStatus>, run: &RunView) -> u32 {
    match status {
        Some(RunStatus::Done) => 0x2ecc71,
        Some(RunStatus::Failed) => 0xe74c3c,
        Some(RunStatus::Rejected | RunStatus::Cancelled | RunStatus::Expired) => 0x95a5a6,
        _ if run
            .steps
            .iter()
            .any(|s| s.status == StepStatus::WaitingApproval) =>
        {
            0xf1c40f
        }
        _ if run.steps.iter().any(|s| s.status == StepStatus::Parked) => 0xe67e22,
        _ => 0x3498db,
    }
}

/// Name of a run's thread in the ops channel.
pub fn thread_name(run: &RunView) -> String {
    truncate(
        &format!(
            "{} {}{} · {}",
            run.runbook,
            run.subject,
            if run.dry_run { " (dry run)" } else { "" },
            &run.id.simple().to_string()[..8]
        ),
        100,
    )
}

/// The ops-channel message a run's thread hangs off.
pub fn run_opened(run: &RunView) -> String {
    format!(
        "**{} {}**{} started by {} · run `{}` · progress, plans and approvals in the thread",
        run.runbook,
        run.subject,
        if run.dry_run { " (dry run)" } else { "" },
        mention(&run.started_by),
        run.id
    )
}

/// Posted in the thread when a restarted bot picks a run up again.
pub fn run_resumed(run: &RunView) -> String {
    format!(
        "↻ run `{}` continues from its recorded state (after a restart or /resume; finished steps are not repeated)",
        run.id
    )
}

/// The progress embed: one line per step, edited in place as the run goes.
pub fn progress_card(run: &RunView, finished: Option<(RunStatus, &str)>) -> Card {
    let mut lines = vec![format!("started by {}", mention(&run.started_by))];
    lines.push(String::new());
    for s in &run.steps {
        let mut line = format!(
            "`{}` **{}** — {}",
            status_icon(s.status),
            s.name,
            status_words(s.status)
        );
        if let Some(note) = s.note.as_deref().filter(|n| !n.is_empty()) {
            let first = note.lines().next().unwrap_or_default();
            line.push_str(&format!(": {}", truncate(first, NOTE_MAX)));
        }
        lines.push(line);
    }
    if let Some((status, message)) = finished {
        lines.push(String::new());
        lines.push(format!(
            "**{}** — {}",
            status.as_str().replace('_', " "),
            truncate(message, 1000)
        ));
    }
    Card {
        title: truncate(
            &format!(
                "{} {}{}",
                run.runbook,
                run.subject,
                if run.dry_run { " (dry run)" } else { "" }
            ),
            256,
        ),
        description: truncate(&lines.join("\n"), 4000),
        footer: format!("run {}", run.id),
        colour: run_colour(finished.map(|(s, _)| s), run),
        fields: Vec::new(),
    }
}

/// A step's outcome, posted in the thread as its own message.
pub fn step_outcome(step: &str, status: StepStatus, message: &str) -> String {
    truncate(&step_event(step, status, message), 1900)
}

/// Progress lines from inside steps, gathered into as few messages as Discord's 2000-character
/// limit allows: none is dropped, only a single over-long line is cut. Each message comes with
/// how many of the lines it holds.
pub fn log_messages(step_lines: &[(String, String)]) -> Vec<(String, usize)> {
    const BODY: usize = 1800;
    let mut out = Vec::new();
    let mut body = String::new();
    let mut held = 0;
    for (step, line) in step_lines {
        // Defused before it is measured: breaking up backtick runs makes a line longer.
        let line = truncate(&defuse(&format!("{step} │ {line}")), BODY);
        if !body.is_empty() && body.chars().count() + 1 + line.chars().count() > BODY {
            out.push((
                fence(&std::mem::take(&mut body), 2000),
                std::mem::take(&mut held),
            ));
        }
        held += 1;
        if !body.is_empty() {
            body.push('\n');
        }
        body.push_str(&line);
    }
    if !body.is_empty() {
        out.push((fence(&body, 2000), held));
    }
    out
}

/// How a run ended, posted in its thread.
pub fn run_finished(status: RunStatus, message: &str) -> String {
    let icon = match status {
        RunStatus::Done => "✓",
        RunStatus::Failed => "✗",
        RunStatus::Rejected => "✗",
        RunStatus::Expired => "⌛",
        RunStatus::Cancelled => "-",
        _ => "…",
    };
    truncate(
        &format!(
            "{icon} run {}: {message}",
            status.as_str().replace('_', " ")
        ),
        1900,
    )
}
