//! The HTTP/JSON API: reads, merges and typed operations, health and `/metrics`.
//! `docs/http-api.md` documents every endpoint with curl examples.

mod api;
mod auth;
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
        .route_layer(axum::middleware::from_fn_with_state(
            node.clone(),
            auth::authorize,
        ))
        .fallback(api::not_found)
        .with_state(node)
}

/// Serves the API on `listener` until `shutdown`: over TLS if the node has it, with the node's
/// connection caps (in all, and per client address), its handshake timeout as the deadline
/// for a request's headers, and its idle timeout (`haze_http::serve`).
pub(crate) async fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let config = node.config();
    let options = haze_http::ServeOptions {
        tls: config.security.tls.clone(),
        max_connections: config.max_connections,
        max_per_address: config.max_connections_per_address.max(1),
        handshake_timeout: config.security.handshake_timeout,
        header_timeout: config.handshake_timeout,
        idle_timeout: config.idle_timeout,
    };
    haze_http::serve(listener, router(node), options, shutdown).await
}
