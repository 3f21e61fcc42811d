//! Answering requests of the binary protocol.
//!
//! Reads are answered inline by the connection (a redb read never waits for the writer); writes
//! are queued to the writer with a callback that sends the response, so a write costs no task;
//! a batch gets a task of its own.

use std::sync::Arc;

use haze_crdt::Value;
use haze_protocol::{Request, Response, Role};
use haze_storage::Priority;

use crate::cluster::{ClusterView, Disposition, Operation, Routing, dispose};
use crate::error::RequestError;
use crate::metrics::Kind;
use crate::node::Node;
use crate::replica::WriteRequest;

/// How the connection should answer a request.
pub(crate) enum Plan {
    /// The answer, computed inline.
    Now(Response),
    /// A write here: submit it to the write handle and answer from its callback, with the
    /// new state, or only with whether it was applied (`ack`, for an `Apply`).
    Write {
        kind: Kind,
        key: Vec<u8>,
        write: WriteRequest,
        ack: bool,
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
        routing: Routing,
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

/// The kind a request is counted under in the metrics.
fn kind_of(request: &Request) -> Kind {
    match request {
        Request::Get { .. } | Request::GetMerged { .. } => Kind::Get,
        Request::Merge { .. } => Kind::Merge,
        Request::Op { .. } | Request::Apply { .. } => Kind::Op,
        Request::MergeBatch { .. } | Request::Copy { .. } | Request::Backfill { .. } => {
            Kind::MergeBatch
        }
        Request::Digest { .. }
        | Request::DigestBatch { .. }
        | Request::DigestList { .. }
        | Request::Buckets
        | Request::BucketKeys { .. } => Kind::Digest,
        Request::Ping
        | Request::Table
        | Request::Hello { .. }
        | Request::Watch { .. }
        | Request::Notify { .. } => Kind::Ping,
    }
}

/// Refuses a request over the node's limits (a merge's frame larger than a value may be, a
/// batch of too many items), before anything else is decided.
fn over_limits(node: &Node, request: &Request, frame_bytes: usize) -> Option<RequestError> {
    let limits = &node.config().store;
    match request {
        Request::Merge { .. }
            if frame_bytes > limits.max_value_bytes + limits.max_key_bytes + 64 =>
        {
            Some(RequestError::from(
                haze_storage::WriteError::ValueTooLarge {
                    size: frame_bytes,
                    limit: limits.max_value_bytes,
                },
            ))
        }
        Request::MergeBatch { items }
        | Request::Copy { items }
        | Request::Backfill { items }
        | Request::Notify { items, .. } => too_many(items.len()),
        Request::DigestBatch { keys }
        | Request::DigestList {
            keys: Some(keys), ..
        } => too_many(keys.len()),
        _ => None,
    }
}

/// Decides how to answer `request` (which came in a frame of `frame_bytes` on a connection of
/// `role`): where it is served comes from the cluster layer's disposition; reads of this node's
/// store are answered at once.
pub(crate) fn plan(node: &Node, request: Request, frame_bytes: usize, role: Role) -> Plan {
    let started = tokio::time::Instant::now();
    let kind = kind_of(&request);
    let cluster = node.cluster();
    let view = cluster.view();
    let disposition = match over_limits(node, &request, frame_bytes) {
        Some(e) => Disposition::Refuse(e),
        None => dispose(
            view.as_deref(),
            cluster.expects(),
            cluster.settings().read_quorum.is_one(),
            role,
            &Operation::of(&request),
        ),
    };
    let routed = |request, routing, stale| Plan::Route {
        view: view.clone().expect("only a node with a view routes"),
        request,
        routing,
        stale,
    };
    let response = match disposition {
        Disposition::Local => return local(node, request, role, kind, started),
        Disposition::ReadHere => {
            let Request::Get { key } = request else {
                unreachable!("only a read is read here")
            };
            match node.get_encoded(&key) {
                // A miss is routed: another replica may hold it.
                Ok(None) => return routed(Request::Get { key }, Routing::Replicas, None),
                found => found.map(Response::Stored),
            }
        }
        Disposition::Route { stale } => return routed(request, Routing::Replicas, stale),
        Disposition::PassOn => return routed(request, Routing::Replicas, None),
        Disposition::Coordinate => return routed(request, Routing::Coordinate, None),
        Disposition::RouteForPeer => return routed(request, Routing::ForPeer, None),
        Disposition::Refuse(e) => Err(e),
    };
    node.metrics()
        .record(kind, response.is_ok(), started.elapsed());
    Plan::Now(response.unwrap_or_else(|e| Response::Error(e.to_wire())))
}

/// Serves a request from this node's own store.
fn local(
    node: &Node,
    request: Request,
    role: Role,
    kind: Kind,
    started: tokio::time::Instant,
) -> Plan {
    let peer = matches!(role, Role::Peer { .. });
    let refused = || match peer {
        true => node.cluster().refuse_peer_read(),
        false => None,
    };
    let response = match request {
        Request::Get { .. } | Request::GetMerged { .. } | Request::Digest { .. }
            if let Some(e) = refused() =>
        {
            Err(e)
        }
        // Sent as stored: decoding the value only to encode it again cost a sixth of a get.
        Request::Get { key } | Request::GetMerged { key } => {
            node.get_encoded(&key).map(Response::Stored)
        }
        Request::Digest { key } => node.digest(&key).map(Response::Digest),
        Request::Ping => Ok(Response::Pong),
        Request::Table => Ok(Response::Table(node.cluster().routing_table_json())),
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
                kind,
                key,
                write: WriteRequest::Merge(value),
                ack: false,
            };
        }
        Request::Op { key, op } => {
            return Plan::Write {
                kind,
                key,
                write: WriteRequest::Op(op),
                ack: false,
            };
        }
        Request::Apply { key, op } => {
            return Plan::Write {
                kind,
                key,
                write: WriteRequest::Op(op),
                ack: true,
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
                held_only: peer,
                priority: Priority::Foreground,
            };
        }
        Request::Backfill { items } => {
            return Plan::Batch {
                items,
                acks: true,
                held_only: peer,
                priority: Priority::Background,
            };
        }
        Request::Buckets => node
            .replica()
            .store()
            .bucket_digests()
            .map(Response::Buckets)
            .map_err(RequestError::from),
        Request::BucketKeys { bucket, after } => node
            .replica()
            .store()
            .bucket_keys(bucket as usize, after.as_deref(), BUCKET_PAGE)
            .map(|(keys, more)| Response::KeyDigests { keys, more })
            .map_err(RequestError::from),
        Request::Hello { .. } => Err(RequestError::BadRequest("hello is only valid first".into())),
        Request::Watch {
            node: from,
            lease_ms,
            keys,
            prefixes,
        } => {
            crate::live::watch::accept(node.live(), node.cluster(), from, lease_ms, keys, prefixes)
                .map(|()| Response::Acks(Vec::new()))
        }
        Request::Notify { items, missed } => {
            crate::live::watch::notified(node.live(), &items, missed);
            Ok(Response::Acks(Vec::new()))
        }
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

/// The answer to an `Apply`: whether it was applied.
pub(crate) fn applied(
    node: &Node,
    kind: Kind,
    started: tokio::time::Instant,
    outcome: Result<(), RequestError>,
) -> Response {
    node.metrics()
        .record(kind, outcome.is_ok(), started.elapsed());
    match outcome {
        Ok(()) => Response::Acks(vec![Ok(())]),
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
        Some(list) => node.replica().resolve_list(list, keys),
        None => Ok(Some(Arc::new(keys.unwrap_or_default()))),
    };
    let result = match keys {
        Ok(Some(keys)) => node.replica().digests(keys).await,
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
    // Acknowledged copies are other nodes' writes, counted toward their quorums: durable here
    // before the acknowledgement, whatever this node's own durability mode.
    let merged = if acks {
        node.writes().merge_copies(items, priority).await
    } else {
        node.writes().merge_batch(items, priority).await
    };
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
