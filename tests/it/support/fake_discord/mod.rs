//! A fake Discord for integration tests: REST under `/api/v10` plus a gateway websocket, served
//! on 127.0.0.1 and driven by the test. The REAL serenity/poise client talks to it.
//!
//! ```ignore
//! let fake = FakeDiscord::start().await;
//! let http = fake.http(); // serenity Http pointed at the fake (proxy + ratelimiter disabled)
//! // ... start the bot with `ClientBuilder::new_with_http(http, intents)` ...
//! fake.wait_ready(T).await;
//! let h = fake.send_command(fake.requester(), "onboard", json!({"host": "db1"}));
//! let resp = fake.interaction_response(&h).await;
//! let msg = fake.wait_for_message(|m| !m.embeds.is_empty(), T).await;
//! fake.finish(); // panics listing every violation; forgetting it panics in Drop
//! ```
//!
//! Every REST request is validated against Discord's official OpenAPI spec (see `openapi.rs`,
//! the spec lives OUTSIDE the repo in `../shared/discord-api-spec/openapi.json`) and against
//! Discord's documented message limits (`limits.rs`). Every payload the fake sends (gateway
//! dispatches and REST responses) is round-tripped through serenity's model types first, because
//! serenity silently drops gateway events it cannot deserialize.
//!
//! Behaviour worth knowing when writing tests (all verified against serenity 0.12.5 / poise
//! 0.7.1):
//! - serenity's ratelimiter ignores `HttpBuilder::proxy` and would call discord.com, so the bot's
//!   `Http` must be built with `ratelimiter_disabled(true)`; a 429 then reaches the bot as an
//!   error (no automatic retry). In production the bot's `Http` has serenity's ratelimiter, and
//!   the bot paces its run reporting per channel itself (`chat/discord/pace.rs`).
//! - Discord's rate limits (`ratelimit.rs`) are counted on every request and sent as
//!   `X-RateLimit-*` headers; 429s for requests beyond them only after
//!   `model_rate_limits(true)` (opt-in per test: see `load.rs`).
//! - `Client` start-up calls only `GET /gateway` (on failure it silently falls back to the real
//!   `wss://gateway.discord.gg`!); poise adds `GET /oauth2/applications/@me`, and registration is
//!   `PUT .../guilds/{guild}/commands` (or `PUT .../commands` globally).
//! - A RESUME replays the dispatches the bot missed; a 4009 close makes serenity re-IDENTIFY,
//!   which goes through its shard queuer (about 5 s wait when the last boot was < 5 s ago).
//! - The first follow-up after a deferred response replaces the "thinking…" message (as on
//!   Discord); ephemeral messages are kept (flag 64) and visible through `messages_in`.
//! - Thread creation without `type` makes a PRIVATE thread (API v10 default); a thread started
//!   from a message has the message's id.
//! - Interaction options are typed from the REGISTERED command; sending a command the bot did not
//!   register panics, as real Discord would never deliver it.
#![allow(dead_code)]

pub mod fixtures;
pub mod gateway;
pub mod limits;
pub mod multipart;
pub mod openapi;
pub mod ratelimit;
pub mod rest;
pub mod state;

pub use state::{GatewayLog, Ids, RequestRec, State, Upload};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::serve::ListenerExt;
use serde_json::{Value, json};
use serenity::all::{
    ApplicationId, ChannelId, Command, GuildChannel, GuildId, InteractionId, Message, MessageId,
    RoleId, UserId,
};
use state::{InteractionRec, is_thread};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long `interaction_response` waits: Discord's 3 s deadline plus slack.
pub const RESPONSE_WAIT: Duration = Duration::from_secs(5);

pub struct Inner {
    state: Mutex<State>,
    /// Bumped on every state change; test waiters and gateway connections listen to it.
    pub version: watch::Sender<u64>,
    pub spec: Arc<openapi::Spec>,
    /// Requests to hold before they are processed (`FakeDiscord::hold_next`).
    holds: Mutex<Vec<Hold>>,
}

/// A request the fake holds until the test releases it: (method, path prefix after `/api/v10`,
/// a string the body must contain), told when it arrives, released when told.
struct Hold {
    method: String,
    path_prefix: String,
    body_contains: String,
    arrived: tokio::sync::oneshot::Sender<()>,
    release: tokio::sync::oneshot::Receiver<()>,
}

/// A request held by the fake: `arrived` waits until the bot has sent it; `release` (or
/// dropping this) lets the fake process it.
pub struct HeldRequest {
    arrived: Option<tokio::sync::oneshot::Receiver<()>>,
    release: Option<tokio::sync::oneshot::Sender<()>>,
}

impl HeldRequest {
    /// Waits until the bot has sent the held request (panics after `timeout`).
    pub async fn arrived(&mut self, timeout: Duration) {
        let rx = self.arrived.take().expect("arrived is awaited once");
        tokio::time::timeout(timeout, rx)
            .await
            .expect("the held request did not arrive in time")
            .expect("the fake dropped the held request");
    }

    /// Lets the fake process the held request.
    pub fn release(mut self) {
        if let Some(tx) = self.release.take() {
            let _ = tx.send(());
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock (e.g. a fixture assertion) must not hide violations.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Mutate the state and wake every waiter.
    pub fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let r = f(&mut self.lock());
        self.version.send_modify(|v| *v += 1);
        r
    }

    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.lock())
    }

    /// The release of the first hold matching this request, taken (a hold holds one request).
    pub fn take_hold(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Option<tokio::sync::oneshot::Receiver<()>> {
        let mut holds = self.holds.lock().unwrap_or_else(|e| e.into_inner());
        let path = path.strip_prefix(rest::API_PREFIX).unwrap_or(path);
        let body = String::from_utf8_lossy(body);
        let i = holds.iter().position(|h| {
            h.method == method
                && path.starts_with(&h.path_prefix)
                && body.contains(&h.body_contains)
        })?;
        let h = holds.remove(i);
        let _ = h.arrived.send(());
        Some(h.release)
    }
}

/// An interaction the fake sent.
#[derive(Debug, Clone)]
pub struct InteractionHandle {
    pub id: InteractionId,
    pub token: String,
    /// 2 command, 3 component, 4 autocomplete, 5 modal submit.
    pub kind: u64,
}

/// The bot's answer to an interaction (`POST /interactions/{id}/{token}/callback`).
#[derive(Debug, Clone)]
pub struct InteractionResponse {
    /// 4 message, 5 deferred message, 6 deferred update, 7 update, 8 autocomplete, 9 modal.
    pub kind: u64,
    pub data: Value,
    /// From the INTERACTION_CREATE leaving the fake to the callback arriving.
    pub latency: Duration,
}

impl InteractionResponse {
    pub fn is_deferred(&self) -> bool {
        matches!(self.kind, 5 | 6)
    }
    pub fn is_ephemeral(&self) -> bool {
        self.data["flags"].as_u64().unwrap_or(0) & 64 != 0
    }
    pub fn content(&self) -> Option<&str> {
        self.data["content"].as_str()
    }
    /// Autocomplete choices as (name, value).
    pub fn choices(&self) -> Vec<(String, Value)> {
        self.data["choices"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default().to_string(),
                    c["value"].clone(),
                )
            })
            .collect()
    }
}

/// How the bot came back after `drop_gateway`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconnect {
    Resumed,
    Identified,
}

pub struct FakeDiscord {
    inner: Arc<Inner>,
    /// Raw ids of the fixed world (see also the typed accessors).
    pub ids: Ids,
    base_url: String,
    ws_url: String,
    token: String,
    server: tokio::task::JoinHandle<()>,
    watchdog: tokio::task::JoinHandle<()>,
    /// Number of violations already reported by an assert; usize::MAX = never asserted.
    checked_upto: AtomicUsize,
}

impl FakeDiscord {
    /// Bind 127.0.0.1:0, serve REST + gateway, and return the handle.
    pub async fn start() -> FakeDiscord {
        let spec = openapi::spec(); // panics loudly if the spec is missing
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let base_url = format!("http://{addr}");
        let ws_url = format!("ws://{addr}/gateway");
        let token = format!("MTEwMDAwMDAwMDAwMDAwMDAwMQ.fake.{:x}", rand_u64());
        let ids = Ids::default();
        let (version, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            state: Mutex::new(State::new(ids, token.clone(), ws_url.clone())),
            version,
            spec,
            holds: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/gateway", get(gateway::upgrade))
            .fallback(
                |axum::extract::State(inner): axum::extract::State<Arc<Inner>>, req| {
                    rest::handle(inner, req)
                },
            )
            .layer(DefaultBodyLimit::max(64 << 20))
            .with_state(inner.clone());
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let watchdog = {
            let inner = inner.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let added = {
                        let mut st = inner.lock();
                        let before = st.violations.len();
                        st.check_ack_deadlines(Instant::now());
                        st.violations.len() > before
                    };
                    if added {
                        inner.version.send_modify(|v| *v += 1);
                    }
                }
            })
        };
        FakeDiscord {
            inner,
            ids,
            base_url,
            ws_url,
            token,
            server,
            watchdog,
            checked_upto: AtomicUsize::new(usize::MAX),
        }
    }

    // ----- connection details ------------------------------------------------------------

    /// `http://127.0.0.1:PORT` — give it to `HttpBuilder::proxy`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
    pub fn ws_url(&self) -> &str {
        &self.ws_url
    }
    /// The bot token the fake accepts (without `Bot `).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A serenity `Http` pointed at the fake. The ratelimiter MUST stay disabled: serenity's
    /// ratelimiter ignores `proxy` and would talk to discord.com.
    pub fn http(&self) -> serenity::http::Http {
        serenity::http::HttpBuilder::new(&self.token)
            .proxy(&self.base_url)
            .ratelimiter_disabled(true)
            .application_id(self.application_id())
            .build()
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.inner.lock()
    }

    // ----- ids ---------------------------------------------------------------------------

    pub fn application_id(&self) -> ApplicationId {
        ApplicationId::new(self.ids.application)
    }
    pub fn bot_user_id(&self) -> UserId {
        UserId::new(self.ids.bot_user)
    }
    pub fn guild_id(&self) -> GuildId {
        GuildId::new(self.ids.guild)
    }
    pub fn ops_channel_id(&self) -> ChannelId {
        ChannelId::new(self.ids.ops_channel)
    }
    pub fn general_channel_id(&self) -> ChannelId {
        ChannelId::new(self.ids.general_channel)
    }
    /// Has the approver role.
    pub fn approver(&self) -> UserId {
        UserId::new(self.ids.approver)
    }
    /// A plain member without special roles.
    pub fn member(&self) -> UserId {
        UserId::new(self.ids.member)
    }
    /// The user who asks for onboarding: has the operator role, nothing else.
    pub fn requester(&self) -> UserId {
        UserId::new(self.ids.requester)
    }
    /// The guild owner (has every permission).
    pub fn owner(&self) -> UserId {
        UserId::new(self.ids.owner)
    }
    pub fn approver_role_id(&self) -> RoleId {
        RoleId::new(self.ids.approver_role)
    }
    pub fn everyone_role_id(&self) -> RoleId {
        RoleId::new(self.ids.everyone_role)
    }
    pub fn operator_role_id(&self) -> RoleId {
        RoleId::new(self.ids.operator_role)
    }

    /// As a server admin in the guild's integration settings: lets members with role `id`
    /// (or the user `id`; the @everyone role for everybody) use the app's command `command`
    /// (every command when `None`), whatever its `default_member_permissions`.
    pub fn allow_command_for(&self, command: Option<&str>, id: u64) {
        self.inner
            .update(|st| st.command_overrides.push((command.map(String::from), id)));
    }

    /// Add a guild member (dispatches GUILD_MEMBER_ADD).
    pub fn add_user(&self, name: &str, roles: &[RoleId]) -> UserId {
        self.inner.update(|st| {
            let id = st.next_id();
            st.users.insert(
                id,
                state::UserRec {
                    id,
                    name: name.to_string(),
                    bot: false,
                    roles: roles.iter().map(|r| r.get()).collect(),
                    joined_at: fixtures::now_ts(),
                },
            );
            let mut d = st.member_json(id, false);
            d["guild_id"] = fixtures::s(st.ids.guild);
            st.dispatch("GUILD_MEMBER_ADD", d, Some(state::INTENT_GUILD_MEMBERS))
                .unwrap_or_else(|e| panic!("{e}"));
            UserId::new(id)
        })
    }

    /// Change a member's roles (dispatches GUILD_MEMBER_UPDATE).
    pub fn set_roles(&self, user: UserId, roles: &[RoleId]) {
        self.inner.update(|st| {
            let u = st.users.get_mut(&user.get()).expect("unknown user");
            u.roles = roles.iter().map(|r| r.get()).collect();
            let mut d = st.member_json(user.get(), false);
            d["guild_id"] = fixtures::s(st.ids.guild);
            st.dispatch("GUILD_MEMBER_UPDATE", d, Some(state::INTENT_GUILD_MEMBERS))
                .unwrap_or_else(|e| panic!("{e}"));
        });
    }

    // ----- driving interactions ------------------------------------------------------------

    /// A slash command in the ops channel. `name` may contain a subcommand path
    /// (`"onboard approve"`). `options` is either a JSON object `{name: value}` (types come from
    /// the registered command) or a raw Discord options array. The command must have been
    /// registered by the bot, as in real Discord.
    pub fn send_command(&self, user: UserId, name: &str, options: Value) -> InteractionHandle {
        self.send_command_in(self.ops_channel_id(), user, name, options)
    }

    pub fn send_command_in(
        &self,
        channel: ChannelId,
        user: UserId,
        name: &str,
        options: Value,
    ) -> InteractionHandle {
        self.command_like(2, channel, user, name, options, None)
    }

    /// An autocomplete request while `user` types into option `focused`.
    pub fn autocomplete(
        &self,
        user: UserId,
        name: &str,
        options: Value,
        focused: &str,
    ) -> InteractionHandle {
        self.command_like(4, self.ops_channel_id(), user, name, options, Some(focused))
    }

    fn command_like(
        &self,
        kind: u64,
        channel: ChannelId,
        user: UserId,
        name: &str,
        options: Value,
        focused: Option<&str>,
    ) -> InteractionHandle {
        self.inner.update(|st| {
            let path: Vec<&str> = name.split_whitespace().collect();
            let root = path[0];
            let guild = st.channel_guild(channel.get());
            let cmd = st
                .commands
                .iter()
                .find(|c| {
                    c["name"] == root
                        && c["type"] == 1
                        && (c["guild_id"].is_null()
                            || c["guild_id"].as_str().and_then(|g| g.parse().ok()) == guild)
                })
                .cloned()
                .unwrap_or_else(|| {
                    let names: Vec<String> =
                        st.commands.iter().map(|c| c["name"].to_string()).collect();
                    panic!(
                        "/{root} is not registered (the bot registered {names:?}); real Discord \
                         only sends interactions for registered commands"
                    )
                });
            if let Err(hidden) = st.may_use_command(user.get(), &cmd) {
                panic!("{hidden}");
            }
            let (opts, resolved) = build_options(st, &cmd, &path, &options, focused);
            let mut data = json!({
                "id": cmd["id"],
                "name": root,
                "type": 1,
                "options": opts,
            });
            if !cmd["guild_id"].is_null() {
                data["guild_id"] = cmd["guild_id"].clone();
            }
            if resolved.as_object().is_some_and(|o| !o.is_empty()) {
                data["resolved"] = resolved;
            }
            let (id, token, payload) =
                st.interaction_envelope(kind, user.get(), channel.get(), data);
            let metadata = json!({
                "id": fixtures::s(id),
                "type": 2,
                "user": st.user_json(user.get()),
                "authorizing_integration_owners": {"0": guild.map_or(Value::Null, fixtures::s)},
                "name": name,
            });
            st.push_interaction(
                new_rec(id, &token, kind, user, channel, name, None, metadata),
                payload,
            );
            InteractionHandle {
                id: InteractionId::new(id),
                token,
                kind,
            }
        })
    }

    /// Click the (enabled) button `custom_id` on message `message`.
    pub fn click_button(
        &self,
        user: UserId,
        message: MessageId,
        custom_id: &str,
    ) -> InteractionHandle {
        self.component(user, message, custom_id, None)
    }

    /// Pick `values` in the select menu `custom_id` on message `message`.
    pub fn select(
        &self,
        user: UserId,
        message: MessageId,
        custom_id: &str,
        values: &[&str],
    ) -> InteractionHandle {
        self.component(user, message, custom_id, Some(values))
    }

    /// Click the button `custom_id` on message `message` if it is still enabled (checked with
    /// the click, atomically): a person's click that comes after the bot disabled the button
    /// does nothing. For tests that click while the bot is editing the same messages.
    pub fn click_button_if_enabled(
        &self,
        user: UserId,
        message: MessageId,
        custom_id: &str,
    ) -> Option<InteractionHandle> {
        self.component_opt(user, message, custom_id, None, true)
    }

    fn component(
        &self,
        user: UserId,
        message: MessageId,
        custom_id: &str,
        values: Option<&[&str]>,
    ) -> InteractionHandle {
        self.component_opt(user, message, custom_id, values, false)
            .expect("a strict click returns a handle")
    }

    fn component_opt(
        &self,
        user: UserId,
        message: MessageId,
        custom_id: &str,
        values: Option<&[&str]>,
        only_if_enabled: bool,
    ) -> Option<InteractionHandle> {
        self.inner.update(|st| {
            let msg = st
                .live_message(message.get())
                .unwrap_or_else(|| panic!("click on unknown/deleted message {message}"))
                .json
                .clone();
            let all: Vec<Value> = msg["components"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
                .collect();
            let comp = all
                .iter()
                .find(|c| c["custom_id"] == custom_id)
                .unwrap_or_else(|| {
                    let ids: Vec<&Value> = all.iter().map(|c| &c["custom_id"]).collect();
                    panic!("message {message} has no component {custom_id:?}; it has {ids:?}")
                })
                .clone();
            if only_if_enabled && comp["disabled"] == true {
                return None;
            }
            assert!(
                comp["disabled"] != true,
                "component {custom_id:?} on message {message} is disabled; a user cannot use it"
            );
            let ctype = comp["type"].as_u64().unwrap_or(0);
            let mut data = json!({"custom_id": custom_id, "component_type": ctype});
            match (ctype, values) {
                (2, None) => {}
                (2, Some(_)) => panic!("{custom_id:?} is a button; use click_button"),
                (3..=8, Some(vals)) => {
                    if ctype == 3 {
                        for v in vals {
                            let known = comp["options"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .any(|o| o["value"] == *v);
                            assert!(known, "select {custom_id:?} has no option {v:?}");
                        }
                    }
                    data["values"] = json!(vals);
                }
                _ => panic!("component {custom_id:?} has type {ctype}, cannot be used this way"),
            }
            let channel: u64 = msg["channel_id"]
                .as_str()
                .and_then(|c| c.parse().ok())
                .unwrap_or_default();
            let (id, token, mut payload) = st.interaction_envelope(3, user.get(), channel, data);
            payload["message"] = msg;
            let guild = st.channel_guild(channel);
            let metadata = json!({
                "id": fixtures::s(id),
                "type": 3,
                "user": st.user_json(user.get()),
                "authorizing_integration_owners": {"0": guild.map_or(Value::Null, fixtures::s)},
                "interacted_message_id": message.to_string(),
            });
            st.push_interaction(
                new_rec(
                    id,
                    &token,
                    3,
                    user,
                    ChannelId::new(channel),
                    custom_id,
                    Some(message.get()),
                    metadata,
                ),
                payload,
            );
            Some(InteractionHandle {
                id: InteractionId::new(id),
                token,
                kind: 3,
            })
        })
    }

    /// Submit the modal the bot opened in answer to `opener` (callback type 9), filling the
    /// text inputs by custom_id. Required inputs must be given.
    pub fn submit_modal(
        &self,
        user: UserId,
        opener: &InteractionHandle,
        values: &[(&str, &str)],
    ) -> InteractionHandle {
        self.inner.update(|st| {
            let op = st
                .interactions
                .iter()
                .find(|i| i.id == opener.id.get())
                .expect("unknown opener interaction")
                .clone();
            let cb = op.callback.clone().unwrap_or_else(|| {
                panic!("interaction {} has not been answered (yet); no modal to submit", op.id)
            });
            assert_eq!(cb.kind, 9, "interaction {} was answered with type {}, not a modal", op.id, cb.kind);
            let modal = cb.data;
            let mut rows = Vec::new();
            let mut used = Vec::new();
            for row in modal["components"].as_array().into_iter().flatten() {
                let inputs: Vec<Value> = match row["type"].as_u64() {
                    Some(1) => row["components"].as_array().cloned().unwrap_or_default(),
                    Some(18) => vec![row["component"].clone()],
                    _ => vec![],
                };
                let mut submitted = Vec::new();
                for input in inputs {
                    let cid = input["custom_id"].as_str().unwrap_or_default().to_string();
                    let given = values.iter().find(|(k, _)| *k == cid).map(|(_, v)| *v);
                    let required = input["required"].as_bool().unwrap_or(true);
                    assert!(
                        given.is_some() || !required,
                        "modal {:?}: required input {cid:?} not filled by the test",
                        modal["custom_id"]
                    );
                    used.push(cid.clone());
                    submitted.push(json!({
                        "type": input["type"],
                        "id": input.get("id").cloned().unwrap_or(json!(0)),
                        "custom_id": cid,
                        "value": given.unwrap_or_default(),
                    }));
                }
                if row["type"] == 18 {
                    rows.push(json!({"type": 18, "id": row.get("id").cloned().unwrap_or(json!(0)), "component": submitted[0]}));
                } else {
                    rows.push(json!({"type": 1, "id": row.get("id").cloned().unwrap_or(json!(0)), "components": submitted}));
                }
            }
            for (k, _) in values {
                assert!(used.iter().any(|u| u == k), "modal has no input {k:?} (inputs: {used:?})");
            }
            let custom_id = modal["custom_id"].as_str().unwrap_or_default().to_string();
            let data = json!({"custom_id": custom_id, "components": rows});
            let (id, token, mut payload) = st.interaction_envelope(5, user.get(), op.channel, data);
            if let Some(mid) = op.source_message
                && let Some(m) = st.live_message(mid)
            {
                payload["message"] = m.json.clone();
            }
            let guild = st.channel_guild(op.channel);
            let metadata = json!({
                "id": fixtures::s(id),
                "type": 5,
                "user": st.user_json(user.get()),
                "authorizing_integration_owners": {"0": guild.map_or(Value::Null, fixtures::s)},
                "triggering_interaction_metadata": op.metadata,
            });
            st.push_interaction(
                new_rec(
                    id,
                    &token,
                    5,
                    user,
                    ChannelId::new(op.channel),
                    &custom_id,
                    op.source_message,
                    metadata,
                ),
                payload,
            );
            InteractionHandle { id: InteractionId::new(id), token, kind: 5 }
        })
    }

    /// A user (not the bot) posts a message (dispatches MESSAGE_CREATE).
    pub fn user_posts(&self, user: UserId, channel: ChannelId, content: &str) -> Message {
        self.inner.update(|st| {
            let msg =
                st.build_message(channel.get(), user.get(), &json!({"content": content}), &[]);
            let v = st
                .insert_message(msg, Vec::new())
                .unwrap_or_else(|e| panic!("{e}"));
            serde_json::from_value(v).expect("message parses")
        })
    }

    /// Do not report `h` as unacknowledged (for tests where ignoring it is the point).
    pub fn allow_unacknowledged(&self, h: &InteractionHandle) {
        self.inner.update(|st| {
            if let Some(i) = st.interaction_by_id(h.id.get()) {
                i.allow_unacknowledged = true;
            }
        });
    }

    // ----- waiting -----------------------------------------------------------------------

    /// Wait until `f` returns Some, re-checking on every state change. Panics with a summary
    /// of recent traffic on timeout.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&State) -> Option<T>,
    ) -> T {
        let mut rx = self.inner.version.subscribe();
        let fut = async {
            loop {
                rx.borrow_and_update();
                if let Some(v) = f(&self.inner.lock()) {
                    return v;
                }
                if rx.changed().await.is_err() {
                    panic!("fake Discord shut down while waiting for {what}");
                }
            }
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(v) => v,
            Err(_) => panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                self.summary()
            ),
        }
    }

    /// Wait until READY has been written to the bot; returns how many READYs so far.
    pub async fn wait_ready(&self, timeout: Duration) -> usize {
        self.wait_for("READY to be delivered", timeout, |st| {
            let n = st
                .gateway
                .log
                .iter()
                .filter(|l| matches!(l, GatewayLog::ReadySent { .. }))
                .count();
            (n > 0).then_some(n)
        })
        .await
    }

    /// Wait for the bot's answer to `h` (up to `RESPONSE_WAIT`).
    pub async fn interaction_response(&self, h: &InteractionHandle) -> InteractionResponse {
        let id = h.id.get();
        self.wait_for(
            &format!("a callback for interaction {id}"),
            RESPONSE_WAIT,
            |st| {
                st.interactions
                    .iter()
                    .find(|i| i.id == id)
                    .and_then(|i| i.callback.clone())
                    .map(|c| InteractionResponse {
                        kind: c.kind,
                        data: c.data,
                        latency: c.latency,
                    })
            },
        )
        .await
    }

    /// The interaction's original response message once it is no longer "thinking…".
    pub async fn original_response(&self, h: &InteractionHandle, timeout: Duration) -> Message {
        let id = h.id.get();
        self.wait_for(
            &format!("the original response of interaction {id}"),
            timeout,
            |st| {
                let i = st.interactions.iter().find(|i| i.id == id)?;
                let m = st.live_message(i.original_message?)?;
                (m.json["flags"].as_u64().unwrap_or(0) & 128 == 0).then(|| parse_message(&m.json))
            },
        )
        .await
    }

    /// The `n`-th (0-based) follow-up of an interaction. NB: the first follow-up after a
    /// deferred response replaces the "thinking…" message, so it has the original's id.
    pub async fn followup(&self, h: &InteractionHandle, n: usize, timeout: Duration) -> Message {
        let id = h.id.get();
        self.wait_for(
            &format!("follow-up #{n} of interaction {id}"),
            timeout,
            |st| {
                let i = st.interactions.iter().find(|i| i.id == id)?;
                let mid = *i.followups.get(n)?;
                st.messages.get(&mid).map(|m| parse_message(&m.json))
            },
        )
        .await
    }

    /// First live message (any channel, current state, oldest first) matching `pred`.
    pub async fn wait_for_message(
        &self,
        pred: impl Fn(&Message) -> bool,
        timeout: Duration,
    ) -> Message {
        self.wait_for("a message matching the predicate", timeout, |st| {
            st.messages
                .values()
                .filter(|m| !m.deleted)
                .map(|m| parse_message(&m.json))
                .find(|m| pred(m))
        })
        .await
    }

    pub async fn wait_for_thread(
        &self,
        pred: impl Fn(&GuildChannel) -> bool,
        timeout: Duration,
    ) -> GuildChannel {
        self.wait_for("a thread matching the predicate", timeout, |st| {
            threads_of(st).into_iter().find(|t| pred(t))
        })
        .await
    }

    /// Wait until the bot registered commands with all these names.
    pub async fn wait_for_commands(&self, names: &[&str], timeout: Duration) -> Vec<Command> {
        self.wait_for(
            &format!("commands {names:?} to be registered"),
            timeout,
            |st| {
                names
                    .iter()
                    .all(|n| st.commands.iter().any(|c| c["name"] == *n))
                    .then(|| commands_of(st))
            },
        )
        .await
    }

    /// Wait for the bot to come back after `drop_gateway` returned `mark`.
    pub async fn wait_for_reconnect(&self, mark: usize, timeout: Duration) -> Reconnect {
        self.wait_for("the bot to reconnect to the gateway", timeout, |st| {
            st.gateway.log[mark.min(st.gateway.log.len())..]
                .iter()
                .find_map(|l| match l {
                    GatewayLog::ResumedSent { .. } => Some(Reconnect::Resumed),
                    GatewayLog::ReadySent { .. } => Some(Reconnect::Identified),
                    _ => None,
                })
        })
        .await
    }

    // ----- inspecting --------------------------------------------------------------------

    /// Live messages of a channel (or thread), oldest first, ephemeral ones included.
    pub fn messages_in(&self, channel: ChannelId) -> Vec<Message> {
        let st = self.inner.lock();
        st.messages
            .values()
            .filter(|m| !m.deleted && m.json["channel_id"] == channel.to_string())
            .map(|m| parse_message(&m.json))
            .collect()
    }

    pub fn message(&self, id: MessageId) -> Option<Message> {
        self.inner
            .lock()
            .live_message(id.get())
            .map(|m| parse_message(&m.json))
    }

    /// Every version of a message, as created and after each edit.
    pub fn message_history(&self, id: MessageId) -> Vec<Message> {
        let st = self.inner.lock();
        st.messages
            .get(&id.get())
            .map(|m| m.history.iter().map(parse_message).collect())
            .unwrap_or_default()
    }

    /// Files uploaded with a message.
    pub fn uploads(&self, id: MessageId) -> Vec<Upload> {
        self.inner
            .lock()
            .messages
            .get(&id.get())
            .map(|m| m.uploads.clone())
            .unwrap_or_default()
    }

    pub fn threads(&self) -> Vec<GuildChannel> {
        threads_of(&self.inner.lock())
    }

    pub fn thread_members(&self, thread: ChannelId) -> Vec<UserId> {
        let st = self.inner.lock();
        st.thread_members
            .get(&thread.get())
            .into_iter()
            .flatten()
            .map(|u| UserId::new(*u))
            .collect()
    }

    /// Whether real Discord would let `user` use the registered command `name` (its
    /// `default_member_permissions` and the integration overrides; see `allow_command_for`).
    pub fn may_use_command(&self, user: UserId, name: &str) -> Result<(), String> {
        let st = self.inner.lock();
        let cmd = st
            .commands
            .iter()
            .find(|c| c["name"] == name && c["type"] == 1)
            .unwrap_or_else(|| panic!("/{name} is not registered"));
        st.may_use_command(user.get(), cmd)
    }

    pub fn registered_commands(&self) -> Vec<Command> {
        commands_of(&self.inner.lock())
    }

    /// Raw JSON of the registered commands (as Discord stores them).
    pub fn registered_commands_json(&self) -> Vec<Value> {
        self.inner.lock().commands.clone()
    }

    pub fn requests(&self) -> Vec<RequestRec> {
        self.inner.lock().requests.clone()
    }

    pub fn gateway_log(&self) -> Vec<GatewayLog> {
        self.inner.lock().gateway.log.clone()
    }

    /// IDENTIFY payloads received (token redacted).
    pub fn identify_payloads(&self) -> Vec<Value> {
        self.inner.lock().gateway.identify_payloads.clone()
    }

    /// The bot config's `discord:` section pointing at this fake; writes the token file it
    /// names into `dir` (the config's directory).
    pub fn config_section(&self, dir: &std::path::Path) -> String {
        std::fs::write(dir.join("discord.token"), self.token()).unwrap();
        format!(
            "\ndiscord:\n  token: {{file: discord.token}}\n  guild_id: {}\n  ops_channel_id: {}\n  approver_role_ids: [{}]\n  operator_role_ids: [{}]\n  api_base: {}\n",
            self.guild_id(),
            self.ops_channel_id(),
            self.approver_role_id(),
            self.operator_role_id(),
            self.base_url()
        )
    }

    // ----- fault injection ---------------------------------------------------------------

    /// Holds the next `method` request whose path (after `/api/v10`) starts with `path_prefix`
    /// and whose body contains `body_contains`, before the fake processes it: a test can act
    /// while the bot waits for Discord's answer, then release it.
    pub fn hold_next(&self, method: &str, path_prefix: &str, body_contains: &str) -> HeldRequest {
        let (arrived_tx, arrived_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel();
        self.inner
            .holds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Hold {
                method: method.into(),
                path_prefix: path_prefix.into(),
                body_contains: body_contains.into(),
                arrived: arrived_tx,
                release: release_rx,
            });
        HeldRequest {
            arrived: Some(arrived_rx),
            release: Some(release_tx),
        }
    }

    /// The next `n` REST requests whose path (after `/api/v10`) starts with `path_prefix`
    /// (any path if None; `POST /channels/1/messages` matches POSTs only) get `status` instead
    /// of being processed. 429 comes with a proper
    /// `retry_after` body and rate-limit headers (0.5 s; see `rate_limit_next`).
    pub fn fail_next(&self, n: usize, status: u16, path_prefix: Option<&str>) {
        self.push_fault(n, status, path_prefix, 0.5, false);
    }

    pub fn rate_limit_next(&self, n: usize, retry_after_secs: f64, path_prefix: Option<&str>) {
        self.push_fault(n, 429, path_prefix, retry_after_secs, false);
    }

    fn push_fault(&self, n: usize, status: u16, prefix: Option<&str>, retry: f64, global: bool) {
        self.inner.update(|st| {
            st.faults.push(state::Fault {
                remaining: n,
                status,
                // Accept prefixes with or without the `/api/v10` part, after an optional method.
                path_prefix: prefix.map(|p| match p.split_once(' ') {
                    Some((m, path)) => format!("{m} {}", path.trim_start_matches(rest::API_PREFIX)),
                    None => p.trim_start_matches(rest::API_PREFIX).to_string(),
                }),
                retry_after: retry,
                global,
            });
        });
    }

    /// Close the bot's gateway connection with 4000 (resumable); returns a mark for
    /// `wait_for_reconnect`.
    pub fn drop_gateway(&self) -> usize {
        self.drop_gateway_with(4000)
    }

    /// Close with a specific code (e.g. 4009 session timed out -> serenity re-IDENTIFIES).
    pub fn drop_gateway_with(&self, code: u16) -> usize {
        self.inner.update(|st| {
            st.gateway.close_generation += 1;
            st.gateway.close_code = code;
            st.gateway.log.len()
        })
    }

    /// Answer requests that break the spec/limits with Discord's 400 (50035 Invalid Form Body)
    /// instead of processing them (default: process them, so the flow stays observable).
    pub fn reject_invalid_requests(&self, reject: bool) {
        self.inner.update(|st| st.reject_invalid = reject);
    }

    // ----- rate limits ---------------------------------------------------------------------

    /// Answer requests beyond Discord's per-route or global limits with 429 (see
    /// `ratelimit.rs`). Off by default: the bot's `Http` runs without serenity's ratelimiter in
    /// tests, so only a test that wants the limits enforced turns them on. Requests are counted
    /// and the `X-RateLimit-*` headers sent either way.
    pub fn model_rate_limits(&self, on: bool) {
        self.inner.update(|st| st.rate_limits.enforce = on);
    }

    /// Requests answered 429 (by the modelled limits or an injected fault).
    pub fn rate_limited(&self) -> Vec<RequestRec> {
        self.inner
            .lock()
            .requests
            .iter()
            .filter(|r| r.status == 429)
            .cloned()
            .collect()
    }

    /// Requests beyond a bucket (answered 429 if the limits are modelled, processed if not).
    pub fn over_limit(&self) -> Vec<ratelimit::Over> {
        self.inner.lock().rate_limits.over.clone()
    }

    /// When each request to `channel` (any route under `/channels/{channel}`) arrived.
    pub fn channel_requests(&self, channel: ChannelId) -> Vec<Instant> {
        let prefix = format!("/channels/{channel}");
        self.inner
            .lock()
            .requests
            .iter()
            .filter(|r| r.path == prefix || r.path.starts_with(&format!("{prefix}/")))
            .map(|r| r.at)
            .collect()
    }

    // ----- verdict -----------------------------------------------------------------------

    pub fn violations(&self) -> Vec<String> {
        self.inner.update(|st| {
            st.check_ack_deadlines(Instant::now());
            st.violations.clone()
        })
    }

    /// Return and forget the violations so far (for tests that provoke them on purpose).
    pub fn take_violations(&self) -> Vec<String> {
        let v = self.inner.update(|st| {
            st.check_ack_deadlines(Instant::now());
            std::mem::take(&mut st.violations)
        });
        self.checked_upto.store(0, Ordering::SeqCst);
        v
    }

    /// Panic listing every violation (spec, limits, ack deadline, protocol) so far.
    pub fn assert_no_violations(&self) {
        let v = self.violations();
        self.checked_upto.store(v.len(), Ordering::SeqCst);
        if !v.is_empty() {
            panic!("{}", format_violations(&v, &self.summary()));
        }
    }

    /// End of test: no violations, and every delivered interaction was acknowledged.
    pub fn finish(self) {
        self.inner.update(|st| {
            let never: Vec<String> = st
                .interactions
                .iter()
                .filter(|i| i.callback.is_none() && !i.allow_unacknowledged && !i.late_reported)
                .map(|i| {
                    format!(
                        "interaction {} ({} {:?}) was never acknowledged (test ended {:?} after it was sent)",
                        i.id,
                        state::interaction_kind_name(i.kind),
                        i.label,
                        i.clock_start().elapsed()
                    )
                })
                .collect();
            st.violations.extend(never);
        });
        self.assert_no_violations();
    }

    /// Recent traffic, for failure messages.
    pub fn summary(&self) -> String {
        let st = self.inner.lock();
        let mut out = String::from("--- fake Discord: last requests ---\n");
        let skip = st.requests.len().saturating_sub(20);
        for r in &st.requests[skip..] {
            out += &format!(
                "  {} {}{} -> {} ({})\n",
                r.method,
                r.path,
                r.query
                    .as_deref()
                    .map(|q| format!("?{q}"))
                    .unwrap_or_default(),
                r.status,
                r.operation_id.as_deref().unwrap_or("-")
            );
        }
        out += "--- gateway log (last 10) ---\n";
        let skip = st.gateway.log.len().saturating_sub(10);
        for l in &st.gateway.log[skip..] {
            out += &format!("  {l:?}\n");
        }
        out += &format!("--- violations: {} ---\n", st.violations.len());
        for v in &st.violations {
            out += &format!("  {v}\n");
        }
        out
    }
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        self.server.abort();
        self.watchdog.abort();
        if std::thread::panicking() {
            return;
        }
        let checked = self.checked_upto.load(Ordering::SeqCst);
        let v = self.inner.lock().violations.clone();
        if checked == usize::MAX {
            panic!(
                "FakeDiscord dropped without finish() or assert_no_violations(); call one at the \
                 end of the test.\n{}",
                format_violations(&v, "")
            );
        }
        if v.len() > checked {
            panic!(
                "FakeDiscord: violations after the last assert_no_violations():\n{}",
                format_violations(&v[checked..], "")
            );
        }
    }
}

fn format_violations(v: &[String], summary: &str) -> String {
    let mut out = format!("fake Discord recorded {} violation(s):\n", v.len());
    for (i, x) in v.iter().enumerate() {
        out += &format!("  {}. {x}\n", i + 1);
    }
    out + summary
}

#[allow(clippy::too_many_arguments)]
fn new_rec(
    id: u64,
    token: &str,
    kind: u64,
    user: UserId,
    channel: ChannelId,
    label: &str,
    source_message: Option<u64>,
    metadata: Value,
) -> InteractionRec {
    InteractionRec {
        id,
        token: token.to_string(),
        kind,
        user: user.get(),
        channel: channel.get(),
        label: label.to_string(),
        source_message,
        created_at: Instant::now(),
        sent_at: None,
        callback: None,
        original_message: None,
        followups: Vec::new(),
        allow_unacknowledged: false,
        late_reported: false,
        metadata,
    }
}

fn parse_message(v: &Value) -> Message {
    fixtures::ensure_parses("message", v).unwrap_or_else(|e| panic!("{e}"))
}

fn threads_of(st: &State) -> Vec<GuildChannel> {
    st.channels
        .values()
        .filter(|c| is_thread(c))
        .map(|c| fixtures::ensure_parses("thread", c).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn commands_of(st: &State) -> Vec<Command> {
    st.commands
        .iter()
        .map(|c| fixtures::ensure_parses("command", c).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}

/// Build interaction options from `{name: value}` using the registered command's option types
/// (or a raw options array), wrapped in the subcommand path. Returns (options, resolved).
fn build_options(
    st: &State,
    cmd: &Value,
    path: &[&str],
    options: &Value,
    focused: Option<&str>,
) -> (Value, Value) {
    // Walk the subcommand path in the registered definition.
    let mut defs = cmd["options"].as_array().cloned().unwrap_or_default();
    let mut wrappers = Vec::new();
    for sub in &path[1..] {
        let def = defs
            .iter()
            .find(|o| o["name"] == *sub && matches!(o["type"].as_u64(), Some(1 | 2)))
            .unwrap_or_else(|| panic!("/{} has no subcommand {sub:?}", path.join(" ")))
            .clone();
        wrappers.push((def["type"].as_u64().unwrap_or(1), sub.to_string()));
        defs = def["options"].as_array().cloned().unwrap_or_default();
    }
    let mut resolved = json!({});
    let leaf: Vec<Value> = match options {
        Value::Array(raw) => raw.clone(),
        Value::Null => Vec::new(),
        Value::Object(map) => {
            for d in &defs {
                let name = d["name"].as_str().unwrap_or_default();
                if d["required"] == true && !map.contains_key(name) && focused.is_none() {
                    panic!(
                        "/{}: required option {name:?} missing in the test",
                        path.join(" ")
                    );
                }
            }
            map.iter()
                .map(|(k, v)| {
                    let def = defs.iter().find(|d| d["name"] == *k).unwrap_or_else(|| {
                        let names: Vec<&Value> = defs.iter().map(|d| &d["name"]).collect();
                        panic!("/{} has no option {k:?}; it has {names:?}", path.join(" "))
                    });
                    let t = def["type"].as_u64().unwrap_or(3);
                    let is_focused = focused == Some(k.as_str());
                    if let Some(choices) = def["choices"]
                        .as_array()
                        .filter(|c| !c.is_empty() && !is_focused)
                    {
                        assert!(
                            choices.iter().any(|c| c["value"] == *v),
                            "/{}: {v} is not one of the choices of {k:?}",
                            path.join(" ")
                        );
                    }
                    let value = match (t, v) {
                        _ if is_focused => Value::String(match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        }),
                        (6..=9, Value::Number(n)) => Value::String(n.to_string()),
                        _ => v.clone(),
                    };
                    let id = value.as_str().and_then(|x| x.parse::<u64>().ok());
                    if let (6 | 9, Some(uid)) = (t, id)
                        && st.users.contains_key(&uid)
                    {
                        resolved["users"][uid.to_string()] = st.user_json(uid);
                        let mut m = st.member_json(uid, true);
                        if let Some(o) = m.as_object_mut() {
                            o.remove("user");
                        }
                        resolved["members"][uid.to_string()] = m;
                    }
                    if let (8 | 9, Some(rid)) = (t, id)
                        && let Some(r) = st.roles.get(&rid)
                    {
                        resolved["roles"][rid.to_string()] =
                            fixtures::role(r.id, &r.name, r.position, r.permissions, r.managed);
                    }
                    if let (7, Some(cid)) = (t, id) {
                        resolved["channels"][cid.to_string()] = st.partial_channel_json(cid, 0);
                    }
                    let mut o = json!({"name": k, "type": t, "value": value});
                    if is_focused {
                        o["focused"] = Value::Bool(true);
                    }
                    o
                })
                .collect()
        }
        other => panic!("options must be a JSON object or array, got {other}"),
    };
    let mut opts = Value::Array(leaf);
    for (t, name) in wrappers.into_iter().rev() {
        opts = json!([{"type": t, "name": name, "options": opts}]);
    }
    (opts, resolved)
}
