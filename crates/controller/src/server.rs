//! Serving the controller over HTTP/JSON.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{
    AddRequest, ApiError, MAX_WAIT_MS, PlanRequest, RegisterRequest, Registered, Seen, SeenRequest,
    Status,
};
use crate::{Change, Controller, Error, MoveLimits, Tracker};

/// The controller and what nodes reported (in memory only: a restarted controller hears from
/// every node within a poll), behind one lock.
struct Inner {
    controller: Controller,
    tracker: Tracker,
}

/// The routes' state.
#[derive(Clone)]
struct App {
    inner: Arc<Mutex<Inner>>,
    limits: MoveLimits,
    /// The tracker's clock starts here.
    origin: tokio::time::Instant,
    /// The state's version: `base` plus the controller's changes, published as they happen.
    version: Arc<tokio::sync::watch::Sender<u64>>,
    /// Where this process's versions start: a number no earlier process is likely to have
    /// handed out, so a node's `known` from another controller process never matches.
    base: u64,
}

impl App {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn version(&self, inner: &Inner) -> u64 {
        self.base.wrapping_add(inner.controller.changes())
    }
}

/// A number that differs from one process to the next (std's hasher keys are random).
fn random_base() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0);
    // Leave room below 2^63 for the changes of a long life.
    hasher.finish() >> 1
}

/// Returns the controller's routes (docs/cluster.md), moving data within `limits`. A change
/// advances only when nodes report; [`serve`] also advances it on a timer.
pub fn router(controller: Controller, limits: MoveLimits) -> Router {
    routes(app(controller, limits))
}

fn app(controller: Controller, limits: MoveLimits) -> App {
    App {
        inner: Arc::new(Mutex::new(Inner {
            controller,
            tracker: Tracker::default(),
        })),
        limits,
        origin: tokio::time::Instant::now(),
        version: Arc::new(tokio::sync::watch::Sender::new(0)),
        base: random_base(),
    }
}

fn routes(app: App) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/v1/cluster", get(status))
        .route("/metrics", get(metrics))
        .route("/v1/cluster/add", post(add))
        .route("/v1/cluster/remove", post(remove))
        .route("/v1/cluster/plan", post(plan))
        .route("/v1/cluster/commit", post(commit))
        .route("/v1/nodes", post(register))
        .route("/v1/seen", post(seen))
        .fallback(|| async { failure(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .with_state(app)
}

/// How often the controller advances a change by itself: steps that wait only for time (a
/// grace period, a node taken for down, a node that reported before the step began) are taken
/// while every node waits in a long poll, and wake them.
const TICK: Duration = Duration::from_millis(250);

async fn tick(app: App, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(TICK) => {}
        }
        let app2 = app.clone();
        // A failure to save shows in the next node's poll, which advances too.
        let _ = run(app.clone(), move |inner| {
            if inner.controller.state().transition().is_some() {
                advance(inner, &app2)
            } else {
                Ok(())
            }
        })
        .await;
    }
}

/// How long a shutdown waits for open connections before it drops them. Safe: a change is
/// either in the file or not (the file is replaced whole), whatever is cut.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Serves `controller` on `listener` until `shutdown`.
///
/// # Errors
///
/// What accepting connections fails with.
pub async fn serve(
    controller: Controller,
    limits: MoveLimits,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = app(controller, limits);
    let ticker = tokio::spawn(tick(app.clone(), shutdown.clone()));
    let serving = axum::serve(listener, routes(app))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    // A client that never finishes its request would hold a graceful shutdown forever.
    let cut = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    let served = tokio::select! {
        served = serving => served,
        () = cut => Ok(()),
    };
    ticker.abort();
    served
}

/// Returns the status with each member's last report and the change's progress.
fn status_seen(inner: &Inner, app: &App) -> Status {
    let now = app.now_ms();
    let mut status =
        Status::of(inner.controller.state()).with_progress(&inner.tracker, now, &app.limits);
    for member in &mut status.members {
        member.seen = inner.tracker.seen.get(&member.id).map(|s| Seen {
            epoch: s.epoch,
            ago_ms: now.saturating_sub(s.at_ms),
        });
    }
    status
}

async fn status(State(app): State<App>) -> Response {
    with(app.clone(), move |inner| Ok(status_seen(inner, &app))).await
}

/// The controller's metrics in the Prometheus text format: the epoch, members by state, and
/// the change under way (partitions per state, stuck ones, keys and bytes streamed).
async fn metrics(State(app): State<App>) -> Response {
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

/// Moves the change under way along from what the tracker knows now.
fn advance(inner: &mut Inner, app: &App) -> Result<(), Error> {
    let now = app.now_ms();
    let Inner {
        controller,
        tracker,
    } = inner;
    controller.change(|s| s.advance(tracker, now, &app.limits).map(drop))
}

/// A node reports the epoch it has and its streams' progress, and gets the current status
/// (how nodes poll for the table and the change under way).
async fn seen(State(app): State<App>, body: Bytes) -> Response {
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
    status
}

async fn register(State(app): State<App>, body: Bytes) -> Response {
    let request: RegisterRequest = match parse(&body) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    with(app, move |inner| {
        let node = inner.controller.change(|s| s.register(&request.addr))?;
        Ok(Registered {
            node,
            cluster: inner.controller.state().cluster,
        })
    })
    .await
}

/// Plans and commits a change of `nodes` (added, or removed), then answers the status.
async fn change_nodes(app: App, body: Bytes, adding: bool) -> Response {
    let request: AddRequest = match parse(&body) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    with(app.clone(), move |inner| {
        let rate = app.limits.rate;
        inner.controller.change(|s| {
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
            s.carry_out(change, rate).map(drop)
        })?;
        advance(inner, &app)?;
        Ok(status_seen(inner, &app))
    })
    .await
}

async fn add(State(app): State<App>, body: Bytes) -> Response {
    change_nodes(app, body, true).await
}

async fn remove(State(app): State<App>, body: Bytes) -> Response {
    change_nodes(app, body, false).await
}

async fn plan(State(app): State<App>, body: Bytes) -> Response {
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

async fn commit(State(app): State<App>) -> Response {
    with(app.clone(), move |inner| {
        let rate = app.limits.rate;
        inner.controller.change(|s| s.commit(rate).map(drop))?;
        advance(inner, &app)?;
        Ok(status_seen(inner, &app))
    })
    .await
}

/// Runs `f` on the controller off the runtime's threads (a change fsyncs), and answers with its
/// result as JSON.
async fn with<T: serde::Serialize + Send + 'static>(
    app: App,
    f: impl FnOnce(&mut Inner) -> Result<T, Error> + Send + 'static,
) -> Response {
    respond(run(app, f).await)
}

/// Runs `f` on the controller off the runtime's threads, and publishes the state's version if
/// `f` changed it (waking the nodes that wait for a change).
async fn run<T: Send + 'static>(
    app: App,
    f: impl FnOnce(&mut Inner) -> Result<T, Error> + Send + 'static,
) -> Result<T, Failed> {
    tokio::task::spawn_blocking(move || {
        // A panic while holding the lock cannot leave a half-made change: `change` works on a
        // copy. So a poisoned lock is safe to take.
        let mut inner = app.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let outcome = f(&mut inner);
        let changes = inner.controller.changes();
        app.version.send_if_modified(|published| {
            let news = *published != changes;
            *published = changes;
            news
        });
        outcome.map_err(Failed::Refused)
    })
    .await
    .unwrap_or(Err(Failed::Panicked))
}

/// Why a request to the controller failed.
enum Failed {
    Refused(Error),
    Panicked,
}

fn respond<T: serde::Serialize>(outcome: Result<T, Failed>) -> Response {
    match outcome {
        Ok(body) => json(StatusCode::OK, &body),
        Err(Failed::Refused(e)) => {
            let (status, code) = match &e {
                Error::UnknownNode(_) => (StatusCode::NOT_FOUND, "unknown_node"),
                Error::NothingToAdd => (StatusCode::CONFLICT, "nothing_to_add"),
                Error::NotActive(_) => (StatusCode::CONFLICT, "not_active"),
                Error::TooFewNodes { .. } => (StatusCode::CONFLICT, "too_few_nodes"),
                Error::NothingProposed => (StatusCode::CONFLICT, "nothing_proposed"),
                Error::NoRoom(_) => (StatusCode::CONFLICT, "no_room"),
                Error::TooManyMembers(_) => (StatusCode::CONFLICT, "too_many_members"),
                Error::Ring(_) | Error::BadAddress(_) => (StatusCode::BAD_REQUEST, "bad_request"),
                Error::State { .. } | Error::Locked(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "state")
                }
            };
            failure(status, code, &e.to_string())
        }
        Err(Failed::Panicked) => failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the request failed",
        ),
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(failure(
            StatusCode::BAD_REQUEST,
            "bad_request",
            &format!("invalid JSON body: {e}"),
        ))
    })
}

fn failure(status: StatusCode, code: &str, message: &str) -> Response {
    let body = ApiError {
        error: code.to_string(),
        message: message.to_string(),
    };
    json(status, &body)
}

fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_string(body) {
        Ok(text) => (status, [(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
