//! Approvals in words: the card an approver reads, its buttons' outcomes, refusals.

use super::chat::{Card, PLAN_INLINE_MAX};
use super::text::{defuse, fence, mention, truncate};
use crate::frontend::{ApprovalRequest, UpFrontPlan};

/// The plan shown for approval.
pub fn approval_text(req: &ApprovalRequest) -> String {
    let quorum = quorum_line(req)
        .map(|q| format!("\n{q}"))
        .unwrap_or_default();
    let quorum = quorum
        + &req
            .why_asked
            .as_ref()
            .map(|w| format!("\nasked on its own, {w}"))
            .unwrap_or_default();
    format!(
        "── approval needed: {step} (run {run}, {subject}) ──\n{desc}\n{summary}{quorum}\n\n{detail}\n── plan {hash} ──",
        step = req.step,
        run = req.run_id,
        subject = req.subject,
        desc = req.step_description,
        summary = req.summary,
        detail = req.detail,
        hash = &req.plan_hash[..12.min(req.plan_hash.len())],
    )
}

/// How many approvers a plan needs and who approved it so far; `None` when one is enough.
fn quorum_line(req: &ApprovalRequest) -> Option<String> {
    (req.required > 1).then(|| {
        if req.approved_by.is_empty() {
            format!("needs {} different approvers", req.required)
        } else {
            format!(
                "needs {} different approvers: {}",
                req.required,
                approved_so_far(&req.approved_by, req.required)
            )
        }
    })
}

/// `1 of 2 approved by @x`: the approvals a plan has of those it needs.
pub fn approved_so_far(approved_by: &[String], required: u32) -> String {
    let who: Vec<String> = approved_by.iter().map(|a| mention(a)).collect();
    format!(
        "{} of {required} approved by {}",
        approved_by.len(),
        who.join(", ")
    )
}

/// A step's log line when it asks again for the approvers it still lacks.
pub fn quorum_progress(approved_by: &[String], required: u32) -> String {
    let missing = (required as usize).saturating_sub(approved_by.len());
    format!(
        "{}; waiting for {missing} more approver{}",
        approved_so_far(approved_by, required),
        if missing == 1 { "" } else { "s" }
    )
}

/// Why a run stopped when the same person approved a plan twice (each approver counts once).
pub fn quorum_same_person(step: &str, actor_id: &str, required: u32) -> String {
    format!(
        "{step}: needs {required} different approvers, and {} approved it already; their approval stands. \
         Nothing was applied: resume the run (`/resume` or `runs resume ID`) for another approver to decide.",
        mention(actor_id)
    )
}

/// The approval message's text after an approval that does not complete the quorum: the
/// buttons stay open for the next approver.
pub fn approval_partial(approved_by: &[String], required: u32) -> String {
    let missing = (required as usize).saturating_sub(approved_by.len());
    format!(
        "✓ {}: waiting for {missing} more approver{}",
        approved_so_far(approved_by, required),
        if missing == 1 { "" } else { "s" }
    )
}

/// An approval message: the card, and the full plan as a file when it is too long to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalCard {
    pub card: Card,
    /// `(file name, text)`.
    pub attachment: Option<(String, String)>,
}

/// The plan to approve: what, why, the exact change; long plans as an attached file.
pub fn approval_card(req: &ApprovalRequest, two_person_rule: bool) -> ApprovalCard {
    let head = format!(
        "{}\n**{}**\nrun started by {}; only an approver{} may approve.{}",
        req.step_description,
        truncate(&req.summary, 500),
        mention(&req.started_by),
        if two_person_rule {
            " other than the person who started it"
        } else {
            ""
        },
        quorum_line(req)
            .map(|q| format!("\nThis plan {q}; each person counts once."))
            .unwrap_or_default()
    ) + &req
        .why_asked
        .as_ref()
        .map(|w| format!("\nAsked on its own, {w}."))
        .unwrap_or_default();
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
            fields: Vec::new(),
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

/// The approval message's text once someone decided; a rejection with its reason.
pub fn approval_decided(approved: bool, actor_id: &str, reason: Option<&str>) -> String {
    if approved {
        format!("✓ approved by {}", mention(actor_id))
    } else {
        match reason {
            Some(r) => format!("✗ rejected by {}: {}", mention(actor_id), reason_line(r)),
            None => format!("✗ rejected by {}", mention(actor_id)),
        }
    }
}

/// Why a step is asked for on its own: its plan could not be known up front.
pub fn asked_alone_unknown(why: &str) -> String {
    format!(
        "not covered by Approve all: its plan could not be known before the earlier writes ({})",
        truncate(why.lines().next().unwrap_or_default(), 200)
    )
}

/// Why a step is asked for on its own: its plan changed since the whole plan was shown.
pub fn asked_alone_changed() -> String {
    "not covered by Approve all: its plan changed since the whole plan was shown".into()
}

/// The approval message's text once the last approver a plan needs approved it.
pub fn approval_quorum_met(approved_by: &[String], required: u32) -> String {
    format!("✓ {}", approved_so_far(approved_by, required))
}

/// The longest reason a rejection form takes (Discord's text input allows up to 4000).
pub const REJECT_REASON_MAX: usize = 1000;

/// A rejection's reason as one line that pings nobody and stays short.
pub fn reason_line(reason: &str) -> String {
    let one_line = reason.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate(&defuse(&one_line), 300)
}

/// The title of the form Reject opens (Discord allows 45 characters).
pub fn reject_form_title(step: &str) -> String {
    truncate(&format!("Reject {step}"), 45)
}

/// The label of the form's one input (Discord allows 45 characters).
pub const REJECT_REASON_LABEL: &str = "Why is this plan rejected?";

/// The hint inside the form's input.
pub const REJECT_REASON_PLACEHOLDER: &str =
    "Recorded in the audit trail and shown in the run's thread";

/// An approval message whose plan changed before it was decided.
pub fn approval_superseded() -> String {
    "⚠ superseded: the plan changed before it was applied, so this approval no longer covers it; a fresh approval follows".into()
}

/// An approval message that can no longer be decided (run cancelled or finished).
pub fn approval_closed(why: &str) -> String {
    format!("closed: {why}")
}

/// A duration as people say it: `45s`, `5m`, `1h 30m`, `2d 3h`.
pub fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60, s % 60);
    let parts: Vec<String> = [(days, "d"), (hours, "h"), (mins, "m"), (secs, "s")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .take(2)
        .map(|(n, u)| format!("{n}{u}"))
        .collect();
    if parts.is_empty() {
        "0s".into()
    } else {
        parts.join(" ")
    }
}

/// Why a step stopped when its approval expired (the run's end message, `/status`).
pub fn approval_expired_note(step: &str, ttl: std::time::Duration) -> String {
    format!(
        "{step}: approval expired: no decision within {}; resume the run to be asked again",
        human_duration(ttl)
    )
}

/// An approval message whose plan waited too long: its buttons are disabled with this.
pub fn approval_expired() -> String {
    "⌛ expired: no decision came in time; resume the run (`/resume`) to be asked again".into()
}

/// The reminder posted in the run's thread when a plan has waited `waited` (once).
pub fn approval_reminder(
    approver_role_ids: &[u64],
    step: &str,
    waited: std::time::Duration,
    left: std::time::Duration,
) -> String {
    let roles: Vec<String> = approver_role_ids
        .iter()
        .map(|r| format!("<@&{r}>"))
        .collect();
    format!(
        "{} reminder: the plan of {step} has waited {} for a decision; it expires in {}.",
        roles.join(" "),
        human_duration(waited),
        human_duration(left)
    )
    .trim_start()
    .to_owned()
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
        ApprovalRefusal::AlreadyApproved => {
            "You already approved this plan; each approver counts once, so it waits for someone else with an approver role.".into()
        }
        ApprovalRefusal::AlreadyDecided(by) => {
            format!("This plan was already decided by {}.", mention(by))
        }
        ApprovalRefusal::RunOver(status) => {
            format!("This run is {} and waits for no decision.", status.replace('_', " "))
        }
        ApprovalRefusal::Expired => {
            "This approval expired: no decision came in time, so the run stopped. Resume it (`/resume`) to be asked again.".into()
        }
        ApprovalRefusal::NoReason => {
            "A rejection needs a reason: click Reject again and say why.".into()
        }
    }
}

/// Why a click was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalRefusal {
    NotApprover,
    SelfApproval,
    Stale,
    /// The clicker approved this plan already (a step needing several approvers).
    AlreadyApproved,
    AlreadyDecided(String),
    RunOver(String),
    /// The plan waited longer than `approvals.ttl_secs`; the run stopped.
    Expired,
    /// A reject form submitted with a blank reason.
    NoReason,
}

impl ApprovalRefusal {
    /// Stable key for the audit trail.
    pub fn key(&self) -> &'static str {
        match self {
            Self::NotApprover => "not_approver",
            Self::SelfApproval => "two_person_rule",
            Self::Stale => "stale_plan",
            Self::AlreadyApproved => "already_approved",
            Self::AlreadyDecided(_) => "already_decided",
            Self::RunOver(_) => "run_over",
            Self::NoReason => "no_reason",
            Self::Expired => "expired",
        }
    }
}

/// Refusal of `/resume take_over` to someone who is not an approver, or without a reason.
pub fn takeover_refused(only_reason_missing: bool) -> String {
    if only_reason_missing {
        "A take-over needs a `reason` (it is recorded in the audit trail with your name).".into()
    } else {
        "Only an approver may take a run over from the process executing it; ask one, or resume without `take_over`.".into()
    }
}

/// The console's question for each plan it shows.
pub fn console_approval_prompt() -> &'static str {
    "[a]pprove, [r]eject (with a reason) or show the [d]iff again? "
}

/// The console asks why, after a reject.
pub fn console_reject_reason_prompt() -> &'static str {
    "reason for rejecting (recorded in the audit trail): "
}

/// The whole plan of a run, shown before its first production write: each write in order with
/// its plan, or why it cannot be known yet; what Approve all covers. The plans go inline when
/// they fit the embed, else into one attached file the card names.
pub fn up_front_card(plan: &UpFrontPlan, two_person_rule: bool) -> ApprovalCard {
    let covered = plan.covered().len();
    let mut list = String::new();
    for (i, s) in plan.steps.iter().enumerate() {
        let line = match &s.plan {
            Ok(p) => format!(
                "{}. **{}** — {} (plan {}){}\n",
                i + 1,
                s.step,
                truncate(&p.summary, 200),
                &p.plan_hash[..12.min(p.plan_hash.len())],
                s.presumes
                    .as_ref()
                    .map(|w| format!("; {}", truncate(w, 300)))
                    .unwrap_or_default()
            ),
            Err(why) => format!(
                "{}. **{}** — asked on its own when its turn comes: {}\n",
                i + 1,
                s.step,
                truncate(&defuse(why.lines().next().unwrap_or_default()), 200)
            ),
        };
        list.push_str(&line);
    }
    let head = format!(
        "Every production write of this run, in order. **Approve all** approves the {covered} plan{} known now, each applied only if, planned again right before its write, it still has the hash shown; the others, and any plan that changes, are asked for on their own. Run started by {}; only an approver{} may approve.",
        if covered == 1 { "" } else { "s" },
        mention(&plan.started_by),
        if two_person_rule {
            " other than the person who started it"
        } else {
            ""
        }
    );
    let full: String = plan
        .steps
        .iter()
        .filter_map(|s| {
            let p = s.plan.as_ref().ok()?;
            Some(format!(
                "── {} (plan {}) ──\n{}\n{}\n",
                s.step, p.plan_hash, p.summary, p.detail
            ))
        })
        .collect();
    let file = format!("plan-all-{}.txt", &plan.hash[..12.min(plan.hash.len())]);
    let blocks: String = plan
        .steps
        .iter()
        .filter_map(|s| {
            let p = s.plan.as_ref().ok()?;
            Some(format!(
                "**{}**\n{}",
                s.step,
                fence(&p.detail, PLAN_INLINE_MAX + 20)
            ))
        })
        .collect::<Vec<_>>()
        .join("\n");
    let inline = format!("{head}\n{list}\n{blocks}");
    // The embed allows 4096 characters and 6000 for the whole message: plans that do not fit
    // with room to spare go into the file, and the card says so.
    // A plan is never cut short inline: one longer than an approval card shows goes whole
    // into the file.
    let each_fits = plan.steps.iter().all(|s| match &s.plan {
        Ok(p) => p.detail.chars().count() <= PLAN_INLINE_MAX,
        Err(_) => true,
    });
    let (description, attachment) = if each_fits && inline.chars().count() <= 3800 {
        (inline, None)
    } else {
        (
            truncate(
                &format!(
                    "{head}\n{list}\nThe full plans are attached as `{file}`; Approve all covers exactly them."
                ),
                3800,
            ),
            Some((file, full)),
        )
    };
    ApprovalCard {
        card: Card {
            title: truncate(&format!("The whole plan · {}", plan.subject), 256),
            description,
            footer: format!(
                "run {} · plan {}",
                plan.run_id,
                &plan.hash[..12.min(plan.hash.len())]
            ),
            colour: 0xf1c40f,
            fields: Vec::new(),
        },
        attachment,
    }
}

/// The whole plan's message once someone pressed Approve all: who, and what it approved.
pub fn approve_all_done(actor_id: &str, steps: &[String]) -> String {
    format!(
        "✓ Approve all by {}: {}",
        mention(actor_id),
        steps.join(", ")
    )
}

/// The whole plan's message text: it waits for nobody, so it pings nobody (each step's own
/// approval message pings the approver roles).
pub fn up_front_intro() -> String {
    "The whole plan of this run: approve each write as it comes, or the known ones at once with **Approve all**.".into()
}

/// What the certificate's plan ahead presumes of deploy-stub.
pub fn cert_presumes() -> &'static str {
    "planned as it will be once deploy-stub has installed the nginx site; the site and `nginx -t` are checked again right before certbot"
}

/// What a database step's plan ahead presumes of create-person.
pub fn person_presumes() -> &'static str {
    "planned as it will be once create-person has created the user; the SQL finds the user by slug"
}

/// What the success check's plan ahead presumes of the database steps.
pub fn verify_presumes() -> &'static str {
    "planned as it will be once the database steps have created the rows; the ids are looked up by slug when the check runs"
}

/// What the release's plan ahead presumes of deploy-config and the certificate.
pub fn release_presumes() -> &'static str {
    "planned on services.yaml as deploy-config writes it; applied only once TLS is live"
}
