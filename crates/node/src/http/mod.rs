//! The HTTP/JSON API: reads, merges and typed operations, health and `/metrics`.
//! `docs/http-api.md` documents every endpoint with curl examples.

mod api;
mod guard;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::node::Node;

pub use view::read_view;

/// Returns the API's routes.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/health", get(api::health))
        .route("/metrics", get(api::metrics))
        .route("/v1/keys/{key}", get(api::get_value))
        .route("/v1/keys/{key}/digest", get(api::digest))
        .route("/v1/keys/{key}/merge", post(api::merge))
        .route("/v1/keys/{key}/counter", post(api::counter))
        .route("/v1/keys/{key}/set/add", post(api::set_add))
        .route("/v1/keys/{key}/set/remove", post(api::set_remove))
        .route("/v1/keys/{key}/register", post(api::register))
        .fallback(api::not_found)
        .with_state(node)
}

/// Serves the API on `listener` until `shutdown`, with the node's connection cap and idle
/// timeout.
pub(crate) async fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let config = node.config();
    let listener =
        guard::GuardedListener::new(listener, config.idle_timeout, config.max_connections);
    axum::serve(listener, router(node))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
