//! Gateway side of the fake: one websocket per shard connection.
//!
//! Protocol handled: HELLO (op 10) first; HEARTBEAT (op 1) -> HEARTBEAT_ACK (op 11);
//! IDENTIFY (op 2) -> new session, READY + GUILD_CREATE; RESUME (op 6) -> replay of the
//! dispatches after the client's `seq`, then RESUMED (unknown session -> INVALID_SESSION);
//! REQUEST_GUILD_MEMBERS (op 8) -> one GUILD_MEMBERS_CHUNK. `drop_gateway` closes the socket with
//! a resumable close code.

use super::Inner;
use super::state::GatewayLog;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// Heartbeat interval the fake asks for (Discord's usual value).
pub const HEARTBEAT_INTERVAL_MS: u64 = 41_250;

pub async fn upgrade(
    State(inner): State<Arc<Inner>>,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| async move {
        run(inner, socket, query.unwrap_or_default()).await;
    })
}

async fn send(socket: &mut WebSocket, v: &Value) -> bool {
    socket
        .send(Message::Text(v.to_string().into()))
        .await
        .is_ok()
}

async fn run(inner: Arc<Inner>, mut socket: WebSocket, query: String) {
    let (conn, my_generation) = inner.update(|st| {
        st.gateway.next_conn += 1;
        let conn = st.gateway.next_conn;
        st.gateway.log.push(GatewayLog::Connected {
            conn,
            query: query.clone(),
        });
        if !query.split('&').any(|kv| kv == "v=10") {
            st.violate(format!(
                "gateway connected with query {query:?}, expected v=10"
            ));
        }
        (conn, st.gateway.close_generation)
    });
    let mut rx = inner.version.subscribe();
    if !send(
        &mut socket,
        &json!({"op": 10, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}}),
    )
    .await
    {
        return;
    }
    // (session id, number of that session's events already written)
    let mut attached: Option<(String, usize)> = None;
    loop {
        rx.borrow_and_update();
        // Flush dispatches of the attached session.
        let (events, close) = inner.read(|st| {
            let events = attached
                .as_ref()
                .and_then(|(sid, cursor)| {
                    st.gateway
                        .sessions
                        .get(sid)
                        .map(|s| s.events[(*cursor).min(s.events.len())..].to_vec())
                })
                .unwrap_or_default();
            let close =
                (st.gateway.close_generation > my_generation).then_some(st.gateway.close_code);
            (events, close)
        });
        if let Some(code) = close {
            inner.update(|st| st.gateway.log.push(GatewayLog::ClosedByFake { conn, code }));
            let frame = CloseFrame {
                code,
                reason: "fake: drop_gateway".into(),
            };
            let _ = socket.send(Message::Close(Some(frame))).await;
            break;
        }
        for ev in events {
            if !send(&mut socket, &ev).await {
                break;
            }
            if let Some((sid, cursor)) = attached.as_mut() {
                *cursor += 1;
                let t = ev["t"].as_str().unwrap_or_default().to_string();
                let sid = sid.clone();
                inner.update(|st| match t.as_str() {
                    "INTERACTION_CREATE" => {
                        let id: u64 = ev["d"]["id"]
                            .as_str()
                            .and_then(|x| x.parse().ok())
                            .unwrap_or_default();
                        if let Some(i) = st.interaction_by_id(id) {
                            i.sent_at.get_or_insert(Instant::now());
                        }
                    }
                    "READY" => st
                        .gateway
                        .log
                        .push(GatewayLog::ReadySent { conn, session: sid }),
                    "RESUMED" => st
                        .gateway
                        .log
                        .push(GatewayLog::ResumedSent { conn, session: sid }),
                    _ => {}
                });
            }
        }
        tokio::select! {
            msg = socket.recv() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Binary(_))) => {
                        inner.update(|st| st.violate("gateway: client sent a binary frame"));
                        continue;
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let Ok(payload) = serde_json::from_str::<Value>(&text) else {
                    inner.update(|st| st.violate(format!("gateway: client sent invalid JSON {text:?}")));
                    let _ = socket.send(Message::Close(Some(CloseFrame { code: 4002, reason: "decode error".into() }))).await;
                    break;
                };
                if !handle_op(&inner, &mut socket, conn, &payload, &mut attached).await {
                    break;
                }
            }
            changed = rx.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
    inner.update(|st| st.gateway.log.push(GatewayLog::Disconnected { conn }));
}

/// Returns false when the connection must end.
async fn handle_op(
    inner: &Arc<Inner>,
    socket: &mut WebSocket,
    conn: u64,
    payload: &Value,
    attached: &mut Option<(String, usize)>,
) -> bool {
    let d = &payload["d"];
    match payload["op"].as_u64() {
        Some(1) => {
            inner.update(|st| st.gateway.heartbeats += 1);
            send(socket, &json!({"op": 11})).await
        }
        Some(2) => {
            if attached.is_some() {
                inner.update(|st| st.violate("gateway: IDENTIFY sent twice on one connection"));
                let _ = socket
                    .send(Message::Close(Some(CloseFrame {
                        code: 4005,
                        reason: "Already authenticated.".into(),
                    })))
                    .await;
                return false;
            }
            let ok = inner.read(|st| token_ok(&st.token, d["token"].as_str()));
            if !ok {
                inner.update(|st| st.violate("gateway: IDENTIFY with a wrong token"));
                let _ = socket
                    .send(Message::Close(Some(CloseFrame {
                        code: 4004,
                        reason: "Authentication failed.".into(),
                    })))
                    .await;
                return false;
            }
            let intents = d["intents"].as_u64().unwrap_or(0);
            let sid = inner.update(|st| {
                st.gateway.identify_payloads.push(redact(payload));
                st.new_session(conn, intents)
            });
            *attached = Some((sid, 0));
            true
        }
        Some(6) => {
            let sid = d["session_id"].as_str().unwrap_or_default().to_string();
            let seq = d["seq"].as_u64().unwrap_or(0);
            let (ok, known) = inner.read(|st| {
                (
                    token_ok(&st.token, d["token"].as_str()),
                    st.gateway.sessions.contains_key(&sid),
                )
            });
            inner.update(|st| {
                st.gateway.log.push(GatewayLog::Resume {
                    conn,
                    session: sid.clone(),
                    seq,
                    accepted: ok && known,
                });
                if !ok {
                    st.violate("gateway: RESUME with a wrong token");
                }
            });
            if !(ok && known) {
                return send(socket, &json!({"op": 9, "d": false})).await;
            }
            inner.update(|st| {
                st.gateway.current = Some(sid.clone());
                if let Err(e) = st.dispatch("RESUMED", json!({"_trace": ["fake-discord"]}), None) {
                    st.violate(e);
                }
            });
            *attached = Some((sid, seq as usize));
            true
        }
        Some(3 | 4) => true, // presence / voice state updates: accepted, ignored
        Some(8) => {
            let chunk = inner.read(|st| {
                let members: Vec<Value> = st
                    .users
                    .keys()
                    .map(|id| st.member_json(*id, false))
                    .collect();
                json!({
                    "guild_id": super::fixtures::s(st.ids.guild),
                    "members": members,
                    "chunk_index": 0,
                    "chunk_count": 1,
                    "not_found": [],
                    "nonce": d["nonce"],
                })
            });
            inner.update(|st| st.dispatch_or_violate("GUILD_MEMBERS_CHUNK", chunk, None));
            true
        }
        other => {
            inner.update(|st| {
                st.violate(format!(
                    "gateway: client sent unknown opcode {other:?}: {payload}"
                ))
            });
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code: 4001,
                    reason: "Unknown opcode.".into(),
                })))
                .await;
            false
        }
    }
}

/// serenity sends the token with its `Bot ` prefix on the gateway too; accept both forms.
fn token_ok(expected: &str, got: Option<&str>) -> bool {
    got.is_some_and(|t| t.trim_start_matches("Bot ") == expected)
}

fn redact(payload: &Value) -> Value {
    let mut p = payload.clone();
    p["d"]["token"] = json!("<redacted>");
    p
}
