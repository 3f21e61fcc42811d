//! Answering one request of the binary protocol.

use std::sync::Arc;

use haze_protocol::{Request, Response};

use crate::error::RequestError;
use crate::metrics::Kind;
use crate::node::Node;

/// Answers `request` (never `Hello`, which the connection handles) and records its metrics.
pub(crate) async fn handle(node: Arc<Node>, request: Request) -> Response {
    let started = tokio::time::Instant::now();
    let (kind, response) = match request {
        Request::Get { key } => (Kind::Get, node.get(&key).map(Response::Value)),
        Request::Digest { key } => (Kind::Digest, node.digest(&key).map(Response::Digest)),
        Request::Merge { key, value } => (
            Kind::Merge,
            node.merge(key, value)
                .await
                .map(|v| Response::Value(Some(v))),
        ),
        Request::Op { key, op } => (
            Kind::Op,
            node.apply(key, op).await.map(|v| Response::Value(Some(v))),
        ),
        Request::MergeBatch { items } => {
            let results = node
                .merge_batch(items)
                .await
                .into_iter()
                .map(|r| r.map_err(|e| e.to_wire()))
                .collect();
            (Kind::MergeBatch, Ok(Response::Batch(results)))
        }
        Request::Ping => (Kind::Ping, Ok(Response::Pong)),
        Request::Hello { .. } => (
            Kind::Ping,
            Err(RequestError::BadRequest("hello is only valid first".into())),
        ),
    };
    node.metrics()
        .record(kind, response.is_ok(), started.elapsed());
    response.unwrap_or_else(|e| Response::Error(e.to_wire()))
}
