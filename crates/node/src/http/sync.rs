//! A device's sync over HTTP (docs/http-api.md): the binary protocol's digest-first exchange,
//! as JSON (`/v1/sync/digests`, `/v1/sync/merge`) or as the protocol's own encoding
//! (`/v1/sync` with `Content-Type: application/x-haze`), routed in a cluster like a client
//! connection's requests, each key checked against the caller's token.

use std::sync::Arc;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use haze_protocol::{Request, Response as Answer};

use super::api::{ApiError, json_response, parse};
use super::bodies::{
    BinaryBody, CommonErrors, DigestsAnswer, DigestsBody, ErrorBody, ErrorDetail, MergeAnswer,
    MergeBody, MergeOutcome,
};
use crate::error::RequestError;
use crate::handler::MAX_BATCH_ITEMS;
use crate::node::Node;
use crate::security::Caller;

/// The content type of the binary protocol's encoding over HTTP.
pub(super) const BINARY: &str = "application/x-haze";

/// Answers a sync request as a client connection of the binary protocol would: routed in a
/// cluster, from this node's store on a single node.
async fn answer(node: &Arc<Node>, caller: &Caller, request: Request) -> Result<Answer, ApiError> {
    let too_many = match &request {
        Request::MergeBatch { items } => items.len() > MAX_BATCH_ITEMS,
        Request::DigestList {
            keys: Some(keys), ..
        } => keys.len() > MAX_BATCH_ITEMS,
        Request::DigestList { keys: None, .. } => false,
        _ => {
            return Err(ApiError::bad_request(
                "a sync request is a digest list or a merge batch",
            ));
        }
    };
    if too_many {
        return Err(ApiError::bad_request(format!(
            "a sync request holds at most {MAX_BATCH_ITEMS} keys"
        )));
    }
    crate::security::admit(node, &mut caller.clone(), &request)?;
    if let Some(answer) = node.cluster().answer(request.clone()).await? {
        return Ok(answer);
    }
    Ok(match request {
        Request::DigestList { list, keys } => {
            crate::handler::digests(node.clone(), Some(list), keys).await
        }
        Request::MergeBatch { items } => {
            crate::handler::batch(
                node.clone(),
                items,
                false,
                false,
                haze_storage::Priority::Foreground,
            )
            .await
        }
        _ => unreachable!("checked above"),
    })
}

fn key_bytes(key: String) -> Vec<u8> {
    key.into_bytes()
}

/// `POST /v1/sync/digests`: `{"keys": [KEY, ...]}` (the node answers the list's id with the
/// digests), or `{"list": ID}` to name a list sent before (its id as 16 hex digits: a
/// JavaScript number cannot hold 64 bits).

#[utoipa::path(
    post,
    path = "/v1/sync/digests",
    request_body = DigestsBody,
    responses(
        (status = 200, description = "The digests of the list's keys, or that the node does not know the list.", body = DigestsAnswer),
        CommonErrors
    )
)]
pub(super) async fn digests(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_sync_body(&node, body).await?;
    let answer = exchange_digests(&node, &caller, parse(&bytes)?).await?;
    Ok(json_response(StatusCode::OK, &answer))
}

/// The digests half of the exchange, as `POST /v1/sync/digests` and the WebSocket answer it.
pub(super) async fn exchange_digests(
    node: &Arc<Node>,
    caller: &Caller,
    DigestsBody { list, keys }: DigestsBody,
) -> Result<DigestsAnswer, ApiError> {
    let keys: Option<Vec<Vec<u8>>> = keys.map(|k| k.into_iter().map(key_bytes).collect());
    let list = match (list, &keys) {
        (Some(hex), _) => u64::from_str_radix(&hex, 16)
            .map_err(|_| ApiError::bad_request(format!("list {hex:?} is not 16 hex digits")))?,
        (None, Some(keys)) => haze_protocol::key_list_id(keys),
        (None, None) => {
            return Err(ApiError::bad_request(
                "give the keys (\"keys\": [...]) or a list sent before (\"list\": ID)",
            ));
        }
    };
    let request = Request::DigestList { list, keys };
    match answer(node, caller, request).await? {
        Answer::Digests(digests) => Ok(DigestsAnswer::Digests {
            list: format!("{list:016x}"),
            digests: digests
                .iter()
                .map(|d| d.map(|d| format!("{d:016x}")))
                .collect(),
        }),
        Answer::UnknownList => Ok(DigestsAnswer::UnknownList { unknown_list: true }),
        other => Err(unexpected(other)),
    }
}

/// `POST /v1/sync/merge`: `{"items": [{"key": KEY, "state": STATE}, ...]}`.

#[utoipa::path(
    post,
    path = "/v1/sync/merge",
    request_body = MergeBody,
    responses(
        (status = 200, description = "Each item's merged state, or its error, in order.", body = MergeAnswer<'static>),
        CommonErrors
    )
)]
pub(super) async fn merge(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_sync_body(&node, body).await?;
    let results = exchange_merge(&node, &caller, parse(&bytes)?).await?;
    Ok(json_response(StatusCode::OK, &merge_answer(&results)))
}

/// The merge half of the exchange, as `POST /v1/sync/merge` and the WebSocket answer it: each
/// item's merged state or error, in order.
pub(super) async fn exchange_merge(
    node: &Arc<Node>,
    caller: &Caller,
    MergeBody { items }: MergeBody,
) -> Result<Vec<Result<haze_crdt::Value, haze_protocol::WireError>>, ApiError> {
    let request = Request::MergeBatch {
        items: items
            .into_iter()
            .map(|i| (key_bytes(i.key), i.state))
            .collect(),
    };
    match answer(node, caller, request).await? {
        Answer::Batch(results) => Ok(results),
        other => Err(unexpected(other)),
    }
}

/// The answer's body (`{"items": [...]}`) to a merge's results.
pub(super) fn merge_answer(
    results: &[Result<haze_crdt::Value, haze_protocol::WireError>],
) -> MergeAnswer<'_> {
    let items = results
        .iter()
        .map(|r| match r {
            Ok(state) => MergeOutcome::Merged { state },
            Err(e) => MergeOutcome::Failed {
                error: ErrorDetail {
                    code: e.code.name(),
                    message: &e.message,
                },
            },
        })
        .collect();
    MergeAnswer { items }
}

/// `POST /v1/sync` with `Content-Type: application/x-haze`: a request of the binary protocol
/// (its frame's body: a `DigestList` or a `MergeBatch`), answered with the protocol's response.
#[utoipa::path(
    post,
    path = "/v1/sync",
    request_body(content = BinaryBody, content_type = "application/x-haze"),
    responses(
        (status = 200, description = "The binary protocol's response.", body = BinaryBody, content_type = "application/x-haze"),
        CommonErrors,
        (status = 415, description = "Not `Content-Type: application/x-haze`.", body = ErrorBody<'static>)
    )
)]
pub(super) async fn binary(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let binary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == BINARY);
    if !binary {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_request",
            format!(
                "POST /v1/sync takes Content-Type: {BINARY}; JSON goes to /v1/sync/digests and /v1/sync/merge"
            ),
        ));
    }
    let bytes = read_sync_body(&node, body).await?;
    let (id, request) = Request::decode(&bytes)
        .map_err(|e| ApiError::bad_request(format!("not a request of the binary protocol: {e}")))?;
    let answer = match answer(&node, &caller, request).await {
        Ok(answer) => answer,
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    answer.encode(id, &mut out);
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, BINARY)],
        Bytes::from(out),
    )
        .into_response())
}

/// The most bytes of a sync request: a merge carries many states, a batch's worth of values.
pub(super) fn sync_body_limit(node: &Node) -> usize {
    haze_protocol::MAX_FRAME_BYTES.max(node.config().store.max_value_bytes * 8)
}

/// A sync's merge carries many states: the body may be a batch's worth of values.
pub(super) async fn read_sync_body(node: &Node, body: Body) -> Result<Bytes, ApiError> {
    let limit = sync_body_limit(node);
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| super::api::body_error(&e, limit))
}

fn unexpected(answer: Answer) -> ApiError {
    match answer {
        Answer::Error(e) => RequestError::Remote(e).into(),
        other => RequestError::Unavailable(format!("unexpected answer {other:?}")).into(),
    }
}
