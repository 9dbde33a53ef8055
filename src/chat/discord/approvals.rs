//! The approval flow of the Discord front-end: one message with Approve and Reject per plan,
//! a waiter per step for the click, a click recorded for a run that is not waiting (after a
//! restart), and old messages closed when their plan is decided, replaced or over.

use std::sync::{Arc, PoisonError};

use anyhow::Context as _;
use serenity::all::{
    ButtonStyle, ChannelId, CreateActionRow, CreateAllowedMentions, CreateAttachment, CreateButton,
    CreateMessage, EditMessage, GetMessages, Message, MessageId, RoleId,
};
use tokio::sync::oneshot;
use tracing::{info, warn};
use uuid::Uuid;

use super::custom_id::{ApprovalButton, ApproveAllButton};
use super::frontend::{DiscordFrontend, Pending, PlanKey, Posted, RunChat, StepKey, embed, retry};
use super::pace::Write;
use crate::frontend::{Actor, ApprovalRequest, Decision};
use crate::messages;
use crate::state::runs::RunStatus;

impl DiscordFrontend {
    /// The engine asks for a decision on a plan ([`crate::frontend::ChatFrontend::request_approval`]).
    pub(super) async fn ask(
        &self,
        rc: Arc<RunChat>,
        req: &ApprovalRequest,
    ) -> anyhow::Result<Decision> {
        let key = (req.run_id, req.step.clone());
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                key.clone(),
                Pending {
                    hash: req.plan_hash.clone(),
                    tx,
                    required: req.required,
                    approved_by: req.approved_by.clone(),
                },
            );
        let _guard = PendingGuard {
            frontend: self,
            key: key.clone(),
        };
        // A click recorded while no process waited (between a restart and this request): its
        // message already says who decided. Checked after the waiter is in place, so a click
        // is either seen here or delivered to the waiter.
        // A decision by someone the request does not count yet: the engine already has the
        // others, and handing back one of those would ask again for ever.
        if let Some(engine) = self.engine()
            && let Some(a) = engine
                .decisions_for(req.run_id, &req.step, &req.plan_hash)
                .await?
                .into_iter()
                .find(|a| !req.approved_by.contains(&a.actor))
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

    /// The thread's last 100 messages, newest first, to look for `what` in; none when
    /// Discord cannot say (logged and counted).
    async fn recent_messages(&self, thread: ChannelId, what: &str) -> Vec<Message> {
        match thread
            .messages(&self.http, GetMessages::new().limit(100))
            .await
        {
            Ok(m) => m,
            Err(e) => {
                warn!(thread = %thread, error = %e, "could not read the thread for {what}");
                crate::ops::metrics::discord_api_error();
                Vec::new()
            }
        }
    }

    /// Old approval messages of this step in the thread (after a restart, when this process
    /// has not posted any itself).
    async fn find_posted(&self, thread: ChannelId, run_id: Uuid, step: &str) -> Vec<Posted> {
        let msgs = self.recent_messages(thread, "old approval messages").await;
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
        let closed = retry(
            self.paced(Write::Edit, p.channel),
            "closing an approval message",
            || p.channel.edit_message(&self.http, p.message, edit.clone()),
        )
        .await;
        if let Err(e) = closed {
            warn!(message = %p.message, error = ?e, "gave up closing an approval message");
        }
    }

    fn mark_closed(&self, key: &StepKey, message: MessageId) {
        if let Some(list) = self
            .posted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(key)
        {
            for p in list.iter_mut().filter(|p| p.message == message) {
                p.open = false;
            }
        }
    }

    /// Closes every open approval message of a run (it finished, expired or was cancelled),
    /// with `text` in place of the buttons.
    pub(super) async fn close_run_approvals(&self, run_id: Uuid, text: &str) {
        let open: Vec<Posted> = {
            let mut posted = self.posted.lock().unwrap_or_else(PoisonError::into_inner);
            let keys: Vec<StepKey> = posted.keys().filter(|k| k.0 == run_id).cloned().collect();
            keys.iter()
                .filter_map(|k| posted.remove(k))
                .flatten()
                .filter(|p| p.open)
                .collect()
        };
        for p in open {
            self.close_message(&p, text.to_owned()).await;
        }
    }

    /// A click by someone allowed to decide: hands the decision to the run waiting in this
    /// process, or records it for the run to find when it resumes. `Err` says why not. Each
    /// person counts once on a plan that needs several approvers.
    pub async fn deliver(
        &self,
        button: &ApprovalButton,
        decision: Decision,
        engine: &crate::engine::Engine,
    ) -> anyhow::Result<Result<Delivered, messages::ApprovalRefusal>> {
        use messages::ApprovalRefusal as R;
        let key = (button.run_id, button.step.clone());
        let plan_key: PlanKey = (
            button.run_id,
            button.step.clone(),
            button.hash_prefix.clone(),
        );
        let actor = decision.actor.id.clone();
        if let Some(d) = self
            .decided
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&plan_key)
        {
            if let Some(by) = &d.closed_by {
                return Ok(Err(R::AlreadyDecided(by.clone())));
            }
            if d.approvers.contains(&actor) {
                return Ok(Err(R::AlreadyApproved));
            }
        }
        // The run waiting here for exactly this plan.
        let waiting = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            match pending.get(&key) {
                Some(p) if button.matches(&p.hash) && p.approved_by.contains(&actor) => {
                    return Ok(Err(R::AlreadyApproved));
                }
                Some(p) if button.matches(&p.hash) => pending.remove(&key),
                Some(_) => return Ok(Err(R::Stale)),
                None => None,
            }
        };
        if let Some(p) = waiting {
            let delivered = self.note_decided(&plan_key, &decision, &p.approved_by, p.required);
            let _ = p.tx.send(decision);
            return Ok(Ok(delivered));
        }
        // Nobody waits here (the bot restarted and the run has not asked again yet, or it is
        // between two approvers of one plan): record it against the plan the step is waiting
        // with, for the run to pick up.
        let Some(run) = engine.run_record(button.run_id).await? else {
            return Ok(Err(R::RunOver("unknown".into())));
        };
        if run.status == RunStatus::Expired {
            return Ok(Err(R::Expired));
        }
        if !matches!(
            run.status,
            RunStatus::Running | RunStatus::WaitingApproval | RunStatus::Parked
        ) {
            return Ok(Err(R::RunOver(run.status.as_str().into())));
        }
        let steps = engine.run_steps(run.id).await?;
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
        let recorded = engine.decisions_for(run.id, &button.step, &full).await?;
        let required = engine.approvals_required(&button.step);
        if let Some(r) = recorded.iter().find(|a| !a.approved) {
            return Ok(Err(R::AlreadyDecided(r.actor.clone())));
        }
        if recorded.iter().any(|a| a.actor == actor) {
            return Ok(Err(R::AlreadyApproved));
        }
        if recorded.len() >= required as usize {
            let last = recorded.last().map(|a| a.actor.clone()).unwrap_or_default();
            return Ok(Err(R::AlreadyDecided(last)));
        }
        let before: Vec<String> = recorded.into_iter().map(|a| a.actor).collect();
        let delivered = self.note_decided(&plan_key, &decision, &before, required);
        if let Err(e) = engine
            .record_decision(&run, &button.step, &full, &decision)
            .await
        {
            // Not recorded: the next click may try again.
            if let Some(d) = self
                .decided
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_mut(&plan_key)
            {
                d.approvers.retain(|a| *a != actor);
                if d.closed_by.as_deref() == Some(actor.as_str()) {
                    d.closed_by = None;
                }
            }
            return Err(e);
        }
        // The run may have started waiting in the meantime, after it looked for a recorded
        // decision: hand it over too rather than leave it waiting.
        let late = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            match pending.get(&key) {
                Some(p) if button.matches(&p.hash) && !p.approved_by.contains(&actor) => {
                    pending.remove(&key)
                }
                _ => None,
            }
        };
        if let Some(p) = late {
            let _ = p.tx.send(decision);
        }
        Ok(Ok(delivered))
    }

    /// Notes a decision clicked in this process on a plan that `before` approved already
    /// (recorded or handed over): who approved it so far and whether it is now decided.
    fn note_decided(
        &self,
        plan_key: &PlanKey,
        decision: &Decision,
        before: &[String],
        required: u32,
    ) -> Delivered {
        let mut decided = self.decided.lock().unwrap_or_else(PoisonError::into_inner);
        let d = decided.entry(plan_key.clone()).or_default();
        for a in before {
            if !d.approvers.contains(a) {
                d.approvers.push(a.clone());
            }
        }
        if decision.approved && !d.approvers.contains(&decision.actor.id) {
            d.approvers.push(decision.actor.id.clone());
        }
        let closes = !decision.approved || d.approvers.len() >= required as usize;
        if closes {
            d.closed_by = Some(decision.actor.id.clone());
        }
        Delivered {
            approved_by: d.approvers.clone(),
            required,
            closes,
        }
    }

    /// The plan of `req` has waited long: the approver roles are reminded in the thread,
    /// pinged (a reminder nobody sees is no reminder).
    pub(super) async fn remind_approvers(
        &self,
        req: &ApprovalRequest,
        waited: std::time::Duration,
        left: std::time::Duration,
    ) {
        let Some(thread) = self.thread_of(req.run_id) else {
            warn!(run_id = %req.run_id, "no thread to remind the approvers in");
            return;
        };
        let roles = self
            .cfg
            .approver_role_ids
            .iter()
            .filter(|r| **r != 0)
            .map(|r| RoleId::new(*r));
        let msg = CreateMessage::new()
            .content(messages::approval_reminder(
                &self.cfg.approver_role_ids,
                &req.step,
                waited,
                left,
            ))
            .allowed_mentions(CreateAllowedMentions::new().roles(roles));
        if let Err(e) = retry(
            self.paced(Write::Post, thread),
            "posting an approval reminder",
            || thread.send_message(&self.http, msg.clone()),
        )
        .await
        {
            warn!(run_id = %req.run_id, error = ?e, "gave up posting an approval reminder");
        }
    }

    /// After a decision: the message says who decided, its buttons are disabled.
    pub async fn show_decided(
        &self,
        channel: ChannelId,
        message: MessageId,
        button: &ApprovalButton,
        approved: bool,
        actor: &Actor,
        reason: Option<&str>,
    ) {
        self.close_clicked(
            channel,
            message,
            button,
            messages::approval_decided(approved, &actor.id, reason),
        )
        .await;
    }

    /// After the approval that completes a plan's quorum: the message says who approved it,
    /// its buttons are disabled.
    pub async fn show_quorum_met(
        &self,
        channel: ChannelId,
        message: MessageId,
        button: &ApprovalButton,
        d: &Delivered,
    ) {
        self.close_clicked(
            channel,
            message,
            button,
            messages::approval_quorum_met(&d.approved_by, d.required),
        )
        .await;
    }

    /// After an approval that does not complete the quorum: the message says who approved so
    /// far, and its buttons stay open for the next approver.
    pub async fn show_partial(&self, channel: ChannelId, message: MessageId, d: &Delivered) {
        let edit = EditMessage::new()
            .content(messages::approval_partial(&d.approved_by, d.required))
            .allowed_mentions(CreateAllowedMentions::new());
        if let Err(e) = retry(
            self.paced(Write::Edit, channel),
            "showing a partial approval",
            || channel.edit_message(&self.http, message, edit.clone()),
        )
        .await
        {
            warn!(message = %message, error = ?e, "gave up showing a partial approval");
        }
    }

    /// A stale message's buttons are disabled (a fresh approval is, or will be, posted).
    pub async fn show_superseded(
        &self,
        channel: ChannelId,
        message: MessageId,
        button: &ApprovalButton,
    ) {
        self.close_clicked(channel, message, button, messages::approval_superseded())
            .await;
    }

    /// Closes the message a click came from, with `text` in place of its buttons.
    async fn close_clicked(
        &self,
        channel: ChannelId,
        message: MessageId,
        button: &ApprovalButton,
        text: String,
    ) {
        self.mark_closed(&(button.run_id, button.step.clone()), message);
        let p = Posted {
            channel,
            message,
            button: button.clone(),
            open: false,
        };
        self.close_message(&p, text).await;
    }

    async fn post_approval(
        &self,
        req: &ApprovalRequest,
        thread: ChannelId,
    ) -> anyhow::Result<Posted> {
        let key = (req.run_id, req.step.clone());
        let resumed = self
            .resumed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&req.run_id);
        let known = self
            .posted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
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
                // A plan some approvers approved already (a restart, an Approve all) says so
                // from the start, as the message of a click does.
                let content = if req.approved_by.is_empty() {
                    messages::approval_ping(&self.cfg.approver_role_ids)
                } else {
                    format!(
                        "{}\n{}",
                        messages::approval_ping(&self.cfg.approver_role_ids),
                        messages::approval_partial(&req.approved_by, req.required)
                    )
                };
                let mut msg = CreateMessage::new()
                    .content(content)
                    .embed(embed(&a.card))
                    .components(buttons(&button, true))
                    .allowed_mentions(CreateAllowedMentions::new().roles(roles));
                if let Some((name, text)) = a.attachment {
                    msg = msg.add_file(CreateAttachment::bytes(text.into_bytes(), name));
                }
                let m = retry(
                    self.paced(Write::Post, thread),
                    "posting the approval message",
                    || thread.send_message(&self.http, msg.clone()),
                )
                .await?;
                Posted {
                    channel: thread,
                    message: m.id,
                    button,
                    open: true,
                }
            }
        };
        // The message can be clicked as soon as Discord has it, before this line: then the
        // click's decision is in `decided` already and `mark_closed` found nothing to mark, so
        // the run's end would overwrite "approved by". Checked under the `posted` lock, so a
        // click is either seen here or finds the entry.
        let mut posted = posted;
        let unshown = {
            let mut all = self.posted.lock().unwrap_or_else(PoisonError::into_inner);
            let decided_key = (
                req.run_id,
                req.step.clone(),
                posted.button.hash_prefix.clone(),
            );
            let unshown = {
                let mut decided = self.decided.lock().unwrap_or_else(PoisonError::into_inner);
                let d = decided.get_mut(&decided_key);
                if d.as_ref().is_some_and(|d| d.closed_by.is_some()) {
                    posted.open = false;
                }
                d.and_then(|d| d.unshown.take())
            };
            all.insert(key, vec![posted.clone()]);
            unshown
        };
        // Decided by an Approve all while the message was on its way: it says so now.
        match unshown {
            Some((d, actor)) if d.closes => {
                self.close_message(&posted, messages::approval_decided(true, &actor, None))
                    .await;
            }
            Some((d, _)) => self.show_partial(posted.channel, posted.message, &d).await,
            None => {}
        }
        Ok(posted)
    }
}

/// What a delivered decision did to its plan: who has approved it, of how many needed, and
/// whether it is now decided (the message closes) or waits for more approvers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub approved_by: Vec<String>,
    pub required: u32,
    pub closes: bool,
}

impl DiscordFrontend {
    /// The run's whole plan, posted in its thread with Approve all (when anything is known).
    pub(super) async fn post_up_front(&self, plan: &crate::frontend::UpFrontPlan) {
        let Some(thread) = self.thread_of(plan.run_id) else {
            warn!(run_id = %plan.run_id, "no thread to show the whole plan in");
            return;
        };
        let a = messages::up_front_card(plan, self.cfg.two_person_rule);
        let button = ApproveAllButton::new(plan.run_id, &plan.hash);
        let mut msg = CreateMessage::new()
            .content(messages::up_front_intro())
            .embed(embed(&a.card))
            .allowed_mentions(CreateAllowedMentions::new());
        if !plan.covered().is_empty() {
            msg = msg.components(approve_all_buttons(&button, true));
        }
        if let Some((name, text)) = a.attachment {
            msg = msg.add_file(CreateAttachment::bytes(text.into_bytes(), name));
        }
        match retry(
            self.paced(Write::Post, thread),
            "posting the whole plan",
            || thread.send_message(&self.http, msg.clone()),
        )
        .await
        {
            Ok(m) if !plan.covered().is_empty() => {
                self.up_front
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(plan.run_id, (thread, m.id));
            }
            Ok(_) => {}
            Err(e) => warn!(run_id = %plan.run_id, error = ?e, "gave up posting the whole plan"),
        }
    }

    /// An Approve all by someone allowed to decide: the engine records it; each covered step
    /// waiting here for exactly that plan gets the decision, and its message says so.
    pub async fn deliver_all(
        &self,
        button: &ApproveAllButton,
        decision: Decision,
        engine: &crate::engine::Engine,
    ) -> anyhow::Result<Result<Vec<String>, messages::ApprovalRefusal>> {
        let pairs = match engine
            .approve_all(button.run_id, &button.hash_prefix, &decision)
            .await?
        {
            Ok(pairs) => pairs,
            Err(r) => return Ok(Err(r)),
        };
        for (step, hash) in &pairs {
            let key = (button.run_id, step.clone());
            let waiting = {
                let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                match pending.get(&key) {
                    Some(p) if p.hash == *hash && !p.approved_by.contains(&decision.actor.id) => {
                        pending.remove(&key)
                    }
                    _ => None,
                }
            };
            let Some(p) = waiting else { continue };
            let step_button = ApprovalButton::new(true, button.run_id, step, hash);
            let plan_key = (button.run_id, step.clone(), step_button.hash_prefix.clone());
            let d = self.note_decided(&plan_key, &decision, &p.approved_by, p.required);
            let _ = p.tx.send(decision.clone());
            let open = {
                let posted = self.posted.lock().unwrap_or_else(PoisonError::into_inner);
                let open = posted.get(&key).and_then(|list| {
                    list.iter()
                        .find(|x| x.open && x.button.matches(hash))
                        .cloned()
                });
                // The step's message is still on its way to Discord: its poster shows this
                // decision on it (checked under the `posted` lock, as the poster does).
                if open.is_none() {
                    self.decided
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .entry(plan_key.clone())
                        .or_default()
                        .unshown = Some((d.clone(), decision.actor.id.clone()));
                }
                open
            };
            if let Some(m) = open {
                if d.closes {
                    self.close_clicked(
                        m.channel,
                        m.message,
                        &m.button,
                        messages::approval_decided(true, &decision.actor.id, None),
                    )
                    .await;
                } else {
                    self.show_partial(m.channel, m.message, &d).await;
                }
            }
        }
        Ok(Ok(pairs.into_iter().map(|(s, _)| s).collect()))
    }

    /// The whole plan's message after an Approve all: who, and what it approved. It stays open
    /// when a step it lists needs more approvers.
    pub async fn show_approved_all(
        &self,
        channel: ChannelId,
        message: MessageId,
        button: &ApproveAllButton,
        actor: &Actor,
        steps: &[String],
        keep_open: bool,
    ) {
        let mut edit = EditMessage::new()
            .content(messages::approve_all_done(&actor.id, steps))
            .allowed_mentions(CreateAllowedMentions::new());
        if !keep_open {
            edit = edit.components(approve_all_buttons(button, false));
            self.up_front
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&button.run_id);
        }
        if let Err(e) = retry(
            self.paced(Write::Edit, channel),
            "showing an Approve all",
            || channel.edit_message(&self.http, message, edit.clone()),
        )
        .await
        {
            warn!(message = %message, error = ?e, "gave up showing an Approve all");
        }
    }

    /// Closes the run's whole-plan message (the run is over).
    pub(super) async fn close_up_front(&self, run_id: Uuid, text: &str) {
        let known = self
            .up_front
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&run_id);
        let resumed = self
            .resumed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&run_id);
        // A run resumed by this process may have shown its whole plan before a restart.
        let found = match (known, self.thread_of(run_id)) {
            (Some(k), _) => Some(k),
            (None, Some(thread)) if resumed => self.find_up_front(thread, run_id).await,
            (None, _) => None,
        };
        let Some((channel, message)) = found else {
            return;
        };
        let button = ApproveAllButton::new(run_id, "");
        let edit = EditMessage::new()
            .content(text)
            .components(approve_all_buttons(&button, false))
            .allowed_mentions(CreateAllowedMentions::new());
        if let Err(e) = retry(
            self.paced(Write::Edit, channel),
            "closing the whole plan",
            || channel.edit_message(&self.http, message, edit.clone()),
        )
        .await
        {
            warn!(message = %message, error = ?e, "gave up closing the whole plan");
        }
    }
}

impl DiscordFrontend {
    /// The run's whole-plan message in its thread with Approve all still enabled (posted
    /// before a restart, so this process does not know it).
    async fn find_up_front(
        &self,
        thread: ChannelId,
        run_id: Uuid,
    ) -> Option<(ChannelId, MessageId)> {
        let msgs = self.recent_messages(thread, "the whole plan").await;
        msgs.iter()
            .find(|m| approve_all_button(m).is_some_and(|(b, open)| open && b.run_id == run_id))
            .map(|m| (thread, m.id))
    }
}

/// The Approve all button of a message, if it has one, and whether it can still be clicked.
fn approve_all_button(m: &Message) -> Option<(ApproveAllButton, bool)> {
    our_button(m, ApproveAllButton::decode)
}

/// The Approve all button of a run's whole plan.
fn approve_all_buttons(button: &ApproveAllButton, enabled: bool) -> Vec<CreateActionRow> {
    vec![CreateActionRow::Buttons(vec![
        CreateButton::new(button.encode())
            .label("Approve all")
            .style(ButtonStyle::Success)
            .disabled(!enabled),
    ])]
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
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
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
    our_button(m, ApprovalButton::decode)
}

/// The first button of a message whose custom_id `decode` reads, and whether it is enabled.
fn our_button<T>(m: &Message, decode: impl Fn(&str) -> Option<T>) -> Option<(T, bool)> {
    use serenity::all::ActionRowComponent;
    m.components
        .iter()
        .flat_map(|row| &row.components)
        .find_map(|c| match c {
            ActionRowComponent::Button(b) => match &b.data {
                serenity::all::ButtonKind::NonLink { custom_id, .. } => {
                    decode(custom_id).map(|x| (x, !b.disabled))
                }
                _ => None,
            },
            _ => None,
        })
}
