//! Every text a person reads, built by pure functions so it can be snapshot-tested and edited
//! in one place.

use crate::chat::{ApprovalRequest, RunView};
use crate::state::runs::{LockHeld, RunRecord, StepRecord, StepStatus};

/// A symbol per status, the same in the console and in Discord.
pub fn status_icon(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Pending => "·",
        StepStatus::Planning | StepStatus::Applying | StepStatus::Checking => "…",
        StepStatus::WaitingApproval => "?",
        StepStatus::Parked => "⏸",
        StepStatus::Done => "✓",
        StepStatus::AlreadyDone => "=",
        StepStatus::Planned => "○",
        StepStatus::Failed => "✗",
        StepStatus::Cancelled => "-",
    }
}

/// What a status means, in words.
pub fn status_words(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Pending => "pending",
        StepStatus::Planning => "planning",
        StepStatus::WaitingApproval => "waiting for approval",
        StepStatus::Applying => "running",
        StepStatus::Checking => "checking",
        StepStatus::Parked => "waiting",
        StepStatus::Done => "done",
        StepStatus::AlreadyDone => "already done",
        StepStatus::Planned => "planned (dry run)",
        StepStatus::Failed => "failed",
        StepStatus::Cancelled => "cancelled",
    }
}

pub fn run_header(run: &RunView) -> String {
    format!(
        "run {} · {} {}{} · started by {}",
        run.id,
        run.runbook,
        run.subject,
        if run.dry_run { " (dry run)" } else { "" },
        run.started_by
    )
}

pub fn step_event(step: &str, status: StepStatus, message: &str) -> String {
    if message.is_empty() {
        format!("{} {step}: {}", status_icon(status), status_words(status))
    } else {
        format!(
            "{} {step}: {} — {message}",
            status_icon(status),
            status_words(status)
        )
    }
}

/// The plan shown for approval.
pub fn approval_text(req: &ApprovalRequest) -> String {
    format!(
        "── approval needed: {step} (run {run}, {subject}) ──\n{desc}\n{summary}\n\n{detail}\n── plan {hash} ──",
        step = req.step,
        run = req.run_id,
        subject = req.subject,
        desc = req.step_description,
        summary = req.summary,
        detail = req.detail,
        hash = &req.plan_hash[..12.min(req.plan_hash.len())],
    )
}

/// Refusal when a slug or domain already has an active run.
pub fn lock_refused(held: &LockHeld) -> String {
    format!(
        "{key} is locked by run {run} (status {status}), started by {who} at {at}. \
         Wait for it, resume it (`runs resume {run}`), cancel it (`runs cancel {run}`), \
         or take the lock over (`locks take-over {key} --reason ...`).",
        key = held.key,
        run = held.run_id,
        status = held.status,
        who = held.started_by,
        at = held.acquired_at.format("%Y-%m-%d %H:%M:%S UTC"),
    )
}

/// The table printed at the end of a run and by `runs show`.
pub fn summary_table(run: &RunRecord, steps: &[StepRecord]) -> String {
    let width = steps.iter().map(|s| s.name.len()).max().unwrap_or(4).max(4);
    let mut out = format!(
        "run {} · {} {} · {}{}\n",
        run.id,
        run.runbook,
        run.subject,
        run.status.as_str(),
        run.error
            .as_deref()
            .map(|e| format!(" — {e}"))
            .unwrap_or_default()
    );
    out.push_str(&format!(
        "  {:<width$}  {:<20}  {:>8}  {}\n",
        "step", "status", "seconds", "plan"
    ));
    for s in steps {
        let secs = match (s.started_at, s.finished_at) {
            (Some(a), Some(b)) => format!("{:.1}", (b - a).num_milliseconds() as f64 / 1000.0),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "  {:<width$}  {:<20}  {:>8}  {}\n",
            s.name,
            format!("{} {}", status_icon(s.status), status_words(s.status)),
            secs,
            s.plan_summary.as_deref().unwrap_or("")
        ));
    }
    out
}
