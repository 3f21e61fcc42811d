//! Running a request's work on the controller, and turning its outcome into an answer: JSON,
//! or an API error with its stable code.

use std::sync::PoisonError;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{App, Inner};
use crate::Error;
use crate::api::ApiError;
use crate::tokens::TokenError;

/// Runs `f` on the controller off the runtime's threads (a change fsyncs), and answers with its
/// result as JSON.
pub(super) async fn with<T: serde::Serialize + Send + 'static>(
    app: App,
    f: impl FnOnce(&mut Inner) -> Result<T, Error> + Send + 'static,
) -> Response {
    respond(run(app, f).await)
}

/// Runs `f` on the controller off the runtime's threads, and publishes the state's version if
/// `f` changed it (waking the nodes that wait for a change).
pub(super) async fn run<T: Send + 'static>(
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
pub(super) enum Failed {
    Refused(Error),
    Panicked,
}

pub(super) fn respond<T: serde::Serialize>(outcome: Result<T, Failed>) -> Response {
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
                Error::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
                Error::Forbidden { .. } | Error::IdentityMismatch(_) => {
                    (StatusCode::FORBIDDEN, "forbidden")
                }
                Error::UnknownToken(_) => (StatusCode::NOT_FOUND, "unknown_token"),
                Error::Token(TokenError::TooMany) => (StatusCode::CONFLICT, "too_many_tokens"),
                Error::Token(TokenError::Random) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
                Error::Token(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            };
            let mut response = failure(status, code, &e.to_string());
            if status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
            }
            response
        }
        Err(Failed::Panicked) => failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the request failed",
        ),
    }
}

pub(super) fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(failure(
            StatusCode::BAD_REQUEST,
            "bad_request",
            &format!("invalid JSON body: {e}"),
        ))
    })
}

pub(super) fn failure(status: StatusCode, code: &str, message: &str) -> Response {
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
