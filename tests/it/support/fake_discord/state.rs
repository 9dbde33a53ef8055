//! The fake's in-memory model of one Discord guild as seen by one bot.
//!
//! Everything here is synchronous and runs under one `std::sync::Mutex` (never held across an
//! `.await`); every mutation bumps a `watch` counter that test waiters and gateway connections
//! listen to.

use super::fixtures::{self, ensure_parses, s};
use serde_json::{Value, json};
use serenity::all::{Event, GatewayEvent};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Discord's deadline for acknowledging an interaction.
pub const ACK_DEADLINE: Duration = Duration::from_secs(3);

/// Gateway intent bits the fake honours when deciding what to dispatch.
pub const INTENT_GUILDS: u64 = 1 << 0;
pub const INTENT_GUILD_MEMBERS: u64 = 1 << 1;
pub const INTENT_GUILD_MESSAGES: u64 = 1 << 9;
pub const INTENT_DIRECT_MESSAGES: u64 = 1 << 12;

/// Fixed ids of the world every fake starts with.
#[derive(Debug, Clone, Copy)]
pub struct Ids {
    pub application: u64,
    /// The bot user (same id as the application, as for modern bots).
    pub bot_user: u64,
    pub guild: u64,
    /// `@everyone` has the guild's id.
    pub everyone_role: u64,
    pub approver_role: u64,
    /// May start, resume and cancel runs (the bot's `discord.operator_role_ids`).
    pub operator_role: u64,
    pub bot_role: u64,
    pub ops_channel: u64,
    pub general_channel: u64,
    pub owner: u64,
    pub approver: u64,
    pub member: u64,
    pub requester: u64,
}

impl Default for Ids {
    fn default() -> Self {
        Ids {
            application: 1_100_000_000_000_000_001,
            bot_user: 1_100_000_000_000_000_001,
            guild: 1_100_000_000_000_000_010,
            everyone_role: 1_100_000_000_000_000_010,
            approver_role: 1_100_000_000_000_000_020,
            bot_role: 1_100_000_000_000_000_021,
            operator_role: 1_100_000_000_000_000_022,
            ops_channel: 1_100_000_000_000_000_030,
            general_channel: 1_100_000_000_000_000_031,
            owner: 1_100_000_000_000_000_043,
            approver: 1_100_000_000_000_000_040,
            member: 1_100_000_000_000_000_041,
            requester: 1_100_000_000_000_000_042,
        }
    }
}

#[derive(Debug, Clone)]
pub struct UserRec {
    pub id: u64,
    pub name: String,
    pub bot: bool,
    pub roles: Vec<u64>,
    pub joined_at: String,
}

#[derive(Debug, Clone)]
pub struct RoleRec {
    pub id: u64,
    pub name: String,
    pub position: u64,
    pub permissions: u64,
    pub managed: bool,
}

#[derive(Debug, Clone)]
pub struct Upload {
    pub filename: String,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct MessageRec {
    /// The message as Discord would return it.
    pub json: Value,
    pub uploads: Vec<Upload>,
    pub deleted: bool,
    /// Every version of the message (first = as created).
    pub history: Vec<Value>,
    pub reactions_by_bot: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub struct CallbackRec {
    pub kind: u64,
    pub data: Value,
    /// From the INTERACTION_CREATE leaving the fake to the callback arriving.
    pub latency: Duration,
}

#[derive(Debug, Clone)]
pub struct InteractionRec {
    pub id: u64,
    pub token: String,
    /// 2 command, 3 component, 4 autocomplete, 5 modal submit.
    pub kind: u64,
    pub user: u64,
    pub channel: u64,
    /// What the interaction is about: command name, or custom_id.
    pub label: String,
    /// The message a component/modal-from-component interaction belongs to.
    pub source_message: Option<u64>,
    pub created_at: Instant,
    /// When the gateway actually wrote the INTERACTION_CREATE (None = not yet delivered).
    pub sent_at: Option<Instant>,
    pub callback: Option<CallbackRec>,
    pub original_message: Option<u64>,
    pub followups: Vec<u64>,
    pub allow_unacknowledged: bool,
    pub late_reported: bool,
    /// `interaction_metadata` for messages created in response to this interaction.
    pub metadata: Value,
}

impl InteractionRec {
    pub fn clock_start(&self) -> Instant {
        self.sent_at.unwrap_or(self.created_at)
    }
}

#[derive(Debug, Clone)]
pub struct Fault {
    pub remaining: usize,
    pub status: u16,
    /// Matched against the path after `/api/v10`, e.g. `/channels/`.
    pub path_prefix: Option<String>,
    /// For 429: seconds in `retry_after` / `Retry-After`.
    pub retry_after: f64,
    pub global: bool,
}

#[derive(Debug, Clone)]
pub struct RequestRec {
    pub method: String,
    /// Path after `/api/v10`.
    pub path: String,
    pub query: Option<String>,
    pub operation_id: Option<String>,
    /// JSON body, or for multipart `{"payload_json": …, "files": [names]}`; Null if none.
    pub body: Value,
    pub status: u16,
    pub at: Instant,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GatewayLog {
    Connected {
        conn: u64,
        query: String,
    },
    Identify {
        conn: u64,
        intents: u64,
        session: String,
    },
    Resume {
        conn: u64,
        session: String,
        seq: u64,
        accepted: bool,
    },
    ReadySent {
        conn: u64,
        session: String,
    },
    ResumedSent {
        conn: u64,
        session: String,
    },
    ClosedByFake {
        conn: u64,
        code: u16,
    },
    Disconnected {
        conn: u64,
    },
}

#[derive(Debug, Default)]
pub struct Session {
    pub id: String,
    pub intents: u64,
    /// Full dispatch payloads; the one at index i has `s` = i + 1.
    pub events: Vec<Value>,
}

#[derive(Debug, Default)]
pub struct Gateway {
    pub sessions: HashMap<String, Session>,
    pub current: Option<String>,
    /// Dispatches made before any session was identified: (t, d, intent).
    pub pending: Vec<(String, Value, Option<u64>)>,
    pub log: Vec<GatewayLog>,
    pub next_conn: u64,
    /// Connections started before this generation must close (see `drop_gateway`).
    pub close_generation: u64,
    pub close_code: u16,
    pub heartbeats: u64,
    pub identify_payloads: Vec<Value>,
}

pub struct State {
    pub ids: Ids,
    pub token: String,
    pub ws_url: String,
    next_counter: u64,
    id_base: u64,
    pub users: BTreeMap<u64, UserRec>,
    pub roles: BTreeMap<u64, RoleRec>,
    /// Guild channels, threads and DM channels, as Discord returns them.
    pub channels: BTreeMap<u64, Value>,
    pub thread_members: HashMap<u64, BTreeSet<u64>>,
    pub messages: BTreeMap<u64, MessageRec>,
    pub interactions: Vec<InteractionRec>,
    /// Registered application commands (guild ones have `guild_id`).
    pub commands: Vec<Value>,
    pub violations: Vec<String>,
    pub requests: Vec<RequestRec>,
    pub faults: Vec<Fault>,
    pub gateway: Gateway,
    pub reject_invalid: bool,
    /// Discord's per-route and global rate limits (see `ratelimit.rs`).
    pub rate_limits: super::ratelimit::RateLimits,
    pub started_at: Instant,
    pub guild_joined_at: String,
    /// The guild's integration settings for this app's commands (Server Settings >
    /// Integrations): role or user ids allowed to use them whatever their
    /// `default_member_permissions` say, for every command (`None`) or one by name.
    pub command_overrides: Vec<(Option<String>, u64)>,
}

impl State {
    pub fn new(ids: Ids, token: String, ws_url: String) -> State {
        let now_ms = chrono::Utc::now().timestamp_millis() as u64;
        let joined = fixtures::now_ts();
        let mut st = State {
            ids,
            token,
            ws_url,
            next_counter: 0,
            id_base: (now_ms - fixtures::DISCORD_EPOCH_MS) << 22,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
            channels: BTreeMap::new(),
            thread_members: HashMap::new(),
            messages: BTreeMap::new(),
            interactions: Vec::new(),
            commands: Vec::new(),
            violations: Vec::new(),
            requests: Vec::new(),
            faults: Vec::new(),
            gateway: Gateway {
                close_code: 4000,
                ..Default::default()
            },
            reject_invalid: false,
            rate_limits: Default::default(),
            started_at: Instant::now(),
            guild_joined_at: joined.clone(),
            // As the docs tell a server admin to set up: the ops roles may use every command.
            command_overrides: vec![(None, ids.operator_role), (None, ids.approver_role)],
        };
        let role = |id, name: &str, position, permissions, managed| RoleRec {
            id,
            name: name.to_string(),
            position,
            permissions,
            managed,
        };
        st.roles.insert(
            ids.everyone_role,
            role(
                ids.everyone_role,
                "@everyone",
                0,
                fixtures::everyone_permissions(),
                false,
            ),
        );
        st.roles.insert(
            ids.approver_role,
            role(
                ids.approver_role,
                "approver",
                1,
                fixtures::everyone_permissions(),
                false,
            ),
        );
        st.roles.insert(
            ids.operator_role,
            role(
                ids.operator_role,
                "operator",
                1,
                fixtures::everyone_permissions(),
                false,
            ),
        );
        st.roles.insert(
            ids.bot_role,
            role(
                ids.bot_role,
                "onboard-bot",
                2,
                fixtures::bot_role_permissions(),
                true,
            ),
        );
        let user = |id, name: &str, bot, roles: Vec<u64>| UserRec {
            id,
            name: name.to_string(),
            bot,
            roles,
            joined_at: joined.clone(),
        };
        for u in [
            user(ids.bot_user, "onboard-bot", true, vec![ids.bot_role]),
            user(ids.owner, "owner", false, vec![]),
            user(ids.approver, "approver", false, vec![ids.approver_role]),
            user(ids.member, "member", false, vec![]),
            user(ids.requester, "requester", false, vec![ids.operator_role]),
        ] {
            st.users.insert(u.id, u);
        }
        st.channels.insert(
            ids.ops_channel,
            fixtures::text_channel(ids.ops_channel, ids.guild, "ops", 0),
        );
        st.channels.insert(
            ids.general_channel,
            fixtures::text_channel(ids.general_channel, ids.guild, "general", 1),
        );
        st
    }

    pub fn next_id(&mut self) -> u64 {
        self.next_counter += 1;
        self.id_base + self.next_counter
    }

    pub fn violate(&mut self, v: impl Into<String>) {
        self.violations.push(v.into());
    }

    // ----- users, members, roles -------------------------------------------------------------

    pub fn user_json(&self, id: u64) -> Value {
        match self.users.get(&id) {
            Some(u) => fixtures::user(u.id, &u.name, u.bot),
            None => fixtures::user(id, &format!("unknown-{id}"), false),
        }
    }

    pub fn permissions_of(&self, user: u64) -> u64 {
        if user == self.ids.owner {
            return serenity::all::Permissions::all().bits();
        }
        let Some(u) = self.users.get(&user) else {
            return 0;
        };
        let mut p = self
            .roles
            .get(&self.ids.everyone_role)
            .map_or(0, |r| r.permissions);
        for r in &u.roles {
            p |= self.roles.get(r).map_or(0, |r| r.permissions);
        }
        p
    }

    /// Whether Discord lets `user` use the registered command `cmd`: its
    /// `default_member_permissions` (none: everyone; `"0"`: administrators only), widened by
    /// the guild's integration overrides. Administrators and the owner may always.
    pub fn may_use_command(&self, user: u64, cmd: &Value) -> Result<(), String> {
        let Some(required) = cmd["default_member_permissions"].as_str() else {
            return Ok(());
        };
        let required: u64 = required
            .parse()
            .map_err(|_| format!("default_member_permissions `{required}` is not a bitfield"))?;
        let perms = self.permissions_of(user);
        let admin = serenity::all::Permissions::ADMINISTRATOR.bits();
        if perms & admin != 0 || (required != 0 && perms & required == required) {
            return Ok(());
        }
        let name = cmd["name"].as_str().unwrap_or_default();
        let roles = self
            .users
            .get(&user)
            .map(|u| u.roles.clone())
            .unwrap_or_default();
        let overridden = self.command_overrides.iter().any(|(command, id)| {
            command.as_deref().is_none_or(|c| c == name)
                && (*id == user || *id == self.ids.everyone_role || roles.contains(id))
        });
        if overridden {
            return Ok(());
        }
        Err(format!(
            "/{name} needs the permissions {required} (default_member_permissions) and no \
             integration override allows user {user}: real Discord hides the command from them"
        ))
    }

    pub fn member_json(&self, id: u64, with_permissions: bool) -> Value {
        let u = self.users.get(&id);
        let roles = u.map(|u| u.roles.clone()).unwrap_or_default();
        let joined = u.map_or(self.guild_joined_at.clone(), |u| u.joined_at.clone());
        let perms = with_permissions.then(|| self.permissions_of(id));
        fixtures::member(&self.user_json(id), &roles, &joined, perms)
    }

    pub fn roles_json(&self) -> Vec<Value> {
        self.roles
            .values()
            .map(|r| fixtures::role(r.id, &r.name, r.position, r.permissions, r.managed))
            .collect()
    }

    pub fn guild_base_json(&self) -> Value {
        fixtures::guild_base(
            self.ids.guild,
            "onboard-test",
            self.ids.owner,
            &self.roles_json(),
        )
    }

    pub fn guild_channels(&self) -> Vec<Value> {
        self.channels
            .values()
            .filter(|c| matches!(c["type"].as_u64(), Some(0 | 2 | 4 | 5 | 15)))
            .cloned()
            .collect()
    }

    pub fn active_threads(&self) -> Vec<Value> {
        self.channels
            .values()
            .filter(|c| is_thread(c) && c["thread_metadata"]["archived"] != true)
            .cloned()
            .collect()
    }

    pub fn guild_create_json(&self) -> Value {
        let members: Vec<Value> = self
            .users
            .keys()
            .map(|id| self.member_json(*id, false))
            .collect();
        fixtures::guild_create(
            &self.guild_base_json(),
            &self.guild_joined_at,
            &members,
            &self.guild_channels(),
            &self.active_threads(),
        )
    }

    pub fn current_user_json(&self) -> Value {
        let mut u = self.user_json(self.ids.bot_user);
        u["verified"] = Value::Bool(true);
        u["mfa_enabled"] = Value::Bool(false);
        u["locale"] = json!("en-US");
        u["email"] = Value::Null;
        u["premium_type"] = json!(0);
        u
    }

    pub fn application_json(&self) -> Value {
        fixtures::application(
            self.ids.application,
            &self.user_json(self.ids.owner),
            &self.user_json(self.ids.bot_user),
        )
    }

    /// A partial channel as embedded in interactions.
    pub fn partial_channel_json(&self, id: u64, for_user: u64) -> Value {
        let c = self
            .channels
            .get(&id)
            .cloned()
            .unwrap_or(json!({"id": s(id), "type": 0}));
        let mut p = json!({
            "id": c["id"],
            "type": c["type"],
            "name": c["name"],
            "guild_id": c["guild_id"],
            "parent_id": c["parent_id"],
            "permissions": self.permissions_of(for_user).to_string(),
            "flags": 0,
        });
        if c.get("thread_metadata").is_some() {
            p["thread_metadata"] = c["thread_metadata"].clone();
        }
        p
    }

    // ----- gateway dispatch ------------------------------------------------------------------

    /// Check that a dispatch parses as serenity's `GatewayEvent` (and not as `Event::Unknown`).
    pub fn check_dispatch(t: &str, payload: &Value) -> Result<(), String> {
        let ev: GatewayEvent = ensure_parses(&format!("{t} dispatch"), payload)?;
        match ev {
            GatewayEvent::Dispatch(_, Event::Unknown(_)) => Err(format!(
                "[fake-bug] serenity parsed the fake's {t} dispatch as Event::Unknown"
            )),
            GatewayEvent::Dispatch(..) => Ok(()),
            other => Err(format!(
                "[fake-bug] {t} parsed as {other:?}, not a dispatch"
            )),
        }
    }

    /// Queue a dispatch for the current session (or for the next one if none yet), honouring
    /// the intents the bot identified with. Errors if serenity could not parse it.
    pub fn dispatch(&mut self, t: &str, d: Value, intent: Option<u64>) -> Result<(), String> {
        let probe = json!({"op": 0, "s": 1, "t": t, "d": d});
        Self::check_dispatch(t, &probe)?;
        match self.gateway.current.clone() {
            Some(sid) => self.push_event(&sid, t, d, intent),
            None => self.gateway.pending.push((t.to_string(), d, intent)),
        }
        Ok(())
    }

    /// Like `dispatch`, for dispatches triggered by server-side REST handling: a fixture bug is
    /// recorded as a violation instead of panicking inside the server.
    pub fn dispatch_or_violate(&mut self, t: &str, d: Value, intent: Option<u64>) {
        if let Err(e) = self.dispatch(t, d, intent) {
            self.violate(e);
        }
    }

    fn push_event(&mut self, sid: &str, t: &str, d: Value, intent: Option<u64>) {
        let Some(sess) = self.gateway.sessions.get_mut(sid) else {
            return;
        };
        if let Some(bit) = intent
            && sess.intents & bit == 0
        {
            return;
        }
        let seq = sess.events.len() as u64 + 1;
        sess.events.push(json!({"op": 0, "s": seq, "t": t, "d": d}));
    }

    /// IDENTIFY: start a new session with READY + GUILD_CREATE (+ anything queued earlier).
    pub fn new_session(&mut self, conn: u64, intents: u64) -> String {
        let sid = format!("fake-session-{:x}", self.next_id());
        self.gateway.sessions.insert(
            sid.clone(),
            Session {
                id: sid.clone(),
                intents,
                events: Vec::new(),
            },
        );
        self.gateway.current = Some(sid.clone());
        self.gateway.log.push(GatewayLog::Identify {
            conn,
            intents,
            session: sid.clone(),
        });
        let ready = json!({
            "v": 10,
            "user": self.current_user_json(),
            "guilds": [{"id": s(self.ids.guild), "unavailable": true}],
            "session_id": sid,
            "resume_gateway_url": self.ws_url,
            "shard": [0, 1],
            "application": {"id": s(self.ids.application), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "geo_ordered_rtc_regions": [],
            "guild_join_requests": [],
            "user_settings": {},
            "session_type": "normal",
            "auth_session_id_hash": "fake",
        });
        let guild = self.guild_create_json();
        for (t, d) in [("READY", ready), ("GUILD_CREATE", guild)] {
            if let Err(e) = self.dispatch(t, d, None) {
                self.violate(e);
            }
        }
        for (t, d, intent) in std::mem::take(&mut self.gateway.pending) {
            self.push_event(&sid, &t, d, intent);
        }
        sid
    }

    // ----- channels & messages ---------------------------------------------------------------

    pub fn channel_guild(&self, channel: u64) -> Option<u64> {
        self.channels
            .get(&channel)
            .and_then(|c| c["guild_id"].as_str())
            .and_then(|g| g.parse().ok())
    }

    /// Build (but do not store) a message from a create-message style payload.
    pub fn build_message(
        &mut self,
        channel: u64,
        author: u64,
        payload: &Value,
        uploads: &[Upload],
    ) -> Value {
        let id = self.next_id();
        let guild = self.channel_guild(channel);
        let content = payload["content"].as_str().unwrap_or_default().to_string();
        let (mentions, mention_roles) = self.parse_mentions(&content);
        let mut attachments = Vec::new();
        for (i, up) in uploads.iter().enumerate() {
            let att_id = self.next_id();
            let description = payload["attachments"]
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .find(|a| a["id"].to_string().trim_matches('"') == i.to_string())
                })
                .map(|a| a["description"].clone())
                .unwrap_or(Value::Null);
            let url = format!(
                "https://cdn.discordapp.com/attachments/{channel}/{att_id}/{}",
                up.filename
            );
            attachments.push(json!({
                "id": s(att_id),
                "filename": up.filename,
                "description": description,
                "size": up.data.len(),
                "url": url,
                "proxy_url": url.replace("cdn.discordapp.com", "media.discordapp.net"),
                "content_type": up.content_type,
            }));
        }
        let mut msg = json!({
            "id": s(id),
            "channel_id": s(channel),
            "author": self.user_json(author),
            "content": content,
            "timestamp": fixtures::now_ts(),
            "edited_timestamp": null,
            "tts": payload["tts"].as_bool().unwrap_or(false),
            "mention_everyone": false,
            "mentions": mentions,
            "mention_roles": mention_roles,
            "attachments": attachments,
            "embeds": normalize_embeds(&payload["embeds"]),
            "components": payload["components"].as_array().cloned().unwrap_or_default(),
            "pinned": false,
            "type": 0,
            "flags": payload["flags"].as_u64().unwrap_or(0),
        });
        if let Some(g) = guild {
            msg["guild_id"] = s(g);
            let mut m = self.member_json(author, false);
            if let Some(o) = m.as_object_mut() {
                o.remove("user");
            }
            msg["member"] = m;
        }
        if let Some(r) = payload.get("message_reference").filter(|r| r.is_object()) {
            let ref_id = r["message_id"].as_str().and_then(|x| x.parse::<u64>().ok());
            if let Some(referenced) = ref_id.and_then(|i| self.messages.get(&i)) {
                msg["referenced_message"] = referenced.json.clone();
            }
            msg["type"] = json!(19);
            msg["message_reference"] = json!({
                "type": 0,
                "message_id": r["message_id"],
                "channel_id": s(channel),
                "guild_id": guild.map(s),
            });
        }
        msg
    }

    fn parse_mentions(&self, content: &str) -> (Vec<Value>, Vec<Value>) {
        let mut users = Vec::new();
        let mut roles = Vec::new();
        let mut rest = content;
        while let Some(start) = rest.find("<@") {
            rest = &rest[start + 2..];
            let Some(end) = rest.find('>') else { break };
            let inner = &rest[..end];
            if let Some(r) = inner.strip_prefix('&') {
                if let Ok(id) = r.parse::<u64>() {
                    roles.push(s(id));
                }
            } else if let Ok(id) = inner.trim_start_matches('!').parse::<u64>()
                && self.users.contains_key(&id)
            {
                users.push(self.user_json(id));
            }
        }
        (users, roles)
    }

    /// Store a new message, bump its channel's counters and dispatch MESSAGE_CREATE.
    pub fn insert_message(&mut self, msg: Value, uploads: Vec<Upload>) -> Result<Value, String> {
        ensure_parses::<serenity::all::Message>("message", &msg)?;
        let id: u64 = msg["id"]
            .as_str()
            .and_then(|x| x.parse().ok())
            .unwrap_or_default();
        let channel: u64 = msg["channel_id"]
            .as_str()
            .and_then(|x| x.parse().ok())
            .unwrap_or_default();
        if let Some(c) = self.channels.get_mut(&channel) {
            c["last_message_id"] = s(id);
            if is_thread(c) {
                let n = c["message_count"].as_u64().unwrap_or(0) + 1;
                c["message_count"] = json!(n);
                c["total_message_sent"] = json!(n);
                // Posting in an archived (unlocked) thread unarchives it.
                if c["thread_metadata"]["archived"] == true
                    && c["thread_metadata"]["locked"] != true
                {
                    c["thread_metadata"]["archived"] = Value::Bool(false);
                }
            }
        }
        let ephemeral = msg["flags"].as_u64().unwrap_or(0) & 64 != 0;
        self.messages.insert(
            id,
            MessageRec {
                json: msg.clone(),
                uploads,
                deleted: false,
                history: vec![msg.clone()],
                reactions_by_bot: BTreeSet::new(),
            },
        );
        if !ephemeral {
            let intent = if self.channel_guild(channel).is_some() {
                INTENT_GUILD_MESSAGES
            } else {
                INTENT_DIRECT_MESSAGES
            };
            self.dispatch_or_violate("MESSAGE_CREATE", msg.clone(), Some(intent));
        }
        Ok(msg)
    }

    /// Apply an edit payload (only the given fields change) and dispatch MESSAGE_UPDATE.
    pub fn edit_message(
        &mut self,
        id: u64,
        payload: &Value,
        uploads: Vec<Upload>,
    ) -> Result<Value, String> {
        let mut new_attachments = Vec::new();
        for up in &uploads {
            let att_id = self.next_id();
            let url = format!(
                "https://cdn.discordapp.com/attachments/0/{att_id}/{}",
                up.filename
            );
            new_attachments.push(json!({
                "id": s(att_id), "filename": up.filename, "size": up.data.len(),
                "url": url, "proxy_url": url, "content_type": up.content_type,
            }));
        }
        let (mentions, _) = match payload["content"].as_str() {
            Some(c) => self.parse_mentions(c),
            None => (Vec::new(), Vec::new()),
        };
        let rec = self
            .messages
            .get_mut(&id)
            .ok_or_else(|| format!("unknown message {id}"))?;
        let m = &mut rec.json;
        if let Some(c) = payload.get("content") {
            m["content"] = json!(c.as_str().unwrap_or_default());
            m["mentions"] = json!(mentions);
        }
        if let Some(e) = payload.get("embeds") {
            m["embeds"] = json!(normalize_embeds(e));
        }
        if let Some(c) = payload.get("components") {
            m["components"] = json!(c.as_array().cloned().unwrap_or_default());
        }
        if let Some(f) = payload.get("flags").and_then(Value::as_u64) {
            // Only SUPPRESS_EMBEDS can be toggled on edit; other flags are kept.
            let old = m["flags"].as_u64().unwrap_or(0);
            m["flags"] = json!((old & !4) | (f & 4));
        }
        if let Some(keep) = payload.get("attachments") {
            let keep_ids: Vec<String> = keep
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| a["id"].to_string().trim_matches('"').to_string())
                .collect();
            let kept: Vec<Value> = m["attachments"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| {
                    keep_ids
                        .iter()
                        .any(|k| Some(k.as_str()) == a["id"].as_str())
                })
                .cloned()
                .collect();
            m["attachments"] = json!(kept);
        }
        if !new_attachments.is_empty()
            && let Some(arr) = m["attachments"].as_array_mut()
        {
            arr.extend(new_attachments);
        }
        m["edited_timestamp"] = json!(fixtures::now_ts());
        let updated = m.clone();
        rec.uploads.extend(uploads);
        rec.history.push(updated.clone());
        ensure_parses::<serenity::all::Message>("edited message", &updated)?;
        let ephemeral = updated["flags"].as_u64().unwrap_or(0) & 64 != 0;
        if !ephemeral {
            self.dispatch_or_violate(
                "MESSAGE_UPDATE",
                updated.clone(),
                Some(INTENT_GUILD_MESSAGES),
            );
        }
        Ok(updated)
    }

    pub fn live_message(&self, id: u64) -> Option<&MessageRec> {
        self.messages.get(&id).filter(|m| !m.deleted)
    }

    pub fn delete_message(&mut self, id: u64) -> bool {
        let Some(rec) = self.messages.get_mut(&id).filter(|m| !m.deleted) else {
            return false;
        };
        rec.deleted = true;
        let d = json!({
            "id": rec.json["id"],
            "channel_id": rec.json["channel_id"],
            "guild_id": rec.json["guild_id"],
        });
        self.dispatch_or_violate("MESSAGE_DELETE", d, Some(INTENT_GUILD_MESSAGES));
        true
    }

    // ----- interactions ----------------------------------------------------------------------

    pub fn interaction_by_id(&mut self, id: u64) -> Option<&mut InteractionRec> {
        self.interactions.iter_mut().find(|i| i.id == id)
    }

    pub fn interaction_by_token(&mut self, token: &str) -> Option<&mut InteractionRec> {
        self.interactions.iter_mut().find(|i| i.token == token)
    }

    /// The common envelope of every interaction the fake sends.
    pub fn interaction_envelope(
        &mut self,
        kind: u64,
        user: u64,
        channel: u64,
        data: Value,
    ) -> (u64, String, Value) {
        let id = self.next_id();
        let token = format!("fake-interaction-token-{id}");
        let guild = self.channel_guild(channel);
        let mut v = json!({
            "id": s(id),
            "application_id": s(self.ids.application),
            "type": kind,
            "data": data,
            "channel": self.partial_channel_json(channel, user),
            "channel_id": s(channel),
            "token": token,
            "version": 1,
            "app_permissions": self.permissions_of(self.ids.bot_user).to_string(),
            "locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": guild.map_or(Value::Null, s)},
            "context": if guild.is_some() { 0 } else { 1 },
            "attachment_size_limit": fixtures::ATTACHMENT_SIZE_LIMIT,
        });
        match guild {
            Some(g) => {
                v["guild_id"] = s(g);
                v["guild_locale"] = json!("en-US");
                v["guild"] = json!({"id": s(g), "locale": "en-US", "features": []});
                v["member"] = self.member_json(user, true);
            }
            None => v["user"] = self.user_json(user),
        }
        (id, token, v)
    }

    /// Record and dispatch an interaction. Panics (in the test) if serenity can't parse it.
    pub fn push_interaction(&mut self, rec: InteractionRec, payload: Value) {
        let parsed: serenity::all::Interaction =
            ensure_parses("INTERACTION_CREATE", &payload).unwrap_or_else(|e| panic!("{e}"));
        let expected = matches!(
            (rec.kind, &parsed),
            (2, serenity::all::Interaction::Command(_))
                | (3, serenity::all::Interaction::Component(_))
                | (4, serenity::all::Interaction::Autocomplete(_))
                | (5, serenity::all::Interaction::Modal(_))
        );
        assert!(
            expected,
            "[fake-bug] interaction type {} parsed as {parsed:?}",
            rec.kind
        );
        self.interactions.push(rec);
        self.dispatch("INTERACTION_CREATE", payload, None)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Interactions past the ACK deadline that nobody answered become violations.
    pub fn check_ack_deadlines(&mut self, now: Instant) {
        let mut late = Vec::new();
        for i in &mut self.interactions {
            if i.callback.is_none()
                && !i.allow_unacknowledged
                && !i.late_reported
                && i.sent_at.is_some()
                && now.duration_since(i.clock_start()) > ACK_DEADLINE
            {
                i.late_reported = true;
                late.push(format!(
                    "interaction {} ({} {:?} by user {}) was not acknowledged within {:?}",
                    i.id,
                    interaction_kind_name(i.kind),
                    i.label,
                    i.user,
                    ACK_DEADLINE
                ));
            }
        }
        self.violations.extend(late);
    }

    // ----- application commands --------------------------------------------------------------

    pub fn command_json(&mut self, body: &Value, guild: Option<u64>) -> Value {
        let name = body["name"].as_str().unwrap_or_default().to_string();
        let kind = body["type"].as_u64().unwrap_or(1);
        let existing = self.commands.iter().find(|c| {
            c["name"] == name.as_str()
                && c["type"] == kind
                && c["guild_id"].as_str().and_then(|g| g.parse().ok()) == guild
        });
        let id = match existing
            .and_then(|c| c["id"].as_str())
            .and_then(|x| x.parse().ok())
        {
            Some(id) => id,
            None => self.next_id(),
        };
        let version = self.next_id();
        let mut c = json!({
            "id": s(id),
            "application_id": s(self.ids.application),
            "version": s(version),
            "type": kind,
            "name": name,
            "name_localizations": body.get("name_localizations").cloned().unwrap_or(Value::Null),
            "description": body["description"].as_str().unwrap_or_default(),
            "description_localizations":
                body.get("description_localizations").cloned().unwrap_or(Value::Null),
            "default_member_permissions": body.get("default_member_permissions").cloned().unwrap_or(Value::Null),
            "dm_permission": body["dm_permission"].as_bool().unwrap_or(true),
            "nsfw": body["nsfw"].as_bool().unwrap_or(false),
            "contexts": body.get("contexts").cloned().unwrap_or(Value::Null),
            "integration_types": body.get("integration_types").cloned().unwrap_or(json!([0])),
        });
        if let Some(opts) = body.get("options").filter(|o| o.is_array()) {
            c["options"] = opts.clone();
        }
        if let Some(g) = guild {
            c["guild_id"] = s(g);
        }
        c
    }

    pub fn upsert_command(&mut self, c: Value) {
        self.commands.retain(|old| old["id"] != c["id"]);
        self.commands.push(c);
    }
}

pub fn is_thread(c: &Value) -> bool {
    matches!(c["type"].as_u64(), Some(10..=12))
}

pub fn interaction_kind_name(kind: u64) -> &'static str {
    match kind {
        2 => "command",
        3 => "component",
        4 => "autocomplete",
        5 => "modal submit",
        _ => "interaction",
    }
}

/// Discord adds `type: rich` and fills defaults on stored embeds.
pub fn normalize_embeds(v: &Value) -> Vec<Value> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let mut e = e.clone();
            if e.get("type").is_none_or(Value::is_null) {
                e["type"] = json!("rich");
            }
            if let Some(fields) = e.get_mut("fields").and_then(Value::as_array_mut) {
                for f in fields {
                    if f.get("inline").is_none_or(Value::is_null) {
                        f["inline"] = Value::Bool(false);
                    }
                }
            }
            if let Some(o) = e.as_object_mut() {
                o.retain(|_, v| !v.is_null());
            }
            e
        })
        .collect()
}
