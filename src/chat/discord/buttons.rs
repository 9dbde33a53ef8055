//! Approve and Reject clicks: acknowledged at once (Reject by opening a form for the reason),
//! checked against the approver roles and the two-person rule, refused ephemerally (and
//! audited), or handed to the engine.

use serde_json::json;
use serenity::all::{
    Builder as _, ChannelId, ComponentInteraction, CreateActionRow, CreateAllowedMentions,
    CreateInputText, CreateInteractionResponse, CreateInteractionResponseFollowup, CreateModal,
    InputTextStyle, MessageId, ModalInteraction, RoleId,
};
use tracing::{info, warn};

use super::Data;
use super::custom_id::{ApprovalButton, ApproveAllButton};
use crate::frontend::{Actor, Decision};
use crate::messages::{self, ApprovalRefusal};
use crate::state::audit::{AuditKind, NewEvent};

/// Who may decide, given the clicker's roles and the run's starter.
pub fn check_decider(
    approve: bool,
    clicker: &str,
    roles: &[RoleId],
    approver_roles: &[u64],
    started_by: &str,
    two_person_rule: bool,
) -> Result<(), ApprovalRefusal> {
    if !roles.iter().any(|r| approver_roles.contains(&r.get())) {
        return Err(ApprovalRefusal::NotApprover);
    }
    if approve && two_person_rule && clicker == started_by {
        return Err(ApprovalRefusal::SelfApproval);
    }
    Ok(())
}

pub async fn on_click(
    ctx: &serenity::all::Context,
    data: &Data,
    c: &ComponentInteraction,
) -> anyhow::Result<()> {
    if let Some(all) = ApproveAllButton::decode(&c.data.custom_id) {
        return on_approve_all(ctx, data, c, &all).await;
    }
    let Some(button) = ApprovalButton::decode(&c.data.custom_id) else {
        c.defer(&ctx.http).await?;
        warn!(
            custom_id = c.data.custom_id,
            "a click on a component this bot does not know"
        );
        return Ok(());
    };
    let roles: &[RoleId] = c.member.as_ref().map(|m| m.roles.as_slice()).unwrap_or(&[]);
    let approver_roles = &data.frontend.config().approver_role_ids;
    // Reject by an approver opens the form for the reason. A form must be the first answer to
    // the click, so only what needs no I/O is checked first (the role); the rest is checked
    // when the form comes back.
    if !button.approve && check_decider(false, "", roles, approver_roles, "", false).is_ok() {
        c.create_response(
            &ctx.http,
            CreateInteractionResponse::Modal(reject_form(&button)),
        )
        .await?;
        return Ok(());
    }
    // Acknowledge first: Discord's 3 seconds hold whatever the database does next.
    c.defer(&ctx.http).await?;
    let click = Click {
        actor: actor_of(&c.user),
        roles,
        channel: c.channel_id,
        message: c.message.id,
        token: &c.token,
        how: "discord button",
    };
    decide(ctx, data, &button, &click, None).await
}

/// A click on Approve all: checked as an Approve click is (approver role, two-person rule),
/// then the engine approves each plan of the whole plan that is still to be applied.
async fn on_approve_all(
    ctx: &serenity::all::Context,
    data: &Data,
    c: &ComponentInteraction,
    button: &ApproveAllButton,
) -> anyhow::Result<()> {
    c.defer(&ctx.http).await?;
    let roles: &[RoleId] = c.member.as_ref().map(|m| m.roles.as_slice()).unwrap_or(&[]);
    let actor = actor_of(&c.user);
    let cfg = data.frontend.config();
    let run = data.engine.run_record(button.run_id).await?;
    let checked = match &run {
        None => Err(ApprovalRefusal::RunOver("unknown".into())),
        Some(run) => check_decider(
            true,
            &actor.id,
            roles,
            &cfg.approver_role_ids,
            &run.started_by,
            cfg.two_person_rule,
        ),
    };
    let verdict = match checked {
        Err(r) => Err(r),
        Ok(()) => {
            let decision = Decision {
                approved: true,
                actor: actor.clone(),
                how: "discord approve all".into(),
                reason: None,
            };
            data.frontend
                .deliver_all(button, decision, &data.engine)
                .await?
        }
    };
    match verdict {
        Ok(steps) => {
            info!(run_id = %button.run_id, actor = actor.id, ?steps, "approve all");
            let keep_open = steps.iter().any(|s| data.engine.approvals_required(s) > 1);
            data.frontend
                .show_approved_all(
                    c.channel_id,
                    c.message.id,
                    button,
                    &actor,
                    &steps,
                    keep_open,
                )
                .await;
        }
        Err(refusal) => {
            data.engine
                .audit(NewEvent {
                    run_id: run.as_ref().map(|r| r.id),
                    subject: run
                        .as_ref()
                        .map(|r| r.subject.clone())
                        .unwrap_or_else(|| button.run_id.to_string()),
                    step: None,
                    actor: actor.id.clone(),
                    kind: AuditKind::ApprovalRefused,
                    outcome: refusal.key().into(),
                    detail: json!({
                        "action": "approve all",
                        "up_front_hash_prefix": button.hash_prefix,
                        "actor_name": actor.display,
                    }),
                    duration_ms: None,
                })
                .await?;
            info!(run_id = %button.run_id, actor = actor.id, refusal = refusal.key(), "approve all refused");
            CreateInteractionResponseFollowup::new()
                .content(messages::approval_refused(&refusal))
                .ephemeral(true)
                .allowed_mentions(CreateAllowedMentions::new())
                .execute(&ctx.http, (None, c.token.as_str()))
                .await?;
        }
    }
    Ok(())
}

/// A submitted reject form: the rejection, with its reason, decided as a click would be.
pub async fn on_reject_form(
    ctx: &serenity::all::Context,
    data: &Data,
    m: &ModalInteraction,
    button: &ApprovalButton,
) -> anyhow::Result<()> {
    // The form came from the approval message: acknowledging updates that message.
    m.defer(&ctx.http).await?;
    let Some(message) = m.message.as_ref().map(|msg| msg.id) else {
        warn!(
            custom_id = m.data.custom_id,
            "a reject form with no message behind it"
        );
        return Ok(());
    };
    let roles: &[RoleId] = m.member.as_ref().map(|m| m.roles.as_slice()).unwrap_or(&[]);
    let click = Click {
        actor: actor_of(&m.user),
        roles,
        channel: m.channel_id,
        message,
        token: &m.token,
        how: "discord reject form",
    };
    let reason = super::commands::modal_value(m, REASON_INPUT).unwrap_or_default();
    decide(ctx, data, button, &click, Some(reason)).await
}

/// The custom_id of the reject form's text input.
const REASON_INPUT: &str = "reason";

/// The form Reject opens: one required paragraph, the reason.
fn reject_form(button: &ApprovalButton) -> CreateModal {
    CreateModal::new(
        button.encode_reject_form(),
        messages::reject_form_title(&button.step),
    )
    .components(vec![CreateActionRow::InputText(
        CreateInputText::new(
            InputTextStyle::Paragraph,
            messages::REJECT_REASON_LABEL,
            REASON_INPUT,
        )
        .placeholder(messages::REJECT_REASON_PLACEHOLDER)
        .min_length(1)
        .max_length(messages::REJECT_REASON_MAX as u16)
        .required(true),
    )])
}

fn actor_of(user: &serenity::all::User) -> Actor {
    Actor {
        id: format!("discord:{}", user.id),
        display: user.name.clone(),
    }
}

/// Who clicked, where, and the interaction to answer on.
struct Click<'a> {
    actor: Actor,
    roles: &'a [RoleId],
    channel: ChannelId,
    message: MessageId,
    token: &'a str,
    how: &'static str,
}

/// A decision on the plan of `button` (a rejection with its `reason`): checked against the
/// roles and the two-person rule, then handed to the engine; a refusal is audited and told
/// only to the clicker.
async fn decide(
    ctx: &serenity::all::Context,
    data: &Data,
    button: &ApprovalButton,
    click: &Click<'_>,
    reason: Option<String>,
) -> anyhow::Result<()> {
    let actor = &click.actor;
    let run = data.engine.run_record(button.run_id).await?;
    let cfg = data.frontend.config();
    let reason = reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    let checked = match &run {
        None => Err(ApprovalRefusal::RunOver("unknown".into())),
        Some(run) => check_decider(
            button.approve,
            &actor.id,
            click.roles,
            &cfg.approver_role_ids,
            &run.started_by,
            cfg.two_person_rule,
        ),
    }
    .and_then(|()| {
        if button.approve || reason.is_some() {
            Ok(())
        } else {
            Err(ApprovalRefusal::NoReason)
        }
    });
    let verdict = match checked {
        Err(r) => Err(r),
        Ok(()) => {
            let decision = Decision {
                approved: button.approve,
                actor: actor.clone(),
                how: click.how.into(),
                reason: reason.clone(),
            };
            data.frontend
                .deliver(button, decision, &data.engine)
                .await?
        }
    };
    match verdict {
        Ok(d) if !d.closes => {
            info!(run_id = %button.run_id, step = button.step, actor = actor.id, approvals = d.approved_by.len(), required = d.required, "approval counted; the plan waits for more approvers");
            data.frontend
                .show_partial(click.channel, click.message, &d)
                .await;
        }
        Ok(d) => {
            info!(run_id = %button.run_id, step = button.step, approved = button.approve, actor = actor.id, "decision taken");
            if button.approve && d.required > 1 {
                data.frontend
                    .show_quorum_met(click.channel, click.message, button, &d)
                    .await;
            } else {
                data.frontend
                    .show_decided(
                        click.channel,
                        click.message,
                        button,
                        button.approve,
                        actor,
                        reason.as_deref(),
                    )
                    .await;
            }
        }
        Err(refusal) => {
            let subject = run
                .as_ref()
                .map(|r| r.subject.clone())
                .unwrap_or_else(|| button.run_id.to_string());
            data.engine
                .audit(NewEvent {
                    run_id: run.as_ref().map(|r| r.id),
                    subject,
                    step: Some(button.step.clone()),
                    actor: actor.id.clone(),
                    kind: AuditKind::ApprovalRefused,
                    outcome: refusal.key().into(),
                    detail: json!({
                        "action": if button.approve { "approve" } else { "reject" },
                        "plan_hash_prefix": button.hash_prefix,
                        "how": click.how,
                        "actor_name": actor.display,
                    }),
                    duration_ms: None,
                })
                .await?;
            if matches!(
                refusal,
                ApprovalRefusal::Stale | ApprovalRefusal::RunOver(_)
            ) {
                data.frontend
                    .show_superseded(click.channel, click.message, button)
                    .await;
            }
            info!(run_id = %button.run_id, step = button.step, actor = actor.id, refusal = refusal.key(), "click refused");
            CreateInteractionResponseFollowup::new()
                .content(messages::approval_refused(&refusal))
                .ephemeral(true)
                .allowed_mentions(CreateAllowedMentions::new())
                .execute(&ctx.http, (None, click.token))
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvers_only_and_never_ones_own_run() {
        let approver = [RoleId::new(20)];
        let ok = |approve, who: &str, roles: &[RoleId], two| {
            check_decider(approve, who, roles, &[20], "discord:1", two)
        };
        assert_eq!(ok(true, "discord:2", &approver, true), Ok(()));
        assert_eq!(
            ok(true, "discord:2", &[RoleId::new(21)], true),
            Err(ApprovalRefusal::NotApprover)
        );
        assert_eq!(
            ok(false, "discord:2", &[], true),
            Err(ApprovalRefusal::NotApprover)
        );
        assert_eq!(
            ok(true, "discord:1", &approver, true),
            Err(ApprovalRefusal::SelfApproval)
        );
        assert_eq!(ok(true, "discord:1", &approver, false), Ok(()));
        assert_eq!(
            ok(false, "discord:1", &approver, true),
            Ok(()),
            "rejecting one's own run is allowed"
        );
    }
}
