//! A web app's files (`haze serve --web DIR`): served for `GET` of any path outside the API, so
//! that the app and the API share an origin (no CORS, and a browser's `localhost` is a secure
//! context for IndexedDB). tower-http's `ServeDir` resolves paths inside the folder only (no
//! `..` escapes), answers `index.html` for a folder and guesses content types. No token is asked:
//! the files are the app, which then asks the user's token for its API calls.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use tower_http::services::ServeDir;
use tower_service::Service;

use crate::node::Node;

/// Unknown routes: a file of the web folder when the node serves one and the path is not the
/// API's; otherwise the API's JSON `not_found`.
pub(super) async fn fallback(State(node): State<Arc<Node>>, request: Request) -> Response {
    let api = request.uri().path().starts_with("/v1/");
    match &node.config().web_root {
        Some(root) if !api && request.method() == axum::http::Method::GET => {
            // `ServeDir` is always ready: no `poll_ready` is needed before `call`.
            match ServeDir::new(root).call(request).await {
                Ok(response) => response.into_response(),
                Err(never) => match never {},
            }
        }
        _ => super::api::not_found().await.into_response(),
    }
}
