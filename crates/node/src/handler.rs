//! Answering requests of the binary protocol.
//!
//! Reads are answered inline by the connection (a redb read never waits for the writer); writes
//! are queued to the writer with a callback that sends the response, so a write costs no task;
//! a batch gets a task of its own.

use std::sync::Arc;

use haze_crdt::Value;
use haze_protocol::{Request, Response};

use crate::error::RequestError;
use crate::metrics::Kind;
use crate::node::{Node, WriteRequest};

/// How the connection should answer a request.
pub(crate) enum Plan {
    /// The answer, computed inline.
    Now(Response),
    /// A write: queue it and answer from its callback.
    Write {
        kind: Kind,
        key: Vec<u8>,
        write: WriteRequest,
    },
    /// Several writes: answer from a task.
    Batch(Vec<(Vec<u8>, Value)>),
}

/// Decides how to answer `request`, answering reads at once.
pub(crate) fn plan(node: &Node, request: Request) -> Plan {
    let started = tokio::time::Instant::now();
    let (kind, response) = match request {
        Request::Get { key } => (Kind::Get, node.get(&key).map(Response::Value)),
        Request::Digest { key } => (Kind::Digest, node.digest(&key).map(Response::Digest)),
        Request::Ping => (Kind::Ping, Ok(Response::Pong)),
        Request::DigestList { list, keys } => {
            let digests = node.digest_list(list, keys);
            (
                Kind::Digest,
                digests.map(|d| d.map_or(Response::UnknownList, Response::Digests)),
            )
        }
        Request::DigestBatch { keys } => {
            let digests: Result<Vec<_>, _> = keys.iter().map(|key| node.digest(key)).collect();
            (Kind::Digest, digests.map(Response::Digests))
        }
        Request::Merge { key, value } => {
            return Plan::Write {
                kind: Kind::Merge,
                key,
                write: WriteRequest::Merge(value),
            };
        }
        Request::Op { key, op } => {
            return Plan::Write {
                kind: Kind::Op,
                key,
                write: WriteRequest::Op(op),
            };
        }
        Request::MergeBatch { items } => return Plan::Batch(items),
        Request::Hello { .. } => (
            Kind::Ping,
            Err(RequestError::BadRequest("hello is only valid first".into())),
        ),
    };
    node.metrics()
        .record(kind, response.is_ok(), started.elapsed());
    Plan::Now(response.unwrap_or_else(|e| Response::Error(e.to_wire())))
}

/// Turns a write's outcome into its response, recording its metrics.
pub(crate) fn written(
    node: &Node,
    kind: Kind,
    started: tokio::time::Instant,
    outcome: Result<Value, RequestError>,
) -> Response {
    node.metrics()
        .record(kind, outcome.is_ok(), started.elapsed());
    match outcome {
        Ok(value) => Response::Value(Some(value)),
        Err(e) => Response::Error(e.to_wire()),
    }
}

/// Answers a batch: every item is queued before any is awaited, so they commit together.
pub(crate) async fn batch(node: Arc<Node>, items: Vec<(Vec<u8>, Value)>) -> Response {
    let started = tokio::time::Instant::now();
    let results: Vec<_> = node
        .merge_batch(items)
        .await
        .into_iter()
        .map(|r| r.map_err(|e| e.to_wire()))
        .collect();
    node.metrics()
        .record(Kind::MergeBatch, true, started.elapsed());
    Response::Batch(results)
}
