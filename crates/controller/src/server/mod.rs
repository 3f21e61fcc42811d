//! Serving the controller over HTTP/JSON (docs/cluster.md): the shared state and the timer
//! here, the routes in `routes`, turning outcomes into answers in `respond`.

mod respond;
mod routes;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::respond::{failure, run};
use self::routes::{add, commit, metrics, plan, register, remove, seen, status};
use crate::{Controller, Error, MoveLimits, Tracker};

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

/// Moves the change under way along from what the tracker knows now.
fn advance(inner: &mut Inner, app: &App) -> Result<(), Error> {
    let now = app.now_ms();
    let Inner {
        controller,
        tracker,
    } = inner;
    controller.change(|s| s.advance(tracker, now, &app.limits).map(drop))
}
