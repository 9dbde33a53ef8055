//! The answers to slash commands: refusals, errors with their reference, run links, `/status`
//! and `/audit` listings.

use super::run::summary_table;
use super::text::{fence, mention, truncate};
use crate::state::audit::Event;
use crate::state::runs::{RunRecord, StepRecord};

/// A user error: what was wrong with the input, shown only to them.
pub fn input_refused(field: &str, message: &str) -> String {
    truncate(&format!("Not started — {field}: {message}"), 1900)
}

/// An internal failure: a short message with a reference to find the full chain in the log.
pub fn internal_error(reference: &str) -> String {
    format!(
        "Something went wrong on the bot's side (reference `{reference}`). Nothing more was done; the details are in the bot's log under that reference."
    )
}

/// A run stopped on an internal error (it stays resumable; the log has the chain).
pub fn run_internal_error(run_id: uuid::Uuid, reference: &str) -> String {
    format!(
        "✗ run `{run_id}` stopped on an internal error (reference `{reference}`); it stays resumable and the details are in the bot's log"
    )
}

/// A run this process was to execute is held by another live bot process.
pub fn run_executed_elsewhere(run_id: uuid::Uuid, holder: &str) -> String {
    format!(
        "· run `{run_id}` is being executed by another bot process (`{holder}`), so this one leaves it alone. If that process is gone or stuck, an approver can take it over with `/resume take_over: true reason: …`."
    )
}

/// The reply to /onboard once its run is under way.
pub fn run_started_reply(run_id: uuid::Uuid, thread_id: Option<u64>) -> String {
    match thread_id {
        Some(t) => format!("Run `{run_id}` started: follow it and approve its plans in <#{t}>."),
        None => format!("Run `{run_id}` started; its thread is on its way in the ops channel."),
    }
}

/// The reply to /resume once the run is executing again.
pub fn run_resumed_reply(run_id: uuid::Uuid, thread_id: Option<u64>) -> String {
    match thread_id {
        Some(t) => format!("Run `{run_id}` resumed from its recorded state: follow it in <#{t}>."),
        None => format!("Run `{run_id}` resumed from its recorded state."),
    }
}

/// `/status` without a run: the runs not finished for good, with their threads.
pub fn status_overview(runs: &[RunRecord]) -> String {
    if runs.is_empty() {
        return "No unfinished runs.".into();
    }
    let mut out = String::from("Unfinished runs, newest first:\n");
    for r in runs {
        let thread = r
            .chat_ref
            .as_ref()
            .and_then(|c| c["thread_id"].as_str())
            .map(|t| format!(" · <#{t}>"))
            .unwrap_or_default();
        let line = format!(
            "• `{}` {} {} — {}{} · by {}\n",
            r.id,
            r.runbook,
            r.subject,
            r.status.as_str().replace('_', " "),
            thread,
            mention(&r.started_by)
        );
        if out.len() + line.len() > 1900 {
            out.push('…');
            break;
        }
        out.push_str(&line);
    }
    out
}

/// `/status RUN`: the summary table in a code block.
pub fn status_of_run(run: &RunRecord, steps: &[StepRecord]) -> String {
    fence(&summary_table(run, steps), 1990)
}

/// `/audit SUBJECT`: the events, one line each (the full text as a file when long).
pub fn audit_listing(subject: &str, events: &[Event]) -> String {
    let mut out = format!("audit trail of {subject}: {} events\n", events.len());
    for e in events {
        out.push_str(&format!(
            "{} #{:<5} {:<22} {:<14} {:<22} {}\n",
            e.at.format("%Y-%m-%d %H:%M:%S"),
            e.id,
            e.kind,
            e.step.as_deref().unwrap_or("-"),
            e.actor,
            e.outcome
        ));
    }
    out
}

/// A Discord command refused because the member is not on the ops team (ephemeral).
pub fn command_refused(command: &str) -> String {
    format!(
        "Only the ops team may use /{command}: it needs an operator or approver role, which you do not have. \
         Nothing was done, and this refusal is recorded in the audit trail."
    )
}

/// `runs resume` from the console against a production config, without `--break-glass`.
pub fn resume_needs_break_glass() -> String {
    "this config is marked production: resume from the console only with --break-glass REASON (recorded in the audit trail)".into()
}

/// `/resume` of a run that has ended for good.
pub fn resume_nothing_to_do(run_id: uuid::Uuid, status: &str) -> String {
    format!("Run `{run_id}` is {status}; there is nothing to resume.")
}

/// `/resume` of a run this process is executing.
pub fn resume_running_here(run_id: uuid::Uuid) -> String {
    format!("Run `{run_id}` is running already; follow it in its thread.")
}

/// `/resume` of a run another process holds the lease of, and how to take it over.
pub fn resume_leased_elsewhere(
    run_id: uuid::Uuid,
    holder: &str,
    until: chrono::DateTime<chrono::Utc>,
) -> String {
    format!(
        "Run `{run_id}` is being executed by `{holder}` (lease until {}). If that process is gone or stuck, an approver can take it over with `take_over: true` and a `reason`.",
        until.format("%H:%M:%S UTC")
    )
}

/// A run id that names no run, and where to look up the right one (`hint`: `/status` or
/// `` `runs list` ``).
pub fn no_such_run(run_id: uuid::Uuid, hint: &str) -> String {
    format!("No run `{run_id}`: check the id with {hint}.")
}

/// `/dns-check`'s note of the records the bot wrote itself (dns-records, into a zone of
/// `dns.update`), each with the run and when; empty when it wrote none for the domain.
pub fn dns_written_by_bot(writes: &[crate::state::dns_writes::DnsWrite]) -> String {
    if writes.is_empty() {
        return String::new();
    }
    let mut s = String::from("Written by the bot (dns.update):\n");
    for w in writes {
        s.push_str(&format!(
            "  {}. {} IN {} {}: run {}, {} UTC, zone {} at {}",
            w.name,
            w.ttl,
            w.rtype,
            w.value,
            w.run_id,
            w.written_at.format("%Y-%m-%d %H:%M"),
            w.zone,
            w.server
        ));
        if !w.replaced.is_empty() {
            s.push_str(&format!(" (replaced {})", w.replaced.join(", ")));
        }
        s.push('\n');
    }
    s
}
