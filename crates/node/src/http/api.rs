//! The HTTP handlers.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use haze_crdt::{Scalar, Value};
use haze_protocol::{ErrorCode, Request, Response as Answer, TypedOp};
use serde::{Deserialize, Serialize};

use super::bodies::{
    CommonErrors, CounterBody, DigestAnswer, EditSchema, Envelope, ErrorBody, ErrorDetail, Health,
    KeyPath, MembersBody, NotFound, RegisterBody, StateAnswer, StateSchema, WriteErrors,
};
use super::view::read_view;

/// A JSON response (axum's `json` feature would pull in more than this needs).
pub(super) fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    let bytes = serde_json::to_vec(body).expect("a JSON body serialises");
    (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}
use crate::error::RequestError;
use crate::metrics::Kind;
use crate::node::Node;

/// An error answer: a status and `{"error": {"code", "message"}}`.
pub(super) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// The error's code (`bad_request`, `forbidden`...).
    pub(super) fn code(&self) -> &'static str {
        self.code
    }

    /// The error in words.
    pub(super) fn message(&self) -> &str {
        &self.message
    }

    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

/// The HTTP status of each error code (docs/http-api.md has the same table).
pub(super) fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest | ErrorCode::UnsupportedVersion => StatusCode::BAD_REQUEST,
        ErrorCode::TypeMismatch => StatusCode::CONFLICT,
        ErrorCode::ValueTooLarge | ErrorCode::KeyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Refused | ErrorCode::ClockSkew => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::Overloaded | ErrorCode::Unavailable | ErrorCode::NotReplica => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ErrorCode::WrongCluster | ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        let code = e.code();
        ApiError::new(status_of(code), code.name(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
            },
        };
        json_response(self.status, &body)
    }
}

type ApiResult = Result<Response, ApiError>;

/// In a cluster, `request` routed to its key's replicas, as a client connection's would be;
/// `None` on a single node (the handler then serves it from the store).
async fn routed(node: &Arc<Node>, request: Request) -> Result<Option<Answer>, ApiError> {
    // Every HTTP caller is a client: its registers' stamps are checked against this clock.
    let max_skew = node.config().security.max_clock_skew;
    crate::security::check_stamps(&request, || node.replica().now_ms(), max_skew)?;
    match node.cluster().answer(request).await? {
        Some(Answer::Error(e)) => Err(RequestError::Remote(e).into()),
        other => Ok(other),
    }
}

/// A routed request's value.
fn value_of(answer: Answer) -> Result<Option<Value>, ApiError> {
    match answer {
        Answer::Value(v) => Ok(v),
        other => Err(RequestError::Unavailable(format!("unexpected answer {other:?}")).into()),
    }
}

/// A routed write's answer: the new state.
fn written(key: &str, answer: Option<Answer>) -> ApiResult {
    match answer.map(value_of).transpose()?.flatten() {
        Some(value) => Ok(envelope(key, &value)),
        None => Err(RequestError::Unavailable("a write answered with no value".into()).into()),
    }
}

fn not_found_key(key: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no value under key {key:?}"),
    )
}

fn envelope(key: &str, value: &Value) -> Response {
    let envelope = Envelope {
        key,
        kind: value.kind(),
        value: read_view(value),
        state: value,
    };
    json_response(StatusCode::OK, &envelope)
}

/// Reads a request body of at most the value limit plus room for JSON's verbosity.
async fn read_body(node: &Node, body: Body) -> Result<Bytes, ApiError> {
    // JSON spells a state out several times larger than its binary encoding.
    let limit = node
        .config()
        .store
        .max_value_bytes
        .saturating_mul(8)
        .max(64 * 1024);
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| body_error(&e, limit))
}

/// Why a body could not be read: past the limit (413), or malformed (400: a broken chunked
/// encoding, a connection cut mid-body).
pub(super) fn body_error(e: &axum::Error, limit: usize) -> ApiError {
    let mut cause: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "value_too_large",
                format!("request bodies are limited to {limit} bytes"),
            );
        }
        cause = c.source();
    }
    ApiError::bad_request(format!("the request body could not be read: {e}"))
}

pub(super) fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

async fn timed<F: std::future::Future<Output = Result<Value, RequestError>>>(
    node: &Node,
    kind: Kind,
    f: F,
) -> Result<Value, ApiError> {
    let started = tokio::time::Instant::now();
    let result = f.await;
    node.metrics()
        .record(kind, result.is_ok(), started.elapsed());
    Ok(result?)
}

#[utoipa::path(
    get,
    path = "/health",
    responses(
        (status = 200, description = "The node serves.", body = Health<'static>),
        (status = 503, description = "The disk is full or the store failed (`reason` says which).", body = Health<'static>)
    )
)]
pub(super) async fn health(State(node): State<Arc<Node>>) -> Response {
    let (status, state, reason) = if node.has_failed() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "failed",
            Some(
                "the store failed (an fsync or a write failed): no write is acknowledged until the node restarts; see its log",
            ),
        )
    } else if node.replica().disk_full() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "disk_full",
            Some(
                "the disk is full: writes are refused until there is room again (they resume by themselves); reads are served",
            ),
        )
    } else {
        (StatusCode::OK, "ok", None)
    };
    let durability = match node.config().store.durability {
        haze_storage::Durability::Sync => "sync".to_string(),
        haze_storage::Durability::Periodic { interval_ms } => {
            format!("periodic ({interval_ms} ms)")
        }
    };
    let health = Health {
        status: state,
        reason,
        actor: node.actor().to_string(),
        durability,
        tasks: node.tasks().running(),
    };
    json_response(status, &health)
}

#[utoipa::path(
    get,
    path = "/metrics",
    responses((status = 200, description = "Prometheus text.", body = String, content_type = "text/plain"))
)]
pub(super) async fn metrics(State(node): State<Arc<Node>>) -> Response {
    let mut text = node.metrics().render(node.commit_stats());
    let epoch = node.view().map_or(0, |v| v.table.epoch().0);
    text.push_str(&format!(
        "# HELP haze_cluster_epoch The epoch of the partition table this node routes with (0: none).\n\
         # TYPE haze_cluster_epoch gauge\nhaze_cluster_epoch {epoch}\n"
    ));
    text.push_str(&node.live().render());
    text.push_str(&node.tasks().render());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

pub(super) async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint: see docs/http-api.md",
    )
}

#[utoipa::path(
    get,
    path = "/v1/keys/{key}",
    params(KeyPath),
    responses(StateAnswer, CommonErrors, NotFound)
)]
pub(super) async fn get_value(State(node): State<Arc<Node>>, Path(key): Path<String>) -> ApiResult {
    let request = Request::Get {
        key: key.clone().into_bytes(),
    };
    if let Some(answer) = routed(&node, request).await? {
        return match value_of(answer)? {
            Some(value) => Ok(envelope(&key, &value)),
            None => Err(not_found_key(&key)),
        };
    }
    let started = tokio::time::Instant::now();
    let result = node.get(key.as_bytes());
    node.metrics()
        .record(Kind::Get, result.is_ok(), started.elapsed());
    match result? {
        Some(value) => Ok(envelope(&key, &value)),
        None => Err(not_found_key(&key)),
    }
}

#[utoipa::path(
    get,
    path = "/v1/keys/{key}/digest",
    params(KeyPath),
    responses(
        (status = 200, description = "The digest of the key's state (null without one).", body = DigestAnswer<'static>),
        CommonErrors
    )
)]
pub(super) async fn digest(State(node): State<Arc<Node>>, Path(key): Path<String>) -> ApiResult {
    let request = Request::Digest {
        key: key.clone().into_bytes(),
    };
    let digest = match routed(&node, request).await? {
        Some(Answer::Digest(d)) => d,
        Some(other) => {
            return Err(RequestError::Unavailable(format!("unexpected answer {other:?}")).into());
        }
        None => node.digest(key.as_bytes())?,
    };
    let answer = DigestAnswer {
        key: &key,
        digest: digest.map(|d| format!("{d:016x}")),
    };
    Ok(json_response(StatusCode::OK, &answer))
}

#[utoipa::path(
    post,
    path = "/v1/keys/{key}/merge",
    params(KeyPath),
    request_body = StateSchema,
    responses(StateAnswer, CommonErrors, WriteErrors)
)]
pub(super) async fn merge(
    State(node): State<Arc<Node>>,
    Path(key): Path<String>,
    body: Body,
) -> ApiResult {
    let bytes = read_body(&node, body).await?;
    let value: Value = parse(&bytes)?;
    if node.routes() {
        let request = Request::Merge {
            key: key.clone().into_bytes(),
            value,
        };
        return written(&key, routed(&node, request).await?);
    }
    let merged = timed(
        &node,
        Kind::Merge,
        node.merge(key.clone().into_bytes(), value),
    )
    .await?;
    Ok(envelope(&key, &merged))
}

#[utoipa::path(
    post,
    path = "/v1/keys/{key}/counter",
    params(KeyPath),
    request_body = CounterBody,
    responses(StateAnswer, CommonErrors, WriteErrors)
)]
pub(super) async fn counter(
    State(node): State<Arc<Node>>,
    Path(key): Path<String>,
    body: Body,
) -> ApiResult {
    let bytes = read_body(&node, body).await?;
    let CounterBody { add } = parse(&bytes)?;
    apply(&node, key, TypedOp::CounterAdd(add)).await
}

#[utoipa::path(
    post,
    path = "/v1/keys/{key}/set/add",
    params(KeyPath),
    request_body = MembersBody,
    responses(StateAnswer, CommonErrors, WriteErrors)
)]
pub(super) async fn set_add(
    State(node): State<Arc<Node>>,
    Path(key): Path<String>,
    body: Body,
) -> ApiResult {
    members_op(&node, key, body, TypedOp::SetAdd).await
}

#[utoipa::path(
    post,
    path = "/v1/keys/{key}/set/remove",
    params(KeyPath),
    request_body = MembersBody,
    responses(StateAnswer, CommonErrors, WriteErrors)
)]
pub(super) async fn set_remove(
    State(node): State<Arc<Node>>,
    Path(key): Path<String>,
    body: Body,
) -> ApiResult {
    members_op(&node, key, body, TypedOp::SetRemove).await
}

/// Applies a set operation whose body is `{"members": [...]}`.
async fn members_op(
    node: &Arc<Node>,
    key: String,
    body: Body,
    op: fn(Vec<Scalar>) -> TypedOp,
) -> ApiResult {
    let bytes = read_body(node, body).await?;
    let MembersBody { members } = parse(&bytes)?;
    apply(
        node,
        key,
        op(members.into_iter().map(Scalar::from).collect()),
    )
    .await
}

#[utoipa::path(
    post,
    path = "/v1/keys/{key}/register",
    params(KeyPath),
    request_body = RegisterBody,
    responses(StateAnswer, CommonErrors, WriteErrors)
)]
pub(super) async fn register(
    State(node): State<Arc<Node>>,
    Path(key): Path<String>,
    body: Body,
) -> ApiResult {
    let bytes = read_body(&node, body).await?;
    let RegisterBody { value } = parse(&bytes)?;
    apply(&node, key, TypedOp::RegisterSet(value.into())).await
}

/// `POST /v1/keys/{key}/edit`: any typed edit of any type, as JSON (`haze_device::Edit`).
#[utoipa::path(
    post,
    path = "/v1/keys/{key}/edit",
    params(KeyPath),
    request_body = EditSchema,
    responses(StateAnswer, CommonErrors, WriteErrors)
)]
pub(super) async fn edit(
    State(node): State<Arc<Node>>,
    Path(key): Path<String>,
    body: Body,
) -> ApiResult {
    let bytes = read_body(&node, body).await?;
    let edit: haze_device::Edit = parse(&bytes)?;
    apply(&node, key, TypedOp::Edit(edit)).await
}

async fn apply(node: &Arc<Node>, key: String, op: TypedOp) -> ApiResult {
    if node.routes() {
        let request = Request::Op {
            key: key.clone().into_bytes(),
            op,
        };
        return written(&key, routed(node, request).await?);
    }
    let value = timed(node, Kind::Op, node.apply(key.clone().into_bytes(), op)).await?;
    Ok(envelope(&key, &value))
}
