//! Answering requests of the binary protocol.
//!
//! Reads are answered inline by the connection (a redb read never waits for the writer); writes
//! are queued to the writer with a callback that sends the response, so a write costs no task;
//! a batch gets a task of its own.

use std::sync::Arc;

use haze_crdt::Value;
use haze_protocol::{Request, Response, Role};
use haze_storage::Priority;

use crate::cluster::{self, ClusterView};
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
    /// Several writes: answer from a task, with the merged states, or only with whether each
    /// was merged (`acks`, for a `Copy` or `Backfill`). With `held_only` (a peer's copies),
    /// keys this node neither holds nor is leaving are refused with `not_replica`: a late copy
    /// from a router with an old table, or a round of anti-entropy begun before a move, must
    /// not bring back a partition this node deleted. (The node refuses every write of a partition whose
    /// leftover copy it is handing back and deleting: `cluster/leftovers.rs`.)
    Batch {
        items: Vec<(Vec<u8>, Value)>,
        acks: bool,
        held_only: bool,
        /// `Background` for a `Backfill`: the writer commits it after the writes clients wait
        /// for.
        priority: Priority,
    },
    /// Many reads: answer from a blocking task, off the connection threads.
    Digests {
        list: Option<u64>,
        keys: Option<Vec<Vec<u8>>>,
    },
    /// A request for the replicas of its keys: answer from a task that routes it.
    Route {
        view: Arc<ClusterView>,
        request: Request,
        from_peer: bool,
        /// The table's epoch, if a client sent a key's request to a node that does not hold
        /// the key: a client routing with a stale table learns it must refresh.
        stale: Option<u64>,
    },
}

/// The most keys of one page of a bucket's keys.
const BUCKET_PAGE: usize = 1024;

/// The most items of one batch request (merges, or keys of a digest request).
pub(crate) const MAX_BATCH_ITEMS: usize = 4096;

fn too_many(n: usize) -> Option<RequestError> {
    (n > MAX_BATCH_ITEMS).then(|| {
        RequestError::BadRequest(format!(
            "{n} items; a batch holds at most {MAX_BATCH_ITEMS}"
        ))
    })
}

/// Decides how to answer `request` (which came in a frame of `frame_bytes` on a connection of
/// `role`), answering local reads at once.
pub(crate) fn plan(node: &Node, request: Request, frame_bytes: usize, role: Role) -> Plan {
    let started = tokio::time::Instant::now();
    let limits = &node.config().store;
    // The view, if this request is to be routed (one read of it per request).
    let routed = cluster::is_routed(&request, role);
    let view = routed.then(|| node.view()).flatten();
    // A peer's read of a partition this node is leaving, once the new replicas serve it (they
    // take writes this node no longer sees): passed on to them (they hold it: never back). A
    // digest batch with any such key is routed whole: each key goes to the replicas this node
    // routes it to (the new ones for the keys it leaves).
    let passed_on = |v: &cluster::ClusterView, key: &[u8]| v.departing(key) && !v.holds(key);
    let proxy = match (&request, role) {
        (Request::Get { key } | Request::Digest { key }, Role::Peer { .. }) => node
            .view()
            .filter(|v| v.transition.is_some() && passed_on(v, key)),
        // (An oversized batch is refused below.)
        (Request::DigestBatch { keys }, Role::Peer { .. }) if keys.len() <= MAX_BATCH_ITEMS => node
            .view()
            .filter(|v| v.transition.is_some() && keys.iter().any(|k| passed_on(v, k))),
        _ => None,
    };
    if let Some(view) = proxy {
        return Plan::Route {
            view,
            request,
            from_peer: false,
            stale: None,
        };
    }
    let (kind, response) = match request {
        Request::Merge { .. }
            if frame_bytes > limits.max_value_bytes + limits.max_key_bytes + 64 =>
        {
            let limit = limits.max_value_bytes;
            let e = haze_storage::WriteError::ValueTooLarge {
                size: frame_bytes,
                limit,
            };
            (Kind::Merge, Err(RequestError::from(e)))
        }
        Request::MergeBatch { items } if items.len() > MAX_BATCH_ITEMS => {
            (Kind::MergeBatch, Err(too_many(items.len()).expect("over")))
        }
        Request::DigestBatch { keys } if keys.len() > MAX_BATCH_ITEMS => {
            (Kind::Digest, Err(too_many(keys.len()).expect("over")))
        }
        Request::DigestList {
            keys: Some(keys), ..
        } if keys.len() > MAX_BATCH_ITEMS => {
            (Kind::Digest, Err(too_many(keys.len()).expect("over")))
        }
        Request::Copy { items } | Request::Backfill { items } if items.len() > MAX_BATCH_ITEMS => {
            (Kind::MergeBatch, Err(too_many(items.len()).expect("over")))
        }
        Request::Copy { .. } | Request::Backfill { .. } if role == Role::Client => (
            Kind::MergeBatch,
            Err(RequestError::BadRequest(
                "copy and backfill are only for node-to-node and local connections".into(),
            )),
        ),
        Request::Buckets | Request::BucketKeys { .. } if role == Role::Client => (
            Kind::Digest,
            Err(RequestError::BadRequest(
                "bucket digests are only for node-to-node and local connections".into(),
            )),
        ),
        // A read whose primary is this node and that finds the key: answered here and now,
        // like a single node's (a miss is routed: another replica may hold it).
        Request::Get { key }
            if view
                .as_ref()
                .is_some_and(|v| v.replicas(&key).first() == Some(&v.me) && !v.in_move(&key)) =>
        {
            match node.get(&key) {
                Ok(None) => {
                    return Plan::Route {
                        view: view.expect("checked"),
                        request: Request::Get { key },
                        from_peer: false,
                        stale: None,
                    };
                }
                found => (Kind::Get, found.map(Response::Value)),
            }
        }
        request if view.is_some() => {
            let view = view.expect("checked");
            let stale = request
                .key()
                .filter(|key| role == Role::Client && !view.holds(key))
                .map(|_| view.table.epoch().0);
            return Plan::Route {
                view,
                request,
                from_peer: matches!(role, Role::Peer { .. }),
                stale,
            };
        }
        _ if routed && node.awaits_view() => (
            Kind::Get,
            Err(RequestError::Unavailable(
                "this node has not received its cluster's partition table yet (is it added? \
                 see `haze cluster status`)"
                    .into(),
            )),
        ),
        Request::Get { key } | Request::GetMerged { key } => {
            (Kind::Get, node.get(&key).map(Response::Value))
        }
        Request::Digest { key } => (Kind::Digest, node.digest(&key).map(Response::Digest)),
        Request::Ping => (Kind::Ping, Ok(Response::Pong)),
        Request::Table => (Kind::Ping, Ok(Response::Table(node.routing_table_json()))),
        Request::DigestList { list, keys } => {
            return Plan::Digests {
                list: Some(list),
                keys,
            };
        }
        Request::DigestBatch { keys } => {
            return Plan::Digests {
                list: None,
                keys: Some(keys),
            };
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
        Request::MergeBatch { items } => {
            return Plan::Batch {
                items,
                acks: false,
                held_only: false,
                priority: Priority::Foreground,
            };
        }
        Request::Copy { items } => {
            return Plan::Batch {
                items,
                acks: true,
                held_only: matches!(role, Role::Peer { .. }),
                priority: Priority::Foreground,
            };
        }
        Request::Backfill { items } => {
            return Plan::Batch {
                items,
                acks: true,
                held_only: matches!(role, Role::Peer { .. }),
                priority: Priority::Background,
            };
        }
        Request::Buckets => (
            Kind::Digest,
            node.store()
                .bucket_digests()
                .map(Response::Buckets)
                .map_err(RequestError::from),
        ),
        Request::BucketKeys { bucket, after } => (
            Kind::Digest,
            node.store()
                .bucket_keys(bucket as usize, after.as_deref(), BUCKET_PAGE)
                .map(|(keys, more)| Response::KeyDigests { keys, more })
                .map_err(RequestError::from),
        ),
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

/// Answers a digest batch or list on a blocking thread: thousands of store reads must not stall
/// the threads that serve connections.
pub(crate) async fn digests(
    node: Arc<Node>,
    list: Option<u64>,
    keys: Option<Vec<Vec<u8>>>,
) -> Response {
    let started = tokio::time::Instant::now();
    let keys = match list {
        Some(list) => node.resolve_list(list, keys),
        None => Ok(Some(Arc::new(keys.unwrap_or_default()))),
    };
    let result = match keys {
        Ok(Some(keys)) => node.local_digests(keys).await,
        Ok(None) => Ok(Response::UnknownList),
        Err(e) => Err(e),
    };
    node.metrics()
        .record(Kind::Digest, result.is_ok(), started.elapsed());
    result.unwrap_or_else(|e| Response::Error(e.to_wire()))
}

/// Answers a batch: every item is queued before any is awaited, so they commit together. With
/// `acks`, the answer says only whether each item was merged; with `held_only`, keys this node
/// neither holds nor leaves are refused (see [`Plan::Batch`]).
pub(crate) async fn batch(
    node: Arc<Node>,
    items: Vec<(Vec<u8>, Value)>,
    acks: bool,
    held_only: bool,
    priority: Priority,
) -> Response {
    let started = tokio::time::Instant::now();
    let view = held_only.then(|| node.view()).flatten();
    let (items, refused): (Vec<_>, Vec<_>) = items
        .into_iter()
        .enumerate()
        .partition(|(_, (key, _))| view.as_ref().is_none_or(|v| v.takes_copy(key)));
    let (indices, items): (Vec<usize>, Vec<_>) = items.into_iter().unzip();
    let merged = node.merge_batch(items, priority).await;
    let mut results: Vec<Result<Value, RequestError>> =
        Vec::with_capacity(indices.len() + refused.len());
    results.resize_with(indices.len() + refused.len(), || {
        Err(RequestError::NotReplica(
            "this node does not hold the key's partition".into(),
        ))
    });
    for (i, result) in indices.into_iter().zip(merged) {
        results[i] = result;
    }
    let results = results.into_iter();
    node.metrics()
        .record(Kind::MergeBatch, true, started.elapsed());
    if acks {
        Response::Acks(
            results
                .map(|r| r.map(drop).map_err(|e| e.to_wire()))
                .collect(),
        )
    } else {
        Response::Batch(results.map(|r| r.map_err(|e| e.to_wire())).collect())
    }
}
