//! REST side of the fake: `/api/v10/...`, validated against the OpenAPI spec and Discord's
//! documented limits, then routed by the spec's `operationId`.

use super::Inner;
use super::fixtures::{ensure_parses, s};
use super::limits;
use super::multipart;
use super::openapi::{PathMatch, Spec};
use super::state::{
    ACK_DEADLINE, CallbackRec, Fault, INTENT_GUILD_MEMBERS, INTENT_GUILDS, RequestRec, State,
    Upload, is_thread,
};
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

pub const API_PREFIX: &str = "/api/v10";

pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn ok(v: Value) -> Reply {
        Reply {
            status: 200,
            body: Some(v),
            headers: vec![],
        }
    }
    fn no_content() -> Reply {
        Reply {
            status: 204,
            body: None,
            headers: vec![],
        }
    }
    fn error(status: u16, code: u64, message: &str) -> Reply {
        Reply {
            status,
            body: Some(json!({"message": message, "code": code})),
            headers: vec![],
        }
    }
}

enum ReqBody {
    None,
    Json(Value),
    /// `payload_json` (merged with plain text fields) and file uploads.
    Multipart(Value, Vec<Upload>),
}

pub async fn handle(inner: Arc<Inner>, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let content_type = header("content-type");
    let auth = header("authorization");
    let user_agent = header("user-agent");
    if let Some(release) = inner.take_hold(&method, &path, &bytes) {
        // Released by the test, or by dropping its handle.
        let _ = release.await;
    }
    let reply = inner.update(|st| {
        process(
            st,
            &inner.spec,
            &method,
            &path,
            query.as_deref(),
            &content_type,
            &auth,
            &user_agent,
            &bytes,
        )
    });
    let mut resp = Response::new(match &reply.body {
        Some(v) => Body::from(v.to_string()),
        None => Body::empty(),
    });
    *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    if reply.body.is_some() {
        resp.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
    }
    for (k, v) in reply.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

#[allow(clippy::too_many_arguments)]
fn process(
    st: &mut State,
    spec: &Spec,
    method: &str,
    full_path: &str,
    query: Option<&str>,
    content_type: &str,
    auth: &str,
    user_agent: &str,
    bytes: &[u8],
) -> Reply {
    let violations_before = st.violations.len();
    let path = match full_path.strip_prefix(API_PREFIX) {
        Some(p) => p.to_string(),
        None => {
            st.violate(format!("{method} {full_path}: not under {API_PREFIX}"));
            return record(st, method, full_path, query, None, Value::Null, not_found());
        }
    };
    let what = format!("{method} {path}");

    // Body.
    let body = if bytes.is_empty() {
        ReqBody::None
    } else if content_type.starts_with("application/json") {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(v) => ReqBody::Json(v),
            Err(e) => {
                st.violate(format!("{what}: body is not valid JSON: {e}"));
                ReqBody::None
            }
        }
    } else if content_type.starts_with("multipart/form-data") {
        parse_multipart(st, &what, content_type, bytes)
    } else {
        st.violate(format!("{what}: unsupported Content-Type {content_type:?}"));
        ReqBody::None
    };
    let (json_body, uploads) = match body {
        ReqBody::None => (Value::Null, Vec::new()),
        ReqBody::Json(v) => (v, Vec::new()),
        ReqBody::Multipart(v, f) => (v, f),
    };
    let logged_body = if uploads.is_empty() {
        json_body.clone()
    } else {
        json!({
            "payload_json": json_body,
            "files": uploads.iter().map(|u| u.filename.clone()).collect::<Vec<_>>(),
        })
    };

    // Headers.
    if auth != format!("Bot {}", st.token) {
        st.violate(format!(
            "{what}: Authorization header is {auth:?}, expected \"Bot <token>\""
        ));
        let r = Reply::error(401, 0, "401: Unauthorized");
        return record(st, method, &path, query, None, logged_body, r);
    }
    if !user_agent.starts_with("DiscordBot") {
        st.violate(format!(
            "{what}: User-Agent {user_agent:?} must look like \"DiscordBot ($url, $version)\""
        ));
    }

    // Spec.
    let (op_id, params) = match spec.find(method, &path) {
        PathMatch::Found(op, params) => {
            validate_params(st, spec, &what, op, &params, query);
            validate_body(
                st,
                spec,
                &what,
                op,
                content_type,
                &json_body,
                !bytes.is_empty(),
            );
            (op.operation_id.clone(), params)
        }
        PathMatch::MethodNotAllowed(template, allowed) => {
            st.violate(format!(
                "{what}: the spec has {template} only for {}",
                allowed.join(", ")
            ));
            let r = Reply::error(405, 0, "405: Method Not Allowed");
            return record(st, method, &path, query, None, logged_body, r);
        }
        PathMatch::NotFound => {
            st.violate(format!(
                "{what}: no such endpoint in Discord's OpenAPI spec"
            ));
            return record(st, method, &path, query, None, logged_body, not_found());
        }
    };

    // Documented limits the spec does not (fully) encode.
    let mut errs = Vec::new();
    match op_id.as_str() {
        "create_message"
        | "update_message"
        | "execute_webhook"
        | "update_webhook_message"
        | "update_original_webhook_message" => limits::check_message(&json_body, &mut errs),
        "create_interaction_response" => limits::check_callback(&json_body, &mut errs),
        "create_thread" if json_body["message"].is_object() => {
            limits::check_message(&json_body["message"], &mut errs);
        }
        _ => {}
    }
    for e in errs {
        st.violate(format!("{what}: Discord limit: {e}"));
    }

    if st.reject_invalid && st.violations.len() > violations_before {
        let r = Reply {
            status: 400,
            body: Some(json!({"message": "Invalid Form Body", "code": 50035, "errors": {}})),
            headers: vec![],
        };
        return record(st, method, &path, query, Some(op_id), logged_body, r);
    }

    // Rate limits: counted always, a 429 only where the test models them.
    let verdict = st.rate_limits.count(&op_id, &params, Instant::now());
    if let Some((retry_after, global)) = verdict.limited {
        let r = Reply {
            status: 429,
            body: Some(json!({
                "message": "You are being rate limited.",
                "retry_after": (retry_after.as_secs_f64() * 1000.0).ceil() / 1000.0,
                "global": global,
                "code": 0,
            })),
            headers: verdict.headers,
        };
        return record(st, method, &path, query, Some(op_id), logged_body, r);
    }

    // Fault injection.
    if let Some(r) = take_fault(st, method, &path) {
        return record(st, method, &path, query, Some(op_id), logged_body, r);
    }

    let q = parse_query(query);
    let mut reply = route(st, &op_id, &what, &params, &q, &json_body, uploads);
    reply.headers.extend(verdict.headers);
    record(st, method, &path, query, Some(op_id), logged_body, reply)
}

fn record(
    st: &mut State,
    method: &str,
    path: &str,
    query: Option<&str>,
    operation_id: Option<String>,
    body: Value,
    reply: Reply,
) -> Reply {
    st.requests.push(RequestRec {
        method: method.to_string(),
        path: path.to_string(),
        query: query.map(str::to_string),
        operation_id,
        body,
        status: reply.status,
        at: Instant::now(),
    });
    reply
}

fn not_found() -> Reply {
    Reply::error(404, 0, "404: Not Found")
}

fn parse_multipart(st: &mut State, what: &str, content_type: &str, bytes: &[u8]) -> ReqBody {
    let Some(boundary) = multipart::boundary(content_type) else {
        st.violate(format!("{what}: multipart body without boundary"));
        return ReqBody::None;
    };
    let parts = match multipart::parse(bytes, &boundary) {
        Ok(p) => p,
        Err(e) => {
            st.violate(format!("{what}: malformed multipart body: {e}"));
            return ReqBody::None;
        }
    };
    let mut payload = json!({});
    let mut uploads = Vec::new();
    for p in parts {
        if p.name == "payload_json" {
            match serde_json::from_slice::<Value>(&p.data) {
                Ok(Value::Object(m)) => {
                    for (k, v) in m {
                        payload[k] = v;
                    }
                }
                _ => st.violate(format!("{what}: payload_json is not a JSON object")),
            }
        } else if p.filename.is_some() || p.name.starts_with("files[") || p.name == "file" {
            let valid_name = p.name == "file"
                || p.name
                    .strip_prefix("files[")
                    .and_then(|r| r.strip_suffix(']'))
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_some_and(|n| n < 10);
            if !valid_name {
                st.violate(format!(
                    "{what}: file part named {:?} (expected files[0..9])",
                    p.name
                ));
            }
            uploads.push(Upload {
                filename: p.filename.unwrap_or_else(|| p.name.clone()),
                content_type: p.content_type,
                data: p.data,
            });
        } else {
            payload[p.name] = Value::String(String::from_utf8_lossy(&p.data).to_string());
        }
    }
    ReqBody::Multipart(payload, uploads)
}

fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn validate_params(
    st: &mut State,
    spec: &Spec,
    what: &str,
    op: &super::openapi::Operation,
    path_params: &HashMap<String, String>,
    query: Option<&str>,
) {
    for (name, value) in path_params {
        if let Some((_, _, schema, _)) = op.params.iter().find(|p| p.0 == *name && p.1 == "path") {
            for e in spec.validate(schema, &Value::String(value.clone())) {
                st.violate(format!("{what}: path parameter {name}: {e}"));
            }
        }
    }
    for (k, v) in parse_query(query) {
        match op.params.iter().find(|p| p.0 == k && p.1 == "query") {
            None => st.violate(format!("{what}: query parameter {k:?} is not in the spec")),
            Some((_, _, schema, _)) => {
                let value = if let Ok(n) = v.parse::<i64>() {
                    json!(n)
                } else if v == "true" || v == "false" {
                    json!(v == "true")
                } else {
                    Value::String(v.clone())
                };
                // Query strings carry no types: accept either the typed or the string reading.
                let typed = spec.validate(schema, &value);
                if !typed.is_empty() && !spec.validate(schema, &Value::String(v.clone())).is_empty()
                {
                    for e in typed {
                        st.violate(format!("{what}: query parameter {k}: {e}"));
                    }
                }
            }
        }
    }
    for (name, location, _, required) in &op.params {
        if *required && location == "query" && !parse_query(query).contains_key(name) {
            st.violate(format!("{what}: required query parameter {name} missing"));
        }
    }
}

fn validate_body(
    st: &mut State,
    spec: &Spec,
    what: &str,
    op: &super::openapi::Operation,
    content_type: &str,
    body: &Value,
    has_body: bool,
) {
    if op.body.is_empty() {
        if has_body && body != &json!({}) && !body.is_null() {
            st.violate(format!(
                "{what}: the spec defines no request body, got {body}"
            ));
        }
        return;
    }
    if !has_body {
        if op.body_required {
            st.violate(format!(
                "{what}: request body required by the spec but missing"
            ));
        }
        return;
    }
    let media = content_type.split(';').next().unwrap_or_default().trim();
    // For multipart, the JSON part is validated against the JSON schema when there is one.
    let schema = if media == "multipart/form-data" {
        op.body
            .iter()
            .find(|(m, _)| m == "multipart/form-data")
            .map(|_| {
                op.body
                    .iter()
                    .find(|(m, _)| m == "application/json")
                    .or_else(|| op.body.iter().find(|(m, _)| m == "multipart/form-data"))
                    .map(|(_, s)| s.clone())
                    .unwrap_or(Value::Null)
            })
    } else {
        op.body
            .iter()
            .find(|(m, _)| m == media)
            .map(|(_, s)| s.clone())
    };
    let Some(schema) = schema else {
        st.violate(format!(
            "{what}: Content-Type {media} not accepted; the spec allows {}",
            op.body
                .iter()
                .map(|(m, _)| m.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return;
    };
    for e in spec.validate(&schema, body) {
        st.violate(format!(
            "{what}: request body violates the spec ({}): {e}",
            op.operation_id
        ));
    }
}

/// A fault's prefix may start with a method: `POST /channels/1/messages` matches only POSTs.
fn take_fault(st: &mut State, method: &str, path: &str) -> Option<Reply> {
    let matches = |p: &str| match p.split_once(' ') {
        Some((m, rest)) => m.eq_ignore_ascii_case(method) && path.starts_with(rest),
        None => path.starts_with(p),
    };
    let idx = st
        .faults
        .iter()
        .position(|f| f.remaining > 0 && f.path_prefix.as_deref().is_none_or(matches))?;
    let f: &mut Fault = &mut st.faults[idx];
    f.remaining -= 1;
    let f = f.clone();
    st.faults.retain(|f| f.remaining > 0);
    Some(match f.status {
        429 => {
            let reset = chrono::Utc::now().timestamp_millis() as f64 / 1000.0 + f.retry_after;
            let mut headers = vec![
                ("retry-after", format!("{}", f.retry_after.ceil() as u64)),
                ("x-ratelimit-limit", "5".to_string()),
                ("x-ratelimit-remaining", "0".to_string()),
                ("x-ratelimit-reset", format!("{reset:.3}")),
                ("x-ratelimit-reset-after", format!("{:.3}", f.retry_after)),
                ("x-ratelimit-bucket", "fake-bucket".to_string()),
                (
                    "x-ratelimit-scope",
                    if f.global { "global" } else { "user" }.to_string(),
                ),
            ];
            if f.global {
                headers.push(("x-ratelimit-global", "true".to_string()));
            }
            Reply {
                status: 429,
                body: Some(json!({
                    "message": "You are being rate limited.",
                    "retry_after": f.retry_after,
                    "global": f.global,
                    "code": 0,
                })),
                headers,
            }
        }
        status => Reply::error(status, 0, &format!("{status}: injected failure")),
    })
}

fn pid(params: &HashMap<String, String>, name: &str) -> u64 {
    params
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_default()
}

fn check<T: serde::de::DeserializeOwned>(st: &mut State, what: &str, v: Value) -> Reply {
    if let Err(e) = ensure_parses::<T>(what, &v) {
        st.violate(e);
    }
    Reply::ok(v)
}

fn unknown_channel() -> Reply {
    Reply::error(404, 10003, "Unknown Channel")
}

fn unknown_message() -> Reply {
    Reply::error(404, 10008, "Unknown Message")
}

#[allow(clippy::too_many_lines)]
fn route(
    st: &mut State,
    op: &str,
    what: &str,
    p: &HashMap<String, String>,
    q: &HashMap<String, String>,
    body: &Value,
    uploads: Vec<Upload>,
) -> Reply {
    use serenity::all as m;
    let bot = st.ids.bot_user;
    match op {
        // ----- start-up ------------------------------------------------------------------
        "get_gateway" => check::<m::Gateway>(st, "gateway", json!({"url": st.ws_url})),
        "get_bot_gateway" => {
            let v = json!({
                "url": st.ws_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1
                },
            });
            check::<m::BotGateway>(st, "bot gateway", v)
        }
        "get_my_oauth2_application" | "get_my_application" | "get_application" => {
            let v = st.application_json();
            check::<m::CurrentApplicationInfo>(st, "application", v)
        }
        "get_my_user" => {
            let v = st.current_user_json();
            check::<m::CurrentUser>(st, "current user", v)
        }
        "list_my_guilds" => {
            let g = json!([{
                "id": s(st.ids.guild), "name": "onboard-test", "icon": null, "banner": null,
                "owner": false, "permissions": st.permissions_of(bot).to_string(), "features": [],
            }]);
            check::<Vec<m::GuildInfo>>(st, "guild list", g)
        }

        // ----- application commands ------------------------------------------------------
        "bulk_set_application_commands" | "bulk_set_guild_application_commands" => {
            let guild = p.get("guild_id").and_then(|g| g.parse().ok());
            let new: Vec<Value> = body
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| st.command_json(c, guild))
                .collect();
            st.commands
                .retain(|c| c["guild_id"].as_str().and_then(|g| g.parse().ok()) != guild);
            st.commands.extend(new.iter().cloned());
            check::<Vec<m::Command>>(st, "command list", Value::Array(new))
        }
        "create_application_command" | "create_guild_application_command" => {
            let guild = p.get("guild_id").and_then(|g| g.parse().ok());
            let c = st.command_json(body, guild);
            let existed = st.commands.iter().any(|old| old["id"] == c["id"]);
            st.upsert_command(c.clone());
            let mut r = check::<m::Command>(st, "command", c);
            if !existed {
                r.status = 201;
            }
            r
        }
        "list_application_commands" | "list_guild_application_commands" => {
            let guild: Option<u64> = p.get("guild_id").and_then(|g| g.parse().ok());
            let list: Vec<Value> = st
                .commands
                .iter()
                .filter(|c| c["guild_id"].as_str().and_then(|g| g.parse().ok()) == guild)
                .cloned()
                .collect();
            check::<Vec<m::Command>>(st, "command list", Value::Array(list))
        }
        "get_application_command" | "get_guild_application_command" => {
            match st
                .commands
                .iter()
                .find(|c| c["id"].as_str() == p.get("command_id").map(String::as_str))
            {
                Some(c) => {
                    let c = c.clone();
                    check::<m::Command>(st, "command", c)
                }
                None => Reply::error(404, 10063, "Unknown application command"),
            }
        }
        "update_application_command" | "update_guild_application_command" => {
            let id = p.get("command_id").cloned().unwrap_or_default();
            let Some(old) = st
                .commands
                .iter()
                .find(|c| c["id"].as_str() == Some(&id))
                .cloned()
            else {
                return Reply::error(404, 10063, "Unknown application command");
            };
            let mut merged = old.clone();
            for (k, v) in body.as_object().into_iter().flatten() {
                merged[k] = v.clone();
            }
            st.upsert_command(merged.clone());
            check::<m::Command>(st, "command", merged)
        }
        "delete_application_command" | "delete_guild_application_command" => {
            let id = p.get("command_id").cloned().unwrap_or_default();
            st.commands.retain(|c| c["id"].as_str() != Some(&id));
            Reply::no_content()
        }

        // ----- guild -----------------------------------------------------------------------
        "get_guild" => {
            let mut g = st.guild_base_json();
            g["approximate_member_count"] = json!(st.users.len());
            g["approximate_presence_count"] = json!(0);
            check::<m::PartialGuild>(st, "guild", g)
        }
        "list_guild_channels" => {
            let v = Value::Array(st.guild_channels());
            check::<Vec<m::GuildChannel>>(st, "channel list", v)
        }
        "get_active_guild_threads" => {
            let threads = st.active_threads();
            let mut members = Vec::new();
            for t in &threads {
                let tid: u64 = t["id"]
                    .as_str()
                    .and_then(|x| x.parse().ok())
                    .unwrap_or_default();
                if st
                    .thread_members
                    .get(&tid)
                    .is_some_and(|m| m.contains(&bot))
                {
                    members.push(thread_member_json(tid, bot));
                }
            }
            let v = json!({"threads": threads, "members": members});
            check::<m::ThreadsData>(st, "active threads", v)
        }
        "list_guild_roles" => {
            let v = Value::Array(st.roles_json());
            check::<Vec<m::Role>>(st, "role list", v)
        }
        "get_guild_member" => {
            let uid = pid(p, "user_id");
            if !st.users.contains_key(&uid) {
                return Reply::error(404, 10007, "Unknown Member");
            }
            let v = st.member_json(uid, false);
            check::<m::Member>(st, "member", v)
        }
        "list_guild_members" => {
            let ids: Vec<u64> = st.users.keys().copied().collect();
            let v = Value::Array(
                ids.into_iter()
                    .map(|id| st.member_json(id, false))
                    .collect(),
            );
            check::<Vec<m::Member>>(st, "member list", v)
        }
        "add_guild_member_role" | "delete_guild_member_role" => {
            let (uid, rid) = (pid(p, "user_id"), pid(p, "role_id"));
            if !st.roles.contains_key(&rid) {
                return Reply::error(404, 10011, "Unknown Role");
            }
            let Some(u) = st.users.get_mut(&uid) else {
                return Reply::error(404, 10007, "Unknown Member");
            };
            u.roles.retain(|r| *r != rid);
            if op == "add_guild_member_role" {
                u.roles.push(rid);
            }
            let mut d = st.member_json(uid, false);
            d["guild_id"] = s(st.ids.guild);
            st.dispatch_or_violate("GUILD_MEMBER_UPDATE", d, Some(INTENT_GUILD_MEMBERS));
            Reply::no_content()
        }

        // ----- channels ----------------------------------------------------------------------
        "get_channel" => match st.channels.get(&pid(p, "channel_id")).cloned() {
            Some(c) => check::<m::Channel>(st, "channel", c),
            None => unknown_channel(),
        },
        "update_channel" => {
            let cid = pid(p, "channel_id");
            let Some(c) = st.channels.get_mut(&cid) else {
                return unknown_channel();
            };
            let thread = is_thread(c);
            for (k, v) in body.as_object().into_iter().flatten() {
                match k.as_str() {
                    "archived" | "locked" | "auto_archive_duration" | "invitable" if thread => {
                        c["thread_metadata"][k] = v.clone();
                        if k == "archived" {
                            c["thread_metadata"]["archive_timestamp"] =
                                json!(super::fixtures::now_ts());
                        }
                    }
                    _ => c[k] = v.clone(),
                }
            }
            let c = c.clone();
            let t = if thread {
                "THREAD_UPDATE"
            } else {
                "CHANNEL_UPDATE"
            };
            st.dispatch_or_violate(t, c.clone(), Some(INTENT_GUILDS));
            check::<m::Channel>(st, "channel", c)
        }
        "delete_channel" => {
            let cid = pid(p, "channel_id");
            let Some(c) = st.channels.remove(&cid) else {
                return unknown_channel();
            };
            let t = if is_thread(&c) {
                "THREAD_DELETE"
            } else {
                "CHANNEL_DELETE"
            };
            if is_thread(&c) {
                let d = json!({"id": c["id"], "guild_id": c["guild_id"], "parent_id": c["parent_id"], "type": c["type"]});
                st.dispatch_or_violate(t, d, Some(INTENT_GUILDS));
            } else {
                st.dispatch_or_violate(t, c.clone(), Some(INTENT_GUILDS));
            }
            check::<m::Channel>(st, "channel", c)
        }
        "trigger_typing_indicator" => {
            if !st.channels.contains_key(&pid(p, "channel_id")) {
                return unknown_channel();
            }
            Reply::no_content()
        }
        "create_dm" => {
            let uid: u64 = body["recipient_id"]
                .as_str()
                .and_then(|x| x.parse().ok())
                .or_else(|| body["recipient_id"].as_u64())
                .unwrap_or_default();
            let existing = st.channels.values().find(|c| {
                c["type"] == 1 && c["recipients"][0]["id"].as_str() == Some(&uid.to_string())
            });
            let c = match existing {
                Some(c) => c.clone(),
                None => {
                    let id = st.next_id();
                    let c = super::fixtures::dm_channel(id, &st.user_json(uid));
                    st.channels.insert(id, c.clone());
                    c
                }
            };
            check::<m::PrivateChannel>(st, "DM channel", c)
        }

        // ----- messages ----------------------------------------------------------------------
        "create_message" => {
            let cid = pid(p, "channel_id");
            if !st.channels.contains_key(&cid) {
                return unknown_channel();
            }
            let mut payload = body.clone();
            if let Some(f) = payload["flags"].as_u64() {
                if f & 64 != 0 {
                    st.violate(format!(
                        "{what}: EPHEMERAL flag only exists for interaction responses"
                    ));
                }
                payload["flags"] = json!(f & (4 | 4096 | 32768));
            }
            let msg = st.build_message(cid, bot, &payload, &uploads);
            match st.insert_message(msg, uploads) {
                Ok(v) => Reply::ok(v),
                Err(e) => {
                    st.violate(e);
                    Reply::error(500, 0, "fake failed to build the message")
                }
            }
        }
        "list_messages" => {
            let cid = pid(p, "channel_id");
            if !st.channels.contains_key(&cid) {
                return unknown_channel();
            }
            let limit: usize = q
                .get("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(50)
                .min(100);
            let before: Option<u64> = q.get("before").and_then(|x| x.parse().ok());
            let after: Option<u64> = q.get("after").and_then(|x| x.parse().ok());
            let mut list: Vec<Value> = st
                .messages
                .iter()
                .filter(|(id, m)| {
                    !m.deleted
                        && m.json["channel_id"].as_str() == Some(&cid.to_string())
                        && m.json["flags"].as_u64().unwrap_or(0) & 64 == 0
                        && before.is_none_or(|b| **id < b)
                        && after.is_none_or(|a| **id > a)
                })
                .map(|(_, m)| m.json.clone())
                .collect();
            // Newest first, like Discord (except with `after`, which pages forward).
            if after.is_some() {
                list.truncate(limit);
                list.reverse();
            } else {
                list.reverse();
                list.truncate(limit);
            }
            check::<Vec<m::Message>>(st, "message list", Value::Array(list))
        }
        "get_message" => {
            let (cid, mid) = (pid(p, "channel_id"), pid(p, "message_id"));
            match st
                .live_message(mid)
                .filter(|m| m.json["channel_id"] == s(cid))
            {
                Some(m) => {
                    let v = m.json.clone();
                    check::<m::Message>(st, "message", v)
                }
                None => unknown_message(),
            }
        }
        "update_message" => {
            let (cid, mid) = (pid(p, "channel_id"), pid(p, "message_id"));
            let Some(m) = st
                .live_message(mid)
                .filter(|m| m.json["channel_id"] == s(cid))
            else {
                return unknown_message();
            };
            if m.json["author"]["id"] != s(bot)
                && body
                    .as_object()
                    .is_some_and(|o| o.keys().any(|k| k != "flags"))
            {
                return Reply::error(403, 50005, "Cannot edit a message authored by another user");
            }
            edit_reply(st, mid, body, uploads)
        }
        "delete_message" => {
            if st.delete_message(pid(p, "message_id")) {
                Reply::no_content()
            } else {
                unknown_message()
            }
        }
        "add_my_message_reaction" | "delete_my_message_reaction" => {
            let mid = pid(p, "message_id");
            let emoji = p.get("emoji_name").cloned().unwrap_or_default();
            let Some(rec) = st.messages.get_mut(&mid).filter(|m| !m.deleted) else {
                return unknown_message();
            };
            if op.starts_with("add") {
                rec.reactions_by_bot.insert(emoji);
            } else {
                rec.reactions_by_bot.remove(&emoji);
            }
            Reply::no_content()
        }

        // ----- threads -----------------------------------------------------------------------
        "create_thread" | "create_thread_from_message" => {
            let cid = pid(p, "channel_id");
            let Some(parent) = st.channels.get(&cid).cloned() else {
                return unknown_channel();
            };
            let parent_type = parent["type"].as_u64().unwrap_or(0);
            if !matches!(parent_type, 0 | 5 | 15) {
                return Reply::error(400, 50024, "Cannot execute action on this channel type");
            }
            let from_message = op == "create_thread_from_message";
            let mid = pid(p, "message_id");
            if from_message {
                let Some(m) = st
                    .live_message(mid)
                    .filter(|m| m.json["channel_id"] == s(cid))
                else {
                    return unknown_message();
                };
                if m.json.get("thread").is_some_and(|t| !t.is_null()) {
                    return Reply::error(
                        400,
                        160004,
                        "A thread has already been created for this message",
                    );
                }
            }
            let kind = if from_message {
                if parent_type == 5 { 10 } else { 11 }
            } else if parent_type == 15 {
                11
            } else {
                // API v10 still defaults to a PRIVATE thread when `type` is omitted.
                body["type"].as_u64().unwrap_or(12)
            };
            let id = if from_message { mid } else { st.next_id() };
            let name = body["name"].as_str().unwrap_or_default();
            let archive = body["auto_archive_duration"].as_u64().unwrap_or(4320);
            let mut thread = super::fixtures::thread(
                id,
                st.ids.guild,
                cid,
                bot,
                name,
                kind,
                archive,
                body["invitable"].as_bool(),
            );
            thread["rate_limit_per_user"] =
                json!(body["rate_limit_per_user"].as_u64().unwrap_or(0));
            st.thread_members.entry(id).or_default().insert(bot);
            thread["member_count"] = json!(1);
            st.channels.insert(id, thread.clone());
            if from_message && let Some(rec) = st.messages.get_mut(&mid) {
                rec.json["thread"] = thread.clone();
                let updated = rec.json.clone();
                rec.history.push(updated);
            }
            let mut created = thread.clone();
            created["newly_created"] = json!(true);
            st.dispatch_or_violate("THREAD_CREATE", created, Some(INTENT_GUILDS));
            // Forum posts carry their starter message.
            if parent_type == 15 && body["message"].is_object() {
                let msg = st.build_message(id, bot, &body["message"], &uploads);
                if let Err(e) = st.insert_message(msg, uploads) {
                    st.violate(e);
                }
            }
            let mut resp = thread;
            resp["member"] = thread_member_json(id, bot);
            let mut r = check::<m::GuildChannel>(st, "thread", resp);
            r.status = 201;
            r
        }
        "join_thread" | "add_thread_member" | "leave_thread" | "delete_thread_member" => {
            let tid = pid(p, "channel_id");
            let uid = if op.ends_with("_thread") {
                bot
            } else {
                pid(p, "user_id")
            };
            match st.channels.get(&tid) {
                Some(c) if is_thread(c) => {}
                _ => return unknown_channel(),
            }
            if !st.users.contains_key(&uid) {
                return Reply::error(404, 10013, "Unknown User");
            }
            let members = st.thread_members.entry(tid).or_default();
            let adding = op.starts_with("join") || op.starts_with("add");
            if adding {
                members.insert(uid);
            } else {
                members.remove(&uid);
            }
            let count = members.len();
            if let Some(c) = st.channels.get_mut(&tid) {
                c["member_count"] = json!(count.min(50));
            }
            let mut d = json!({
                "id": s(tid), "guild_id": s(st.ids.guild), "member_count": count.min(50),
            });
            if adding {
                d["added_members"] = json!([thread_member_json(tid, uid)]);
            } else {
                d["removed_member_ids"] = json!([s(uid)]);
            }
            st.dispatch_or_violate("THREAD_MEMBERS_UPDATE", d, Some(INTENT_GUILD_MEMBERS));
            Reply::no_content()
        }
        "list_thread_members" => {
            let tid = pid(p, "channel_id");
            let members: Vec<Value> = st
                .thread_members
                .get(&tid)
                .into_iter()
                .flatten()
                .map(|u| thread_member_json(tid, *u))
                .collect();
            check::<Vec<m::ThreadMember>>(st, "thread members", Value::Array(members))
        }
        "get_thread_member" => {
            let (tid, uid) = (pid(p, "channel_id"), pid(p, "user_id"));
            if st
                .thread_members
                .get(&tid)
                .is_some_and(|m| m.contains(&uid))
            {
                check::<m::ThreadMember>(st, "thread member", thread_member_json(tid, uid))
            } else {
                Reply::error(404, 10033, "Unknown Thread Member")
            }
        }

        // ----- interactions ------------------------------------------------------------------
        "create_interaction_response" => interaction_callback(st, what, p, body),
        "execute_webhook" => followup(st, what, p, body, uploads),
        "get_original_webhook_message"
        | "update_original_webhook_message"
        | "delete_original_webhook_message"
        | "get_webhook_message"
        | "update_webhook_message"
        | "delete_webhook_message" => webhook_message(st, op, what, p, body, uploads),

        other => {
            st.violate(format!(
                "[fake-unimplemented] {what} (operation {other}) is valid Discord API but the fake \
                 does not implement it yet; extend tests/it/support/fake_discord/rest.rs"
            ));
            Reply::error(404, 0, "fake: not implemented")
        }
    }
}

fn thread_member_json(thread: u64, user: u64) -> Value {
    json!({
        "id": s(thread),
        "user_id": s(user),
        "join_timestamp": super::fixtures::now_ts(),
        "flags": 0,
    })
}

fn edit_reply(st: &mut State, mid: u64, body: &Value, uploads: Vec<Upload>) -> Reply {
    match st.edit_message(mid, body, uploads) {
        Ok(v) => Reply::ok(v),
        Err(e) => {
            st.violate(e);
            Reply::error(500, 0, "fake failed to edit the message")
        }
    }
}

/// A message created on behalf of an interaction (original response or follow-up).
fn interaction_message(
    st: &mut State,
    idx: usize,
    payload: &Value,
    uploads: Vec<Upload>,
    loading: bool,
) -> Result<Value, String> {
    let (channel, kind, metadata) = {
        let i = &st.interactions[idx];
        (i.channel, i.kind, i.metadata.clone())
    };
    let bot = st.ids.bot_user;
    let mut payload = payload.clone();
    let requested = payload["flags"].as_u64().unwrap_or(0);
    payload["flags"] = json!((requested & (4 | 64 | 4096 | 32768)) | if loading { 128 } else { 0 });
    let mut msg = st.build_message(channel, bot, &payload, &uploads);
    msg["webhook_id"] = s(st.ids.application);
    msg["application_id"] = s(st.ids.application);
    if let Some(o) = msg.as_object_mut() {
        o.remove("member");
    }
    if msg["type"] == 0 && kind == 2 {
        msg["type"] = json!(20);
    }
    if !metadata.is_null() {
        msg["interaction_metadata"] = metadata;
    }
    st.insert_message(msg, uploads)
}

fn interaction_callback(
    st: &mut State,
    what: &str,
    p: &HashMap<String, String>,
    body: &Value,
) -> Reply {
    let now = Instant::now();
    let iid = pid(p, "interaction_id");
    let token = p.get("interaction_token").cloned().unwrap_or_default();
    let Some(idx) = st.interactions.iter().position(|i| i.id == iid) else {
        st.violate(format!("{what}: callback for unknown interaction {iid}"));
        return Reply::error(404, 10062, "Unknown interaction");
    };
    if st.interactions[idx].token != token {
        st.violate(format!("{what}: wrong interaction token"));
        return Reply::error(401, 50027, "Invalid Webhook Token");
    }
    if st.interactions[idx].callback.is_some() {
        st.violate(format!("{what}: interaction {iid} acknowledged twice"));
        return Reply::error(400, 40060, "Interaction has already been acknowledged.");
    }
    let kind = body["type"].as_u64().unwrap_or(0);
    let i = &st.interactions[idx];
    let latency = now.duration_since(i.clock_start());
    let ikind = i.kind;
    let source = i.source_message;
    let label = i.label.clone();
    let late = latency > ACK_DEADLINE && !i.late_reported;
    let allowed: &[u64] = match ikind {
        2 => &[4, 5, 9, 12],
        3 => &[4, 5, 6, 7, 9, 12],
        4 => &[8],
        5 if source.is_some() => &[4, 5, 6, 7],
        5 => &[4, 5],
        _ => &[],
    };
    if !allowed.contains(&kind) {
        st.violate(format!(
            "{what}: callback type {kind} is not valid for a {} interaction ({label:?}); allowed: {allowed:?}",
            super::state::interaction_kind_name(ikind)
        ));
    }
    if late {
        st.interactions[idx].late_reported = true;
        st.violate(format!(
            "{what}: interaction {iid} ({label:?}) acknowledged after {latency:?}, Discord's deadline is {ACK_DEADLINE:?}"
        ));
    }
    st.interactions[idx].callback = Some(CallbackRec {
        kind,
        data: body["data"].clone(),
        latency,
    });
    let data = if body["data"].is_object() {
        body["data"].clone()
    } else {
        json!({})
    };
    let result = match kind {
        4 => interaction_message(st, idx, &data, Vec::new(), false).map(Some),
        5 => {
            let flags = data["flags"].as_u64().unwrap_or(0) & 64;
            interaction_message(
                st,
                idx,
                &json!({"content": "", "flags": flags}),
                Vec::new(),
                true,
            )
            .map(Some)
        }
        6 => Ok(source
            .and_then(|m| st.live_message(m))
            .map(|m| m.json.clone())),
        7 => match source {
            Some(mid) if st.live_message(mid).is_some() => {
                st.edit_message(mid, &data, Vec::new()).map(Some)
            }
            _ => Ok(None),
        },
        _ => Ok(None),
    };
    match result {
        Ok(Some(msg)) => {
            st.interactions[idx].original_message = msg["id"].as_str().and_then(|x| x.parse().ok());
        }
        Ok(None) => {}
        Err(e) => st.violate(e),
    }
    Reply::no_content()
}

fn webhook_interaction(
    st: &mut State,
    what: &str,
    p: &HashMap<String, String>,
) -> Result<usize, Reply> {
    if pid(p, "webhook_id") != st.ids.application {
        st.violate(format!("{what}: webhook id is not the application id"));
        return Err(Reply::error(404, 10015, "Unknown Webhook"));
    }
    let token = p.get("webhook_token").cloned().unwrap_or_default();
    let Some(idx) = st.interactions.iter().position(|i| i.token == token) else {
        st.violate(format!("{what}: unknown interaction token"));
        return Err(Reply::error(404, 10015, "Unknown Webhook"));
    };
    if st.interactions[idx].callback.is_none() {
        st.violate(format!(
            "{what}: interaction webhook used before the interaction was acknowledged"
        ));
        return Err(Reply::error(404, 10015, "Unknown Webhook"));
    }
    Ok(idx)
}

fn followup(
    st: &mut State,
    what: &str,
    p: &HashMap<String, String>,
    body: &Value,
    uploads: Vec<Upload>,
) -> Reply {
    let idx = match webhook_interaction(st, what, p) {
        Ok(i) => i,
        Err(r) => return r,
    };
    // The first follow-up after a deferred response replaces the "thinking…" message.
    let original = st.interactions[idx].original_message;
    let loading = original
        .and_then(|m| st.live_message(m))
        .is_some_and(|m| m.json["flags"].as_u64().unwrap_or(0) & 128 != 0);
    let result = if let (true, Some(mid)) = (
        loading && st.interactions[idx].followups.is_empty(),
        original,
    ) {
        let mut edit = body.clone();
        let old_flags = st
            .live_message(mid)
            .map_or(0, |m| m.json["flags"].as_u64().unwrap_or(0));
        edit["flags"] = json!(old_flags);
        let r = st.edit_message(mid, &edit, uploads).map(|mut v| {
            v["flags"] = json!(old_flags & !128);
            v
        });
        if let Some(rec) = st.messages.get_mut(&mid) {
            rec.json["flags"] = json!(old_flags & !128);
        }
        r
    } else {
        interaction_message(st, idx, body, uploads, false)
    };
    match result {
        Ok(msg) => {
            if let Some(id) = msg["id"].as_str().and_then(|x| x.parse().ok()) {
                st.interactions[idx].followups.push(id);
            }
            Reply::ok(msg)
        }
        Err(e) => {
            st.violate(e);
            Reply::error(500, 0, "fake failed to build the follow-up")
        }
    }
}

fn webhook_message(
    st: &mut State,
    op: &str,
    what: &str,
    p: &HashMap<String, String>,
    body: &Value,
    uploads: Vec<Upload>,
) -> Reply {
    let idx = match webhook_interaction(st, what, p) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let i = &st.interactions[idx];
    let target = if op.contains("original") {
        i.original_message.or(i.source_message)
    } else {
        let mid = pid(p, "message_id");
        (Some(mid) == i.original_message || i.followups.contains(&mid)).then_some(mid)
    };
    let Some(mid) = target.filter(|m| st.live_message(*m).is_some()) else {
        st.violate(format!("{what}: no such message for this interaction"));
        return unknown_message();
    };
    if op.starts_with("get") {
        let v = st
            .live_message(mid)
            .map(|m| m.json.clone())
            .unwrap_or_default();
        check::<serenity::all::Message>(st, "message", v)
    } else if op.starts_with("delete") {
        st.delete_message(mid);
        Reply::no_content()
    } else {
        // Editing the original clears the "thinking…" state.
        let flags = st
            .live_message(mid)
            .map_or(0, |m| m.json["flags"].as_u64().unwrap_or(0));
        if flags & 128 != 0
            && let Some(rec) = st.messages.get_mut(&mid)
        {
            rec.json["flags"] = json!(flags & !128);
        }
        edit_reply(st, mid, body, uploads)
    }
}
