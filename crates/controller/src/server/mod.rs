//! Serving the controller over HTTP/JSON (docs/cluster.md): the shared state and the timer
//! here, the routes in `routes`, turning outcomes into answers in `respond`.

mod respond;
mod routes;
mod tokens;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::respond::{failure, run};
use self::routes::{add, commit, metrics, plan, register, remove, seen, status};
use crate::{Bootstrap, Controller, Error, MoveLimits, Tracker};

/// A wall clock: milliseconds since the Unix epoch.
pub type WallClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// How the controller serves ([`serve_with`]).
#[derive(Clone)]
#[non_exhaustive]
pub struct ServeOptions {
    /// How fast data moves.
    pub limits: MoveLimits,
    /// Require an admin token (`Authorization: Bearer`) for every request that changes the
    /// cluster or its tokens, and create the first one at start if none works
    /// ([`Controller::bootstrap_admin`]). Reading the status, `/metrics`, and what nodes
    /// send (registering, `/v1/seen`) stay open.
    pub auth: bool,
    /// The wall clock tokens' creation times and expiries are read on.
    pub clock: WallClock,
    /// How the listener serves: TLS (with client certificates optional: nodes present theirs,
    /// people's tools need not), connection caps, deadlines. With TLS, only a caller whose
    /// certificate names a node may register or report, and as that node only.
    pub http: haze_http::ServeOptions,
}

impl ServeOptions {
    /// Moving data within `limits`, tokens not required, on the system's wall clock.
    pub fn new(limits: MoveLimits) -> ServeOptions {
        ServeOptions {
            limits,
            auth: false,
            clock: Arc::new(system_clock),
            http: haze_http::ServeOptions::default(),
        }
    }

    /// Serving over TLS with `config`.
    #[must_use]
    pub fn with_tls(mut self, config: Arc<haze_tls::rustls::ServerConfig>) -> ServeOptions {
        self.http.tls = Some(config);
        self
    }

    /// Requiring admin tokens, or not.
    #[must_use]
    pub fn with_auth(mut self, auth: bool) -> ServeOptions {
        self.auth = auth;
        self
    }

    /// On another wall clock (tests move it to expire tokens).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Fn() -> u64 + Send + Sync + 'static) -> ServeOptions {
        self.clock = Arc::new(clock);
        self
    }
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("limits", &self.limits)
            .field("auth", &self.auth)
            .field("tls", &self.http.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// The system's wall clock: what tokens' expiries are absolute in (nodes compare them with
/// theirs). The server is not simulated; a test passes its own clock in [`ServeOptions`].
#[allow(clippy::disallowed_methods)] // the controller's one reading of the wall clock
fn system_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

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
    /// Whether changes need an admin token.
    auth: bool,
    /// Whether the controller serves TLS, so nodes prove who they are with certificates.
    node_certificates: bool,
    /// The wall clock, for tokens.
    clock: WallClock,
    /// Where new tokens' bits come from.
    random: ring::rand::SystemRandom,
}

impl App {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn wall_ms(&self) -> u64 {
        (self.clock)()
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
    routes(app(controller, ServeOptions::new(limits)))
}

fn app(controller: Controller, options: ServeOptions) -> App {
    App {
        inner: Arc::new(Mutex::new(Inner {
            controller,
            tracker: Tracker::default(),
        })),
        limits: options.limits,
        origin: tokio::time::Instant::now(),
        version: Arc::new(tokio::sync::watch::Sender::new(0)),
        base: random_base(),
        auth: options.auth,
        node_certificates: options.http.tls.is_some(),
        clock: options.clock,
        random: ring::rand::SystemRandom::new(),
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
        .route("/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/v1/tokens/{id}", delete(tokens::revoke))
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

/// Serves `controller` on `listener` until `shutdown`, with `limits` and tokens not required.
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
    serve_with(controller, ServeOptions::new(limits), listener, shutdown).await
}

/// Serves `controller` on `listener` until `shutdown`, as `options` say. With
/// [`ServeOptions::auth`], first makes sure an admin token works
/// ([`Controller::bootstrap_admin`]), and logs where a new one was written (never the token).
///
/// # Errors
///
/// What accepting connections fails with; with `auth`, what creating the first admin token
/// fails with (as [`std::io::Error::other`] of the [`Error`]).
pub async fn serve_with(
    controller: Controller,
    options: ServeOptions,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let controller = if options.auth {
        bootstrap(controller, (options.clock)()).await?
    } else {
        controller
    };
    let http = options.http.clone();
    let app = app(controller, options);
    let ticker = tokio::spawn(tick(app.clone(), shutdown.clone()));
    // haze_http stops accepting on `shutdown`; a client that never finishes its request would
    // hold it forever, so open connections get a grace period, then are dropped.
    let serving = haze_http::serve(listener, routes(app), http, shutdown.clone());
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

/// Makes sure an admin token works (off the runtime's threads: it may write and sync files),
/// and says what it did.
async fn bootstrap(mut controller: Controller, now_ms: u64) -> std::io::Result<Controller> {
    let (controller, done) = tokio::task::spawn_blocking(move || {
        let done = controller.bootstrap_admin(&ring::rand::SystemRandom::new(), now_ms);
        (controller, done)
    })
    .await
    .map_err(std::io::Error::other)?;
    match done.map_err(std::io::Error::other)? {
        Bootstrap::Created { path, id } => tracing::info!(
            path = %path.display(),
            token = %id,
            "created an admin token, in this file (readable by its owner only): give it to \
             `haze token` and `haze cluster` as --token or HAZE_TOKEN"
        ),
        Bootstrap::FileExists { path } => tracing::warn!(
            path = %path.display(),
            "no admin token works (revoked or expired) and this file exists, which is never \
             overwritten: remove it and restart the controller for a new admin token"
        ),
        _ => tracing::info!("changes to the cluster and its tokens need an admin token"),
    }
    Ok(controller)
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
