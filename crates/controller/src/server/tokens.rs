//! The token routes (create, list, revoke), and the admin check every route that changes the
//! cluster or its tokens makes when the controller requires tokens.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;

use super::App;
use super::respond::{parse, respond, run, with};
use crate::Error;
use crate::api::{CreateTokenRequest, CreatedToken, TokenInfo, TokenList};
use crate::tokens::{self, NewToken, Right, TokenError, TokenId};

/// With tokens required, checks that the request carries a working admin token: the answer to
/// send instead (401 `unauthorized`, 403 `forbidden`) if not. Without, lets everything by.
pub(super) async fn authorize(app: &App, headers: &HeaderMap) -> Result<(), Box<Response>> {
    if !app.auth {
        return Ok(());
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    let app2 = app.clone();
    run(app.clone(), move |inner| {
        let token = tokens::bearer(presented.as_deref())?;
        let grant = inner
            .controller
            .state()
            .tokens()
            .check(token, app2.wall_ms())?;
        if grant.is_admin() {
            Ok(())
        } else {
            Err(Error::Forbidden {
                token: grant.id,
                needs: Right::Admin,
            })
        }
    })
    .await
    .map_err(|failed| Box::new(respond::<()>(Err(failed))))
}

/// `POST /v1/tokens`: creates a token and answers its text, this once.
pub(super) async fn create(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(response) = authorize(&app, &headers).await {
        return *response;
    }
    let request: CreateTokenRequest = match parse(&body) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    with(app.clone(), move |inner| {
        let now = app.wall_ms();
        let expires_at_ms = match (request.expires_in_ms, request.expires_at_ms) {
            (None, None) => None,
            (Some(after), None) if after > 0 => {
                Some(now.checked_add(after).ok_or(TokenError::BadExpiry)?)
            }
            (None, Some(at)) => Some(at),
            _ => return Err(TokenError::BadExpiry.into()),
        };
        let new = NewToken {
            prefixes: request.prefixes,
            rights: request.rights.into_iter().collect(),
            expires_at_ms,
            description: request.description,
        };
        let (secret, hash) = tokens::generate(&app.random)?;
        let token = inner
            .controller
            .change(|s| s.create_token(new, hash, now))?;
        let rights: Vec<String> = token.rights.iter().map(ToString::to_string).collect();
        tracing::info!(token = %token.id, rights = %rights.join(","), "token created");
        Ok(CreatedToken {
            token: secret.into_exposed(),
            info: TokenInfo::of(&token, now),
        })
    })
    .await
}

/// `GET /v1/tokens`: every token, by id, without texts or hashes.
pub(super) async fn list(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Err(response) = authorize(&app, &headers).await {
        return *response;
    }
    with(app.clone(), move |inner| {
        let now = app.wall_ms();
        let tokens = inner.controller.state().tokens().tokens();
        Ok(TokenList {
            tokens: tokens.into_iter().map(|t| TokenInfo::of(t, now)).collect(),
        })
    })
    .await
}

/// `DELETE /v1/tokens/{id}`: revokes a token (nodes refuse it from their next poll) and
/// answers what it was.
pub(super) async fn revoke(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(response) = authorize(&app, &headers).await {
        return *response;
    }
    with(app.clone(), move |inner| {
        // The refusal does not quote what was sent: it could be a token pasted by mistake.
        let id: TokenId = id.parse()?;
        let token = inner.controller.change(|s| s.revoke_token(id))?;
        tracing::info!(token = %token.id, "token revoked");
        Ok(TokenInfo::of(&token, app.wall_ms()))
    })
    .await
}
