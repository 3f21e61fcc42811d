//! The HTTP/JSON API: reads, merges and typed operations, health and `/metrics`.
//! `docs/http-api.md` documents every endpoint with curl examples.

mod api;
mod auth;
mod bodies;
mod openapi;
mod sync;
mod view;
mod web;
mod ws;

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
        .route("/v1/openapi.json", get(openapi::serve))
        .route("/v1/keys/{key}", get(api::get_value))
        .route("/v1/keys/{key}/digest", get(api::digest))
        .route("/v1/keys/{key}/merge", post(api::merge))
        .route("/v1/keys/{key}/counter", post(api::counter))
        .route("/v1/keys/{key}/set/add", post(api::set_add))
        .route("/v1/keys/{key}/set/remove", post(api::set_remove))
        .route("/v1/keys/{key}/register", post(api::register))
        .route("/v1/keys/{key}/edit", post(api::edit))
        .route("/v1/sync/digests", post(sync::digests))
        .route("/v1/sync/merge", post(sync::merge))
        .route("/v1/sync", post(sync::binary))
        .route_layer(axum::middleware::from_fn_with_state(
            node.clone(),
            auth::authorize,
        ))
        // After the token layer, so outside it: a browser cannot send a WebSocket's upgrade
        // with `Authorization`; the session takes the token in its first message instead.
        .route("/v1/ws", get(ws::upgrade))
        .fallback(web::fallback)
        .layer(cors(&node.config().cors_origins))
        .with_state(node)
}

/// CORS for the origins allowed (none by default: a browser then refuses every page's call).
/// Outside the token check: a browser's preflight carries no `Authorization`.
fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderValue, Method, header};
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::AllowOrigin::list(allowed))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(600))
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
        tls: match config.http_plaintext {
            true => None,
            false => config.security.tls.clone(),
        },
        max_connections: config.max_connections,
        max_per_address: config.max_connections_per_address.max(1),
        handshake_timeout: config.security.handshake_timeout,
        header_timeout: config.handshake_timeout,
        idle_timeout: config.idle_timeout,
    };
    haze_http::serve(listener, router(node), options, shutdown).await
}
