use super::*;
use crate::frontend::{ApprovalRequest, RunView, StepLine};
use crate::state::runs::{RunStatus, StepStatus};

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
        required: 1,
        approved_by: Vec::new(),
        why_asked: None,
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
fn a_plan_needing_two_approvers_says_who_approved_so_far() {
    let mut req = request("INSERT INTO orgs (slug) VALUES ($1)".into());
    req.required = 2;
    let first = approval_card(&req, true);
    req.approved_by = vec!["discord:1100000000000000077".into()];
    let second = approval_card(&req, true);
    let by = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    insta::assert_snapshot!(
        "approval_quorum",
        [
            first.card.description,
            second.card.description,
            approval_text(&req),
            approval_partial(&by(&["discord:1100000000000000077"]), 2),
            approval_quorum_met(
                &by(&["discord:1100000000000000077", "discord:1100000000000000078"]),
                2
            ),
            quorum_progress(&by(&["console:ops"]), 3),
            quorum_same_person("create-org", "console:ops", 2),
        ]
        .join("\n---\n")
    );
    // One approver: nothing about a quorum anywhere.
    req.required = 1;
    req.approved_by.clear();
    assert!(
        !approval_card(&req, true)
            .card
            .description
            .contains("approvers")
    );
    assert!(!approval_text(&req).contains("approvers"));
}

#[test]
fn the_whole_plan_lists_every_write_and_what_approve_all_covers() {
    use crate::frontend::{PlannedWrite, UpFrontPlan, UpFrontStep};
    let planned = |step: &str, hash: &str, detail: String| UpFrontStep {
        step: step.into(),
        description: format!("{step}'s description"),
        plan: Ok(PlannedWrite {
            plan_hash: hash.repeat(32),
            summary: format!("{step}: the change"),
            detail,
        }),
        presumes: (step == "cert").then(|| cert_presumes().to_owned()),
    };
    let unknown = |step: &str, why: &str| UpFrontStep {
        step: step.into(),
        description: String::new(),
        plan: Err(why.into()),
        presumes: None,
    };
    let mut plan = UpFrontPlan {
        run_id: view().id,
        subject: "merche-biche".into(),
        started_by: "discord:1100000000000000042".into(),
        hash: "ab".repeat(32),
        steps: vec![
            planned(
                "create-person",
                "01",
                "INSERT INTO users (slug) VALUES ($1)\n  $1 = 'merche-biche'".into(),
            ),
            planned("deploy-config", "02", "+ held_back: true".into()),
            planned("cert", "03", "run on vps-0: certbot --nginx".into()),
            unknown(
                "sync-back",
                "cannot read the site file on the VPS: certbot has not run\nsecond line",
            ),
        ],
    };
    assert_eq!(plan.covered().len(), 3);
    let short = up_front_card(&plan, true);
    assert!(short.attachment.is_none());
    insta::assert_snapshot!(
        "up_front_card",
        format!(
            "{}\n---\n{}\n---\n{}\n---\n{}\n---\n{}\n---\n{}",
            short.card.title,
            short.card.description,
            short.card.footer,
            up_front_intro(),
            approve_all_done("discord:1100000000000000077", &["create-person".into()]),
            asked_alone_changed()
        )
    );
    // Long plans: the card lists the writes and names the file that holds every plan whole.
    plan.steps[1] = planned(
        "deploy-config",
        "02",
        (0..2000).map(|i| format!("+ line {i}\n")).collect(),
    );
    let long = up_front_card(&plan, true);
    let (name, text) = long.attachment.expect("long plans go into a file");
    assert_eq!(name, "plan-all-abababababab.txt");
    assert!(text.contains("+ line 1999") && text.contains("$1 = 'merche-biche'"));
    assert!(
        long.card
            .description
            .contains("attached as `plan-all-abababababab.txt`")
    );
    assert!(long.card.description.chars().count() <= 4096);
    assert!(
        long.card
            .description
            .contains("**sync-back** — asked on its own")
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
fn expiry_and_reminder_snapshot() {
    use std::time::Duration;
    assert_eq!(human_duration(Duration::from_secs(0)), "0s");
    assert_eq!(human_duration(Duration::from_secs(45)), "45s");
    assert_eq!(human_duration(Duration::from_secs(5400)), "1h 30m");
    assert_eq!(human_duration(Duration::from_secs(86_400 + 3_661)), "1d 1h");
    insta::assert_snapshot!(
        "approval_expiry",
        [
            approval_expired_note("create-person", Duration::from_secs(86_400)),
            approval_expired(),
            approval_reminder(
                &[20, 21],
                "cert",
                Duration::from_secs(3_600),
                Duration::from_secs(82_800)
            ),
            approval_reminder(&[], "cert", Duration::from_secs(1), Duration::from_secs(2)),
            run_finished(
                crate::state::runs::RunStatus::Expired,
                &approval_expired_note("cert", Duration::from_secs(2))
            ),
        ]
        .join("\n")
    );
}

#[test]
fn refusals_and_errors_snapshot() {
    let all = [
        ApprovalRefusal::NotApprover,
        ApprovalRefusal::SelfApproval,
        ApprovalRefusal::Stale,
        ApprovalRefusal::AlreadyApproved,
        ApprovalRefusal::AlreadyDecided("discord:1".into()),
        ApprovalRefusal::RunOver("cancelled".into()),
        ApprovalRefusal::NoReason,
        ApprovalRefusal::Expired,
    ]
    .iter()
    .map(approval_refused)
    .collect::<Vec<_>>()
    .join("\n");
    insta::assert_snapshot!(
        "approval_refusals",
        format!(
            "{all}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            internal_error("e-1a2b3c"),
            run_internal_error(view().id, "e-1a2b3c"),
            input_refused("slug", "`Bad` contains `B`"),
            approval_decided(true, "discord:1100000000000000040", None),
            approval_decided(false, "console:root", None),
            approval_decided(
                false,
                "discord:1100000000000000040",
                Some("wrong  e-mail:\n@everyone ```look``` <@1>")
            ),
            approval_ping(&[20, 21]),
        )
    );
}
