//! Approve and Reject clicks: acknowledged at once, checked against the approver roles and the
//! two-person rule, refused ephemerally (and audited), or handed to the engine.

use serde_json::json;
use serenity::all::{
    ComponentInteraction, CreateAllowedMentions, CreateInteractionResponseFollowup, RoleId,
};
use tracing::{info, warn};

use super::Data;
use super::custom_id::ApprovalButton;
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
    // Acknowledge first: Discord's 3 seconds hold whatever the database does next.
    c.defer(&ctx.http).await?;
    let Some(button) = ApprovalButton::decode(&c.data.custom_id) else {
        warn!(
            custom_id = c.data.custom_id,
            "a click on a component this bot does not know"
        );
        return Ok(());
    };
    let actor = Actor {
        id: format!("discord:{}", c.user.id),
        display: c.user.name.clone(),
    };
    let roles: &[RoleId] = c.member.as_ref().map(|m| m.roles.as_slice()).unwrap_or(&[]);
    let run = data.engine.run_record(button.run_id).await?;
    let cfg = data.frontend.config();
    let checked = match &run {
        None => Err(ApprovalRefusal::RunOver("unknown".into())),
        Some(run) => check_decider(
            button.approve,
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
                approved: button.approve,
                actor: actor.clone(),
                how: "discord button".into(),
                reason: (!button.approve)
                    .then(|| format!("rejected in Discord by {}", actor.display)),
            };
            data.frontend
                .deliver(&button, decision, &data.engine)
                .await?
        }
    };
    match verdict {
        Ok(()) => {
            info!(run_id = %button.run_id, step = button.step, approved = button.approve, actor = actor.id, "decision taken");
            data.frontend
                .show_decided(c.channel_id, c.message.id, &button, button.approve, &actor)
                .await;
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
                        "how": "discord button",
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
                    .show_superseded(c.channel_id, c.message.id, &button)
                    .await;
            }
            info!(run_id = %button.run_id, step = button.step, actor = actor.id, refusal = refusal.key(), "click refused");
            c.create_followup(
                &ctx.http,
                CreateInteractionResponseFollowup::new()
                    .content(messages::approval_refused(&refusal))
                    .ephemeral(true)
                    .allowed_mentions(CreateAllowedMentions::new()),
            )
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
