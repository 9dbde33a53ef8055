//! JSON payloads shaped like Discord's, plus `ensure_parses` to check each one against
//! serenity's own model types (serenity silently drops gateway events it cannot deserialize,
//! so every payload the fake emits is round-tripped through serenity first).

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use serenity::all::Permissions;

pub const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;
pub const ATTACHMENT_SIZE_LIMIT: u64 = 26_214_400;

pub fn now_ts() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Deserialize `v` as serenity's `T`, or explain what failed and on which payload.
pub fn ensure_parses<T: DeserializeOwned>(what: &str, v: &Value) -> Result<T, String> {
    serde_json::from_value::<T>(v.clone()).map_err(|e| {
        let mut text = v.to_string();
        if text.len() > 4000 {
            let cut = (0..=4000)
                .rev()
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(0);
            text.truncate(cut);
        }
        format!(
            "[fake-bug] the fake built a {what} that serenity 0.12.5 cannot deserialize as {}: \
             {e}\npayload: {text}",
            std::any::type_name::<T>()
        )
    })
}

pub fn s(id: u64) -> Value {
    Value::String(id.to_string())
}

pub fn user(id: u64, name: &str, bot: bool) -> Value {
    json!({
        "id": s(id),
        "username": name,
        "discriminator": "0",
        "global_name": if bot { Value::Null } else { Value::String(name.to_string()) },
        "avatar": null,
        "bot": bot,
        "system": false,
        "banner": null,
        "accent_color": null,
        "public_flags": 0,
        "flags": 0,
    })
}

/// A guild member object. `with_user` is false inside `resolved.members`, which omits it.
pub fn member(user: &Value, roles: &[u64], joined_at: &str, permissions: Option<u64>) -> Value {
    let mut m = json!({
        "user": user,
        "nick": null,
        "avatar": null,
        "banner": null,
        "roles": roles.iter().map(|r| s(*r)).collect::<Vec<_>>(),
        "joined_at": joined_at,
        "premium_since": null,
        "deaf": false,
        "mute": false,
        "flags": 0,
        "pending": false,
        "communication_disabled_until": null,
    });
    if let Some(p) = permissions {
        m["permissions"] = Value::String(p.to_string());
    }
    m
}

pub fn role(id: u64, name: &str, position: u64, permissions: u64, managed: bool) -> Value {
    json!({
        "id": s(id),
        "name": name,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": null, "tertiary_color": null},
        "hoist": false,
        "icon": null,
        "unicode_emoji": null,
        "position": position,
        "permissions": permissions.to_string(),
        "managed": managed,
        "mentionable": false,
        "flags": 0,
    })
}

pub fn text_channel(id: u64, guild_id: u64, name: &str, position: u64) -> Value {
    json!({
        "id": s(id),
        "type": 0,
        "guild_id": s(guild_id),
        "name": name,
        "position": position,
        "permission_overwrites": [],
        "topic": null,
        "nsfw": false,
        "last_message_id": null,
        "rate_limit_per_user": 0,
        "parent_id": null,
        "last_pin_timestamp": null,
        "flags": 0,
    })
}

#[allow(clippy::too_many_arguments)]
pub fn thread(
    id: u64,
    guild_id: u64,
    parent_id: u64,
    owner_id: u64,
    name: &str,
    kind: u64,
    auto_archive_duration: u64,
    invitable: Option<bool>,
) -> Value {
    let ts = now_ts();
    let mut meta = json!({
        "archived": false,
        "auto_archive_duration": auto_archive_duration,
        "archive_timestamp": ts,
        "locked": false,
        "create_timestamp": ts,
    });
    if kind == 12 {
        meta["invitable"] = Value::Bool(invitable.unwrap_or(true));
    }
    json!({
        "id": s(id),
        "type": kind,
        "guild_id": s(guild_id),
        "parent_id": s(parent_id),
        "owner_id": s(owner_id),
        "name": name,
        "last_message_id": null,
        "message_count": 0,
        "member_count": 0,
        "rate_limit_per_user": 0,
        "thread_metadata": meta,
        "total_message_sent": 0,
        "flags": 0,
    })
}

pub fn dm_channel(id: u64, recipient: &Value) -> Value {
    json!({
        "id": s(id),
        "type": 1,
        "last_message_id": null,
        "recipients": [recipient],
        "flags": 0,
    })
}

/// Everything in a guild object that the GUILD_CREATE / GET guild payloads share.
pub fn guild_base(id: u64, name: &str, owner_id: u64, roles: &[Value]) -> Value {
    json!({
        "id": s(id),
        "name": name,
        "icon": null,
        "icon_hash": null,
        "splash": null,
        "discovery_splash": null,
        "owner_id": s(owner_id),
        "afk_channel_id": null,
        "afk_timeout": 300,
        "widget_enabled": false,
        "widget_channel_id": null,
        "verification_level": 0,
        "default_message_notifications": 1,
        "explicit_content_filter": 0,
        "roles": roles,
        "emojis": [],
        "features": [],
        "mfa_level": 0,
        "application_id": null,
        "system_channel_id": null,
        "system_channel_flags": 0,
        "rules_channel_id": null,
        "max_presences": null,
        "max_members": 500000,
        "vanity_url_code": null,
        "description": null,
        "banner": null,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": null,
        "max_video_channel_users": 25,
        "max_stage_video_channel_users": 50,
        "nsfw_level": 0,
        "stickers": [],
        "premium_progress_bar_enabled": false,
        "safety_alerts_channel_id": null,
        "incidents_data": null,
    })
}

pub fn guild_create(
    base: &Value,
    joined_at: &str,
    members: &[Value],
    channels: &[Value],
    threads: &[Value],
) -> Value {
    let mut g = base.clone();
    let extra = json!({
        "joined_at": joined_at,
        "large": false,
        "unavailable": false,
        "member_count": members.len(),
        "voice_states": [],
        "members": members,
        "channels": channels,
        "threads": threads,
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
    });
    for (k, v) in extra.as_object().expect("object") {
        g[k] = v.clone();
    }
    g
}

pub fn application(id: u64, owner: &Value, bot: &Value) -> Value {
    json!({
        "id": s(id),
        "name": "onboard-bot (fake)",
        "icon": null,
        "description": "",
        "summary": "",
        "type": null,
        "hook": true,
        "bot_public": false,
        "bot_require_code_grant": false,
        "verify_key": "0".repeat(64),
        "flags": 0,
        "owner": owner,
        "team": null,
        "bot": bot,
        "redirect_uris": [],
        "interactions_endpoint_url": null,
        "install_params": null,
        "integration_types_config": {"0": {}},
        "tags": [],
        "approximate_guild_count": 1,
    })
}

/// The permissions the fake's roles get.
pub fn everyone_permissions() -> u64 {
    (Permissions::VIEW_CHANNEL
        | Permissions::SEND_MESSAGES
        | Permissions::SEND_MESSAGES_IN_THREADS
        | Permissions::READ_MESSAGE_HISTORY
        | Permissions::ADD_REACTIONS
        | Permissions::USE_APPLICATION_COMMANDS
        | Permissions::EMBED_LINKS
        | Permissions::ATTACH_FILES
        | Permissions::CREATE_PUBLIC_THREADS)
        .bits()
}

pub fn bot_role_permissions() -> u64 {
    (Permissions::from_bits_truncate(everyone_permissions())
        | Permissions::CREATE_PRIVATE_THREADS
        | Permissions::MANAGE_THREADS
        | Permissions::MANAGE_MESSAGES
        | Permissions::MENTION_EVERYONE)
        .bits()
}
