//! The Discord implementation of [`ChatFrontend`]: a thread per run in the ops channel, one
//! progress embed edited in place (coalesced), a message per step outcome, and approval
//! messages with buttons. Everything here posts with the bot token, never an interaction
//! token, so runs longer than an interaction's 15 minutes keep reporting.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use serde_json::{Value, json};
use serenity::all::{
    AutoArchiveDuration, ButtonStyle, ChannelId, CreateActionRow, CreateAllowedMentions,
    CreateAttachment, CreateButton, CreateEmbed, CreateEmbedFooter, CreateMessage, CreateThread,
    EditMessage, GetMessages, Http, Message, MessageId, RoleId,
};
use sqlx::PgPool;
use tokio::sync::{oneshot, watch};
use tracing::{info, warn};
use uuid::Uuid;

use super::custom_id::ApprovalButton;
use crate::chat::{Actor, ApprovalRequest, ChatFrontend, Decision, RunEvent, RunView};
use crate::config::DiscordConfig;
use crate::messages::{self, Card};
use crate::state::runs::{self, RunStatus, StepStatus};

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
struct RunChat {
    chat: ChatRef,
    outbox: Arc<Mutex<Outbox>>,
    /// Bumped when the outbox changes; dropping it makes the task flush once more and end.
    dirty: watch::Sender<u64>,
}

/// An approval message this process knows about.
#[derive(Debug, Clone)]
struct Posted {
    channel: ChannelId,
    message: MessageId,
    button: ApprovalButton,
    open: bool,
}

/// A plan waiting for a click, in this process.
struct Pending {
    hash: String,
    tx: oneshot::Sender<Decision>,
}

type StepKey = (Uuid, String);

pub struct DiscordFrontend {
    http: Arc<Http>,
    cfg: DiscordConfig,
    pool: OnceLock<PgPool>,
    runs: Mutex<HashMap<Uuid, Arc<RunChat>>>,
    /// Runs picked up from a stored chat_ref (after a restart): their old approval messages
    /// are looked up in the thread before a new one is posted.
    resumed: Mutex<HashSet<Uuid>>,
    posted: Mutex<HashMap<StepKey, Vec<Posted>>>,
    pending: Mutex<HashMap<StepKey, Pending>>,
    /// Plans decided by a click in this process, (run, step, hash prefix) -> actor: a second
    /// click in the moment before the engine records the first is refused, not recorded twice.
    decided: Mutex<HashMap<(Uuid, String, String), String>>,
    /// Bumped on every attach, so a command can wait for its run's thread.
    attached: watch::Sender<u64>,
}

impl DiscordFrontend {
    pub fn new(http: Arc<Http>, cfg: DiscordConfig) -> Self {
        Self {
            http,
            cfg,
            pool: OnceLock::new(),
            runs: Mutex::default(),
            resumed: Mutex::default(),
            posted: Mutex::default(),
            pending: Mutex::default(),
            decided: Mutex::default(),
            attached: watch::channel(0).0,
        }
    }

    /// The state DB, to check for decisions recorded while no process was waiting.
    pub fn set_pool(&self, pool: PgPool) {
        let _ = self.pool.set(pool);
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
            .expect("runs")
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
        let starter = retry("posting the run's message in the ops channel", || {
            ops.send_message(
                &self.http,
                CreateMessage::new()
                    .content(messages::run_opened(run))
                    .allowed_mentions(CreateAllowedMentions::new()),
            )
        })
        .await?;
        let thread = retry("creating the run's thread", || {
            ops.create_thread_from_message(
                &self.http,
                starter.id,
                CreateThread::new(messages::thread_name(run))
                    .auto_archive_duration(AutoArchiveDuration::OneWeek),
            )
        })
        .await?;
        let progress = retry("posting the progress message", || {
            thread.id.send_message(
                &self.http,
                CreateMessage::new()
                    .embed(embed(&messages::progress_card(run, None)))
                    .allowed_mentions(CreateAllowedMentions::new()),
            )
        })
        .await?;
        Ok(ChatRef {
            thread: thread.id,
            progress: progress.id,
        })
    }

    fn register(&self, run: &RunView, chat: ChatRef) -> Arc<RunChat> {
        let outbox = Arc::new(Mutex::new(Outbox::default()));
        let (dirty, rx) = watch::channel(0);
        tokio::spawn(push_progress(
            self.http.clone(),
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
        self.runs.lock().expect("runs").insert(run.id, rc.clone());
        self.attached.send_modify(|n| *n += 1);
        rc
    }

    fn run_chat(&self, id: Uuid) -> Option<Arc<RunChat>> {
        self.runs.lock().expect("runs").get(&id).cloned()
    }

    fn set_card(&self, rc: &RunChat, card: Card) {
        let mut o = rc.outbox.lock().expect("outbox");
        o.card = Some(card);
        o.card_dirty = true;
        drop(o);
        rc.dirty.send_modify(|n| *n += 1);
    }

    async fn say(&self, thread: ChannelId, text: String) {
        let msg = CreateMessage::new()
            .content(text)
            .allowed_mentions(CreateAllowedMentions::new());
        let posted = retry("posting in the run's thread", || {
            thread.send_message(&self.http, msg.clone())
        })
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
        if let Some(rc) = self.runs.lock().expect("runs").remove(&run_id) {
            drop(rc);
        }
    }

    /// A run left alone because another live process executes it: said in its thread.
    pub async fn report_run_elsewhere(&self, run_id: Uuid, holder: &str) {
        let stored = match self.pool.get() {
            Some(pool) => crate::state::runs::get(pool, run_id)
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
        self.runs.lock().expect("runs").remove(&run_id);
    }

    // ----- approvals ---------------------------------------------------------------------

    /// Old approval messages of this step in the thread (after a restart, when this process
    /// has not posted any itself).
    async fn find_posted(&self, thread: ChannelId, run_id: Uuid, step: &str) -> Vec<Posted> {
        let msgs = match thread
            .messages(&self.http, GetMessages::new().limit(100))
            .await
        {
            Ok(m) => m,
            Err(e) => {
                warn!(thread = %thread, error = %e, "could not read the thread for old approval messages");
                crate::ops::metrics::discord_api_error();
                return Vec::new();
            }
        };
        let mut found: Vec<Posted> = msgs
            .iter()
            .filter_map(|m| {
                let (button, open) = approval_buttons(m)?;
                (button.run_id == run_id && button.step == step).then_some(Posted {
                    channel: thread,
                    message: m.id,
                    button,
                    open,
                })
            })
            .collect();
        found.reverse(); // the API lists newest first
        found
    }

    async fn close_message(&self, p: &Posted, text: String) {
        let edit = EditMessage::new()
            .content(text)
            .components(buttons(&p.button, false))
            .allowed_mentions(CreateAllowedMentions::new());
        let closed = retry("closing an approval message", || {
            p.channel.edit_message(&self.http, p.message, edit.clone())
        })
        .await;
        if let Err(e) = closed {
            warn!(message = %p.message, error = ?e, "gave up closing an approval message");
        }
    }

    fn mark_closed(&self, key: &StepKey, message: MessageId) {
        if let Some(list) = self.posted.lock().expect("posted").get_mut(key) {
            for p in list.iter_mut().filter(|p| p.message == message) {
                p.open = false;
            }
        }
    }

    /// Closes every open approval message of a run (it finished or was cancelled).
    async fn close_run_approvals(&self, run_id: Uuid, why: &str) {
        let open: Vec<Posted> = {
            let mut posted = self.posted.lock().expect("posted");
            let keys: Vec<StepKey> = posted.keys().filter(|k| k.0 == run_id).cloned().collect();
            keys.iter()
                .filter_map(|k| posted.remove(k))
                .flatten()
                .filter(|p| p.open)
                .collect()
        };
        for p in open {
            self.close_message(&p, messages::approval_closed(why)).await;
        }
    }

    /// A click by someone allowed to decide: hands the decision to the run waiting in this
    /// process, or records it for the run to find when it resumes. `Err` says why not.
    pub async fn deliver(
        &self,
        button: &ApprovalButton,
        decision: Decision,
        engine: &crate::engine::Engine,
    ) -> anyhow::Result<Result<(), messages::ApprovalRefusal>> {
        let pool = engine.pool();
        use messages::ApprovalRefusal as R;
        let key = (button.run_id, button.step.clone());
        let decided_key = (
            button.run_id,
            button.step.clone(),
            button.hash_prefix.clone(),
        );
        if let Some(by) = self.decided.lock().expect("decided").get(&decided_key) {
            return Ok(Err(R::AlreadyDecided(by.clone())));
        }
        // The run waiting here for exactly this plan.
        let waiting = {
            let mut pending = self.pending.lock().expect("pending");
            match pending.get(&key) {
                Some(p) if button.matches(&p.hash) => pending.remove(&key),
                Some(_) => return Ok(Err(R::Stale)),
                None => None,
            }
        };
        if let Some(p) = waiting {
            self.decided
                .lock()
                .expect("decided")
                .insert(decided_key, decision.actor.id.clone());
            let _ = p.tx.send(decision);
            return Ok(Ok(()));
        }
        // Nobody waits here (the bot restarted and the run has not asked again yet): record it
        // against the plan the step is waiting with, for the resumed run to pick up.
        let Some(run) = runs::get(pool, button.run_id).await? else {
            return Ok(Err(R::RunOver("unknown".into())));
        };
        if !matches!(
            run.status,
            RunStatus::Running | RunStatus::WaitingApproval | RunStatus::Parked
        ) {
            return Ok(Err(R::RunOver(run.status.as_str().into())));
        }
        let steps = runs::steps(pool, run.id).await?;
        // The step may be planning again already (the resumed run): the plan it last showed
        // is still the one clicked on; if the new plan differs, this approval covers nothing.
        let Some(full) = steps
            .iter()
            .find(|s| s.name == button.step && !s.status.is_finished())
            .and_then(|s| s.plan_hash.clone())
            .filter(|h| button.matches(h))
        else {
            return Ok(Err(R::Stale));
        };
        if let Some(a) = runs::decision_for(pool, run.id, &button.step, &full).await? {
            return Ok(Err(R::AlreadyDecided(a.actor)));
        }
        self.decided
            .lock()
            .expect("decided")
            .insert(decided_key.clone(), decision.actor.id.clone());
        if let Err(e) = engine
            .record_decision(&run, &button.step, &full, &decision)
            .await
        {
            // Not recorded: the next click may try again.
            self.decided.lock().expect("decided").remove(&decided_key);
            return Err(e);
        }
        // The resumed run may have started waiting in the meantime, after it looked for a
        // recorded decision: hand it over too rather than leave it waiting.
        let late = {
            let mut pending = self.pending.lock().expect("pending");
            match pending.get(&key) {
                Some(p) if button.matches(&p.hash) => pending.remove(&key),
                _ => None,
            }
        };
        if let Some(p) = late {
            let _ = p.tx.send(decision);
        }
        Ok(Ok(()))
    }

    /// After a decision: the message says who decided, its buttons are disabled.
    pub async fn show_decided(
        &self,
        channel: ChannelId,
        message: MessageId,
        button: &ApprovalButton,
        approved: bool,
        actor: &Actor,
    ) {
        self.mark_closed(&(button.run_id, button.step.clone()), message);
        let p = Posted {
            channel,
            message,
            button: button.clone(),
            open: false,
        };
        self.close_message(&p, messages::approval_decided(approved, &actor.id))
            .await;
    }

    /// A stale message's buttons are disabled (a fresh approval is, or will be, posted).
    pub async fn show_superseded(
        &self,
        channel: ChannelId,
        message: MessageId,
        button: &ApprovalButton,
    ) {
        self.mark_closed(&(button.run_id, button.step.clone()), message);
        let p = Posted {
            channel,
            message,
            button: button.clone(),
            open: false,
        };
        self.close_message(&p, messages::approval_superseded())
            .await;
    }

    async fn post_approval(
        &self,
        req: &ApprovalRequest,
        thread: ChannelId,
    ) -> anyhow::Result<Posted> {
        let key = (req.run_id, req.step.clone());
        let resumed = self.resumed.lock().expect("resumed").contains(&req.run_id);
        let known = self.posted.lock().expect("posted").get(&key).cloned();
        let candidates = match known {
            Some(k) => k,
            None if resumed => self.find_posted(thread, req.run_id, &req.step).await,
            None => Vec::new(),
        };
        let mut reuse = None;
        for p in candidates.into_iter().filter(|p| p.open) {
            if p.button.matches(&req.plan_hash) && reuse.is_none() {
                reuse = Some(p);
            } else {
                self.close_message(&p, messages::approval_superseded())
                    .await;
            }
        }
        let posted = match reuse {
            Some(p) => {
                info!(run_id = %req.run_id, step = req.step, message = %p.message, "the open approval message still covers this plan");
                p
            }
            None => {
                let a = messages::approval_card(req, self.cfg.two_person_rule);
                let button = ApprovalButton::new(true, req.run_id, &req.step, &req.plan_hash);
                // The approver roles are pinged: a plan waiting unseen holds the run up.
                let roles = self
                    .cfg
                    .approver_role_ids
                    .iter()
                    .filter(|r| **r != 0)
                    .map(|r| RoleId::new(*r));
                let mut msg = CreateMessage::new()
                    .content(messages::approval_ping(&self.cfg.approver_role_ids))
                    .embed(embed(&a.card))
                    .components(buttons(&button, true))
                    .allowed_mentions(CreateAllowedMentions::new().roles(roles));
                if let Some((name, text)) = a.attachment {
                    msg = msg.add_file(CreateAttachment::bytes(text.into_bytes(), name));
                }
                let m = retry("posting the approval message", || {
                    thread.send_message(&self.http, msg.clone())
                })
                .await?;
                Posted {
                    channel: thread,
                    message: m.id,
                    button,
                    open: true,
                }
            }
        };
        self.posted
            .lock()
            .expect("posted")
            .insert(key, vec![posted.clone()]);
        Ok(posted)
    }

    async fn ensure_attached(&self, run_id: Uuid) -> anyhow::Result<Arc<RunChat>> {
        if let Some(rc) = self.run_chat(run_id) {
            return Ok(rc);
        }
        // Attach always comes first; this covers a run whose thread could not be reopened.
        let pool = self.pool.get().context("the frontend has no state DB")?;
        let run = runs::get(pool, run_id).await?.context("no such run")?;
        let steps = runs::steps(pool, run_id).await?;
        let view = RunView {
            id: run.id,
            runbook: run.runbook.clone(),
            subject: run.subject.clone(),
            started_by: run.started_by.clone(),
            dry_run: run.dry_run,
            chat_ref: run.chat_ref.clone(),
            steps: steps
                .iter()
                .map(|s| crate::chat::StepLine {
                    name: s.name.clone(),
                    status: s.status,
                    note: None,
                })
                .collect(),
        };
        self.attach(&view).await?;
        self.run_chat(run_id).context("the run has no thread")
    }
}

/// Keeps the pending entry only as long as the engine waits (the run may be cancelled).
struct PendingGuard<'a> {
    frontend: &'a DiscordFrontend,
    key: StepKey,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.frontend
            .pending
            .lock()
            .expect("pending")
            .remove(&self.key);
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
            match chat.thread.send_message(&self.http, notice).await {
                Ok(_) => {
                    self.resumed.lock().expect("resumed").insert(run.id);
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
                    .expect("outbox")
                    .logs
                    .push((step, line.clone()));
                rc.dirty.send_modify(|n| *n += 1);
            }
            RunEvent::Finished { status, message } => {
                self.set_card(&rc, messages::progress_card(run, Some((*status, message))));
                self.say(rc.chat.thread, messages::run_finished(*status, message))
                    .await;
                self.close_run_approvals(
                    run.id,
                    &format!("the run is {}", status.as_str().replace('_', " ")),
                )
                .await;
                // Dropping the last handle makes the progress task flush once more and stop.
                self.runs.lock().expect("runs").remove(&run.id);
                self.resumed.lock().expect("resumed").remove(&run.id);
                self.decided
                    .lock()
                    .expect("decided")
                    .retain(|k, _| k.0 != run.id);
            }
        }
    }

    async fn request_approval(&self, req: &ApprovalRequest) -> anyhow::Result<Decision> {
        let rc = self.ensure_attached(req.run_id).await?;
        let key = (req.run_id, req.step.clone());
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending").insert(
            key.clone(),
            Pending {
                hash: req.plan_hash.clone(),
                tx,
            },
        );
        let _guard = PendingGuard {
            frontend: self,
            key: key.clone(),
        };
        // A click recorded while no process waited (between a restart and this request): its
        // message already says who decided. Checked after the waiter is in place, so a click
        // is either seen here or delivered to the waiter.
        if let Some(pool) = self.pool.get()
            && let Some(a) = runs::decision_for(pool, req.run_id, &req.step, &req.plan_hash).await?
        {
            let actor = Actor {
                id: a.actor.clone(),
                display: a.actor.clone(),
            };
            return Ok(Decision {
                approved: a.approved,
                actor,
                how: "discord button (clicked while the run was resuming)".into(),
                reason: a.reason,
            });
        }
        self.post_approval(req, rc.chat.thread).await?;
        let decision = rx
            .await
            .context("the approval was abandoned (the bot is shutting down)")?;
        Ok(decision)
    }
}

/// Attempts at a Discord call that a run cannot do without (its thread, an approval).
const ATTEMPTS: u32 = 3;

/// A call retried with back-off: Discord answers 5xx now and then, and with the ratelimiter
/// off (tests) a 429 reaches us too. A run must not fail for one such answer.
async fn retry<T, F, Fut>(what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, serenity::Error>>,
{
    let mut backoff = Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < ATTEMPTS => {
                warn!(attempt, error = %e, "{what} failed; retrying");
                crate::ops::metrics::discord_api_error();
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                attempt += 1;
            }
            Err(e) => return Err(anyhow::Error::new(e).context(what.to_owned())),
        }
    }
}

/// Pushes a run's progress embed and log lines to Discord, at most once per interval. What
/// Discord refuses (a 5xx, a 429) goes back into the outbox and is pushed again at the next
/// interval, so no line is lost to a passing failure; after [`PUSH_ROUNDS`] failed rounds in a
/// row of a finished run, what is left is given up with a warning.
async fn push_progress(
    http: Arc<Http>,
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
            let mut o = outbox.lock().expect("outbox");
            let card = o.card_dirty.then(|| o.card.clone()).flatten();
            o.card_dirty = false;
            (card, std::mem::take(&mut o.logs))
        };
        let mut failed = false;
        if let Some(card) = card {
            let edit = EditMessage::new().embed(embed(&card));
            let done = retry("updating the progress message", || {
                chat.thread.edit_message(&http, chat.progress, edit.clone())
            })
            .await;
            if done.is_err() {
                // The newest card is sent next time (a newer one may have replaced it).
                outbox.lock().expect("outbox").card_dirty = true;
                failed = true;
            }
        }
        let mut sent = 0;
        for (text, lines) in messages::log_messages(&logs) {
            let msg = CreateMessage::new()
                .content(text)
                .allowed_mentions(CreateAllowedMentions::new());
            if retry("posting log lines", || {
                chat.thread.send_message(&http, msg.clone())
            })
            .await
            .is_err()
            {
                // Put the unsent lines back in front of any newer ones, in order.
                let mut o = outbox.lock().expect("outbox");
                o.logs.splice(0..0, logs[sent..].iter().cloned());
                failed = true;
                break;
            }
            sent += lines;
        }
        failed_rounds = if failed { failed_rounds + 1 } else { 0 };
        if !open && (failed_rounds == 0 || failed_rounds >= PUSH_ROUNDS) {
            if failed_rounds > 0 {
                let o = outbox.lock().expect("outbox");
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
}

/// Approve and Reject for one plan.
pub fn buttons(button: &ApprovalButton, enabled: bool) -> Vec<CreateActionRow> {
    vec![CreateActionRow::Buttons(vec![
        CreateButton::new(button.with_verdict(true).encode())
            .label("Approve")
            .style(ButtonStyle::Success)
            .disabled(!enabled),
        CreateButton::new(button.with_verdict(false).encode())
            .label("Reject")
            .style(ButtonStyle::Danger)
            .disabled(!enabled),
    ])]
}

/// The approval button of a message, if it has ours, and whether they can still be clicked.
fn approval_buttons(m: &Message) -> Option<(ApprovalButton, bool)> {
    use serenity::all::ActionRowComponent;
    m.components
        .iter()
        .flat_map(|row| &row.components)
        .find_map(|c| match c {
            ActionRowComponent::Button(b) => match &b.data {
                serenity::all::ButtonKind::NonLink { custom_id, .. } => {
                    ApprovalButton::decode(custom_id).map(|x| (x, !b.disabled))
                }
                _ => None,
            },
            _ => None,
        })
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
