//! Who may use the bot's commands in Discord. Two layers:
//!
//! - **Registration** ([`COMMAND_PERMISSIONS`]): every command is registered with
//!   `default_member_permissions`, so the guild shows it only to members with Manage Server
//!   (and administrators) until a server admin allows the ops roles in the guild's integration
//!   settings. That is Discord's visibility, which any server admin can widen.
//! - **The bot's own check** ([`operators_only`], a poise check): the authority. A command that
//!   starts, resumes or cancels a run, or shows runs, plans or the audit trail, runs only for a
//!   member with one of `discord.operator_role_ids` or `discord.approver_role_ids`; anyone else
//!   gets an ephemeral refusal, recorded in the audit trail as `command.refused`, and nothing
//!   starts. `/dns-check` and `/cert status` have no such check: they answer from public DNS
//!   and TLS only, what anyone on the internet can look up.

use serde_json::json;
use serenity::all::{
    CreateAutocompleteResponse, CreateInteractionResponse, Permissions, ResolvedValue, RoleId,
};
use tracing::info;

use super::{Data, Error};
use crate::config::DiscordConfig;
use crate::frontend::Actor;
use crate::messages;

/// The `default_member_permissions` every command is registered with: Manage Server, which
/// the people running a guild have and its ordinary members do not.
pub const COMMAND_PERMISSIONS: Permissions = Permissions::MANAGE_GUILD;

/// Options whose value says what a refused command was about (the audit event's subject).
const SUBJECT_OPTIONS: &[&str] = &["slug", "domain", "run", "subject"];

/// Whether a member with `roles` is on the ops team: an operator, or an approver.
pub fn is_operator(roles: &[RoleId], cfg: &DiscordConfig) -> bool {
    roles.iter().any(|r| {
        cfg.operator_role_ids.contains(&r.get()) || cfg.approver_role_ids.contains(&r.get())
    })
}

/// The poise check on every command that starts, resumes or cancels a run or reads runs.
/// Refuses (ephemerally, audited) anyone not on the ops team; for an autocomplete it answers
/// with no suggestions (the org slugs are not theirs to list).
pub async fn operators_only(ctx: poise::Context<'_, Data, Error>) -> Result<bool, Error> {
    // The bot registers slash commands only.
    let poise::Context::Application(actx) = ctx else {
        return Ok(false);
    };
    let roles: &[RoleId] = actx
        .interaction
        .member
        .as_ref()
        .map(|m| m.roles.as_slice())
        .unwrap_or(&[]);
    let data = ctx.data();
    if is_operator(roles, data.frontend.config()) {
        return Ok(true);
    }
    if actx.interaction_type == poise::CommandInteractionType::Autocomplete {
        let empty = CreateInteractionResponse::Autocomplete(CreateAutocompleteResponse::new());
        actx.interaction.create_response(ctx.http(), empty).await?;
        return Ok(false);
    }
    // Acknowledged first: the audit write holds Discord's 3 seconds otherwise.
    ctx.defer_ephemeral().await?;
    let command = ctx.command().qualified_name.to_string();
    let actor = Actor {
        id: format!("discord:{}", ctx.author().id),
        display: ctx.author().name.clone(),
    };
    let subject = actx
        .args
        .iter()
        .find(|o| SUBJECT_OPTIONS.contains(&o.name))
        .and_then(|o| match &o.value {
            ResolvedValue::String(s) => Some(s.trim()),
            _ => None,
        })
        .filter(|s| !s.is_empty())
        .map(|s| s.chars().take(100).collect::<String>())
        .unwrap_or_else(|| "discord".into());
    data.engine
        .record_command_refused(
            &actor,
            &command,
            &subject,
            "not_operator",
            json!({
                "actor_name": actor.display,
                "roles": roles.iter().map(|r| r.get().to_string()).collect::<Vec<_>>(),
            }),
        )
        .await?;
    info!(
        command,
        actor = actor.id,
        "command refused: not an operator"
    );
    ctx.send(
        poise::CreateReply::default()
            .content(messages::command_refused(&command))
            .ephemeral(true),
    )
    .await?;
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_and_approvers_are_on_the_team_nobody_else() {
        let cfg = DiscordConfig {
            token: "t".to_owned().into(),
            guild_id: 1,
            ops_channel_id: 2,
            approver_role_ids: vec![20],
            operator_role_ids: vec![30, 31],
            two_person_rule: true,
            api_base: "https://discord.com".into(),
            audit_channel_id: None,
        };
        let ok = |roles: &[u64]| {
            let roles: Vec<RoleId> = roles.iter().map(|r| RoleId::new(*r)).collect();
            is_operator(&roles, &cfg)
        };
        assert!(ok(&[30]) && ok(&[5, 31]) && ok(&[20]));
        assert!(!ok(&[]) && !ok(&[5, 6]));
        let no_operators = DiscordConfig {
            operator_role_ids: vec![],
            ..cfg.clone()
        };
        assert!(is_operator(&[RoleId::new(20)], &no_operators));
        assert!(!is_operator(&[RoleId::new(30)], &no_operators));
    }
}
