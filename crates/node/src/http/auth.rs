//! Who may call the HTTP API: with tokens required, every route needs `Authorization: Bearer`
//! with a token the cluster knows, and a key's routes need `read` (GET) or `write` (POST) on
//! that key; `/health` and `/metrics` need any valid token unless the node leaves them open.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use haze_controller::tokens::Right;
use haze_http::Peer;
use haze_protocol::Role;

use super::api::ApiError;
use crate::error::RequestError;
use crate::node::Node;
use crate::security::Caller;

/// The route layer that enforces the node's tokens.
pub(super) async fn authorize(
    State(node): State<Arc<Node>>,
    params: Option<Path<HashMap<String, String>>>,
    request: Request,
    next: Next,
) -> Response {
    let security = &node.config().security;
    let open = matches!(request.uri().path(), "/health" | "/metrics") && security.open_metrics;
    let mut request = request;
    if !security.require_tokens || open {
        request.extensions_mut().insert(Caller::Anyone);
        return next.run(request).await;
    }
    let token = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let identity = request
        .extensions()
        .get::<Peer>()
        .and_then(|p| p.identity.clone());
    let caller = crate::security::authenticate(
        security,
        node.cluster().tokens(),
        Role::Client,
        token,
        identity.as_ref(),
        node.replica().now_ms(),
    );
    let refused = |e: RequestError| {
        node.metrics().auth_failures.fetch_add(1, Ordering::Relaxed);
        let mut response = ApiError::from(e).into_response();
        response.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
        response
    };
    let caller = match caller {
        Ok(caller) => caller,
        Err(e) => return refused(e),
    };
    if let Some(key) = params.as_ref().and_then(|p| p.get("key")) {
        let right = if request.method() == axum::http::Method::GET {
            Right::Read
        } else {
            Right::Write
        };
        if !caller.may(key.as_bytes(), right) {
            return refused(RequestError::Forbidden(format!(
                "the token does not allow `{right}` on key {key:?}"
            )));
        }
    }
    // Routes of many keys (sync) check each against it.
    request.extensions_mut().insert(caller);
    next.run(request).await
}
