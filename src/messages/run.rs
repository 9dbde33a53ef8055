//! A run's progress in words, the same in the console and in chat: step lines, the summary
//! table, the success check, preconditions, refusals of a lock or a lease.

use crate::frontend::RunView;
use crate::report::{Check, Precondition};
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

/// The line a process posts in a run's thread when it stops because it lost the run.
pub fn lease_lost(executor: &str, why: &str) -> String {
    format!(
        "this process ({executor}) stopped executing the run before its next write: {why}. It applies nothing more; the new executor carries on."
    )
}

/// Why a step with a recorded approval refuses to apply.
pub fn approval_unbacked(step: &str, actor: &str, problem: &str) -> String {
    format!(
        "{step}: refusing to apply: the recorded approval by {actor} {problem}. Nothing was applied. \
         The state database may have been written to by hand: check `audit --verify` and the anchors in the audit channel (docs/operations.md, \"The audit trail\")."
    )
}

/// The audit chain's head, as posted outside the database.
pub fn audit_anchor(head: &crate::state::audit::Anchor) -> String {
    format!(
        "Audit anchor: the chain's head is event #{} `{head}`. Keep it: `onboard-bot audit SUBJECT --verify --anchor {head}` proves the chain still holds it.",
        head.id
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

/// The success check's report: how many checks passed, failed and were skipped (not
/// configured: neither passed nor failed), then one line per check.
pub fn success_check(checks: &[Check]) -> String {
    let passed = checks.iter().filter(|c| c.passed).count();
    let skipped = checks.iter().filter(|c| c.skipped).count();
    let failed = checks.len() - passed - skipped;
    let mut out = format!("success check: {passed} passed, {failed} failed, {skipped} skipped\n");
    for c in checks {
        out.push_str("  ");
        out.push_str(&success_check_line(c));
        out.push('\n');
    }
    out
}

/// One check of the success check: `[pass]`, `[FAIL]` or `[skip]`, its name, its evidence.
pub fn success_check_line(c: &Check) -> String {
    let mark = if c.skipped {
        "skip"
    } else if c.passed {
        "pass"
    } else {
        "FAIL"
    };
    format!("[{mark}] {} — {}", c.name, c.evidence)
}

/// A plan's preconditions for one domain: a heading, then one line each, `[ok]` or `[FAIL]`,
/// what was checked and what was found.
pub fn preconditions(domain: &str, pre: &[Precondition]) -> String {
    let mut out = format!("{domain}: preconditions\n");
    for p in pre {
        out.push_str(&format!(
            "  [{}] {}{}\n",
            if p.ok { "ok" } else { "FAIL" },
            p.what,
            if p.found.is_empty() {
                String::new()
            } else {
                format!(" — {}", p.found)
            }
        ));
    }
    out
}
