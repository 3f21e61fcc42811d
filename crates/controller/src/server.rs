//! Serving the controller over HTTP/JSON.

use std::collections::BTreeMap;
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

use haze_ring::NodeId;

use crate::api::{AddRequest, ApiError, RegisterRequest, Registered, Seen, SeenRequest, Status};
use crate::{Controller, Error};

type Shared = Arc<Mutex<Controller>>;

/// Each node's last report: the epoch it had, and when (kept in memory only: a restarted
/// controller hears from every node within a poll).
type SeenMap = Arc<Mutex<BTreeMap<NodeId, (Option<u64>, tokio::time::Instant)>>>;

/// The routes' state.
#[derive(Clone)]
struct App {
    controller: Shared,
    seen: SeenMap,
}

/// Returns the controller's routes (docs/cluster.md).
pub fn router(controller: Controller) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/v1/cluster", get(status))
        .route("/v1/cluster/add", post(add))
        .route("/v1/nodes", post(register))
        .route("/v1/seen", post(seen))
        .fallback(|| async { failure(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .with_state(App {
            controller: Arc::new(Mutex::new(controller)),
            seen: SeenMap::default(),
        })
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
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let serving = axum::serve(listener, router(controller))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    // A client that never finishes its request would hold a graceful shutdown forever.
    let cut = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        served = serving => served,
        () = cut => Ok(()),
    }
}

/// Returns the status with each member's last report.
fn status_seen(c: &Controller, seen: &SeenMap) -> Status {
    let mut status = Status::of(c.state());
    let seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
    for member in &mut status.members {
        member.seen = seen.get(&member.id).map(|(epoch, at)| Seen {
            epoch: *epoch,
            ago_ms: u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
    }
    status
}

async fn status(State(app): State<App>) -> Response {
    with(app.controller, move |c| Ok(status_seen(c, &app.seen))).await
}

/// A node reports the epoch it has and gets the current status (how nodes poll for the table).
async fn seen(State(app): State<App>, body: Bytes) -> Response {
    let request: SeenRequest = match parse(&body) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    with(app.controller, move |c| {
        if !c.state().members().contains_key(&request.node) {
            return Err(Error::UnknownNode(request.node.to_string()));
        }
        app.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(request.node, (request.epoch, tokio::time::Instant::now()));
        Ok(status_seen(c, &app.seen))
    })
    .await
}

async fn register(State(app): State<App>, body: Bytes) -> Response {
    let controller = app.controller;
    let request: RegisterRequest = match parse(&body) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    with(controller, move |c| {
        let node = c.change(|s| s.register(&request.addr))?;
        Ok(Registered {
            node,
            cluster: c.state().cluster,
        })
    })
    .await
}

async fn add(State(app): State<App>, body: Bytes) -> Response {
    let (controller, seen) = (app.controller, app.seen);
    let request: AddRequest = match parse(&body) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    with(controller, move |c| {
        c.change(|s| s.add(&request.nodes).map(|_| ()))?;
        Ok(status_seen(c, &seen))
    })
    .await
}

/// Runs `f` on the controller off the runtime's threads (a change fsyncs), and answers with its
/// result as JSON.
async fn with<T: serde::Serialize + Send + 'static>(
    controller: Shared,
    f: impl FnOnce(&mut Controller) -> Result<T, Error> + Send + 'static,
) -> Response {
    let outcome = tokio::task::spawn_blocking(move || {
        // A panic while holding the lock cannot leave a half-made change: `change` works on a
        // copy. So a poisoned lock is safe to take.
        let mut c = controller
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut c)
    })
    .await;
    match outcome {
        Ok(Ok(body)) => json(StatusCode::OK, &body),
        Ok(Err(e)) => {
            let (status, code) = match &e {
                Error::UnknownNode(_) => (StatusCode::NOT_FOUND, "unknown_node"),
                Error::WouldMoveData(..) => (StatusCode::CONFLICT, "would_move_data"),
                Error::NothingToAdd => (StatusCode::CONFLICT, "nothing_to_add"),
                Error::NoRoom(_) => (StatusCode::CONFLICT, "no_room"),
                Error::TooManyMembers(_) => (StatusCode::CONFLICT, "too_many_members"),
                Error::Ring(_) | Error::BadAddress(_) => (StatusCode::BAD_REQUEST, "bad_request"),
                Error::State { .. } | Error::Locked(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "state")
                }
            };
            failure(status, code, &e.to_string())
        }
        Err(_) => failure(
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
