//! The Discord front-end end to end: the real bot (serenity + poise) against the fake Discord,
//! with the lab's databases, DNS, VPS and repo behind the engine. Every test waits on what the
//! channel receives (never a sleep), has a time limit, and ends with no spec violation.

use crate::support::harness::{init_tracing, within};
use crate::support::{fake_discord, lab};

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fake_discord::{FakeDiscord, GatewayLog, Reconnect, State};
use lab::{Lab, TestDbs};
use onboard_bot::chat::discord::Bot;
use onboard_bot::chat::discord::DiscordFrontend;
use onboard_bot::chat::discord::frontend::PROGRESS_EDIT_INTERVAL;
use onboard_bot::config::Config;
use onboard_bot::config::DiscordConfig;
use onboard_bot::frontend::{ApprovalRequest, ChatFrontend, RunView, StepLine};
use onboard_bot::state::runs::StepStatus;
use serde_json::{Value, json};
use serenity::all::{ChannelId, GuildChannel, MessageId, UserId};

/// One wait for the bot's next visible step.
const T: Duration = Duration::from_secs(30);
/// A whole onboarding (database, DNS, deploy, certificate, checks).
pub(crate) const RUN: Duration = Duration::from_secs(300);

const MODE_OWNS: u64 = 1;
const MODE_JOINS: u64 = 2;

/// The lab config for this test's databases, with a `discord:` section pointing at the fake.
fn config(dbs: &TestDbs<'_>, dir: &Path, fake: &FakeDiscord) -> Arc<Config> {
    let discord = fake.config_section(dir);
    dbs.config(dir, |t| t + &discord)
}

/// What most tests start from: the lab serving `domains`, fresh databases, a fake Discord and
/// the bot connected to it. Keep `tmp` alive: the config and the token file live there.
pub(crate) struct Setup {
    pub(crate) dbs: TestDbs<'static>,
    pub(crate) tmp: tempfile::TempDir,
    pub(crate) fake: FakeDiscord,
    pub(crate) cfg: Arc<Config>,
    pub(crate) bot: Bot,
}

pub(crate) async fn set_up(domains: &[&str]) -> Setup {
    let (dbs, tmp, fake, cfg) = set_up_without_bot(domains).await;
    let bot = start_bot(&fake, &cfg).await;
    Setup {
        dbs,
        tmp,
        fake,
        cfg,
        bot,
    }
}

/// [`set_up`] but the bot: for a test that runs it otherwise (as its own process). The config
/// is also written to `bot.yaml` in `tmp`.
pub(crate) async fn set_up_without_bot(
    domains: &[&str],
) -> (
    TestDbs<'static>,
    tempfile::TempDir,
    FakeDiscord,
    Arc<Config>,
) {
    let lab = lab();
    if !domains.is_empty() {
        lab.serve_domains(domains);
    }
    let dbs = lab.fresh().await;
    dbs.own_vps_sites(domains).await;
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeDiscord::start().await;
    let cfg = config(&dbs, tmp.path(), &fake);
    (dbs, tmp, fake, cfg)
}

/// The bot as its own process (`onboard-bot serve`, as in production), connected to the fake
/// Discord and registered; killed when dropped.
pub(crate) struct BotProcess(tokio::process::Child);

impl BotProcess {
    pub(crate) async fn start(tmp: &std::path::Path, fake: &FakeDiscord) -> BotProcess {
        let log = std::fs::File::create(tmp.join("bot.log")).expect("the bot's log file");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_onboard-bot"))
            .args(["serve", "--config"])
            .arg(tmp.join("bot.yaml"))
            .env("RUST_LOG", "warn")
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start onboard-bot serve");
        fake.wait_for_commands(&["onboard", "status"], RUN).await;
        BotProcess(child)
    }

    /// Its resident memory, kB: now and its peak.
    pub(crate) fn rss_kb(&self) -> (u64, u64) {
        let pid = self.0.id().expect("the bot is running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |k: &str| {
            status
                .lines()
                .find(|l| l.starts_with(k))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Ctrl-C, as an operator stops it; it must exit 0.
    pub(crate) async fn stop(mut self) {
        let pid = self.0.id().expect("the bot is running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -INT {pid}");
        let status = tokio::time::timeout(T, self.0.wait())
            .await
            .expect("the bot stops on Ctrl-C")
            .expect("the bot's exit");
        assert!(
            status.success(),
            "onboard-bot serve exits 0 on Ctrl-C: {status:?}"
        );
    }
}

/// Starts the bot and waits until it is connected, registered and resuming.
async fn start_bot(fake: &FakeDiscord, cfg: &Arc<Config>) -> Bot {
    let readies = ready_count(fake);
    let bot = Bot::start(cfg.clone()).await.expect("the bot starts");
    fake.wait_for("the bot's READY", T, |st| {
        (ready_count_in(st) > readies).then_some(())
    })
    .await;
    fake.wait_for_commands(
        &[
            "onboard",
            "dns-check",
            "cert",
            "verify",
            "status",
            "cancel",
            "abandon",
            "audit",
        ],
        T,
    )
    .await;
    bot
}

fn ready_count(fake: &FakeDiscord) -> usize {
    ready_count_in(&fake.state())
}

fn ready_count_in(st: &State) -> usize {
    st.gateway
        .log
        .iter()
        .filter(|l| matches!(l, GatewayLog::ReadySent { .. }))
        .count()
}

/// Live messages of a channel as Discord returns them (JSON), oldest first.
pub(crate) fn messages_json(st: &State, channel: ChannelId) -> Vec<Value> {
    st.messages
        .values()
        .filter(|m| !m.deleted && m.json["channel_id"] == channel.to_string())
        .map(|m| m.json.clone())
        .collect()
}

fn buttons(m: &Value) -> Vec<Value> {
    m["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["components"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// The enabled Approve button of an approval message.
pub(crate) fn open_approve(m: &Value) -> Option<String> {
    buttons(m)
        .iter()
        .find(|b| b["label"] == "Approve" && b["disabled"] != true)
        .and_then(|b| b["custom_id"].as_str().map(String::from))
}

pub(crate) fn is_run_end(m: &Value) -> bool {
    let c = m["content"].as_str().unwrap_or_default();
    [
        "✓ run done",
        "✗ run failed",
        "✗ run rejected",
        "- run cancelled",
    ]
    .iter()
    .any(|p| c.starts_with(p))
}

pub(crate) fn id_of(m: &Value) -> MessageId {
    MessageId::new(m["id"].as_str().unwrap().parse().unwrap())
}

/// The next open approval in `thread` (not clicked yet), or the run's end.
enum Next {
    Approval(MessageId, String),
    End(String),
}

async fn next_in_thread(fake: &FakeDiscord, thread: ChannelId, clicked: &HashSet<String>) -> Next {
    fake.wait_for("an approval or the end of the run", RUN, |st| {
        let msgs = messages_json(st, thread);
        if let Some(end) = msgs.iter().find(|m| is_run_end(m)) {
            return Some(Next::End(end["content"].as_str().unwrap().to_string()));
        }
        msgs.iter().find_map(|m| {
            let id = open_approve(m)?;
            (!clicked.contains(&id)).then(|| Next::Approval(id_of(m), id))
        })
    })
    .await
}

/// Clicks Approve as `who` and waits until the message says who approved.
async fn approve(fake: &FakeDiscord, who: UserId, message: MessageId, custom_id: &str) {
    let h = fake.click_button(who, message, custom_id);
    let resp = fake.interaction_response(&h).await;
    assert_eq!(
        resp.kind, 6,
        "a click is acknowledged with a deferred update"
    );
    assert!(resp.latency < Duration::from_secs(3));
    let want = format!("approved by <@{who}>");
    fake.wait_for_message(|m| m.id == message && m.content.contains(&want), T)
        .await;
    let m = fake.message(message).unwrap();
    assert!(
        m.components
            .iter()
            .flat_map(|r| &r.components)
            .all(|c| matches!(c, serenity::all::ActionRowComponent::Button(b) if b.disabled)),
        "buttons disabled after the decision"
    );
}

/// Approves every plan of the run in `thread` as `who`; returns the run's final message and
/// the steps that asked for approval.
async fn approve_until_end(
    fake: &FakeDiscord,
    thread: ChannelId,
    who: UserId,
) -> (String, Vec<String>) {
    let mut clicked = HashSet::new();
    let mut steps = Vec::new();
    loop {
        match next_in_thread(fake, thread, &clicked).await {
            Next::End(text) => return (text, steps),
            Next::Approval(message, custom_id) => {
                steps.push(custom_id.split(':').nth(3).unwrap_or_default().to_string());
                clicked.insert(custom_id.clone());
                approve(fake, who, message, &custom_id).await;
            }
        }
    }
}

/// Sends /onboard and checks the answer: deferred in time, ephemeral, naming the thread.
pub(crate) async fn onboard(fake: &FakeDiscord, who: UserId, options: Value) -> GuildChannel {
    let slug = options["slug"].as_str().unwrap().to_string();
    let h = fake.send_command(who, "onboard", options);
    let resp = fake.interaction_response(&h).await;
    assert!(resp.is_deferred() && resp.is_ephemeral(), "{resp:?}");
    assert!(resp.latency < Duration::from_secs(3));
    let reply = fake.original_response(&h, T).await;
    assert!(reply.content.starts_with("Run `"), "{}", reply.content);
    let thread = fake
        .wait_for_thread(|t| t.name.starts_with(&format!("onboard {slug} ")), T)
        .await;
    assert!(
        reply.content.contains(&format!("<#{}>", thread.id)),
        "{}",
        reply.content
    );
    assert_eq!(thread.parent_id, Some(fake.ops_channel_id()));
    thread
}

/// What every finished onboarding shows: the progress embed edited in place, ending with every
/// step finished, step outcome messages, and the thread stored as the run's chat_ref.
/// `one_process`: the run was executed by one bot (edits coalesce per process).
async fn check_thread(
    fake: &FakeDiscord,
    dbs: &TestDbs<'_>,
    thread: ChannelId,
    slug: &str,
    one_process: bool,
) {
    let msgs = fake.messages_in(thread);
    // Shown with --nocapture: the thread as a person reads it.
    for m in &msgs {
        let embed = m
            .embeds
            .first()
            .map(|e| {
                format!(
                    " [{}: {}]",
                    e.title.clone().unwrap_or_default(),
                    e.description.clone().unwrap_or_default()
                )
            })
            .unwrap_or_default();
        println!("{slug} | {}{embed}", m.content);
    }
    let progress = &msgs[0];
    assert_eq!(
        progress.embeds.len(),
        1,
        "the first message is the progress embed"
    );
    let final_embed = fake
        .wait_for("the progress embed to show the end", T, |st| {
            let m = st.messages.get(&progress.id.get())?;
            let d = m.json["embeds"][0]["description"].as_str()?.to_string();
            d.contains("**done** — ").then_some(d)
        })
        .await;
    assert!(
        !final_embed.contains("— pending") && !final_embed.contains("waiting for approval"),
        "{final_embed}"
    );
    let history = fake.message_history(progress.id);
    assert!(history.len() > 2, "the progress embed is edited in place");
    // Edits are coalesced: at most one per PROGRESS_EDIT_INTERVAL (some slack for the clock).
    let path = format!("/channels/{thread}/messages/{}", progress.id);
    let edits: Vec<std::time::Instant> = fake
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path == path && r.status == 200)
        .map(|r| r.at)
        .collect();
    for w in edits.windows(2).filter(|_| one_process) {
        assert!(
            w[1] - w[0] >= PROGRESS_EDIT_INTERVAL - Duration::from_millis(100),
            "two progress edits {:?} apart",
            w[1] - w[0]
        );
    }
    assert!(
        msgs.iter()
            .any(|m| m.content.starts_with("✓ create-person: done")),
        "a message per step outcome"
    );
    let state = dbs.state_admin().await;
    let chat_ref: Value = sqlx::query_scalar("SELECT chat_ref FROM runs WHERE subject = $1")
        .bind(slug)
        .fetch_one(&state)
        .await
        .unwrap();
    assert_eq!(chat_ref["thread_id"], thread.to_string());
    assert_eq!(chat_ref["progress_message_id"], progress.id.to_string());
}

pub(crate) async fn user_count(dbs: &TestDbs<'_>, slug: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM users WHERE slug = $1")
        .bind(slug)
        .fetch_one(&dbs.platform_admin().await)
        .await
        .unwrap()
}

fn lab() -> &'static Lab {
    Box::leak(Box::new(Lab::get()))
}

// ----- tests -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn person_only_onboards_end_to_end_with_approvals_in_its_thread() {
    init_tracing();
    within(RUN + Duration::from_secs(60), async {
        let Setup {
            dbs,
            tmp: _tmp,
            fake,
            cfg: _,
            bot,
        } = set_up(&["dc-solo.com"]).await;

        let thread = onboard(
            &fake,
            fake.requester(),
            json!({"slug": "dc-solo", "name": "Solo Person", "email": "solo@example.com"}),
        )
        .await;
        // The ops channel holds one line per run; the rest is in the thread.
        let starter = fake
            .message(MessageId::new(thread.id.get()))
            .expect("thread starter");
        assert!(
            starter.content.contains("**onboard dc-solo**"),
            "{}",
            starter.content
        );

        let (end, approved) = approve_until_end(&fake, thread.id, fake.approver()).await;
        assert!(end.starts_with("✓ run done"), "{end}");
        assert!(
            approved.contains(&"create-person".to_string()),
            "{approved:?}"
        );
        assert_eq!(user_count(&dbs, "dc-solo").await, 1);
        check_thread(&fake, &dbs, thread.id, "dc-solo", true).await;

        // The other runbooks on the onboarded Provider: /verify runs in its own thread.
        let v = fake.send_command(fake.requester(), "verify", json!({"slug": "dc-solo"}));
        assert!(fake.interaction_response(&v).await.is_ephemeral());
        let vthread = fake
            .wait_for_thread(|t| t.name.starts_with("verify dc-solo "), T)
            .await;
        let (end, _) = approve_until_end(&fake, vthread.id, fake.approver()).await;
        assert!(end.starts_with("✓ run done"), "{end}");
        let c = fake.send_command(
            fake.requester(),
            "cert status",
            json!({"domain": "dc-solo.com"}),
        );
        assert!(fake.interaction_response(&c).await.is_ephemeral());
        let status = fake.original_response(&c, T).await;
        assert!(status.content.contains("dc-solo.com"), "{}", status.content);

        // Each run's end posted the audit chain's head to the ops channel (no audit channel is
        // configured): an event that is in the chain with that hash.
        let ops = fake.ops_channel_id();
        let posted = fake
            .wait_for_message(
                |m| m.channel_id == ops && m.content.starts_with("Audit anchor"),
                T,
            )
            .await;
        let token = posted.content.split('`').nth(1).expect("a quoted anchor");
        let anchor = onboard_bot::state::audit::Anchor::parse(token).unwrap();
        let stored: String = sqlx::query_scalar("SELECT hash FROM audit_events WHERE id = $1")
            .bind(anchor.id)
            .fetch_one(&dbs.state_admin().await)
            .await
            .unwrap();
        assert_eq!(stored, anchor.hash, "{}", posted.content);

        bot.shutdown().await;
        fake.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn person_owns_org_takes_its_brand_from_a_form() {
    init_tracing();
    within(RUN + Duration::from_secs(60), async {
        let Setup { dbs, tmp: _tmp, fake, cfg: _, bot } = set_up(&["dc-owner.com"]).await;

        let h = fake.send_command(
            fake.requester(),
            "onboard",
            json!({"slug": "dc-owner", "name": "Org Owner", "email": "owner@example.com",
                   "mode": MODE_OWNS, "org": "dc-owner-org", "org_name": "Owner Org", "brand": true}),
        );
        let resp = fake.interaction_response(&h).await;
        assert_eq!(resp.kind, 9, "the brand form is the command's first answer");
        let submit = fake.submit_modal(
            fake.requester(),
            &h,
            &[("brand_copy", "Hello from the owner"), ("palette", "#112233,#aabbcc")],
        );
        let resp = fake.interaction_response(&submit).await;
        assert!(resp.is_deferred() && resp.is_ephemeral(), "{resp:?}");
        let reply = fake.original_response(&submit, T).await;
        assert!(reply.content.starts_with("Run `"), "{}", reply.content);
        let thread = fake
            .wait_for_thread(|t| t.name.starts_with("onboard dc-owner "), T)
            .await;

        let (end, approved) = approve_until_end(&fake, thread.id, fake.approver()).await;
        assert!(end.starts_with("✓ run done"), "{end}");
        assert!(approved.contains(&"create-org".to_string()), "{approved:?}");
        let owner: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM orgs o JOIN users u ON u.id = o.owner_id WHERE o.slug = 'dc-owner-org' AND u.slug = 'dc-owner'",
        )
        .fetch_one(&dbs.platform_admin().await)
        .await
        .unwrap();
        assert_eq!(owner, 1);
        // The brand from the form is part of the request the run was started with.
        let input: Value = sqlx::query_scalar("SELECT input FROM runs WHERE subject = 'dc-owner'")
            .fetch_one(&dbs.state_admin().await)
            .await
            .unwrap();
        assert_eq!(input["brand"]["copy"], "Hello from the owner", "{input}");
        check_thread(&fake, &dbs, thread.id, "dc-owner", true).await;

        bot.shutdown().await;
        fake.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn person_joins_org_picked_by_autocomplete() {
    init_tracing();
    within(RUN + Duration::from_secs(60), async {
        let Setup { dbs, tmp: _tmp, fake, cfg: _, bot } = set_up(&["dc-talent.com"]).await;

        // Existing orgs come from the tenant DB as the operator types.
        let ac = fake.autocomplete(
            fake.requester(),
            "onboard",
            json!({"slug": "dc-talent", "name": "Talent", "email": "t@example.com", "mode": MODE_JOINS, "org": "coc"}),
            "org",
        );
        let resp = fake.interaction_response(&ac).await;
        assert_eq!(resp.kind, 8);
        let names: Vec<String> = resp.choices().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["cocotte".to_string()]);

        let thread = onboard(
            &fake,
            fake.requester(),
            json!({"slug": "dc-talent", "name": "Talent", "email": "t@example.com", "mode": MODE_JOINS, "org": "cocotte"}),
        )
        .await;
        let (end, approved) = approve_until_end(&fake, thread.id, fake.approver()).await;
        assert!(end.starts_with("✓ run done"), "{end}");
        assert!(approved.contains(&"join-org".to_string()), "{approved:?}");
        let role: String = sqlx::query_scalar(
            "SELECT m.role FROM org_members m JOIN orgs o ON o.id = m.org_id JOIN users u ON u.id = m.user_id WHERE o.slug = 'cocotte' AND u.slug = 'dc-talent'",
        )
        .fetch_one(&dbs.platform_admin().await)
        .await
        .unwrap();
        assert_eq!(role, "member");
        check_thread(&fake, &dbs, thread.id, "dc-talent", true).await;

        bot.shutdown().await;
        fake.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_approvers_and_self_approval_are_refused_and_audited() {
    init_tracing();
    within(Duration::from_secs(120), async {
        let Setup {
            dbs,
            tmp: _tmp,
            fake,
            cfg: _,
            bot,
        } = set_up(&["dc-refused.com"]).await;

        // The approver starts the run, so the two-person rule forbids them to approve it.
        let thread = onboard(
            &fake,
            fake.approver(),
            json!({"slug": "dc-refused", "name": "Refused Person", "email": "r@example.com"}),
        )
        .await;
        let Next::Approval(message, custom_id) =
            next_in_thread(&fake, thread.id, &HashSet::new()).await
        else {
            panic!("the run ended before asking for approval");
        };

        // The approval pings the approver roles.
        let waiting = fake.message(message).unwrap();
        assert_eq!(
            waiting.content,
            format!(
                "<@&{}> a plan waits for your decision",
                fake.approver_role_id()
            )
        );
        assert_eq!(waiting.mention_roles, vec![fake.approver_role_id()]);
        for (who, want) in [
            (fake.member(), "only members with an approver role"),
            (fake.approver(), "two-person rule"),
        ] {
            let click = fake.click_button(who, message, &custom_id);
            let resp = fake.interaction_response(&click).await;
            assert_eq!(resp.kind, 6);
            let refusal = fake.followup(&click, 0, T).await;
            assert!(refusal.content.contains(want), "{}", refusal.content);
            assert!(
                refusal
                    .flags
                    .is_some_and(|f| f.contains(serenity::all::MessageFlags::EPHEMERAL)),
                "refusals are ephemeral"
            );
        }
        // Rejecting needs the role too.
        let reject = custom_id.replacen(":a:", ":r:", 1);
        let click = fake.click_button(fake.member(), message, &reject);
        fake.interaction_response(&click).await;
        assert!(
            fake.followup(&click, 0, T)
                .await
                .content
                .contains("only members with an approver role")
        );

        // Nothing was decided: the buttons are still there and nothing was written.
        let json = fake
            .state()
            .messages
            .get(&message.get())
            .unwrap()
            .json
            .clone();
        assert!(open_approve(&json).is_some());
        assert_eq!(user_count(&dbs, "dc-refused").await, 0);
        let refused: Vec<(String, String)> = sqlx::query_as(
            "SELECT actor, outcome FROM audit_events WHERE kind = 'approval.refused' ORDER BY id",
        )
        .fetch_all(&dbs.state_admin().await)
        .await
        .unwrap();
        assert_eq!(
            refused,
            vec![
                (format!("discord:{}", fake.member()), "not_approver".into()),
                (
                    format!("discord:{}", fake.approver()),
                    "two_person_rule".into()
                ),
                (format!("discord:{}", fake.member()), "not_approver".into()),
            ]
        );

        // A second approver may approve.
        let second = fake.add_user("approver-two", &[fake.approver_role_id()]);
        approve(&fake, second, message, &custom_id).await;
        fake.wait_for_message(
            |m| m.channel_id == thread.id && m.content.starts_with("✓ create-person: done"),
            T,
        )
        .await;
        assert_eq!(user_count(&dbs, "dc-refused").await, 1);

        // The starter cancels the rest from Discord; open approvals are closed.
        let run_id: uuid::Uuid =
            sqlx::query_scalar("SELECT id FROM runs WHERE subject = 'dc-refused'")
                .fetch_one(&dbs.state_admin().await)
                .await
                .unwrap();
        let c = fake.send_command(
            fake.approver(),
            "cancel",
            json!({"run": run_id.to_string(), "reason": "test over"}),
        );
        assert!(fake.interaction_response(&c).await.is_ephemeral());
        fake.wait_for_message(
            |m| m.channel_id == thread.id && m.content.starts_with("- run cancelled"),
            T,
        )
        .await;

        bot.shutdown().await;
        fake.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_bot_resumes_the_run_in_the_same_thread() {
    init_tracing();
    within(RUN + Duration::from_secs(60), async {
        let Setup {
            dbs,
            tmp: _tmp,
            fake,
            cfg,
            bot,
        } = set_up(&["dc-restart.com"]).await;

        let thread = onboard(
            &fake,
            fake.requester(),
            json!({"slug": "dc-restart", "name": "Restart Person", "email": "re@example.com"}),
        )
        .await;
        let Next::Approval(message, custom_id) =
            next_in_thread(&fake, thread.id, &HashSet::new()).await
        else {
            panic!("the run ended before asking for approval");
        };

        // The process dies while the run waits for approval. First a new one finds the run
        // leased by another live process (two bots on one DB): it says so and leaves it alone.
        bot.shutdown().await;
        let state = dbs.state_admin().await;
        let lease = |until: &'static str| {
            let state = state.clone();
            async move {
                sqlx::query("UPDATE runs SET executor = 'elsewhere:4242', executor_until = now() + $1::interval WHERE subject = 'dc-restart'")
                    .bind(until)
                    .execute(&state)
                    .await
                    .unwrap();
            }
        };
        lease("1 hour").await;
        let bot = start_bot(&fake, &cfg).await;
        let notice = fake
            .wait_for_message(
                |m| m.channel_id == thread.id && m.content.contains("another bot process"),
                T,
            )
            .await;
        assert!(notice.content.contains("`elsewhere:4242`"), "{}", notice.content);
        bot.shutdown().await;
        // Then that lease runs out, and the next process resumes the run.
        lease("-1 second").await;
        let bot = start_bot(&fake, &cfg).await;
        fake.wait_for_message(
            |m| m.channel_id == thread.id && m.content.starts_with("↻ run `"),
            T,
        )
        .await;

        // The resumed run asks again: it looks for its open approval in the thread first.
        let list = format!("/channels/{}/messages", thread.id);
        fake.wait_for("the resumed run to look for its approval", T, |st| {
            st.requests
                .iter()
                .any(|r| r.method == "GET" && r.path == list)
                .then_some(())
        })
        .await;
        // The button posted before the restart still works.
        approve(&fake, fake.approver(), message, &custom_id).await;
        let mut clicked = HashSet::from([custom_id]);
        let end = loop {
            match next_in_thread(&fake, thread.id, &clicked).await {
                Next::End(text) => break text,
                Next::Approval(m, id) => {
                    clicked.insert(id.clone());
                    approve(&fake, fake.approver(), m, &id).await;
                }
            }
        };
        assert!(end.starts_with("✓ run done"), "{end}");
        assert_eq!(user_count(&dbs, "dc-restart").await, 1);
        assert_eq!(
            fake.threads().len(),
            1,
            "no second thread after the restart"
        );
        let approvals_of_step = fake
            .messages_in(thread.id)
            .iter()
            .filter(|m| {
                m.embeds
                    .first()
                    .and_then(|e| e.title.as_deref())
                    .is_some_and(|t| t.starts_with("Approval needed: create-person"))
            })
            .count();
        assert_eq!(
            approvals_of_step, 1,
            "the open approval was reused, not posted again"
        );
        // The whole plan posted before the restart is closed with the run, by the process
        // that finished it.
        let whole = fake
            .wait_for("the whole plan closed", T, |st| {
                messages_json(st, thread.id)
                    .into_iter()
                    .find(|m| buttons(m).iter().any(|b| b["label"] == "Approve all"))
            })
            .await;
        let closed = fake
            .wait_for("the whole plan closed with the run", T, |st| {
                messages_json(st, thread.id).into_iter().find(|m| {
                    m["id"] == whole["id"]
                        && m["content"]
                            .as_str()
                            .is_some_and(|c| c.contains("the run is done"))
                })
            })
            .await;
        assert_eq!(open_approve_all(&closed), None, "{closed}");
        check_thread(&fake, &dbs, thread.id, "dc-restart", false).await;

        bot.shutdown().await;
        fake.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_failures_are_survived_a_500_retried_a_dropped_gateway_resumed() {
    init_tracing();
    within(Duration::from_secs(120), async {
        let Setup {
            dbs: _dbs,
            tmp: _tmp,
            fake,
            cfg: _,
            bot,
        } = set_up(&["dc-gateway.com"]).await;

        // Discord answers the run's first post with a 500: it is retried, the run goes on.
        fake.fail_next(1, 500, Some("/channels/"));
        let thread = onboard(
            &fake,
            fake.requester(),
            json!({"slug": "dc-gateway", "name": "Gateway Person", "email": "g@example.com"}),
        )
        .await;
        assert_eq!(
            fake.requests().iter().filter(|r| r.status == 500).count(),
            1
        );
        let Next::Approval(message, custom_id) =
            next_in_thread(&fake, thread.id, &HashSet::new()).await
        else {
            panic!("the run ended before asking for approval");
        };
        let mark = fake.drop_gateway();
        assert_eq!(fake.wait_for_reconnect(mark, T).await, Reconnect::Resumed);
        approve(&fake, fake.approver(), message, &custom_id).await;
        fake.wait_for_message(
            |m| m.channel_id == thread.id && m.content.starts_with("✓ create-person: done"),
            T,
        )
        .await;
        let s = fake.send_command(fake.requester(), "status", json!({}));
        assert!(fake.interaction_response(&s).await.is_deferred());
        let status = fake.original_response(&s, T).await;
        assert!(status.content.contains("dc-gateway"), "{}", status.content);

        bot.shutdown().await;
        fake.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_429s_and_5xx_during_a_run_are_retried_and_nothing_is_lost() {
    init_tracing();
    within(RUN + Duration::from_secs(60), async {
        let Setup {
            dbs,
            tmp: _tmp,
            fake,
            cfg: _,
            bot,
        } = set_up(&["dc-limits.com"]).await;

        let thread = onboard(
            &fake,
            fake.requester(),
            json!({"slug": "dc-limits", "name": "Limits Person", "email": "l@example.com"}),
        )
        .await;
        // Discord answers calls in the thread with a 429 (with retry_after) or a 5xx: the
        // progress edits, the step outcome posts, the approval messages' closing edits and,
        // around the last step, two posts in a row (verify's outcome and log lines).
        let t = thread.id;
        let progress = fake.messages_in(t)[0].id;
        let (post, edits) = (
            format!("POST /channels/{t}/messages"),
            format!("PATCH /channels/{t}/messages/"),
        );
        // The progress edit's 429 asks for a wait longer than the bot's back-off between
        // attempts: the next edit must not come before it is over.
        const LONG_RETRY_AFTER: f64 = 2.0;
        fake.rate_limit_next(1, LONG_RETRY_AFTER, Some(&format!("{edits}{progress}")));
        fake.fail_next(1, 502, Some(&post));
        let mut clicked = HashSet::new();
        let end = loop {
            match next_in_thread(&fake, t, &clicked).await {
                Next::End(text) => break text,
                Next::Approval(message, custom_id) => {
                    let close = format!("{edits}{message}");
                    if clicked.len() % 2 == 0 {
                        fake.rate_limit_next(1, 0.2, Some(&close));
                    } else {
                        fake.fail_next(1, 502, Some(&close));
                    }
                    if custom_id.contains(":verify:") {
                        fake.rate_limit_next(1, 0.2, Some(&post));
                        fake.fail_next(1, 503, Some(&post));
                    }
                    clicked.insert(custom_id.clone());
                    approve(&fake, fake.approver(), message, &custom_id).await;
                }
            }
        };
        assert!(end.starts_with("✓ run done"), "{end}");
        let answered = |status| {
            fake.requests()
                .iter()
                .filter(|r| r.status == status && r.path.contains(&format!("/channels/{t}/")))
                .count()
        };
        let closes = clicked.len();
        assert!(closes >= 4, "{closes} approvals");
        // After the progress edit's 429, no edit of the thread (the retry or any other message's)
        // came before its `retry_after` was over.
        let reqs = fake.requests();
        let progress_path = format!("/channels/{t}/messages/{progress}");
        let refused = reqs
            .iter()
            .position(|r| r.status == 429 && r.method == "PATCH" && r.path == progress_path)
            .expect("the progress edit's 429");
        let next = reqs[refused + 1..]
            .iter()
            .find(|r| r.method == "PATCH" && r.path.starts_with(&format!("/channels/{t}/messages/")))
            .expect("an edit after the 429");
        let waited = next.at - reqs[refused].at;
        assert!(
            waited >= Duration::from_secs_f64(LONG_RETRY_AFTER),
            "the next edit of the thread came {waited:?} after a 429 asking for {LONG_RETRY_AFTER} s"
        );
        assert_eq!(
            (answered(429), answered(502), answered(503)),
            (1 + closes.div_ceil(2) + 1, 1 + closes / 2, 1),
            "every injected failure was served"
        );

        // Nothing lost: an outcome message per step, verify's log lines, every approval
        // message closed with who approved, and the progress embed at its end.
        let state = dbs.state_admin().await;
        let run_id: uuid::Uuid =
            sqlx::query_scalar("SELECT id FROM runs WHERE subject = 'dc-limits'")
                .fetch_one(&state)
                .await
                .unwrap();
        let steps: Vec<String> =
            sqlx::query_scalar("SELECT name FROM step_runs WHERE run_id = $1 ORDER BY idx")
                .bind(run_id)
                .fetch_all(&state)
                .await
                .unwrap();
        // Log lines are pushed at most once a second, so they may trail the end message.
        fake.wait_for_message(|m| m.channel_id == t && m.content.contains("verify │"), T)
            .await;
        let msgs = fake.messages_in(t);
        for step in &steps {
            assert!(
                msgs.iter()
                    .any(|m| m.content.starts_with(&format!("✓ {step}: done"))
                        || m.content.starts_with(&format!("= {step}: already done"))),
                "no outcome message for {step}"
            );
        }
        let decided = msgs
            .iter()
            .filter(|m| m.content.starts_with("✓ approved by"))
            .count();
        let firsts: Vec<&str> = msgs
            .iter()
            .map(|m| m.content.lines().next().unwrap_or(""))
            .collect();
        assert_eq!(
            decided, closes,
            "every approval message says who approved; the thread's first lines: {firsts:#?}"
        );
        check_thread(&fake, &dbs, t, "dc-limits", true).await;

        bot.shutdown().await;
        fake.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_errors_are_ephemeral_and_internal_errors_carry_a_reference() {
    init_tracing();
    within(Duration::from_secs(90), async {
        let Setup {
            dbs,
            tmp: _tmp,
            fake,
            cfg: _,
            bot,
        } = set_up(&[]).await;

        let answer = |name: &'static str, options: Value| {
            let h = fake.send_command(fake.requester(), name, options);
            let fake = &fake;
            async move {
                let resp = fake.interaction_response(&h).await;
                assert!(
                    resp.is_deferred() && resp.is_ephemeral(),
                    "/{name}: {resp:?}"
                );
                assert!(resp.latency < Duration::from_secs(3));
                fake.original_response(&h, T).await.content
            }
        };
        let bad = answer(
            "onboard",
            json!({"slug": "Bad_Slug", "name": "X", "email": "x@example.com"}),
        )
        .await;
        assert!(
            bad.starts_with("Not started — slug: `Bad_Slug` contains `B`"),
            "{bad}"
        );
        let bad = answer(
            "onboard",
            json!({"slug": "joiner", "name": "X", "email": "x@example.com", "mode": MODE_JOINS}),
        )
        .await;
        assert!(
            bad.contains("org: person-joins-org needs the existing org's slug"),
            "{bad}"
        );
        // The fleet's VPSes are offered as the operator types; another name is refused.
        for (typed, offered) in [("", vec!["vps-0", "vps-1"]), ("vps-1", vec!["vps-1"])] {
            let ac = fake.autocomplete(
                fake.requester(),
                "onboard",
                json!({"slug": "x", "name": "X", "email": "x@example.com", "vps": typed}),
                "vps",
            );
            let resp = fake.interaction_response(&ac).await;
            let names: Vec<String> = resp.choices().into_iter().map(|(n, _)| n).collect();
            assert_eq!(names, offered, "typed {typed:?}");
        }
        let bad = answer(
            "onboard",
            json!({"slug": "elsewhere", "name": "X", "email": "x@example.com", "vps": "vps-9"}),
        )
        .await;
        assert!(
            bad.contains("vps: `vps-9` is not a VPS of the fleet; choose one of vps-0, vps-1"),
            "{bad}"
        );
        let bad = answer("dns-check", json!({"domain": "10.0.0.1"})).await;
        assert!(bad.contains("domain: `10.0.0.1` is an IP address"), "{bad}");
        let bad = answer("status", json!({"run": "nope"})).await;
        assert!(bad.contains("`nope` is not a run id"), "{bad}");
        let bad = answer("cert issue", json!({"domain": "*.x.com"})).await;
        assert!(bad.contains("domain: `*.x.com` is a wildcard"), "{bad}");
        let bad = answer("cert issue", json!({"domain": "never-onboarded.com"})).await;
        assert!(
            bad.starts_with("Not started — never-onboarded.com is not in the bot's records"),
            "{bad}"
        );
        let bad = answer("verify", json!({"slug": "Not A Slug"})).await;
        assert!(bad.starts_with("Not started — slug:"), "{bad}");
        // An internal failure: a short message with a reference, not the error itself.
        let state = dbs.state_admin().await;
        sqlx::query("ALTER TABLE runs RENAME TO runs_hidden")
            .execute(&state)
            .await
            .unwrap();
        let broken = answer("status", json!({})).await;
        sqlx::query("ALTER TABLE runs_hidden RENAME TO runs")
            .execute(&state)
            .await
            .unwrap();
        assert!(
            broken.starts_with("Something went wrong on the bot's side (reference `e-"),
            "{broken}"
        );
        assert!(
            !broken.contains("runs"),
            "the internal error is not shown: {broken}"
        );
        assert!(fake.threads().is_empty(), "no run was started");

        bot.shutdown().await;
        fake.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_approval_of_an_older_plan_is_superseded_by_a_fresh_one() {
    init_tracing();
    within(Duration::from_secs(60), async {
        let fake = FakeDiscord::start().await;
        let dc = DiscordConfig {
            token: fake.token().to_string().into(),
            guild_id: fake.guild_id().get(),
            ops_channel_id: fake.ops_channel_id().get(),
            approver_role_ids: vec![fake.approver_role_id().get()],
            operator_role_ids: vec![fake.operator_role_id().get()],
            two_person_rule: true,
            api_base: fake.base_url().to_string(),
            audit_channel_id: None,
        };
        let mut view = RunView {
            id: uuid::Uuid::new_v4(),
            runbook: "onboard".into(),
            subject: "stale-one".into(),
            started_by: format!("discord:{}", fake.requester()),
            dry_run: false,
            chat_ref: None,
            steps: vec![StepLine {
                name: "create-person".into(),
                status: StepStatus::WaitingApproval,
                note: None,
            }],
        };
        let run_id = view.id;
        let started_by = view.started_by.clone();
        let request = move |hash: &str| ApprovalRequest {
            run_id,
            subject: "stale-one".into(),
            step: "create-person".into(),
            step_description: "Database 1".into(),
            summary: format!("plan {hash}"),
            // Plan "bb…" is long: it goes out as an attached file.
            detail: if hash == "bb" {
                (0..300)
                    .map(|i| format!("line {i} of the plan\n"))
                    .collect()
            } else {
                format!("INSERT ... -- {hash}")
            },
            plan_hash: hash.repeat(64 / hash.len()),
            started_by: started_by.clone(),
            required: 1,
            approved_by: Vec::new(),
            why_asked: None,
        };
        let open_approvals = |st: &State, thread: ChannelId| {
            messages_json(st, thread)
                .into_iter()
                .filter_map(|m| open_approve(&m).map(|id| (id_of(&m), id)))
                .collect::<Vec<_>>()
        };

        // A process posts the approval of plan "aa…" and dies while waiting.
        let first = Arc::new(DiscordFrontend::new(Arc::new(fake.http()), dc.clone()));
        view.chat_ref = first.attach(&view).await.unwrap();
        let thread = first.thread_of(view.id).unwrap();
        let waiting = {
            let (f, r) = (first.clone(), request("aa"));
            tokio::spawn(async move { f.request_approval(&r).await })
        };
        let (old_message, old_id) = fake
            .wait_for("the first approval", T, |st| {
                open_approvals(st, thread).pop()
            })
            .await;
        waiting.abort();

        // The next process resumes the run in the same thread; the step now plans "bb…".
        let second = Arc::new(DiscordFrontend::new(Arc::new(fake.http()), dc.clone()));
        assert_eq!(second.attach(&view).await.unwrap(), view.chat_ref);
        let waiting = {
            let (f, r) = (second.clone(), request("bb"));
            tokio::spawn(async move { f.request_approval(&r).await })
        };
        fake.wait_for("the old approval to be superseded", T, |st| {
            let m = st.messages.get(&old_message.get())?;
            (open_approve(&m.json).is_none()
                && m.json["content"].as_str()?.starts_with("⚠ superseded"))
            .then_some(())
        })
        .await;
        let (new_message, new_id) = fake
            .wait_for("a fresh approval", T, |st| open_approvals(st, thread).pop())
            .await;
        assert_ne!(new_message, old_message);
        let uploads = fake.uploads(new_message);
        assert_eq!(uploads.len(), 1, "the long plan is attached");
        assert_eq!(
            uploads[0].filename,
            format!("plan-create-person-{}.txt", "b".repeat(12))
        );
        assert!(String::from_utf8_lossy(&uploads[0].data).contains("line 299 of the plan"));
        assert!(
            fake.uploads(old_message).is_empty(),
            "a short plan is shown inline"
        );
        assert!(old_id.ends_with(&"a".repeat(16)) && new_id.ends_with(&"b".repeat(16)));
        waiting.abort();

        assert_eq!(
            open_approvals(&fake.state(), thread),
            vec![(new_message, new_id)],
            "only the current plan's message is open"
        );
        fake.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serve_subcommand_runs_the_bot_and_stops_on_ctrl_c() {
    init_tracing();
    within(Duration::from_secs(60), async {
        let lab = lab();
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let bin = env!("CARGO_BIN_EXE_onboard-bot");

        // Without a discord section, serve says what is missing (exit 2: configuration).
        let plain = dbs.write_config(tmp.path(), |t| t);
        let out = tokio::process::Command::new(bin)
            .args(["serve", "--config"])
            .arg(&plain)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("`serve` needs a `discord:` section")
        );

        let fake = FakeDiscord::start().await;
        config(&dbs, tmp.path(), &fake); // writes bot.yaml with the discord section
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let yaml = tmp.path().join("bot.yaml");
        let text = std::fs::read_to_string(&yaml).unwrap();
        std::fs::write(&yaml, format!("{text}\nops:\n  listen: 127.0.0.1:{port}\n")).unwrap();
        let bot = BotProcess::start(tmp.path(), &fake).await;
        let h = fake.send_command(fake.requester(), "status", json!({}));
        assert!(fake.interaction_response(&h).await.is_deferred());
        assert_eq!(
            fake.original_response(&h, T).await.content,
            "No unfinished runs."
        );
        // The ops listener reports the gateway as connected.
        let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .unwrap();
        assert_eq!(health.status().as_u16(), 200, "{:?}", health.text().await);
        bot.stop().await;
        fake.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_with_no_run_waiting_is_recorded_for_the_resumed_run() {
    use onboard_bot::chat::discord::custom_id::ApprovalButton;
    use onboard_bot::commands::onboard::OnboardArgs;
    use onboard_bot::engine::{Engine, StartOptions};
    use onboard_bot::frontend::{Actor, Decision};
    use onboard_bot::messages::ApprovalRefusal;
    use onboard_bot::state::runs;
    init_tracing();
    within(Duration::from_secs(60), async {
        let lab = lab();
        let dbs = lab.fresh().await;
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeDiscord::start().await;
        let cfg = config(&dbs, tmp.path(), &fake);
        let frontend = Arc::new(DiscordFrontend::new(
            Arc::new(fake.http()),
            cfg.discord.clone().unwrap(),
        ));
        let engine = Engine::new(cfg.clone(), frontend.clone()).await.unwrap();
        frontend.set_engine(&engine);
        let request = OnboardArgs {
            slug: "dc-nowait".into(),
            name: "No Wait".into(),
            email: "nw@example.com".into(),
            mode: "person-only".into(),
            ..Default::default()
        }
        .parse(&cfg.onboarding)
        .unwrap();
        let starter = Actor {
            id: format!("discord:{}", fake.requester()),
            display: "requester".into(),
        };
        let run_id = engine
            .start(request, &starter, StartOptions::default())
            .await
            .unwrap();
        // As a process that died while create-person waited: the step shows its plan, and
        // the resumed run is planning it again when the click arrives.
        let hash = "c".repeat(64);
        runs::set_step(
            engine.pool(),
            run_id,
            1,
            StepStatus::WaitingApproval,
            Some((&hash, "plan")),
            None,
        )
        .await
        .unwrap();
        runs::set_step(engine.pool(), run_id, 1, StepStatus::Planning, None, None)
            .await
            .unwrap();
        let decision = |who: UserId| Decision {
            approved: true,
            actor: Actor {
                id: format!("discord:{who}"),
                display: "someone".into(),
            },
            how: "discord button".into(),
            reason: None,
        };
        let stale = ApprovalButton::new(true, run_id, "create-person", &"d".repeat(64));
        assert_eq!(
            frontend
                .deliver(&stale, decision(fake.approver()), &engine)
                .await
                .unwrap(),
            Err(ApprovalRefusal::Stale)
        );
        let button = ApprovalButton::new(true, run_id, "create-person", &hash);
        assert_eq!(
            frontend
                .deliver(&button, decision(fake.approver()), &engine)
                .await
                .unwrap()
                .map(|d| d.closes),
            Ok(true)
        );
        let recorded = runs::decision_for(engine.pool(), run_id, "create-person", &hash)
            .await
            .unwrap()
            .expect("recorded for the resumed run");
        assert!(recorded.approved);
        assert_eq!(recorded.actor, format!("discord:{}", fake.approver()));
        // A second click on the same plan is not a second decision.
        let second = fake.add_user("approver-two", &[fake.approver_role_id()]);
        assert_eq!(
            frontend
                .deliver(&button, decision(second), &engine)
                .await
                .unwrap(),
            Err(ApprovalRefusal::AlreadyDecided(format!(
                "discord:{}",
                fake.approver()
            )))
        );
        // Nor does a click count once the run is over.
        engine.cancel(run_id, &starter, "test over").await.unwrap();
        let fresh = Arc::new(DiscordFrontend::new(
            Arc::new(fake.http()),
            cfg.discord.clone().unwrap(),
        ));
        assert_eq!(
            fresh
                .deliver(&button, decision(second), &engine)
                .await
                .unwrap(),
            Err(ApprovalRefusal::RunOver("cancelled".into()))
        );
        fake.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_resumed_from_discord_and_a_dry_run_asks_nothing() {
    init_tracing();
    within(Duration::from_secs(120), async {
        let Setup { dbs, tmp: _tmp, fake, cfg: _, bot } = set_up(&["dc-resume.com", "dc-dry.com"]).await;

        // A dry run plans every step in its thread and asks for no approval.
        let dry = onboard(
            &fake,
            fake.requester(),
            json!({"slug": "dc-dry", "name": "Dry Person", "email": "dry@example.com", "dry_run": true}),
        )
        .await;
        assert!(dry.name.contains("(dry run)"), "{}", dry.name);
        let (end, approved) = approve_until_end(&fake, dry.id, fake.approver()).await;
        assert!(end.starts_with("✓ run done: dry run"), "{end}");
        assert!(approved.is_empty(), "a dry run asks nothing: {approved:?}");
        assert_eq!(user_count(&dbs, "dc-dry").await, 0);

        // The tenant DB refuses the insert: the approved step fails, and with it the run.
        let platform = dbs.platform_admin().await;
        sqlx::raw_sql(
            "CREATE FUNCTION refuse_users() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected refusal'; END $$;
             CREATE TRIGGER refuse_users BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION refuse_users();",
        )
        .execute(&platform)
        .await
        .unwrap();
        let thread = onboard(
            &fake,
            fake.requester(),
            json!({"slug": "dc-resume", "name": "Resume Person", "email": "res@example.com"}),
        )
        .await;
        let Next::Approval(message, custom_id) =
            next_in_thread(&fake, thread.id, &HashSet::new()).await
        else {
            panic!("the run ended before asking for approval");
        };
        approve(&fake, fake.approver(), message, &custom_id).await;
        let end = match next_in_thread(&fake, thread.id, &HashSet::from([custom_id])).await {
            Next::End(text) => text,
            Next::Approval(..) => panic!("the failing step asked again"),
        };
        assert!(end.starts_with("✗ run failed") && end.contains("injected refusal"), "{end}");
        let run_id: uuid::Uuid =
            sqlx::query_scalar("SELECT id FROM runs WHERE subject = 'dc-resume'")
                .fetch_one(&dbs.state_admin().await)
                .await
                .unwrap();

        // Another operator, not an approver, may not resume it; its starter may, once the
        // cause is fixed.
        let other = fake.add_user("other-operator", &[fake.operator_role_id()]);
        let h = fake.send_command(other, "resume", json!({"run": run_id.to_string()}));
        fake.interaction_response(&h).await;
        let no = fake.original_response(&h, T).await.content;
        assert!(no.starts_with("Only the person who started a run or an approver"), "{no}");
        sqlx::raw_sql("DROP TRIGGER refuse_users ON users")
            .execute(&platform)
            .await
            .unwrap();
        let h = fake.send_command(fake.requester(), "resume", json!({"run": run_id.to_string()}));
        assert!(fake.interaction_response(&h).await.is_ephemeral());
        let yes = fake.original_response(&h, T).await.content;
        assert!(yes.contains(&format!("<#{}>", thread.id)), "resumed in its own thread: {yes}");
        fake.wait_for_message(
            |m| m.channel_id == thread.id && m.content.starts_with("↻ run `"),
            T,
        )
        .await;
        // The approval of the unchanged plan still holds: create-person is applied at once.
        fake.wait_for_message(
            |m| m.channel_id == thread.id && m.content.starts_with("✓ create-person: done"),
            T,
        )
        .await;
        assert_eq!(user_count(&dbs, "dc-resume").await, 1);
        let h = fake.send_command(fake.requester(), "resume", json!({"run": run_id.to_string()}));
        fake.interaction_response(&h).await;
        let again = fake.original_response(&h, T).await.content;
        assert!(again.contains("is running already"), "{again}");
        let c = fake.send_command(fake.requester(), "cancel", json!({"run": run_id.to_string()}));
        fake.interaction_response(&c).await;
        fake.wait_for_message(
            |m| m.channel_id == thread.id && m.content.starts_with("- run cancelled"),
            T,
        )
        .await;

        bot.shutdown().await;
        fake.finish();
    })
    .await;
}

/// The text a REST request would post (a message, an edit, an interaction response, a
/// follow-up), with its `allowed_mentions`; `None` for requests that post no text.
fn posted_text(r: &fake_discord::RequestRec) -> Option<(String, Value)> {
    if r.method != "POST" && r.method != "PATCH" {
        return None;
    }
    let body = match r.body.get("payload_json") {
        Some(p) => p.clone(),
        None => r.body.clone(),
    };
    // An interaction callback carries its message under `data`.
    let msg = if r.path.ends_with("/callback") {
        body["data"].clone()
    } else {
        body
    };
    let content = msg["content"].as_str()?.to_string();
    Some((content, msg["allowed_mentions"].clone()))
}

/// Who Discord would notify for `content` under `allowed`, by its documented rules: without
/// `allowed_mentions` every mention in the text pings; with it, only the kinds in `parse` and
/// the ids listed in `users` / `roles`.
fn pings(content: &str, allowed: &Value) -> Vec<String> {
    let unset = allowed.is_null();
    let parse = |kind: &str| {
        unset
            || allowed["parse"]
                .as_array()
                .is_some_and(|p| p.iter().any(|k| k == kind))
    };
    let listed = |key: &str, id: &str| {
        allowed[key]
            .as_array()
            .is_some_and(|l| l.iter().any(|x| x.as_str() == Some(id)))
    };
    let mut out = Vec::new();
    for everyone in ["@everyone", "@here"] {
        if content.contains(everyone) && parse("everyone") {
            out.push(everyone.to_string());
        }
    }
    let mut rest = content;
    while let Some(i) = rest.find("<@") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find('>') else { break };
        let inner = &rest[..end];
        if let Some(role) = inner.strip_prefix('&') {
            if parse("roles") || listed("roles", role) {
                out.push(format!("role {role}"));
            }
        } else {
            let user = inner.trim_start_matches('!');
            if parse("users") || listed("users", user) {
                out.push(format!("user {user}"));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_text_in_a_plan_stays_in_its_code_block_and_pings_nobody() {
    init_tracing();
    within(RUN + Duration::from_secs(60), async {
        let Setup {
            dbs: _dbs,
            tmp: _tmp,
            fake,
            cfg: _,
            bot,
        } = set_up(&["dc-fence.com"]).await;
        let role = fake.approver_role_id();
        let name = format!("Evil ```` Name @everyone <@&{role}> <@{}>", fake.member());
        let org_name = "Org `````````` @here";

        // Refused input is echoed back to the person who typed it, and pings nobody either.
        let h = fake.send_command(
            fake.requester(),
            "onboard",
            json!({"slug": "dc-fence", "name": "x", "email": format!("<@{}>@example.com", fake.member())}),
        );
        fake.interaction_response(&h).await;
        let refused = fake.original_response(&h, T).await;
        assert!(refused.content.starts_with("Not started — email"), "{}", refused.content);

        let thread = onboard(
            &fake,
            fake.requester(),
            json!({"slug": "dc-fence", "name": name, "email": "fence@example.com",
                   "mode": MODE_OWNS, "org": "dc-fence-org", "org_name": org_name}),
        )
        .await;
        let (end, approved) = approve_until_end(&fake, thread.id, fake.approver()).await;
        assert!(end.starts_with("✓ run done"), "{end}");
        assert!(approved.contains(&"create-org".to_string()), "{approved:?}");

        // Each plan carrying the user's text is one code block, start to end, as Discord reads
        // it (the first ``` after the opener closes), with the text in it as typed.
        for (step, typed) in [("create-person", name.as_str()), ("create-org", org_name)] {
            let card = fake
                .messages_in(thread.id)
                .into_iter()
                .filter_map(|m| m.embeds.first().cloned())
                .find(|e| {
                    e.title
                        .as_deref()
                        .is_some_and(|t| t.starts_with(&format!("Approval needed: {step} ")))
                })
                .unwrap_or_else(|| panic!("no approval card for {step}"));
            let desc = card.description.unwrap_or_default();
            let parts: Vec<&str> = desc.split("```").collect();
            assert_eq!(parts.len(), 3, "{step}: one block, nothing after it:\n{desc}");
            assert!(parts[2].is_empty(), "{step}: text after the block:\n{desc}");
            assert!(
                parts[1].replace('\u{200b}', "").contains(typed),
                "{step}: the block shows the text as typed:\n{desc}"
            );
            for live in ["@everyone", "@here", &format!("<@&{role}>")] {
                assert!(!desc.contains(live), "{step}: `{live}` is live in\n{desc}");
            }
        }

        // Everything the bot posted: nobody is pinged but the approver role, and that only
        // by the approval messages; every text says so itself (no default left to chance).
        let mut posted = 0;
        for r in fake.requests() {
            let Some((content, allowed)) = posted_text(&r) else {
                continue;
            };
            posted += 1;
            assert!(
                allowed["parse"].as_array().is_some_and(|p| p.is_empty()),
                "{} {} posts without allowed_mentions.parse = []: {allowed} — {content:?}",
                r.method,
                r.path
            );
            let want: Vec<String> = if content.ends_with("a plan waits for your decision") {
                vec![format!("role {role}")]
            } else {
                Vec::new()
            };
            assert_eq!(pings(&content, &allowed), want, "{} {}: {content:?}", r.method, r.path);
        }
        assert!(posted > 10, "only {posted} texts posted");

        bot.shutdown().await;
        fake.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_operators_start_and_read_runs_and_members_are_not_shown_the_commands() {
    init_tracing();
    within(Duration::from_secs(120), async {
        let Setup {
            dbs,
            tmp: _tmp,
            fake,
            cfg: _,
            bot,
        } = set_up(&["dc-operator.com"]).await;

        // Registered so that the guild hides every command from members by default.
        let manage_guild = serenity::all::Permissions::MANAGE_GUILD.bits().to_string();
        let registered = fake.registered_commands_json();
        assert_eq!(registered.len(), 9, "{registered:?}");
        for c in &registered {
            assert_eq!(
                c["default_member_permissions"],
                json!(manage_guild),
                "/{}",
                c["name"]
            );
        }
        let member = fake.member();
        assert!(fake.may_use_command(member, "onboard").is_err());
        assert!(fake.may_use_command(fake.requester(), "onboard").is_ok());

        // A server admin widens them to everyone: the bot's own check still refuses.
        fake.allow_command_for(None, fake.everyone_role_id().get());
        let run = uuid::Uuid::new_v4().to_string();
        let refused = [
            (
                "onboard",
                json!({"slug": "dc-refused", "name": "Nope", "email": "nope@example.com"}),
            ),
            (
                "onboard",
                json!({"slug": "dc-refused", "name": "Nope", "email": "nope@example.com", "mode": MODE_OWNS, "org": "dc-refused-org", "org_name": "N", "brand": true}),
            ),
            ("verify", json!({"slug": "quinn"})),
            ("cert issue", json!({"domain": "dc-operator.com", "email": "a@example.com"})),
            ("resume", json!({"run": run})),
            ("cancel", json!({"run": run})),
            ("abandon", json!({"run": run, "reason": "no"})),
            ("status", json!({})),
            ("audit", json!({"subject": "quinn"})),
        ];
        for (name, options) in &refused {
            let h = fake.send_command(member, name, options.clone());
            let resp = fake.interaction_response(&h).await;
            assert!(resp.is_deferred() && resp.is_ephemeral(), "/{name}: {resp:?}");
            assert!(resp.latency < Duration::from_secs(3));
            let text = fake.original_response(&h, T).await.content;
            let root = name.split(' ').next().unwrap();
            assert!(
                text.starts_with(&format!("Only the ops team may use /{name}")) || text.starts_with(&format!("Only the ops team may use /{root}")),
                "/{name}: {text}"
            );
        }
        // Org names are not offered to them either.
        let ac = fake.autocomplete(
            member,
            "onboard",
            json!({"slug": "x", "name": "X", "email": "x@example.com", "org": "q"}),
            "org",
        );
        let resp = fake.interaction_response(&ac).await;
        assert!(resp.choices().is_empty(), "{resp:?}");
        // Answers from public DNS and TLS stay open to whoever the guild shows them to.
        let h = fake.send_command(member, "dns-check", json!({"domain": "10.0.0.1"}));
        fake.interaction_response(&h).await;
        let text = fake.original_response(&h, T).await.content;
        assert!(text.contains("is an IP address"), "{text}");

        // Nothing started, and each refusal is in the audit trail.
        let state = dbs.state_admin().await;
        let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM runs")
            .fetch_one(&state)
            .await
            .unwrap();
        assert_eq!(runs, 0);
        let events: Vec<(String, String, String, Value)> = sqlx::query_as(
            "SELECT subject, actor, outcome, detail FROM audit_events WHERE kind = 'command.refused' ORDER BY id",
        )
        .fetch_all(&state)
        .await
        .unwrap();
        let commands: Vec<&str> = events
            .iter()
            .map(|e| e.3["command"].as_str().unwrap())
            .collect();
        assert_eq!(
            commands,
            ["onboard", "onboard", "verify", "cert issue", "resume", "cancel", "abandon", "status", "audit"]
        );
        for (subject, actor, outcome, _) in &events {
            assert_eq!(actor, &format!("discord:{member}"));
            assert_eq!(outcome, "not_operator");
            assert!(!subject.is_empty());
        }
        assert_eq!(events[0].0, "dc-refused", "found by `audit dc-refused`");
        assert_eq!(events[4].0, run);

        // An approver counts as an operator; an operator's /onboard starts its run.
        let h = fake.send_command(fake.approver(), "status", json!({}));
        fake.interaction_response(&h).await;
        assert_eq!(fake.original_response(&h, T).await.content, "No unfinished runs.");
        let thread = onboard(
            &fake,
            fake.requester(),
            json!({"slug": "dc-operator", "name": "Operator Person", "email": "op@example.com", "dry_run": true}),
        )
        .await;
        let (end, _) = approve_until_end(&fake, thread.id, fake.approver()).await;
        assert!(end.starts_with("✓ run done: dry run"), "{end}");

        bot.shutdown().await;
        fake.finish();
    })
    .await;
}

/// `/dns-check` answers with an embed (one field per record, coloured by the verdict, the
/// snippet in a code block), laid out from the same view as the console's table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_check_answers_with_an_embed_per_record_coloured_by_its_verdict() {
    init_tracing();
    within(Duration::from_secs(90), async {
        let good = "embed-good.com";
        let bad = "embed-bad.com";
        let Setup {
            dbs: _dbs,
            tmp: _tmp,
            fake,
            cfg: _,
            bot,
        } = set_up(&[good]).await;
        // The apex points elsewhere and www is missing.
        lab().put_zone(
            bad,
            &format!(
                "$ORIGIN {bad}.\n$TTL 300\n@ SOA ns1.lab.test. hostmaster.lab.test. 1 3600 600 86400 300\n@ NS ns1.lab.test.\n@ A 10.20.30.40\n"
            ),
        );
        let check = |domain: &'static str| {
            let h = fake.send_command(fake.requester(), "dns-check", json!({ "domain": domain }));
            let fake = &fake;
            async move {
                let resp = fake.interaction_response(&h).await;
                assert!(resp.is_ephemeral(), "{resp:?}");
                fake.original_response(&h, T).await
            }
        };

        let m = check(good).await;
        assert_eq!(m.embeds.len(), 1, "{m:?}");
        let e = &m.embeds[0];
        assert_eq!(e.title.as_deref(), Some("DNS check for embed-good.com"));
        assert_eq!(e.colour.map(|c| c.0), Some(0x2ecc71), "green: {e:?}");
        assert_eq!(e.fields.len(), 2, "apex A and www: {e:?}");
        assert!(e.fields.iter().all(|f| f.name.starts_with('✅')), "{e:?}");

        let m = check(bad).await;
        let e = &m.embeds[0];
        assert_eq!(e.colour.map(|c| c.0), Some(0xe74c3c), "red: {e:?}");
        let apex = e
            .fields
            .iter()
            .find(|f| f.name == format!("❌ A {bad}"))
            .unwrap_or_else(|| panic!("the apex row: {e:?}"));
        assert!(
            apex.value.contains("10.20.30.40") && apex.value.contains("fix:"),
            "the row shows its problem and fix: {}",
            apex.value
        );
        let description = e.description.as_deref().unwrap_or_default();
        assert!(
            description.contains("```") && description.contains(&format!("www.{bad}.")),
            "the snippet is a code block: {description}"
        );

        bot.shutdown().await;
        fake.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_asks_for_a_reason_shown_in_the_thread_the_audit_trail_and_status() {
    init_tracing();
    within(Duration::from_secs(120), async {
        let Setup {
            dbs,
            tmp: _tmp,
            fake,
            cfg: _,
            bot,
        } = set_up(&["dc-reason.com"]).await;
        let thread = onboard(
            &fake,
            fake.requester(),
            json!({"slug": "dc-reason", "name": "Reason Person", "email": "r@example.com"}),
        )
        .await;
        let Next::Approval(message, approve_id) =
            next_in_thread(&fake, thread.id, &HashSet::new()).await
        else {
            panic!("the run ended before asking for approval");
        };
        let reject_id = approve_id.replacen(":a:", ":r:", 1);

        // Reject opens a form (callback type 9) asking why; a blank reason decides nothing.
        let click = fake.click_button(fake.approver(), message, &reject_id);
        let form = fake.interaction_response(&click).await;
        assert_eq!(form.kind, 9, "Reject answers with a form: {form:?}");
        assert!(
            form.data["custom_id"]
                .as_str()
                .unwrap()
                .starts_with("ob1f:"),
            "{form:?}"
        );
        let blank = fake.submit_modal(fake.approver(), &click, &[("reason", "   ")]);
        assert_eq!(fake.interaction_response(&blank).await.kind, 6);
        let refusal = fake.followup(&blank, 0, T).await;
        assert!(
            refusal.content.contains("needs a reason"),
            "{}",
            refusal.content
        );
        let json = fake
            .state()
            .messages
            .get(&message.get())
            .unwrap()
            .json
            .clone();
        assert!(
            open_approve(&json).is_some(),
            "still open after a blank reason"
        );

        // With a reason: the message says who rejected and why, the run stops rejected.
        let reason = "wrong e-mail, ask the Provider again";
        let click = fake.click_button(fake.approver(), message, &reject_id);
        assert_eq!(fake.interaction_response(&click).await.kind, 9);
        let submit = fake.submit_modal(fake.approver(), &click, &[("reason", reason)]);
        assert_eq!(fake.interaction_response(&submit).await.kind, 6);
        let want = format!("✗ rejected by <@{}>: {reason}", fake.approver());
        fake.wait_for_message(|m| m.id == message && m.content == want, T)
            .await;
        let end = fake
            .wait_for_message(
                |m| m.channel_id == thread.id && m.content.starts_with("✗ run rejected"),
                T,
            )
            .await;
        assert!(end.content.contains(reason), "{}", end.content);
        assert_eq!(user_count(&dbs, "dc-reason").await, 0);

        // The audit trail and the approvals table hold the reason.
        let state = dbs.state_admin().await;
        let (actor, detail): (String, Value) = sqlx::query_as(
            "SELECT actor, detail FROM audit_events WHERE kind = 'approval.rejected'",
        )
        .fetch_one(&state)
        .await
        .unwrap();
        assert_eq!(actor, format!("discord:{}", fake.approver()));
        assert_eq!(detail["reason"], reason);
        assert_eq!(detail["how"], "discord reject form");
        let (run_id, stored): (uuid::Uuid, Option<String>) =
            sqlx::query_as("SELECT run_id, reason FROM approvals WHERE NOT approved")
                .fetch_one(&state)
                .await
                .unwrap();
        assert_eq!(stored.as_deref(), Some(reason));
        let refused: Vec<String> =
            sqlx::query_scalar("SELECT outcome FROM audit_events WHERE kind = 'approval.refused'")
                .fetch_all(&state)
                .await
                .unwrap();
        assert_eq!(refused, vec!["no_reason".to_string()]);

        // /status of the run shows it.
        let s = fake.send_command(
            fake.requester(),
            "status",
            json!({"run": run_id.to_string()}),
        );
        assert!(fake.interaction_response(&s).await.is_ephemeral());
        let status = fake.original_response(&s, T).await;
        assert!(
            status.content.contains("rejected") && status.content.contains(reason),
            "{}",
            status.content
        );

        bot.shutdown().await;
        fake.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_approval_reminds_then_expires_and_resume_asks_again() {
    use onboard_bot::chat::discord::custom_id::ApprovalButton;
    use onboard_bot::frontend::{Actor, Decision};
    use onboard_bot::messages::ApprovalRefusal;
    init_tracing();
    within(Duration::from_secs(180), async {
        let lab = lab();
        lab.serve_domains(&["dc-expire.com"]);
        let dbs = lab.fresh().await;
        dbs.own_vps_sites(&["dc-expire.com"]).await;
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeDiscord::start().await;
        // Seconds, not a day: the test waits on what the thread shows, never on a clock.
        let with_ttl = |ttl: u64, remind: u64| {
            let discord = fake.config_section(tmp.path());
            let approvals =
                format!("\napprovals:\n  ttl_secs: {ttl}\n  remind_after_secs: {remind}\n");
            dbs.config(tmp.path(), |t| t + &discord + &approvals)
        };
        let bot = start_bot(&fake, &with_ttl(4, 1)).await;
        let thread = onboard(
            &fake,
            fake.requester(),
            json!({"slug": "dc-expire", "name": "Expire Person", "email": "x@example.com"}),
        )
        .await;
        let Next::Approval(message, custom_id) =
            next_in_thread(&fake, thread.id, &HashSet::new()).await
        else {
            panic!("the run ended before asking for approval");
        };

        // Once, the approver roles are pinged in the thread.
        let reminder = fake
            .wait_for_message(
                |m| m.channel_id == thread.id && m.content.contains("reminder: the plan of create-person"),
                T,
            )
            .await;
        assert_eq!(reminder.mention_roles, vec![fake.approver_role_id()]);

        // Then the approval expires: its buttons are disabled with "expired", the run stops.
        fake.wait_for_message(|m| m.id == message && m.content.starts_with("⌛ expired"), T)
            .await;
        let json = fake.state().messages.get(&message.get()).unwrap().json.clone();
        assert!(open_approve(&json).is_none(), "buttons disabled once expired");
        let end = fake
            .wait_for_message(
                |m| m.channel_id == thread.id && m.content.starts_with("⌛ run expired"),
                T,
            )
            .await;
        assert!(end.content.contains("create-person: approval expired"), "{}", end.content);
        let reminders = fake
            .messages_in(thread.id)
            .iter()
            .filter(|m| m.content.contains("reminder:"))
            .count();
        assert_eq!(reminders, 1, "reminded once");
        let state = dbs.state_admin().await;
        let (run_id, status): (uuid::Uuid, String) =
            sqlx::query_as("SELECT id, status FROM runs WHERE subject = 'dc-expire'")
                .fetch_one(&state)
                .await
                .unwrap();
        assert_eq!(status, "expired");
        let kinds: Vec<String> = sqlx::query_scalar(
            "SELECT kind FROM audit_events WHERE run_id = $1 AND kind IN ('approval.reminded', 'approval.expired', 'run.expired') ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&state)
        .await
        .unwrap();
        assert_eq!(kinds, ["approval.reminded", "approval.expired", "run.expired"]);
        assert_eq!(user_count(&dbs, "dc-expire").await, 0);

        // A click that reaches the bot after the expiry (a client showing the old buttons) is
        // told so and decides nothing.
        let hash = custom_id.split(':').nth(4).unwrap();
        let button = ApprovalButton::new(true, run_id, "create-person", hash);
        let late = Decision {
            approved: true,
            actor: Actor {
                id: format!("discord:{}", fake.approver()),
                display: "approver".into(),
            },
            how: "discord button".into(),
            reason: None,
        };
        assert_eq!(
            bot.data
                .frontend
                .deliver(&button, late, &bot.data.engine)
                .await
                .unwrap(),
            Err(ApprovalRefusal::Expired)
        );
        let decisions: i64 = sqlx::query_scalar("SELECT count(*) FROM approvals")
            .fetch_one(&state)
            .await
            .unwrap();
        assert_eq!(decisions, 0);

        // An expired run is not resumed by a restart by itself; /resume asks again (here with
        // a day to answer), and the approval then applies.
        bot.shutdown().await;
        let bot = start_bot(&fake, &with_ttl(86_400, 0)).await;
        let h = fake.send_command(fake.requester(), "resume", json!({"run": run_id.to_string()}));
        assert!(fake.interaction_response(&h).await.is_ephemeral());
        // The same plan, so the same buttons, on a fresh message.
        let (again, again_id) = fake
            .wait_for("a fresh approval message", T, |st| {
                messages_json(st, thread.id).iter().find_map(|m| {
                    let id = open_approve(m)?;
                    (id_of(m) != message).then(|| (id_of(m), id))
                })
            })
            .await;
        assert_eq!(again_id, custom_id);
        approve(&fake, fake.approver(), again, &again_id).await;
        fake.wait_for_message(
            |m| m.channel_id == thread.id && m.content.starts_with("✓ create-person: done"),
            T,
        )
        .await;
        assert_eq!(user_count(&dbs, "dc-expire").await, 1);
        let c = fake.send_command(
            fake.requester(),
            "cancel",
            json!({"run": run_id.to_string(), "reason": "test over"}),
        );
        assert!(fake.interaction_response(&c).await.is_ephemeral());
        fake.wait_for_message(
            |m| m.channel_id == thread.id && m.content.starts_with("- run cancelled"),
            T,
        )
        .await;
        bot.shutdown().await;
        fake.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandon_cancels_a_waiting_onboarding_and_undoes_it_in_a_thread_of_its_own() {
    init_tracing();
    within(Duration::from_secs(180), async {
        let Setup {
            dbs,
            tmp: _tmp,
            fake,
            cfg: _,
            bot,
        } = set_up(&["dc-abandon.com"]).await;
        let thread = onboard(
            &fake,
            fake.requester(),
            json!({"slug": "dc-abandon", "name": "Abandon Person", "email": "ab@example.com"}),
        )
        .await;
        let Next::Approval(message, custom_id) =
            next_in_thread(&fake, thread.id, &HashSet::new()).await
        else {
            panic!("the run ended before asking for approval");
        };
        approve(&fake, fake.approver(), message, &custom_id).await;
        // The message says who approved as soon as the click is taken; the write follows.
        fake.wait_for_message(
            |m| m.channel_id == thread.id && m.content.starts_with("✓ create-person: done"),
            T,
        )
        .await;
        assert_eq!(user_count(&dbs, "dc-abandon").await, 1);
        // The onboarding goes on and waits for the next approval: it is still running.
        let clicked = HashSet::from([custom_id]);
        let Next::Approval(..) = next_in_thread(&fake, thread.id, &clicked).await else {
            panic!("the run ended before its deploy config");
        };
        let run_id: uuid::Uuid =
            sqlx::query_scalar("SELECT id FROM runs WHERE subject = 'dc-abandon'")
                .fetch_one(&dbs.state_admin().await)
                .await
                .unwrap();

        let h = fake.send_command(
            fake.requester(),
            "abandon",
            json!({"run": run_id.to_string(), "reason": "typo in the domain"}),
        );
        let resp = fake.interaction_response(&h).await;
        assert!(resp.is_deferred() && resp.is_ephemeral(), "{resp:?}");
        // The onboarding is cancelled first, in its own thread.
        fake.wait_for_message(
            |m| m.channel_id == thread.id && m.content.starts_with("- run cancelled"),
            T,
        )
        .await;
        let undo = fake
            .wait_for_thread(|t| t.name.starts_with("abandon dc-abandon "), T)
            .await;
        let reply = fake.original_response(&h, T).await;
        assert!(
            reply.content.contains(&format!("<#{}>", undo.id)),
            "{}",
            reply.content
        );
        // Its one production write (the users row) is shown and approved like any other.
        let (end, asked) = approve_until_end(&fake, undo.id, fake.approver()).await;
        assert!(end.starts_with("✓ run done"), "{end}");
        assert_eq!(asked.len(), 1, "{asked:?}");
        assert_eq!(user_count(&dbs, "dc-abandon").await, 0);

        bot.shutdown().await;
        fake.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_needing_two_approvers_counts_each_person_once() {
    init_tracing();
    within(Duration::from_secs(180), async {
        let lab = lab();
        lab.serve_domains(&["dc-quorum.com"]);
        let dbs = lab.fresh().await;
        dbs.own_vps_sites(&["dc-quorum.com"]).await;
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeDiscord::start().await;
        let discord = fake.config_section(tmp.path());
        let cfg = dbs.config(tmp.path(), |t| {
            t + &discord + "\napprovals:\n  required:\n    create-person: 2\n"
        });
        let bot = start_bot(&fake, &cfg).await;
        let second = fake.add_user("second-approver", &[fake.approver_role_id()]);
        let third = fake.add_user("third-approver", &[fake.approver_role_id()]);

        // An approver starts the run: the two-person rule keeps them out of the count.
        let thread = onboard(
            &fake,
            fake.approver(),
            json!({"slug": "dc-quorum", "name": "Quorum Person", "email": "q@example.com"}),
        )
        .await;
        let Next::Approval(message, custom_id) =
            next_in_thread(&fake, thread.id, &HashSet::new()).await
        else {
            panic!("the run ended before asking for approval");
        };
        assert!(custom_id.contains(":create-person:"), "{custom_id}");
        let card = fake.message(message).unwrap();
        let text = card.embeds[0].description.clone().unwrap_or_default();
        assert!(text.contains("needs 2 different approvers"), "{text}");

        let click = |who: UserId| {
            let h = fake.click_button(who, message, &custom_id);
            let fake = &fake;
            async move {
                assert_eq!(fake.interaction_response(&h).await.kind, 6);
                h
            }
        };
        let refused = click(fake.approver()).await;
        let refusal = fake.followup(&refused, 0, T).await;
        assert!(refusal.content.contains("two-person rule"), "{}", refusal.content);

        // The first approval is counted; the message says so and stays open.
        click(second).await;
        let partial = fake
            .wait_for_message(
                |m| m.id == message && m.content.contains("1 of 2 approved by"),
                T,
            )
            .await;
        assert!(
            partial.content.contains(&format!("<@{second}>")),
            "{}",
            partial.content
        );
        let open = |fake: &FakeDiscord| {
            let json = fake.state().messages.get(&message.get()).unwrap().json.clone();
            open_approve(&json).is_some()
        };
        assert!(open(&fake), "the buttons stay open for the next approver");

        // The same person again: told so, counted once; the step still waits.
        let again = click(second).await;
        let told = fake.followup(&again, 0, T).await;
        assert!(told.content.contains("You already approved"), "{}", told.content);
        assert!(
            told.flags
                .is_some_and(|f| f.contains(serenity::all::MessageFlags::EPHEMERAL)),
            "told only to the clicker"
        );
        assert!(open(&fake));
        assert_eq!(user_count(&dbs, "dc-quorum").await, 0);
        let state = dbs.state_admin().await;
        let run_id: uuid::Uuid =
            sqlx::query_scalar("SELECT id FROM runs WHERE subject = 'dc-quorum'")
                .fetch_one(&state)
                .await
                .unwrap();
        let status: String = sqlx::query_scalar("SELECT status FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_one(&state)
            .await
            .unwrap();
        assert_eq!(status, "waiting_approval");

        // A second person completes the quorum: the step applies, the message closes.
        click(third).await;
        let done = fake
            .wait_for_message(
                |m| m.id == message && m.content.contains("2 of 2 approved by"),
                T,
            )
            .await;
        assert!(
            done.content.contains(&format!("<@{second}>, <@{third}>")),
            "{}",
            done.content
        );
        fake.wait_for_message(
            |m| m.channel_id == thread.id && m.content.starts_with("✓ create-person: done"),
            T,
        )
        .await;
        assert!(!open(&fake), "closed once decided");
        assert_eq!(user_count(&dbs, "dc-quorum").await, 1);
        let approvals_of_step = fake
            .messages_in(thread.id)
            .iter()
            .filter(|m| {
                m.components.iter().flat_map(|r| &r.components).any(|c| {
                    matches!(c, serenity::all::ActionRowComponent::Button(b)
                        if matches!(&b.data, serenity::all::ButtonKind::NonLink { custom_id, .. }
                            if custom_id.contains(":create-person:")))
                })
            })
            .count();
        assert_eq!(approvals_of_step, 1, "one message for the plan, asked twice");
        let recorded: Vec<(String, bool)> = sqlx::query_as(
            "SELECT actor, approved FROM approvals WHERE run_id = $1 AND step = 'create-person' ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&state)
        .await
        .unwrap();
        assert_eq!(
            recorded,
            [
                (format!("discord:{second}"), true),
                (format!("discord:{third}"), true)
            ]
        );
        let refusals: Vec<String> = sqlx::query_scalar(
            "SELECT outcome FROM audit_events WHERE run_id = $1 AND kind = 'approval.refused' ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&state)
        .await
        .unwrap();
        assert_eq!(refusals, ["two_person_rule", "already_approved"]);

        let c = fake.send_command(
            fake.approver(),
            "cancel",
            json!({"run": run_id.to_string(), "reason": "test over"}),
        );
        assert!(fake.interaction_response(&c).await.is_ephemeral());
        fake.wait_for_message(
            |m| m.channel_id == thread.id && m.content.starts_with("- run cancelled"),
            T,
        )
        .await;
        bot.shutdown().await;
        fake.finish();
    })
    .await;
}

/// The enabled Approve all button of a message.
pub(crate) fn open_approve_all(m: &Value) -> Option<String> {
    buttons(m)
        .iter()
        .find(|b| b["label"] == "Approve all" && b["disabled"] != true)
        .and_then(|b| b["custom_id"].as_str().map(String::from))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_all_covers_the_plans_known_up_front() {
    init_tracing();
    within(RUN + Duration::from_secs(60), async {
        let Setup {
            dbs,
            tmp: _tmp,
            fake,
            cfg: _,
            bot,
        } = set_up(&["dc-all.com"]).await;
        let thread = onboard(
            &fake,
            fake.requester(),
            json!({"slug": "dc-all", "name": "All Person", "email": "all@example.com"}),
        )
        .await;
        let (whole, card, end, asked) = approve_all_then_each(&fake, thread.id).await;
        println!("whole plan:\n{card}");
        let clicks = 1 + asked.len();
        // The figure scripts/bench prints next to the 7 clicks of one approval per write.
        println!("approver clicks for a clean onboarding: {clicks} (asked on their own: {asked:?})");
        assert!(end.starts_with("✓ run done"), "{end}");
        assert_eq!(user_count(&dbs, "dc-all").await, 1);
        // What Approve all covers is what the whole plan listed with a plan; sync-back's diff
        // depends on the file certbot writes, so it was asked for on its own, its card saying
        // why.
        for step in ["create-person", "deploy-config", "deploy-stub", "cert", "release", "verify"] {
            assert!(card.contains(&format!("**{step}** — ")) && !asked.contains(&step.to_string()), "{step}: {card}");
        }
        assert_eq!(asked, ["sync-back"]);
        assert_eq!(clicks, 2, "one Approve all and the plan that depends on certbot's file");
        assert!(card.contains("planned as it will be once deploy-stub"), "{card}");
        assert!(card.contains("asked on its own when its turn comes"), "{card}");
        // Discord's limits: the plans did not fit the embed, so they are attached whole.
        let uploads = fake.uploads(id_of(&whole));
        assert!(card.contains("attached as `plan-all-"), "{card}");
        assert_eq!(uploads.len(), 1, "the whole plan as one file");
        let state = dbs.state_admin().await;
        let (actor, covers): (String, Value) = sqlx::query_as(
            "SELECT actor, detail->'covers' FROM audit_events WHERE kind = 'approval.granted_all'",
        )
        .fetch_one(&state)
        .await
        .unwrap();
        assert_eq!(actor, format!("discord:{}", fake.approver()));
        let covered: Vec<&str> = covers
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["step"].as_str().unwrap())
            .collect();
        assert_eq!(
            covered,
            ["create-person", "deploy-config", "deploy-stub", "cert", "release", "verify"]
        );
        // Each write names the approver, the covered ones backed by that one event.
        let applied: Vec<(String, String)> = sqlx::query_as(
            "SELECT step, detail->>'approved_by' FROM audit_events WHERE kind = 'step.applied' AND detail->>'approved_by' IS NOT NULL ORDER BY id",
        )
        .fetch_all(&state)
        .await
        .unwrap();
        let by = format!("discord:{}", fake.approver());
        assert!(applied.iter().all(|(_, a)| *a == by), "{applied:?}");
        assert_eq!(applied.len(), 7, "every production write: {applied:?}");
        let ask_events: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audit_events WHERE kind = 'approval.requested' AND step IN ('deploy-config', 'deploy-stub', 'cert', 'release', 'verify')",
        )
        .fetch_one(&state)
        .await
        .unwrap();
        assert_eq!(ask_events, 0, "a covered step does not ask");
        bot.shutdown().await;
        fake.finish();
    })
    .await;
}

/// Clicks the run's Approve all as the approver once the whole plan is shown, then approves
/// each plan still asked for; returns the whole plan's message and its card's text, the run's
/// final message and the steps asked for on their own.
async fn approve_all_then_each(
    fake: &FakeDiscord,
    thread: ChannelId,
) -> (Value, String, String, Vec<String>) {
    let (whole, all_id) = fake
        .wait_for("the whole plan with Approve all", T, |st| {
            messages_json(st, thread)
                .iter()
                .find_map(|m| Some((m.clone(), open_approve_all(m)?)))
        })
        .await;
    let card = whole["embeds"][0]["description"]
        .as_str()
        .unwrap()
        .to_string();
    let h = fake.click_button(fake.approver(), id_of(&whole), &all_id);
    assert_eq!(fake.interaction_response(&h).await.kind, 6);
    fake.wait_for_message(
        |m| m.id == id_of(&whole) && m.content.starts_with("✓ Approve all by"),
        T,
    )
    .await;
    // The first step may have posted its own card before the Approve all: that card says it
    // was approved by the time the step is done (it may still be on its way before).
    fake.wait_for_message(
        |m| m.channel_id == thread && m.content.starts_with("✓ create-person: done"),
        RUN,
    )
    .await;
    let (end, asked) = approve_until_end(fake, thread, fake.approver()).await;
    (whole, card, end, asked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_all_covers_the_org_steps_planned_before_the_person_exists() {
    init_tracing();
    within(RUN + Duration::from_secs(60), async {
        let Setup { dbs, tmp: _tmp, fake, cfg: _, bot } = set_up(&["dc-allorg.com"]).await;
        let thread = onboard(
            &fake,
            fake.requester(),
            json!({"slug": "dc-allorg", "name": "All Org", "email": "allorg@example.com",
                   "mode": MODE_OWNS, "org": "dc-allorg-org", "org_name": "All Org Ltd"}),
        )
        .await;
        let (_, card, end, asked) = approve_all_then_each(&fake, thread.id).await;
        assert!(end.starts_with("✓ run done"), "{end}");
        assert!(card.contains("**create-org** — create org `dc-allorg-org` owned by user `dc-allorg`"), "{card}");
        assert_eq!(asked, ["sync-back"], "{card}");
        let owner: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM orgs o JOIN users u ON u.id = o.owner_id JOIN org_members m ON m.org_id = o.id AND m.user_id = u.id AND m.role = 'owner' WHERE o.slug = 'dc-allorg-org' AND u.slug = 'dc-allorg'",
        )
        .fetch_one(&dbs.platform_admin().await)
        .await
        .unwrap();
        assert_eq!(owner, 1, "the org, owned by the Person, with the owner's membership");
        bot.shutdown().await;
        fake.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_all_covers_the_person_joining_an_org() {
    init_tracing();
    within(RUN + Duration::from_secs(60), async {
        let Setup { dbs, tmp: _tmp, fake, cfg: _, bot } = set_up(&["dc-alljoin.com"]).await;
        let thread = onboard(
            &fake,
            fake.requester(),
            json!({"slug": "dc-alljoin", "name": "All Join", "email": "alljoin@example.com",
                   "mode": MODE_JOINS, "org": "cocotte"}),
        )
        .await;
        let (_, card, end, asked) = approve_all_then_each(&fake, thread.id).await;
        assert!(end.starts_with("✓ run done"), "{end}");
        assert!(card.contains("**join-org** — add user `dc-alljoin` to org `cocotte`"), "{card}");
        assert_eq!(asked, ["sync-back"], "{card}");
        let role: String = sqlx::query_scalar(
            "SELECT m.role FROM org_members m JOIN orgs o ON o.id = m.org_id JOIN users u ON u.id = m.user_id WHERE o.slug = 'cocotte' AND u.slug = 'dc-alljoin'",
        )
        .fetch_one(&dbs.platform_admin().await)
        .await
        .unwrap();
        assert_eq!(role, "member");
        bot.shutdown().await;
        fake.finish();
    })
    .await;
}

/// Approve all clicked while the first step's own card is on its way to Discord: the card,
/// once there, says the plan was approved and offers no button (it used to stay open, and a
/// second approver clicking it was told the plan was decided already).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_posted_after_approve_all_covered_its_plan_shows_it_approved() {
    init_tracing();
    within(RUN + Duration::from_secs(60), async {
        let Setup {
            dbs,
            tmp: _tmp,
            fake,
            cfg: _,
            bot,
        } = set_up(&["dc-late.com"]).await;
        let mut held = fake.hold_next("POST", "/channels/", ":create-person:");
        let thread = onboard(
            &fake,
            fake.requester(),
            json!({"slug": "dc-late", "name": "Late Card", "email": "late@example.com"}),
        )
        .await;
        held.arrived(T).await;
        let (whole, all_id) = fake
            .wait_for("the whole plan with Approve all", T, |st| {
                messages_json(st, thread.id)
                    .iter()
                    .find_map(|m| Some((m.clone(), open_approve_all(m)?)))
            })
            .await;
        let h = fake.click_button(fake.approver(), id_of(&whole), &all_id);
        assert_eq!(fake.interaction_response(&h).await.kind, 6);
        fake.wait_for_message(
            |m| m.id == id_of(&whole) && m.content.starts_with("✓ Approve all by"),
            T,
        )
        .await;
        held.release();
        let want = format!("approved by <@{}>", fake.approver());
        let card = fake
            .wait_for_message(
                |m| {
                    m.channel_id == thread.id
                        && m.components.iter().flat_map(|r| &r.components).any(|c| {
                            matches!(c, serenity::all::ActionRowComponent::Button(b)
                                if matches!(&b.data, serenity::all::ButtonKind::NonLink { custom_id, .. }
                                    if custom_id.contains(":create-person:")))
                        })
                        && m.content.contains(&want)
                },
                T,
            )
            .await;
        assert!(
            card.components
                .iter()
                .flat_map(|r| &r.components)
                .all(|c| matches!(c, serenity::all::ActionRowComponent::Button(b) if b.disabled)),
            "the covered card offers no button: {card:?}"
        );
        let (end, asked) = approve_until_end(&fake, thread.id, fake.approver()).await;
        assert!(end.starts_with("✓ run done"), "{end}");
        assert_eq!(asked, ["sync-back"]);
        assert_eq!(user_count(&dbs, "dc-late").await, 1);
        bot.shutdown().await;
        fake.finish();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_all_does_not_cover_a_plan_that_changed_and_counts_toward_a_quorum() {
    use crate::support::lab::{origin_file, push_change};
    init_tracing();
    within(RUN + Duration::from_secs(60), async {
        let lab = lab();
        lab.serve_domains(&["dc-allchg.com"]);
        let dbs = lab.fresh().await;
        dbs.own_vps_sites(&["dc-allchg.com"]).await;
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeDiscord::start().await;
        let discord = fake.config_section(tmp.path());
        // create-person needs two approvers: Approve all is one of them, so the run waits at
        // create-person while the template changes under the approved deploy-config plan.
        let cfg = dbs.config(tmp.path(), |t| {
            t + &discord + "\napprovals:\n  required:\n    create-person: 2\n"
        });
        let bot = start_bot(&fake, &cfg).await;
        let second = fake.add_user("second-approver", &[fake.approver_role_id()]);
        let third = fake.add_user("third-approver", &[fake.approver_role_id()]);
        let thread = onboard(
            &fake,
            fake.approver(),
            json!({"slug": "dc-allchg", "name": "Changed Person", "email": "c@example.com"}),
        )
        .await;
        let (whole, all_id) = fake
            .wait_for("the whole plan with Approve all", T, |st| {
                messages_json(st, thread.id)
                    .iter()
                    .find_map(|m| Some((m.clone(), open_approve_all(m)?)))
            })
            .await;
        let whole_id = id_of(&whole);

        // The run's starter may not Approve all either (two-person rule).
        let h = fake.click_button(fake.approver(), whole_id, &all_id);
        assert_eq!(fake.interaction_response(&h).await.kind, 6);
        let refusal = fake.followup(&h, 0, T).await;
        assert!(refusal.content.contains("two-person rule"), "{}", refusal.content);

        let h = fake.click_button(second, whole_id, &all_id);
        assert_eq!(fake.interaction_response(&h).await.kind, 6);
        fake.wait_for_message(
            |m| m.id == whole_id && m.content.starts_with("✓ Approve all by"),
            T,
        )
        .await;
        // create-person's own message counts the Approve all: 1 of 2.
        let (cp, cp_id) = fake
            .wait_for("create-person at 1 of 2", T, |st| {
                messages_json(st, thread.id).iter().find_map(|m| {
                    let id = open_approve(m)?;
                    (id.contains(":create-person:")
                        && m["content"].as_str()?.contains("1 of 2 approved by"))
                    .then(|| (id_of(m), id))
                })
            })
            .await;
        // The same person again, on the step's own button: counted once.
        let h = fake.click_button(second, cp, &cp_id);
        assert_eq!(fake.interaction_response(&h).await.kind, 6);
        assert!(fake.followup(&h, 0, T).await.content.contains("You already approved"));

        // A person pushes to the template while the run waits: deploy-config's plan changes.
        let template = "deployments/@domains/_template/{provider}.com/nginx/prod.conf";
        let note = "# a person's note, pushed after the Approve all\n";
        push_change(tmp.path(), template, |t| format!("{t}{note}"));
        let h = fake.click_button(third, cp, &cp_id);
        assert_eq!(fake.interaction_response(&h).await.kind, 6);
        fake.wait_for_message(|m| m.id == cp && m.content.contains("2 of 2 approved by"), T)
            .await;

        // deploy-config is asked for on its own, and says why.
        let clicked = HashSet::from([cp_id.clone()]);
        let Next::Approval(dc, dc_id) = next_in_thread(&fake, thread.id, &clicked).await else {
            panic!("the run ended before deploy-config");
        };
        assert!(dc_id.contains(":deploy-config:"), "{dc_id}");
        let dc_card = fake.message(dc).unwrap().embeds[0].description.clone().unwrap();
        assert!(dc_card.contains("its plan changed since the whole plan was shown"), "{dc_card}");
        let stale: Vec<(String, bool)> = sqlx::query_as(
            "SELECT plan_hash, voided_at IS NOT NULL FROM approvals WHERE step = 'deploy-config' ORDER BY id",
        )
        .fetch_all(&dbs.state_admin().await)
        .await
        .unwrap();
        assert_eq!(stale.len(), 1, "{stale:?}");
        assert!(stale[0].1, "the Approve all of the old plan is void");
        assert!(!dc_id.ends_with(&stale[0].0[..16]), "a new plan is asked for");
        let site_conf = "deployments/@domains/dc-allchg.com/nginx/prod.conf";
        assert!(origin_file(tmp.path(), site_conf).is_none(), "nothing stale was written");
        approve(&fake, third, dc, &dc_id).await;
        let conf = fake
            .wait_for("deploy-config pushed", T, |_| origin_file(tmp.path(), site_conf))
            .await;
        assert!(conf.contains(note.trim_end()), "the approved new plan was written: {conf}");

        let (end, asked) = approve_until_end(&fake, thread.id, third).await;
        assert!(end.starts_with("✓ run done"), "{end}");
        assert!(!asked.contains(&"deploy-stub".to_string()), "still covered: {asked:?}");
        assert_eq!(user_count(&dbs, "dc-allchg").await, 1);
        bot.shutdown().await;
        fake.finish();
    })
    .await;
}
