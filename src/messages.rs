//! Every text a person reads, built by pure functions so it can be snapshot-tested and edited
//! in one place.

use crate::chat::{ApprovalRequest, RunView};
use crate::report::{Check, Findings, Precondition};
use crate::state::audit::Event;
use crate::state::runs::{LockHeld, RunRecord, RunStatus, StepRecord, StepStatus};
use crate::state::sites::{SiteOrigin, SiteRecord};

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

/// Refusal of `/resume take_over` to someone who is not an approver, or without a reason.
pub fn takeover_refused(only_reason_missing: bool) -> String {
    if only_reason_missing {
        "A take-over needs a `reason` (it is recorded in the audit trail with your name).".into()
    } else {
        "Only an approver may take a run over from the process executing it; ask one, or resume without `take_over`.".into()
    }
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

// ----- chat (Discord) ------------------------------------------------------------------------
//
// Plain text and plain structs only: `src/chat/discord` turns them into embeds and buttons, so
// these stay testable without a Discord client. Lengths are kept inside Discord's limits here
// (content 2000, embed title 256, description 4096, footer 2048, thread name 100).

/// A card to show as an embed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub title: String,
    pub description: String,
    pub footer: String,
    /// 0xRRGGBB.
    pub colour: u32,
}

/// An approval message: the card, and the full plan as a file when it is too long to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalCard {
    pub card: Card,
    /// `(file name, text)`.
    pub attachment: Option<(String, String)>,
}

/// Plans longer than this go into an attached file (an embed description holds 4096).
pub const PLAN_INLINE_MAX: usize = 3000;
const NOTE_MAX: usize = 160;

/// `text` cut to at most `max` characters, marked with `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `discord:123` as a mention people can click; other actors as they are.
pub fn mention(actor_id: &str) -> String {
    match actor_id.strip_prefix("discord:") {
        Some(id) if id.bytes().all(|b| b.is_ascii_digit()) => format!("<@{id}>"),
        _ => format!("`{actor_id}`"),
    }
}

/// Zero-width space: invisible, and never in user input (the domain types refuse it), so what
/// it breaks up reads the same.
const ZWSP: char = '\u{200b}';

/// `text` with nothing in it that Discord acts on inside or outside a code block: every run of
/// three or more backticks is broken up (Discord ends a block at the first ``` whatever the
/// opener's length), and `@everyone`, `@here` and `<@…>` are no longer mentions. Idempotent.
pub fn defuse(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = 0;
    for c in text.chars() {
        if c == '`' {
            if run == 2 {
                out.push(ZWSP);
                run = 0;
            }
            run += 1;
        } else {
            run = 0;
        }
        out.push(c);
    }
    out.replace("@everyone", "@\u{200b}everyone")
        .replace("@here", "@\u{200b}here")
        .replace("<@", "<\u{200b}@")
}

/// The longest run of backticks in `text`.
fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// `text` as one code block that nothing in it can end or escape, at most `max` characters
/// with its fences. The text is [`defuse`]d, and the fence is longer than any backtick run left
/// in it (CommonMark closes a block only with a run at least as long as the opener). A text
/// too long is cut inside the block, marked with `…`: the fences are never cut.
pub fn fence(text: &str, max: usize) -> String {
    let body = defuse(text);
    let fence = "`".repeat(longest_backtick_run(&body).max(2) + 1);
    let room = max.saturating_sub(2 * fence.chars().count() + 2).max(1);
    let body = if body.is_empty() {
        // Discord shows a block with nothing in it as its raw backticks.
        " ".to_owned()
    } else {
        truncate(&body, room)
    };
    format!("{fence}\n{body}\n{fence}")
}

fn run_colour(status: Option<RunStatus>, run: &RunView) -> u32 {
    match status {
        Some(RunStatus::Done) => 0x2ecc71,
        Some(RunStatus::Failed) => 0xe74c3c,
        Some(RunStatus::Rejected | RunStatus::Cancelled) => 0x95a5a6,
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

/// The plan to approve: what, why, the exact change; long plans as an attached file.
pub fn approval_card(req: &ApprovalRequest, two_person_rule: bool) -> ApprovalCard {
    let head = format!(
        "{}\n**{}**\nrun started by {}; only an approver{} may approve.",
        req.step_description,
        truncate(&req.summary, 500),
        mention(&req.started_by),
        if two_person_rule {
            " other than the person who started it"
        } else {
            ""
        }
    );
    // The plan's block gets what the embed's 4096 leave after the head, so cutting it to fit
    // never cuts a fence.
    let room = 4000usize.saturating_sub(head.chars().count() + 1);
    let (body, attachment) = if req.detail.chars().count() <= PLAN_INLINE_MAX {
        (fence(&req.detail, room), None)
    } else {
        let preview: Vec<&str> = req.detail.lines().take(15).collect();
        let file = format!(
            "plan-{}-{}.txt",
            req.step,
            &req.plan_hash[..12.min(req.plan_hash.len())]
        );
        (
            format!(
                "{}\nThe full plan ({} lines) is attached as `{file}`; the approval covers all of it.",
                fence(&preview.join("\n"), 1500),
                req.detail.lines().count()
            ),
            Some((file, req.detail.clone())),
        )
    };
    ApprovalCard {
        card: Card {
            title: truncate(
                &format!("Approval needed: {} · {}", req.step, req.subject),
                256,
            ),
            description: format!("{head}\n{body}"),
            footer: format!(
                "run {} · plan {}",
                req.run_id,
                &req.plan_hash[..12.min(req.plan_hash.len())]
            ),
            colour: 0xf1c40f,
        },
        attachment,
    }
}

/// The approval message's text while it waits: the approver roles, mentioned.
pub fn approval_ping(approver_role_ids: &[u64]) -> String {
    let roles: Vec<String> = approver_role_ids
        .iter()
        .map(|r| format!("<@&{r}>"))
        .collect();
    format!("{} a plan waits for your decision", roles.join(" "))
        .trim_start()
        .to_owned()
}

/// The approval message's text once someone decided.
pub fn approval_decided(approved: bool, actor_id: &str) -> String {
    if approved {
        format!("✓ approved by {}", mention(actor_id))
    } else {
        format!("✗ rejected by {}", mention(actor_id))
    }
}

/// An approval message whose plan changed before it was decided.
pub fn approval_superseded() -> String {
    "⚠ superseded: the plan changed before it was applied, so this approval no longer covers it; a fresh approval follows".into()
}

/// An approval message that can no longer be decided (run cancelled or finished).
pub fn approval_closed(why: &str) -> String {
    format!("closed: {why}")
}

/// Why a click on Approve or Reject was refused (shown only to the clicker).
pub fn approval_refused(reason: &ApprovalRefusal) -> String {
    match reason {
        ApprovalRefusal::NotApprover => {
            "You can't decide on this plan: only members with an approver role may approve or reject production writes. Your click was recorded in the audit trail.".into()
        }
        ApprovalRefusal::SelfApproval => {
            "You started this run, and the two-person rule is on: someone else with an approver role must approve its production writes. Your click was recorded in the audit trail.".into()
        }
        ApprovalRefusal::Stale => {
            "This plan is out of date: the step planned again and got a different plan. Decide on the newest approval message in the thread.".into()
        }
        ApprovalRefusal::AlreadyDecided(by) => {
            format!("This plan was already decided by {}.", mention(by))
        }
        ApprovalRefusal::RunOver(status) => {
            format!("This run is {} and waits for no decision.", status.replace('_', " "))
        }
    }
}

/// Why a click was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalRefusal {
    NotApprover,
    SelfApproval,
    Stale,
    AlreadyDecided(String),
    RunOver(String),
}

impl ApprovalRefusal {
    /// Stable key for the audit trail.
    pub fn key(&self) -> &'static str {
        match self {
            Self::NotApprover => "not_approver",
            Self::SelfApproval => "two_person_rule",
            Self::Stale => "stale_plan",
            Self::AlreadyDecided(_) => "already_decided",
            Self::RunOver(_) => "run_over",
        }
    }
}

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

// ----- site ownership ---------------------------------------------------------------------------

/// What serves a domain, one phrase per thing found (repo site directory, nginx site,
/// certificate).
pub fn site_found(f: &Findings) -> Vec<String> {
    let mut out = Vec::new();
    for site in &f.repo {
        let services = match &site.services {
            None => "no readable services.yaml".to_owned(),
            Some(s) => {
                let mut parts = vec![format!(
                    "domain: {}",
                    s.domain.as_deref().unwrap_or("(none)")
                )];
                if let Some(feature) = &s.feature {
                    parts.push(format!("feature: {feature}"));
                }
                if let Some(held) = s.held_back {
                    parts.push(format!("held_back: {held}"));
                }
                format!("services.yaml: {}", parts.join(", "))
            }
        };
        out.push(format!(
            "the site directory {} in the platform repo ({services})",
            site.dir
        ));
    }
    for path in &f.nginx {
        out.push(format!("the nginx site {path} on {}", f.vps));
    }
    for path in &f.certs {
        out.push(format!("the certificate {path} on {}", f.vps));
    }
    out
}

/// Whose a site is, per the bot's records.
pub fn site_owner(record: Option<&SiteRecord>) -> String {
    match record {
        None => {
            "it is not in the bot's records (no onboarding run of this bot created or adopted it)"
                .into()
        }
        Some(r) => format!(
            "it belongs to `{}` in the bot's records ({} by run {} on {}{})",
            r.slug,
            r.how.as_str(),
            r.run_id,
            r.updated_at.format("%Y-%m-%d %H:%M UTC"),
            match (&r.how, &r.adopted_from) {
                (SiteOrigin::Adopted, Some(from)) => format!(", from `{from}`"),
                _ => String::new(),
            }
        ),
    }
}

/// Preflight's (and deploy-config's) refusal of a domain that is another tenant's site.
pub fn site_taken(slug: &str, f: &Findings, record: Option<&SiteRecord>) -> String {
    let found = site_found(f);
    let what = if found.is_empty() {
        format!(
            "{} is another tenant's site: nothing of it was found in the platform repo or on {}, but {}",
            f.domain,
            f.vps,
            site_owner(record)
        )
    } else {
        format!(
            "{} is already served: found {}; {}",
            f.domain,
            found.join("; "),
            site_owner(record)
        )
    };
    format!(
        "{what}. Nothing was changed. To take this site over for `{slug}`, start the onboarding again with --adopt-site (Discord: adopt_site), which first asks for an approval naming what is there; otherwise choose another domain."
    )
}

/// The line an adoption's approval is given for.
pub fn site_adoption(f: &Findings, record: Option<&SiteRecord>) -> String {
    let found = site_found(f);
    let found = if found.is_empty() {
        format!("nothing of it found in the platform repo or on {}", f.vps)
    } else {
        found.join("; ")
    };
    format!(
        "adopt the existing site of {}, currently {found}; {}",
        f.domain,
        site_owner(record)
    )
}

/// `/cert issue` of a domain the bot has no site record of.
pub fn domain_not_on_record(domain: &str) -> String {
    format!(
        "{domain} is not in the bot's records: no onboarding run of this bot created or adopted its site, so the bot does not touch its certificate. \
         Onboard it (or adopt its existing site with --adopt-site / adopt_site) first, or renew it by hand."
    )
}

/// `/verify` of a slug the bot has no record of.
pub fn slug_not_on_record(slug: &str) -> String {
    format!(
        "`{slug}` is not in the bot's records: no onboarding run of this bot created its person or site. \
         /verify checks Providers this bot onboarded; onboard `{slug}` first (or check the slug)."
    )
}

/// `/cert issue` without an email, for a site whose onboarding recorded none.
pub fn no_owner_email(domain: &str, owner: &str) -> String {
    format!(
        "email: the onboarding that made {domain} `{owner}`'s site recorded no email; give one (--email / email)"
    )
}

#[cfg(test)]
mod chat_tests {
    use super::*;
    use crate::chat::StepLine;

    fn view() -> RunView {
        RunView {
            id: uuid::Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0),
            runbook: "onboard".into(),
            subject: "merche-biche".into(),
            started_by: "discord:1100000000000000042".into(),
            dry_run: false,
            chat_ref: None,
            steps: vec![
                StepLine {
                    name: "preflight".into(),
                    status: StepStatus::Done,
                    note: Some("slug free, tenant DB is the primary".into()),
                },
                StepLine {
                    name: "create-person".into(),
                    status: StepStatus::WaitingApproval,
                    note: Some("INSERT INTO users (merche-biche)".into()),
                },
                StepLine {
                    name: "dns-records".into(),
                    status: StepStatus::Pending,
                    note: None,
                },
            ],
        }
    }

    fn request(detail: String) -> ApprovalRequest {
        ApprovalRequest {
            run_id: view().id,
            subject: "merche-biche".into(),
            step: "create-person".into(),
            step_description: "Database 1: create the Person".into(),
            summary: "INSERT INTO users (merche-biche)".into(),
            detail,
            plan_hash: "0123456789abcdef0123456789abcdef".into(),
            started_by: "discord:1100000000000000042".into(),
        }
    }

    #[test]
    fn progress_card_snapshot() {
        let c = progress_card(&view(), None);
        assert_eq!(c.colour, 0xf1c40f, "waiting for approval is yellow");
        insta::assert_snapshot!(
            "progress_card",
            format!("{}\n---\n{}\n---\n{}", c.title, c.description, c.footer)
        );
        let done = progress_card(&view(), Some((RunStatus::Done, "all steps done")));
        assert_eq!(done.colour, 0x2ecc71);
        assert!(done.description.ends_with("**done** — all steps done"));
    }

    #[test]
    fn approval_card_inline_and_attached() {
        let short = approval_card(
            &request("INSERT INTO users (slug) VALUES ($1)\n  $1 = 'merche-biche'".into()),
            true,
        );
        assert!(short.attachment.is_none());
        insta::assert_snapshot!(
            "approval_card",
            format!(
                "{}\n---\n{}\n---\n{}",
                short.card.title, short.card.description, short.card.footer
            )
        );
        let long: String = (0..400)
            .map(|i| format!("line {i} of a long diff\n"))
            .collect();
        let a = approval_card(&request(long.clone()), true);
        let (name, text) = a.attachment.expect("a long plan goes into a file");
        assert_eq!(name, "plan-create-person-0123456789ab.txt");
        assert_eq!(text, long);
        assert!(a.card.description.len() < 4096);
        assert!(
            a.card
                .description
                .contains("attached as `plan-create-person-0123456789ab.txt`")
        );
    }

    #[test]
    fn texts_stay_inside_discord_limits() {
        let mut v = view();
        v.subject = "x".repeat(300);
        for s in &mut v.steps {
            s.note = Some("n".repeat(5000));
        }
        assert!(thread_name(&v).chars().count() <= 100);
        let c = progress_card(&v, Some((RunStatus::Failed, &"m".repeat(5000))));
        assert!(c.title.chars().count() <= 256 && c.description.chars().count() <= 4096);
        assert!(
            step_outcome("s", StepStatus::Failed, &"e".repeat(5000))
                .chars()
                .count()
                <= 2000
        );
        let long = [("s".to_string(), "l".repeat(5000))];
        assert!(
            log_messages(&long)
                .iter()
                .all(|m| m.0.chars().count() <= 2000)
        );
        let many: Vec<(String, String)> = (0..300)
            .map(|i| ("deploy-stub".to_string(), format!("line {i} of the deploy")))
            .collect();
        let msgs = log_messages(&many);
        assert!(msgs.len() > 1, "split over several messages");
        assert!(msgs.iter().all(|m| m.0.chars().count() <= 2000));
        assert_eq!(msgs.iter().map(|m| m.1).sum::<usize>(), 300);
        let joined: Vec<&str> = msgs.iter().map(|m| m.0.as_str()).collect();
        let joined = joined.join("\n");
        assert!((0..300).all(|i| joined.contains(&format!("line {i} of the deploy\n"))));
        assert!(log_messages(&[]).is_empty());
        let plan = request("```\nrm -rf /\n```".into());
        assert!(
            approval_card(&plan, true)
                .card
                .description
                .matches("```")
                .count()
                == 2,
            "a plan cannot close its code block"
        );
    }

    /// The code blocks of `text` as Discord reads them: a block opens at "```" (an optional
    /// language tag and a newline after it) and the first "```" after that closes it, whatever
    /// the opener's length.
    fn discord_blocks(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.find("```") {
            let mut body = &rest[i + 3..];
            if let Some(nl) = body.find('\n') {
                let tag = &body[..nl];
                if tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+-.#".contains(c))
                {
                    body = &body[nl + 1..];
                }
            }
            let Some(j) = body.find("```") else {
                out.push(format!("UNCLOSED:{body}"));
                break;
            };
            out.push(body[..j].trim_matches('\n').to_owned());
            rest = &body[j + 3..];
        }
        out
    }

    /// The code blocks of `text` by CommonMark's rule: a line of n >= 3 backticks (and an info
    /// string without backticks) opens; the next line of at least n backticks closes.
    fn commonmark_blocks(text: &str) -> Vec<String> {
        let run = |l: &str| l.chars().take_while(|c| *c == '`').count();
        let mut out = Vec::new();
        let mut open: Option<(usize, Vec<&str>)> = None;
        for line in text.split('\n') {
            match &mut open {
                None => {
                    let n = run(line);
                    if n >= 3 && !line[n..].contains('`') {
                        open = Some((n, Vec::new()));
                    }
                }
                Some((n, body)) => {
                    let k = run(line);
                    if k >= *n && line[k..].trim().is_empty() {
                        out.push(body.join("\n"));
                        open = None;
                    } else {
                        body.push(line);
                    }
                }
            }
        }
        if let Some((_, body)) = open {
            out.push(format!("UNCLOSED:{}", body.join("\n")));
        }
        out
    }

    /// What a reader sees of a block: the zero-width spaces that defuse it are invisible.
    fn seen(block: &str) -> String {
        block.replace('\u{200b}', "")
    }

    /// A plan carrying user text: a display name with a run of `n` backticks, a line that is
    /// only such a run, and mentions.
    fn hostile_plan(n: usize) -> String {
        let ticks = "`".repeat(n);
        format!(
            "INSERT INTO users (slug, email, display_name) VALUES ($1, $2, $3) RETURNING id;\n\
             -- $3 (display_name) = 'Evil {ticks} Name @everyone'\n\
             {ticks}\n\
             @here <@&123> <@123> <@!123> after the fence"
        )
    }

    fn assert_one_safe_block(text: &str, want: &str, what: &str) {
        for (rule, blocks) in [
            ("Discord", discord_blocks(text)),
            ("CommonMark", commonmark_blocks(text)),
        ] {
            assert_eq!(
                blocks.len(),
                1,
                "{what}: {rule} sees {blocks:#?} in\n{text}"
            );
            assert_eq!(seen(&blocks[0]), want, "{what}: {rule} block differs");
            for mention in ["@everyone", "@here", "<@"] {
                assert!(
                    !blocks[0].contains(mention),
                    "{what}: `{mention}` left live in {:?}",
                    blocks[0]
                );
            }
        }
    }

    #[test]
    fn user_text_never_leaves_its_code_block() {
        for n in [3, 4, 6, 10] {
            let plan = hostile_plan(n);
            let card = approval_card(&request(plan.clone()), true);
            assert!(card.attachment.is_none());
            assert_one_safe_block(
                &card.card.description,
                &plan,
                &format!("approval card, {n} backticks"),
            );
            assert!(card.card.description.chars().count() <= 4096);

            // A long plan: the preview is fenced, the file holds the plan as it is.
            let long = format!("{plan}\n{}", "filler line\n".repeat(400));
            let card = approval_card(&request(long.clone()), true);
            assert_eq!(
                card.attachment.as_ref().map(|a| a.1.as_str()),
                Some(long.as_str())
            );
            let blocks = discord_blocks(&card.card.description);
            assert_eq!(blocks.len(), 1, "{n}: {blocks:#?}");
            assert_eq!(commonmark_blocks(&card.card.description).len(), 1);
            assert!(seen(&blocks[0]).starts_with(&plan), "{n}: {blocks:#?}");

            // Log lines from a step, and the status table.
            let lines = [("create-person".to_string(), plan.clone())];
            let msgs = log_messages(&lines);
            assert_eq!(msgs.len(), 1);
            assert_one_safe_block(
                &msgs[0].0,
                &format!("create-person │ {plan}"),
                &format!("log lines, {n} backticks"),
            );
        }
    }

    #[test]
    fn a_fence_cut_to_fit_stays_one_block() {
        for n in [3, 4, 6, 10] {
            let text = format!("{}\n", hostile_plan(n)).repeat(60);
            for max in [120, 1990, 4000] {
                let f = fence(&text, max);
                assert!(
                    f.chars().count() <= max,
                    "{n}/{max}: {} chars",
                    f.chars().count()
                );
                for blocks in [discord_blocks(&f), commonmark_blocks(&f)] {
                    assert_eq!(blocks.len(), 1, "{n}/{max}: {blocks:#?}");
                    let shown = seen(&blocks[0]);
                    assert!(shown.ends_with('…'), "{n}/{max}: cut is marked");
                    assert!(text.starts_with(shown.trim_end_matches('…')), "{n}/{max}");
                }
            }
        }
        // A run far longer than any fence could be is broken up, not out-fenced.
        let ticks = "`".repeat(5000);
        let f = fence(&ticks, 2000);
        assert!(
            f.chars().count() <= 2000 && f.starts_with("```\n"),
            "{}",
            &f[..20]
        );
        assert_eq!(discord_blocks(&f).len(), 1);
        assert_eq!(commonmark_blocks(&f).len(), 1);
        // Defusing twice changes nothing more; an empty text still makes a block.
        let once = defuse(&hostile_plan(10));
        assert_eq!(defuse(&once), once);
        assert_eq!(discord_blocks(&fence("", 100)), vec![" ".to_string()]);
        assert_eq!(fence("plain", 100), "```\nplain\n```");
    }

    #[test]
    fn refusals_and_errors_snapshot() {
        let all = [
            ApprovalRefusal::NotApprover,
            ApprovalRefusal::SelfApproval,
            ApprovalRefusal::Stale,
            ApprovalRefusal::AlreadyDecided("discord:1".into()),
            ApprovalRefusal::RunOver("cancelled".into()),
        ]
        .iter()
        .map(approval_refused)
        .collect::<Vec<_>>()
        .join("\n");
        insta::assert_snapshot!(
            "approval_refusals",
            format!(
                "{all}\n{}\n{}\n{}\n{}\n{}\n{}",
                internal_error("e-1a2b3c"),
                run_internal_error(view().id, "e-1a2b3c"),
                input_refused("slug", "`Bad` contains `B`"),
                approval_decided(true, "discord:1100000000000000040"),
                approval_decided(false, "console:root"),
                approval_ping(&[20, 21]),
            )
        );
    }
}

#[cfg(test)]
mod access_tests {
    #[test]
    fn a_refused_command_is_named_and_said_to_be_audited() {
        let text = super::command_refused("cert issue");
        assert!(
            text.starts_with("Only the ops team may use /cert issue: ")
                && text.contains("recorded in the audit trail"),
            "{text}"
        );
    }
}
