//! What the console prints for `runs list`, `locks list` and `audit`, and after a run.

use crate::state::audit::Event;
use crate::state::runs::{LockHeld, RunRecord};

/// `runs list`: one line per run, newest first.
pub fn runs_listing(runs: &[RunRecord]) -> String {
    let mut out = String::new();
    for r in runs {
        out.push_str(&format!(
            "{}  {:<10} {:<24} {:<17} {:<20} {}\n",
            r.id,
            r.runbook,
            r.subject,
            r.status.as_str(),
            r.started_by,
            r.created_at.format("%Y-%m-%d %H:%M")
        ));
    }
    out
}

/// `locks list`: every held lock and the run holding it.
pub fn locks_listing(locks: &[LockHeld]) -> String {
    if locks.is_empty() {
        return "no locks held\n".into();
    }
    let mut out = String::new();
    for l in locks {
        out.push_str(&format!(
            "{:<40} run {} ({}) by {} since {}\n",
            l.key, l.run_id, l.status, l.started_by, l.acquired_at
        ));
    }
    out
}

/// `audit SUBJECT` on the console: every event with its detail, to the millisecond.
pub fn audit_events_console(events: &[Event]) -> String {
    let mut out = String::new();
    for e in events {
        out.push_str(&format!(
            "{} #{:<5} {:<24} {:<14} {:<22} {:<10} {}\n",
            e.at.format("%Y-%m-%d %H:%M:%S%.3f"),
            e.id,
            e.kind,
            e.step.as_deref().unwrap_or("-"),
            e.actor,
            e.outcome,
            e.detail
        ));
    }
    out
}

/// What `audit --verify` found: the chain holds (with `anchors`, how many anchors were given,
/// when the line names them), or each break.
pub fn audit_chain_verdict(
    count: usize,
    breaks: &[crate::state::audit::ChainBreak],
    anchors: Option<usize>,
) -> String {
    if breaks.is_empty() {
        let anchored = match anchors {
            Some(n) if n > 0 => format!(", and every one of the {n} anchors"),
            _ => String::new(),
        };
        return format!("audit chain OK: {count} events, every hash and link holds{anchored}\n");
    }
    breaks
        .iter()
        .map(|b| format!("audit chain BROKEN at event #{}: {}\n", b.id, b.problem))
        .collect()
}

/// The audit trail printed at the end of a console run.
pub fn run_audit_trail(run_id: uuid::Uuid, events: &[Event]) -> String {
    let mut out = format!("audit trail of run {run_id}:\n");
    for e in events {
        out.push_str(&format!(
            "  #{:<5} {} {:<22} {:<14} {:<20} {}\n",
            e.id,
            e.at.format("%H:%M:%S%.3f"),
            e.kind,
            e.step.as_deref().unwrap_or("-"),
            e.actor,
            e.outcome
        ));
    }
    out
}
