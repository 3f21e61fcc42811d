//! The routes: each parses its body, works on the controller off the runtime's threads, and
//! answers JSON.

use std::sync::PoisonError;
use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use haze_http::Peer;
use haze_tls::Identity;

use super::respond::{failure, parse, respond, run, with};
use super::tokens::authorize;
use super::{App, Inner, advance};
use crate::Change;
use crate::Error;
use crate::api::{
    AddRequest, MAX_WAIT_MS, PlanRequest, RegisterRequest, Registered, SeenRequest, Status,
};

/// Returns the status with each member's last report and the change's progress.
fn status_seen(inner: &Inner, app: &App) -> Status {
    let now = app.now_ms();
    Status::of(inner.controller.state())
        .with_progress(&inner.tracker, now, &app.limits)
        .with_seen(&inner.tracker, now)
}

pub(super) async fn status(State(app): State<App>) -> Response {
    with(app.clone(), move |inner| Ok(status_seen(inner, &app))).await
}

/// The controller's metrics in the Prometheus text format: the epoch, members by state, and
/// the change under way (partitions per state, stuck ones, keys and bytes streamed).
pub(super) async fn metrics(State(app): State<App>) -> Response {
    let app2 = app.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let inner = app2.inner.lock().unwrap_or_else(PoisonError::into_inner);
        crate::metrics::render(&status_seen(&inner, &app2))
    })
    .await;
    match outcome {
        Ok(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// A node reports the epoch it has and its streams' progress, and gets the current status
/// (how nodes poll for the table and the change under way).
pub(super) async fn seen(
    State(app): State<App>,
    peer: Option<Extension<Peer>>,
    body: Bytes,
) -> Response {
    let identity = match node_identity(&app, peer.as_ref().map(|p| &p.0)) {
        Ok(identity) => identity,
        Err(response) => return *response,
    };
    let request: SeenRequest = match parse(&body) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    // A node counts as seen when its request arrives: a wait well under `--dead-after-secs`
    // keeps a node that waits from being taken for down.
    let wait = request
        .wait_ms
        .unwrap_or(0)
        .min(MAX_WAIT_MS)
        .min(app.limits.dead_after_ms / 4);
    let known = request.known;
    let mut changed = app.version.subscribe();
    let app2 = app.clone();
    let status = run(app.clone(), move |inner| {
        let state = inner.controller.state();
        if !state.members().contains_key(&request.node) {
            return Err(Error::UnknownNode(request.node.to_string()));
        }
        // With certificates, the node reported on is the one the certificate names.
        if let Some(name) = &identity
            && state.member_of(name) != Some(request.node)
        {
            return Err(Error::IdentityMismatch(format!(
                "this certificate names node {name:?}, which is not {}",
                request.node
            )));
        }
        let change = state.transition().map(|t| t.change);
        inner.tracker.record(&request, change, app2.now_ms());
        advance(inner, &app2)?;
        Ok(node_status(inner, &app2))
    })
    .await;
    // The node has the current state: wait (without the lock) until it changes, or `wait`.
    let version = status.as_ref().ok().and_then(|s| s.version);
    if let Some(version) = version
        && known == Some(version)
        && wait > 0
    {
        // (A bool at once: the watch's guard must not live across the next await.)
        let news = matches!(
            tokio::time::timeout(
                Duration::from_millis(wait),
                changed.wait_for(|changes| app.base.wrapping_add(*changes) != version),
            )
            .await,
            Ok(Ok(_))
        );
        if news {
            let app2 = app.clone();
            return respond(run(app, move |inner| Ok(node_status(inner, &app2))).await);
        }
    }
    respond(status)
}

/// What a node gets: the table and the change, not the progress meant for people, and the
/// state's version.
fn node_status(inner: &Inner, app: &App) -> Status {
    let mut status = status_seen(inner, app);
    status.progress = None;
    status.version = Some(app.version(inner));
    status.tokens = Some(inner.controller.state().tokens().for_nodes());
    status
}

pub(super) async fn register(
    State(app): State<App>,
    peer: Option<Extension<Peer>>,
    body: Bytes,
) -> Response {
    let identity = match node_identity(&app, peer.as_ref().map(|p| &p.0)) {
        Ok(identity) => identity,
        Err(response) => return *response,
    };
    let request: RegisterRequest = match parse(&body) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    with(app, move |inner| {
        let node = inner
            .controller
            .change(|s| s.register_as(&request.addr, identity.as_deref()))?;
        let state = inner.controller.state();
        Ok(Registered {
            node,
            cluster: state.cluster,
            standby: state
                .members()
                .get(&node)
                .is_some_and(|m| m.state == crate::MemberState::Standby),
        })
    })
    .await
}

/// With TLS, the node name the caller's certificate proves (a node endpoint's only caller);
/// the answer to send instead if it has no node certificate. Without TLS, nobody is proven.
fn node_identity(app: &App, peer: Option<&Peer>) -> Result<Option<String>, Box<Response>> {
    if !app.node_certificates {
        return Ok(None);
    }
    match peer.and_then(|p| p.identity.as_ref()) {
        Some(Identity::Node(name)) => Ok(Some(name.clone())),
        Some(Identity::Client(name)) => Err(Box::new(failure(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("client {name:?} presented a client certificate: only nodes report here"),
        ))),
        None => Err(Box::new(failure(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "only a node presenting its certificate (from the cluster CA) reports here",
        ))),
    }
}

/// Plans and commits a change of `nodes` (added, or removed), then answers the status.
async fn change_nodes(app: App, headers: HeaderMap, body: Bytes, adding: bool) -> Response {
    if let Err(response) = authorize(&app, &headers).await {
        return *response;
    }
    let request: AddRequest = match parse(&body) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    with(app.clone(), move |inner| {
        let rate = app.limits.rate;
        let committed = inner.controller.change(|s| {
            let ids = s.resolve_all(&request.nodes)?;
            let change = if adding {
                Change {
                    add: ids,
                    remove: Vec::new(),
                }
            } else {
                Change {
                    add: Vec::new(),
                    remove: ids,
                }
            };
            s.carry_out(change, rate).map(|plan| plan.change)
        })?;
        advance(inner, &app)?;
        let mut status = status_seen(inner, &app);
        status.committed = Some(committed);
        Ok(status)
    })
    .await
}

pub(super) async fn add(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    change_nodes(app, headers, body, true).await
}

pub(super) async fn remove(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    change_nodes(app, headers, body, false).await
}

pub(super) async fn plan(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(response) = authorize(&app, &headers).await {
        return *response;
    }
    let request: PlanRequest = match parse(&body) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    with(app, move |inner| {
        inner.controller.change(|s| {
            let change = Change {
                add: s.resolve_all(&request.add)?,
                remove: s.resolve_all(&request.remove)?,
            };
            s.propose(change)
        })
    })
    .await
}

pub(super) async fn commit(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Err(response) = authorize(&app, &headers).await {
        return *response;
    }
    with(app.clone(), move |inner| {
        let rate = app.limits.rate;
        let committed = inner
            .controller
            .change(|s| s.commit(rate).map(|plan| plan.change))?;
        advance(inner, &app)?;
        let mut status = status_seen(inner, &app);
        status.committed = Some(committed);
        Ok(status)
    })
    .await
}
