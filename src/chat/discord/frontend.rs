//! The Discord implementation of [`ChatFrontend`]: a thread per run in the ops channel, one
//! progress embed edited in place (coalesced), a message per step outcome, and approval
//! messages with buttons. Everything here posts with the bot token, never an interaction
//! token, so runs longer than an interaction's 15 minutes keep reporting.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use serde_json::{Value, json};
use serenity::all::{
    AutoArchiveDuration, ChannelId, CreateAllowedMentions, CreateEmbed, CreateEmbedFooter,
    CreateMessage, CreateThread, EditMessage, Http, MessageId,
};
use tokio::sync::{oneshot, watch};
use tracing::warn;
use uuid::Uuid;

use super::custom_id::ApprovalButton;
use super::pace::{Pacer, Write};
use crate::config::DiscordConfig;
use crate::engine::{Engine, WeakEngine};
use crate::frontend::{ApprovalRequest, ChatFrontend, Decision, RunEvent, RunView};
use crate::messages::{self, Card};
use crate::state::runs::{RunStatus, StepStatus};

/// At most one edit of a run's progress embed per this interval (Discord allows about five
/// message writes per 5 s per channel; step outcome messages need some of them too).
pub const PROGRESS_EDIT_INTERVAL: Duration = Duration::from_millis(1000);

/// Where a run is reported: stored as the run's `chat_ref`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatRef {
    pub thread: ChannelId,
    pub progress: MessageId,
}

impl ChatRef {
    pub fn to_json(self) -> Value {
        // Strings: Discord ids do not fit in a JSON number read as f64.
        json!({"frontend": "discord", "thread_id": self.thread.to_string(), "progress_message_id": self.progress.to_string()})
    }

    pub fn from_json(v: &Value) -> Option<Self> {
        let id = |k: &str| v[k].as_str()?.parse::<u64>().ok().filter(|n| *n != 0);
        Some(Self {
            thread: ChannelId::new(id("thread_id")?),
            progress: MessageId::new(id("progress_message_id")?),
        })
    }
}

/// What the coalescing task of one run pushes to Discord.
#[derive(Default)]
struct Outbox {
    card: Option<Card>,
    card_dirty: bool,
    logs: Vec<(String, String)>,
}

/// A run attached in this process.
pub(super) struct RunChat {
    pub(super) chat: ChatRef,
    outbox: Arc<Mutex<Outbox>>,
    /// Bumped when the outbox changes; dropping it makes the task flush once more and end.
    dirty: watch::Sender<u64>,
}

pub(super) type StepKey = (Uuid, String);

/// An approval message this process knows about (the approval flow is in `approvals.rs`).
#[derive(Debug, Clone)]
pub(super) struct Posted {
    pub(super) channel: ChannelId,
    pub(super) message: MessageId,
    pub(super) button: ApprovalButton,
    pub(super) open: bool,
}

/// A plan waiting for a click, in this process.
pub(super) struct Pending {
    pub(super) hash: String,
    pub(super) tx: oneshot::Sender<Decision>,
    /// How many distinct approvers the plan needs, and who approved it before this request.
    pub(super) required: u32,
    pub(super) approved_by: Vec<String>,
}

/// The decisions clicked in this process on one plan: who approved it, and who closed it (the
/// approval that made the quorum, or a rejection).
#[derive(Debug, Default)]
pub(super) struct Decided {
    pub(super) approvers: Vec<String>,
    pub(super) closed_by: Option<String>,
    /// A decision made away from the plan's message (an Approve all) before that message was
    /// posted: whoever posts it shows this on it.
    pub(super) unshown: Option<(super::approvals::Delivered, String)>,
}

/// A plan of a run's step, as a button names it: (run, step, plan hash prefix).
pub(super) type PlanKey = (Uuid, String, String);

pub struct DiscordFrontend {
    pub(super) http: Arc<Http>,
    pub(super) cfg: DiscordConfig,
    /// The engine, to read what a run recorded (its thread, a decision stored while no
    /// process waited); set once the engine exists, since the engine is built with this.
    pub(super) engine: OnceLock<WeakEngine>,
    pub(super) runs: Mutex<HashMap<Uuid, Arc<RunChat>>>,
    /// Runs picked up from a stored chat_ref (after a restart): their old approval messages
    /// are looked up in the thread before a new one is posted.
    pub(super) resumed: Mutex<HashSet<Uuid>>,
    pub(super) posted: Mutex<HashMap<StepKey, Vec<Posted>>>,
    pub(super) pending: Mutex<HashMap<StepKey, Pending>>,
    /// Plans decided by clicks in this process: a second click by the same person, or any click
    /// after the plan was closed, in the moment before the engine records the first is
    /// refused, not recorded twice.
    pub(super) decided: Mutex<HashMap<PlanKey, Decided>>,
    /// Bumped on every attach, so a command can wait for its run's thread.
    pub(super) attached: watch::Sender<u64>,
    /// Each run's whole-plan message with its Approve all, while it is open.
    pub(super) up_front: Mutex<HashMap<Uuid, (ChannelId, MessageId)>>,
    /// Keeps every write of a run's reporting under Discord's per-channel limits.
    pub(super) pacer: Arc<Pacer>,
}

impl DiscordFrontend {
    pub fn new(http: Arc<Http>, cfg: DiscordConfig) -> Self {
        Self {
            http,
            cfg,
            engine: OnceLock::new(),
            runs: Mutex::default(),
            resumed: Mutex::default(),
            posted: Mutex::default(),
            pending: Mutex::default(),
            decided: Mutex::default(),
            attached: watch::channel(0).0,
            up_front: Mutex::default(),
            pacer: Arc::default(),
        }
    }

    /// A write of `write` to `channel`, paced by this front-end's [`Pacer`].
    pub(super) fn paced(&self, write: Write, channel: ChannelId) -> Paced<'_> {
        Paced {
            pacer: &self.pacer,
            write,
            channel,
        }
    }

    /// The engine this front-end reports for, asked for what runs recorded.
    pub fn set_engine(&self, engine: &Engine) {
        let _ = self.engine.set(engine.downgrade());
    }

    /// The engine, once set and while it lives.
    pub(super) fn engine(&self) -> Option<Engine> {
        self.engine.get().and_then(WeakEngine::upgrade)
    }

    pub fn http(&self) -> &Arc<Http> {
        &self.http
    }

    pub fn config(&self) -> &DiscordConfig {
        &self.cfg
    }

    /// The thread of a run attached in this process.
    pub fn thread_of(&self, run_id: Uuid) -> Option<ChannelId> {
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&run_id)
            .map(|r| r.chat.thread)
    }

    /// Waits (up to `timeout`) until the run has its thread.
    pub async fn wait_for_thread(&self, run_id: Uuid, timeout: Duration) -> Option<ChannelId> {
        let mut rx = self.attached.subscribe();
        let wait = async {
            loop {
                if let Some(t) = self.thread_of(run_id) {
                    return t;
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.ok()
    }

    // ----- threads and the progress embed ------------------------------------------------

    async fn open_thread(&self, run: &RunView) -> anyhow::Result<ChatRef> {
        let ops = ChannelId::new(self.cfg.ops_channel_id);
        let starter = retry(
            self.paced(Write::Post, ops),
            "posting the run's message in the ops channel",
            || {
                ops.send_message(
                    &self.http,
                    CreateMessage::new()
                        .content(messages::run_opened(run))
                        .allowed_mentions(CreateAllowedMentions::new()),
                )
            },
        )
        .await?;
        let thread = retry(
            self.paced(Write::Thread, ops),
            "creating the run's thread",
            || {
                ops.create_thread_from_message(
                    &self.http,
                    starter.id,
                    CreateThread::new(messages::thread_name(run))
                        .auto_archive_duration(AutoArchiveDuration::OneWeek),
                )
            },
        )
        .await?;
        let progress = retry(
            self.paced(Write::Post, thread.id),
            "posting the progress message",
            || {
                thread.id.send_message(
                    &self.http,
                    CreateMessage::new()
                        .embed(embed(&messages::progress_card(run, None)))
                        .allowed_mentions(CreateAllowedMentions::new()),
                )
            },
        )
        .await?;
        Ok(ChatRef {
            thread: thread.id,
            progress: progress.id,
        })
    }

    pub(super) fn register(&self, run: &RunView, chat: ChatRef) -> Arc<RunChat> {
        let outbox = Arc::new(Mutex::new(Outbox::default()));
        let (dirty, rx) = watch::channel(0);
        tokio::spawn(push_progress(
            self.http.clone(),
            self.pacer.clone(),
            chat,
            outbox.clone(),
            rx,
            run.id,
        ));
        let rc = Arc::new(RunChat {
            chat,
            outbox,
            dirty,
        });
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(run.id, rc.clone());
        self.attached.send_modify(|n| *n += 1);
        rc
    }

    pub(super) fn run_chat(&self, id: Uuid) -> Option<Arc<RunChat>> {
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    pub(super) fn set_card(&self, rc: &RunChat, card: Card) {
        let mut o = rc.outbox.lock().unwrap_or_else(PoisonError::into_inner);
        o.card = Some(card);
        o.card_dirty = true;
        drop(o);
        rc.dirty.send_modify(|n| *n += 1);
    }

    pub(super) async fn say(&self, thread: ChannelId, text: String) {
        let msg = CreateMessage::new()
            .content(text)
            .allowed_mentions(CreateAllowedMentions::new());
        let posted = retry(
            self.paced(Write::Post, thread),
            "posting in the run's thread",
            || thread.send_message(&self.http, msg.clone()),
        )
        .await;
        if let Err(e) = posted {
            warn!(thread = %thread, error = ?e, "gave up posting in the run's thread");
        }
    }

    /// A run stopped on an internal error: say so where people look, with the reference.
    pub async fn report_run_error(&self, run_id: Uuid, reference: &str) {
        let channel = self
            .thread_of(run_id)
            .unwrap_or(ChannelId::new(self.cfg.ops_channel_id));
        self.say(channel, messages::run_internal_error(run_id, reference))
            .await;
        if let Some(rc) = self
            .runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&run_id)
        {
            drop(rc);
        }
    }

    /// A run left alone because another live process executes it: said in its thread.
    pub async fn report_run_elsewhere(&self, run_id: Uuid, holder: &str) {
        let stored = match self.engine() {
            Some(engine) => engine
                .run_record(run_id)
                .await
                .ok()
                .flatten()
                .and_then(|r| r.chat_ref)
                .and_then(|c| ChatRef::from_json(&c))
                .map(|c| c.thread),
            None => None,
        };
        let channel = self
            .thread_of(run_id)
            .or(stored)
            .unwrap_or(ChannelId::new(self.cfg.ops_channel_id));
        self.say(channel, messages::run_executed_elsewhere(run_id, holder))
            .await;
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&run_id);
    }

    async fn ensure_attached(&self, run_id: Uuid) -> anyhow::Result<Arc<RunChat>> {
        if let Some(rc) = self.run_chat(run_id) {
            return Ok(rc);
        }
        // Attach always comes first; this covers a run whose thread could not be reopened.
        let engine = self
            .engine()
            .context("the Discord front-end is not bound to an engine")?;
        let view = engine.run_view(run_id).await?.context("no such run")?;
        self.attach(&view).await?;
        self.run_chat(run_id).context("the run has no thread")
    }
}

#[async_trait]
impl ChatFrontend for DiscordFrontend {
    fn name(&self) -> &'static str {
        "discord"
    }

    async fn anchor(&self, head: &crate::state::audit::Anchor) {
        let channel = ChannelId::new(self.cfg.audit_channel_id.unwrap_or(self.cfg.ops_channel_id));
        self.say(channel, messages::audit_anchor(head)).await;
    }

    async fn attach(&self, run: &RunView) -> anyhow::Result<Option<Value>> {
        if let Some(rc) = self.run_chat(run.id) {
            self.set_card(&rc, messages::progress_card(run, None));
            return Ok(Some(rc.chat.to_json()));
        }
        if let Some(chat) = run.chat_ref.as_ref().and_then(ChatRef::from_json) {
            let notice = CreateMessage::new()
                .content(messages::run_resumed(run))
                .allowed_mentions(CreateAllowedMentions::new());
            self.pacer.wait(Write::Post, chat.thread).await;
            match chat.thread.send_message(&self.http, notice).await {
                Ok(_) => {
                    self.resumed
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(run.id);
                    let rc = self.register(run, chat);
                    self.set_card(&rc, messages::progress_card(run, None));
                    return Ok(Some(chat.to_json()));
                }
                Err(e) => {
                    warn!(run_id = %run.id, error = %e, "the run's thread is gone; opening a new one");
                    crate::ops::metrics::discord_api_error();
                }
            }
        }
        let chat = self.open_thread(run).await?;
        self.register(run, chat);
        Ok(Some(chat.to_json()))
    }

    async fn event(&self, run: &RunView, event: &RunEvent) {
        let Some(rc) = self.run_chat(run.id) else {
            return;
        };
        match event {
            RunEvent::Step {
                idx,
                status,
                message,
            } => {
                self.set_card(&rc, messages::progress_card(run, None));
                let outcome = matches!(
                    status,
                    StepStatus::Done
                        | StepStatus::AlreadyDone
                        | StepStatus::Failed
                        | StepStatus::Cancelled
                        | StepStatus::Parked
                        | StepStatus::Planned
                );
                if outcome && let Some(step) = run.steps.get(*idx) {
                    self.say(
                        rc.chat.thread,
                        messages::step_outcome(&step.name, *status, message),
                    )
                    .await;
                }
            }
            RunEvent::Log { idx, line } => {
                let step = run
                    .steps
                    .get(*idx)
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                rc.outbox
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .logs
                    .push((step, line.clone()));
                rc.dirty.send_modify(|n| *n += 1);
            }
            RunEvent::Finished { status, message } => {
                self.set_card(&rc, messages::progress_card(run, Some((*status, message))));
                self.say(rc.chat.thread, messages::run_finished(*status, message))
                    .await;
                let closed = match status {
                    RunStatus::Expired => messages::approval_expired(),
                    _ => messages::approval_closed(&format!(
                        "the run is {}",
                        status.as_str().replace('_', " ")
                    )),
                };
                self.close_run_approvals(run.id, &closed).await;
                self.close_up_front(run.id, &closed).await;
                // Dropping the last handle makes the progress task flush once more and stop.
                self.runs
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&run.id);
                self.resumed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&run.id);
                self.decided
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .retain(|k, _| k.0 != run.id);
            }
        }
    }

    async fn request_approval(&self, req: &ApprovalRequest) -> anyhow::Result<Decision> {
        let rc = self.ensure_attached(req.run_id).await?;
        self.ask(rc, req).await
    }

    async fn remind(&self, req: &ApprovalRequest, waited: Duration, left: Duration) {
        self.remind_approvers(req, waited, left).await;
    }

    fn shows_up_front(&self) -> bool {
        true
    }

    async fn present_up_front(&self, plan: &crate::frontend::UpFrontPlan) {
        self.post_up_front(plan).await;
    }
}

/// Attempts at a Discord call that a run cannot do without (its thread, an approval).
const ATTEMPTS: u32 = 3;

/// Where a write goes, for its pacing: see [`Pacer`].
#[derive(Clone, Copy)]
pub(super) struct Paced<'a> {
    pacer: &'a Pacer,
    write: Write,
    channel: ChannelId,
}

/// A write to a channel, paced under Discord's limits and retried with back-off: Discord
/// answers 5xx now and then, and with the ratelimiter off (tests) a 429 reaches us too. A run
/// must not fail for one such answer.
pub(super) async fn retry<T, F, Fut>(pace: Paced<'_>, what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, serenity::Error>>,
{
    let mut backoff = Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        pace.pacer.wait(pace.write, pace.channel).await;
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < ATTEMPTS => {
                warn!(attempt, error = %e, "{what} failed; retrying");
                crate::ops::metrics::discord_api_error();
                if is_rate_limited(&e) {
                    // The bucket is used up: the next attempt, and every other write of its kind
                    // to the channel, waits for it to be full again (see `Pacer::hold_off`).
                    pace.pacer.hold_off(pace.write, pace.channel);
                }
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                attempt += 1;
            }
            Err(e) => return Err(anyhow::Error::new(e).context(what.to_owned())),
        }
    }
}

/// Whether Discord refused a request for a rate limit (429).
fn is_rate_limited(e: &serenity::Error) -> bool {
    matches!(e, serenity::Error::Http(serenity::all::HttpError::UnsuccessfulRequest(r))
        if r.status_code.as_u16() == 429)
}

/// Pushes a run's progress embed and log lines to Discord, at most once per interval. What
/// Discord refuses (a 5xx, a 429) goes back into the outbox and is pushed again at the next
/// interval, so no line is lost to a passing failure; after [`PUSH_ROUNDS`] failed rounds in a
/// row of a finished run, what is left is given up with a warning.
async fn push_progress(
    http: Arc<Http>,
    pacer: Arc<Pacer>,
    chat: ChatRef,
    outbox: Arc<Mutex<Outbox>>,
    mut dirty: watch::Receiver<u64>,
    run_id: Uuid,
) {
    let mut open = true;
    let mut failed_rounds = 0;
    loop {
        if open && failed_rounds == 0 {
            open = dirty.changed().await.is_ok();
        }
        let (card, logs) = {
            let mut o = outbox.lock().unwrap_or_else(PoisonError::into_inner);
            let card = o.card_dirty.then(|| o.card.clone()).flatten();
            o.card_dirty = false;
            (card, std::mem::take(&mut o.logs))
        };
        let mut failed = false;
        if let Some(card) = card {
            let edit = EditMessage::new().embed(embed(&card));
            let paced = Paced {
                pacer: &pacer,
                write: Write::Edit,
                channel: chat.thread,
            };
            let done = retry(paced, "updating the progress message", || {
                chat.thread.edit_message(&http, chat.progress, edit.clone())
            })
            .await;
            if done.is_err() {
                // The newest card is sent next time (a newer one may have replaced it).
                outbox
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .card_dirty = true;
                failed = true;
            }
        }
        let mut sent = 0;
        for (text, lines) in messages::log_messages(&logs) {
            let msg = CreateMessage::new()
                .content(text)
                .allowed_mentions(CreateAllowedMentions::new());
            let paced = Paced {
                pacer: &pacer,
                write: Write::Post,
                channel: chat.thread,
            };
            if retry(paced, "posting log lines", || {
                chat.thread.send_message(&http, msg.clone())
            })
            .await
            .is_err()
            {
                // Put the unsent lines back in front of any newer ones, in order.
                let mut o = outbox.lock().unwrap_or_else(PoisonError::into_inner);
                o.logs.splice(0..0, logs[sent..].iter().cloned());
                failed = true;
                break;
            }
            sent += lines;
        }
        failed_rounds = if failed { failed_rounds + 1 } else { 0 };
        if !open && (failed_rounds == 0 || failed_rounds >= PUSH_ROUNDS) {
            if failed_rounds > 0 {
                let o = outbox.lock().unwrap_or_else(PoisonError::into_inner);
                warn!(run_id = %run_id, log_lines = o.logs.len(), card = o.card_dirty, "gave up pushing the run's progress to Discord");
            }
            return;
        }
        tokio::time::sleep(PROGRESS_EDIT_INTERVAL).await;
    }
}

/// Rounds of [`push_progress`] that may fail in a row, once the run has finished.
const PUSH_ROUNDS: u32 = 5;

pub fn embed(card: &Card) -> CreateEmbed {
    CreateEmbed::new()
        .title(card.title.clone())
        .description(card.description.clone())
        .footer(CreateEmbedFooter::new(card.footer.clone()))
        .colour(card.colour)
        .fields(
            card.fields
                .iter()
                .map(|f| (f.name.clone(), f.value.clone(), false)),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_ref_round_trips_as_strings() {
        let c = ChatRef {
            thread: ChannelId::new(1_100_000_000_000_000_777),
            progress: MessageId::new(1_100_000_000_000_000_778),
        };
        let v = c.to_json();
        assert_eq!(v["thread_id"], "1100000000000000777");
        assert_eq!(ChatRef::from_json(&v), Some(c));
        assert_eq!(ChatRef::from_json(&json!({"thread_id": "x"})), None);
    }
}
