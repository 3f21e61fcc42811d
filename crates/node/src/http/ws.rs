//! `GET /v1/ws`: a device's sync session that stays open, and live updates
//! (docs/http-api.md, "Live updates").
//!
//! JSON text messages. The device may send `auth` (browsers cannot set headers on a WebSocket),
//! `digests` and `merge` (the sync exchange of `/v1/sync/*`), `subscribe` and `unsubscribe`;
//! each request's answer echoes its `id`. The node pushes `update` for each committed write to a
//! key the device watches, from any node of the cluster (`live::watch`).
//!
//! Bounded: a message is at most a sync body's limit; a device that does not read its updates
//! fills its subscription's queue and is closed with code 4000 ("lagged": resubscribe and
//! resync); a send that takes longer than [`SEND_TIMEOUT`] ends the session; a ping every
//! [`PING_EVERY`] keeps a quiet session open past the idle timeout while the device answers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use haze_controller::tokens::{self, Right};
use haze_protocol::Role;
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::api::ApiError;
use super::bodies::{DigestsAnswer, DigestsBody, MergeBody, MergeItem};
use super::sync::{exchange_digests, exchange_merge, merge_answer, sync_body_limit};
use crate::error::RequestError;
use crate::live::{Audience, Subscription, Update};
use crate::node::Node;
use crate::security::Caller;

/// How often the node pings a quiet session.
const PING_EVERY: Duration = Duration::from_secs(30);
/// The longest a message to the device may take to send.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// The close code of a session whose subscription lagged (an application code: 4000–4999).
pub(crate) const LAGGED: u16 = 4000;
/// The close code of a session whose token stopped allowing it (revoked or expired).
const REFUSED: u16 = 4001;

/// A message from the device.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Incoming {
    Auth {
        token: String,
    },
    Subscribe {
        id: u64,
        #[serde(default)]
        keys: Vec<String>,
        #[serde(default)]
        prefixes: Vec<String>,
    },
    Unsubscribe {
        id: u64,
        #[serde(default)]
        keys: Vec<String>,
        #[serde(default)]
        prefixes: Vec<String>,
    },
    Digests {
        id: u64,
        #[serde(default)]
        list: Option<String>,
        #[serde(default)]
        keys: Option<Vec<String>>,
    },
    Merge {
        id: u64,
        items: Vec<MergeItem>,
    },
    Get {
        id: u64,
        keys: Vec<String>,
    },
}

/// The most keys one `get` reads.
const MAX_GET_KEYS: usize = 256;

#[utoipa::path(
    get,
    path = "/v1/ws",
    responses(
        (status = 101, description = "Switched to a WebSocket session: JSON messages for the sync exchange, subscriptions and live updates (docs/http-api.md, \"Live updates\")."),
        (status = 400, description = "Not a WebSocket upgrade (a header missing or wrong).", body = String, content_type = "text/plain"),
        (status = 426, description = "The connection cannot be upgraded.", body = String, content_type = "text/plain"),
        (status = 401, description = "An `Authorization` header with a token the cluster does not accept.", body = super::bodies::ErrorBody<'static>)
    )
)]
/// `GET /v1/ws`: upgrades to a session. Outside the token layer: with tokens required, the
/// caller is the upgrade's `Authorization` token if it has one, else nobody until `auth`.
pub(super) async fn upgrade(
    State(node): State<Arc<Node>>,
    ws: WebSocketUpgrade,
    headers: HeaderMap,
) -> Response {
    let security = &node.config().security;
    let caller = if security.require_tokens {
        let header = headers.get(axum::http::header::AUTHORIZATION);
        match tokens::bearer(header.map(|v| v.as_bytes())) {
            Ok(token) => match authenticate(&node, token) {
                Ok(caller) => Some(caller),
                Err(e) => return ApiError::from(e).into_response(),
            },
            Err(tokens::AuthError::Missing) => None,
            Err(e) => {
                return ApiError::from(RequestError::Unauthorized(e.to_string())).into_response();
            }
        }
    } else {
        Some(Caller::Anyone)
    };
    let limit = sync_body_limit(&node);
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| Session::new(node, caller, socket).run())
}

fn authenticate(node: &Node, token: &str) -> Result<Caller, RequestError> {
    let caller = crate::security::authenticate(
        &node.config().security,
        node.cluster().tokens(),
        Role::Client,
        Some(token),
        None,
        node.replica().now_ms(),
    );
    if caller.is_err() {
        node.metrics()
            .auth_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    caller
}

struct Session {
    node: Arc<Node>,
    caller: Option<Caller>,
    socket: WebSocket,
    sub: Subscription,
    /// The states this session's own merges were answered with (as `Update::state_json`
    /// writes them), by key: the update of such a commit would tell the device what it was just
    /// told, so it is not pushed. (Any update equal to a state the device holds is redundant: a
    /// stale entry suppresses nothing new.)
    echoes: HashMap<String, String>,
}

/// The most merge answers a session remembers to keep from echoing.
const MAX_ECHOES: usize = 4096;

/// Why a session ends.
enum End {
    /// The device closed it, or the connection failed.
    Gone,
    /// Close with this code and reason.
    Close(u16, &'static str),
}

impl Session {
    fn new(node: Arc<Node>, caller: Option<Caller>, socket: WebSocket) -> Session {
        let sub = node.live().subscribe(Audience::Device);
        crate::live::watch::ensure_announcer(node.live(), node.cluster());
        Session {
            node,
            caller,
            socket,
            sub,
            echoes: HashMap::new(),
        }
    }

    async fn run(mut self) {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let end = loop {
            let step = tokio::select! {
                message = self.socket.recv() => match message {
                    Some(Ok(Message::Text(text))) => self.on_text(&text).await,
                    Some(Ok(Message::Binary(_))) => {
                        self.send_json(error_json(None, "bad_request", "messages are JSON text")).await
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
                    Some(Ok(Message::Close(_))) | None => Err(End::Gone),
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "a WebSocket session failed");
                        Err(End::Gone)
                    }
                },
                update = self.sub.next() => match update {
                    Some(update) => self.push(update).await,
                    None => Err(End::Close(LAGGED, "lagged: subscribe again and sync")),
                },
                _ = ping.tick() => self.send(Message::Ping(Default::default())).await,
            };
            if let Err(end) = step {
                break end;
            }
        };
        if let End::Close(code, reason) = end {
            let frame = CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            };
            let _ =
                tokio::time::timeout(SEND_TIMEOUT, self.socket.send(Message::Close(Some(frame))))
                    .await;
        }
    }

    async fn send(&mut self, message: Message) -> Result<(), End> {
        match tokio::time::timeout(SEND_TIMEOUT, self.socket.send(message)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(End::Gone),
        }
    }

    async fn send_json(&mut self, body: Json) -> Result<(), End> {
        self.send(Message::Text(body.to_string().into())).await
    }

    /// The caller, its token read again if the cluster's tokens changed.
    fn caller(&mut self) -> Result<&Caller, RequestError> {
        let caller = self.caller.as_mut().ok_or_else(|| {
            RequestError::Unauthorized(
                "this node requires a token: send {\"type\": \"auth\", \"token\": ...} first"
                    .into(),
            )
        })?;
        caller.refresh(self.node.cluster().tokens(), || {
            self.node.replica().now_ms()
        })?;
        Ok(caller)
    }

    async fn push(&mut self, update: Update) -> Result<(), End> {
        let Ok(key) = std::str::from_utf8(&update.key) else {
            return Ok(()); // the JSON API names keys as text: one that is not has no name here
        };
        match self.caller() {
            Ok(caller) if caller.may(&update.key, Right::Read) => {}
            Ok(_) => return Ok(()),
            Err(_) => return Err(End::Close(REFUSED, "the token no longer allows this")),
        }
        let state = update.state_json();
        if self.echoes.get(key).is_some_and(|echo| echo == state) {
            self.echoes.remove(key);
            return Ok(());
        }
        let key = Json::from(key).to_string();
        let body = format!(r#"{{"type":"update","key":{key},"state":{state}}}"#);
        self.send(Message::Text(body.into())).await
    }

    async fn on_text(&mut self, text: &str) -> Result<(), End> {
        let incoming: Incoming = match serde_json::from_str(text) {
            Ok(incoming) => incoming,
            Err(e) => {
                let id = serde_json::from_str::<Json>(text)
                    .ok()
                    .and_then(|j| j.get("id").and_then(Json::as_u64));
                let message = format!("not a message of this session: {e}");
                return self
                    .send_json(error_json(id, "bad_request", &message))
                    .await;
            }
        };
        let (id, answer) = match incoming {
            Incoming::Auth { token } => {
                return match authenticate(&self.node, &token) {
                    Ok(caller) => {
                        self.caller = Some(caller);
                        self.send_json(json!({"type": "authed"})).await
                    }
                    Err(e) => {
                        let body = error_json(None, e.code().name(), &e.to_string());
                        self.send_json(body).await?;
                        Err(End::Close(REFUSED, "unauthorized"))
                    }
                };
            }
            Incoming::Subscribe { id, keys, prefixes } => (
                id,
                self.subscribe(keys, prefixes, true)
                    .map(|()| json!({"type": "subscribed"})),
            ),
            Incoming::Unsubscribe { id, keys, prefixes } => (
                id,
                self.subscribe(keys, prefixes, false)
                    .map(|()| json!({"type": "unsubscribed"})),
            ),
            Incoming::Digests { id, list, keys } => {
                let answer = match self.caller() {
                    Ok(caller) => {
                        let caller = caller.clone();
                        let body = DigestsBody { list, keys };
                        exchange_digests(&self.node, &caller, body)
                            .await
                            .map(|a| match a {
                                DigestsAnswer::UnknownList { .. } => {
                                    json!({"type": "unknown_list"})
                                }
                                digests => tagged(&digests, "digests"),
                            })
                    }
                    Err(e) => Err(ApiError::from(e)),
                };
                (id, answer)
            }
            Incoming::Get { id, keys } => (id, self.get(keys).await),
            Incoming::Merge { id, items } => {
                let keys: Vec<String> = items.iter().map(|i| i.key.clone()).collect();
                let answer = match self.caller() {
                    Ok(caller) => {
                        let caller = caller.clone();
                        exchange_merge(&self.node, &caller, MergeBody { items })
                            .await
                            .map(|results| {
                                self.remember_echoes(keys, &results);
                                tagged(&merge_answer(&results), "merged")
                            })
                    }
                    Err(e) => Err(ApiError::from(e)),
                };
                (id, answer)
            }
        };
        let mut body = match answer {
            Ok(body) => body,
            Err(e) => error_json(None, e.code(), e.message()),
        };
        body["id"] = json!(id);
        self.send_json(body).await
    }

    /// Notes the states a merge was answered with (see `echoes`).
    fn remember_echoes(
        &mut self,
        keys: Vec<String>,
        results: &[Result<haze_crdt::Value, haze_protocol::WireError>],
    ) {
        if self.echoes.len() + results.len() > MAX_ECHOES {
            self.echoes.clear();
        }
        for (key, result) in keys.into_iter().zip(results) {
            if let Ok(state) = result {
                let json = serde_json::to_string(state).expect("a state serialises");
                self.echoes.insert(key, json);
            }
        }
    }

    /// Reads keys, as `GET /v1/keys/KEY` does (routed in a cluster, each needing `read`): for a
    /// device that wants keys it has never held.
    async fn get(&mut self, keys: Vec<String>) -> Result<Json, ApiError> {
        if keys.len() > MAX_GET_KEYS {
            return Err(ApiError::bad_request(format!(
                "a get reads at most {MAX_GET_KEYS} keys"
            )));
        }
        let caller = self.caller()?.clone();
        let mut items = Vec::with_capacity(keys.len());
        for key in keys {
            let request = haze_protocol::Request::Get {
                key: key.clone().into_bytes(),
            };
            crate::security::admit(&self.node, &mut caller.clone(), &request)?;
            let value = match self.node.cluster().answer(request).await? {
                Some(haze_protocol::Response::Value(value)) => value,
                Some(haze_protocol::Response::Error(e)) => {
                    return Err(RequestError::Remote(e).into());
                }
                Some(other) => {
                    return Err(
                        RequestError::Unavailable(format!("unexpected answer {other:?}")).into(),
                    );
                }
                None => self.node.get(key.as_bytes())?,
            };
            items.push(json!({"key": key, "state": value}));
        }
        Ok(json!({"type": "values", "items": items}))
    }

    /// Adds (or removes) keys and prefixes this session watches, each checked against the
    /// token's `read` right (a prefix: every key under it must be readable).
    fn subscribe(
        &mut self,
        keys: Vec<String>,
        prefixes: Vec<String>,
        add: bool,
    ) -> Result<(), ApiError> {
        let keys: Vec<Vec<u8>> = keys.into_iter().map(String::into_bytes).collect();
        let prefixes: Vec<Vec<u8>> = prefixes.into_iter().map(String::into_bytes).collect();
        if !add {
            self.sub.unwatch(&keys, &prefixes);
            return Ok(());
        }
        let max_key = self.node.config().store.max_key_bytes;
        if let Some(long) = keys.iter().chain(&prefixes).find(|k| k.len() > max_key) {
            return Err(RequestError::from(haze_storage::WriteError::KeyTooLarge {
                size: long.len(),
                limit: max_key,
            })
            .into());
        }
        let caller = self.caller()?;
        crate::security::authorize_keys(caller, &keys)?;
        crate::security::authorize_keys(caller, &prefixes)?;
        self.sub.watch(keys, prefixes)?;
        Ok(())
    }
}

/// `answer`'s JSON object with `"type": kind` added.
fn tagged(answer: &impl serde::Serialize, kind: &str) -> Json {
    let mut body = serde_json::to_value(answer).expect("an answer serialises");
    body["type"] = json!(kind);
    body
}

fn error_json(id: Option<u64>, code: &str, message: &str) -> Json {
    let mut body = json!({"type": "error", "error": {"code": code, "message": message}});
    if let Some(id) = id {
        body["id"] = json!(id);
    }
    body
}
