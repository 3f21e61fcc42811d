//! Routed writes: coordinated by the first replica of the key that answers, never sent twice
//! when their outcome is unknown (unless merging twice is merging once); batches split by
//! replica set.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use haze_crdt::Value;
use haze_protocol::{CallError, ErrorCode, Request, Response, TypedOp, WireError};
use haze_ring::NodeId;
use tokio::task::JoinSet;

use super::super::disposition::{Disposition, peer_write};
use super::super::replicate::{coordinate, coordinate_batch};
use super::super::{Cluster, ClusterView};
use super::{Routing, forward, no_replica, retry_elsewhere};
use crate::error::RequestError;
use crate::replica::WriteRequest;

/// A write, coordinated by the first replica that answers (this node, if it comes first or the
/// ones before it do not answer); or here, if a peer sent it to this node as a replica.
pub(super) async fn write(
    cluster: &Arc<Cluster>,
    view: &ClusterView,
    key: Vec<u8>,
    write: WriteRequest,
    routing: Routing,
) -> Result<Value, RequestError> {
    cluster.replica().check_key(&key)?;
    if routing == Routing::Coordinate {
        return coordinate(cluster, view, key, write).await;
    }
    // A merge may be sent again to the next replica whatever happened to the first try (merging
    // twice is merging once); so may a set addition (the member is present either way). A
    // counter addition or a register write whose outcome is unknown must not be, nor a set
    // removal (another replica may have seen other additions to remove).
    let retry = matches!(
        &write,
        WriteRequest::Merge(_) | WriteRequest::Op(TypedOp::SetAdd(_))
    ) || planted!(RetryUnknownWrites);
    let mut tried = Vec::new();
    for &replica in view.replicas(&key) {
        if replica == view.me {
            return coordinate(cluster, view, key, write).await;
        }
        let request = match &write {
            WriteRequest::Merge(value) => Request::Merge {
                key: key.clone(),
                value: value.clone(),
            },
            WriteRequest::Op(op) => Request::Op {
                key: key.clone(),
                op: op.clone(),
            },
        };
        match forward(cluster, view, replica, request, retry).await {
            Ok(Response::Value(Some(value))) => return Ok(value),
            // It applied nothing: any write may go to the next replica.
            Ok(Response::Error(e)) if e.code == ErrorCode::NotReplica => {
                tried.push(format!("{replica}: {e}"));
            }
            Ok(Response::Error(e)) if retry && retry_elsewhere(&e) => {
                tried.push(format!("{replica}: {e}"));
            }
            Ok(Response::Error(e)) => return Err(RequestError::Remote(e)),
            Ok(other) => {
                return Err(RequestError::Unavailable(format!(
                    "{replica} answered a write with {other:?}"
                )));
            }
            // Not connected, or refused at the handshake: the request was never sent.
            Err(e @ (CallError::Connect { .. } | CallError::Refused(_))) => {
                tried.push(format!("{replica}: {e}"));
            }
            Err(e) if retry => tried.push(format!("{replica}: {e}")),
            Err(e) => {
                return Err(RequestError::Unavailable(format!(
                    "{replica} did not answer ({e}): the operation may or may not have been \
                     applied, so it was not sent to another replica"
                )));
            }
        }
        cluster.metrics().failovers.fetch_add(1, Ordering::Relaxed);
    }
    Err(no_replica(&tried))
}

/// A key and the state to merge into it.
type Item = (Vec<u8>, Value);

/// A batch of merges: one batch per group of keys that share their replicas, coordinated by the
/// first replica of the group that answers; results reassembled in order.
pub(super) async fn merge_batch(
    cluster: &Arc<Cluster>,
    view: &Arc<ClusterView>,
    items: Vec<(Vec<u8>, Value)>,
    for_peer: bool,
) -> Response {
    let n = items.len();
    let mut results: Vec<Result<Value, WireError>> =
        vec![Err(WireError::new(ErrorCode::Internal, "not written")); n];
    let mut groups: BTreeMap<Vec<NodeId>, Vec<(usize, Item)>> = BTreeMap::new();
    for (i, (key, value)) in items.into_iter().enumerate() {
        if let Err(e) = cluster.replica().check_key(&key) {
            results[i] = Err(e.to_wire());
            continue;
        }
        groups
            .entry(view.replicas(&key).to_vec())
            .or_default()
            .push((i, (key, value)));
    }
    let mut tasks = JoinSet::new();
    for (replicas, group) in groups {
        let (cluster, view) = (cluster.clone(), view.clone());
        tasks.spawn(async move {
            let (indices, items): (Vec<usize>, Vec<_>) = group.into_iter().unzip();
            let written = group_batch(&cluster, &view, &replicas, items, for_peer).await;
            (indices, written)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Ok((indices, written)) = joined {
            for (i, result) in indices.into_iter().zip(written) {
                results[i] = result;
            }
        }
    }
    Response::Batch(results)
}

/// Merges a batch of keys that share `replicas`: here if this node is the first of them that
/// answers, else forwarded whole (merges may go to the next replica whatever happened).
async fn group_batch(
    cluster: &Arc<Cluster>,
    view: &ClusterView,
    replicas: &[NodeId],
    items: Vec<(Vec<u8>, Value)>,
    for_peer: bool,
) -> Vec<Result<Value, WireError>> {
    let n = items.len();
    let wire = |results: Vec<Result<Value, RequestError>>| {
        results
            .into_iter()
            .map(|r| r.map_err(|e| e.to_wire()))
            .collect()
    };
    // A peer's group is decided as a peer's write of its first key (they share their replicas).
    if for_peer && let Some((key, _)) = items.first() {
        match peer_write(view, key) {
            Disposition::Coordinate => return wire(coordinate_batch(cluster, view, items).await),
            Disposition::Refuse(e) => return vec![Err(e.to_wire()); n],
            _ => {} // passed on: routed as a client's
        }
    }
    if replicas.first() == Some(&view.me) {
        if items.first().is_some_and(|(key, _)| view.holds(key)) {
            return wire(coordinate_batch(cluster, view, items).await);
        }
        let e = RequestError::NotReplica(format!(
            "{} does not hold these keys at epoch {}",
            view.me,
            view.table.epoch().0
        ));
        return vec![Err(e.to_wire()); n];
    }
    let mut tried = Vec::new();
    for &replica in replicas {
        if replica == view.me {
            return wire(coordinate_batch(cluster, view, items).await);
        }
        let request = Request::MergeBatch {
            items: items.clone(),
        };
        match forward(cluster, view, replica, request, true).await {
            Ok(Response::Batch(results))
                if results.len() == n
                    && !results
                        .iter()
                        .any(|r| matches!(r, Err(e) if e.code == ErrorCode::NotReplica)) =>
            {
                return results;
            }
            Ok(Response::Error(e)) if !retry_elsewhere(&e) && e.code != ErrorCode::NotReplica => {
                return vec![Err(e); n];
            }
            Ok(other) => tried.push(format!("{replica}: {other:?}")),
            Err(e) => tried.push(format!("{replica}: {e}")),
        }
        cluster.metrics().failovers.fetch_add(1, Ordering::Relaxed);
    }
    vec![Err(no_replica(&tried).to_wire()); n]
}
