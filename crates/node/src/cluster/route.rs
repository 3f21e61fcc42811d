//! Routing a client's request to the replicas of its keys.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use haze_crdt::Value;
use haze_protocol::{CallError, ErrorCode, Request, Response, TypedOp, WireError};
use haze_ring::NodeId;
use haze_storage::Priority;
use tokio::task::JoinSet;

use super::Cluster;
use super::ClusterView;
use super::disposition::{Disposition, peer_write};
use super::replicate::{coordinate, coordinate_batch};
use crate::error::RequestError;
use crate::metrics::Kind;
use crate::replica::WriteRequest;

/// How a routed request came, and so how this node takes its writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Routing {
    /// A client's request, or a peer's that this node passes on to a partition's new
    /// replicas: sent to the key's replicas by this node's table.
    Replicas,
    /// A peer's write of a key this node holds: coordinated here, never sent on.
    Coordinate,
    /// A peer's batch or merged read: each group of keys is decided as a peer's write is
    /// (`disposition::peer_write`).
    ForPeer,
}

/// Serves a request the disposition sent to the replicas of its keys (see [`Routing`]).
pub(crate) async fn route(
    cluster: Arc<Cluster>,
    view: Arc<ClusterView>,
    request: Request,
    routing: Routing,
) -> Response {
    let started = tokio::time::Instant::now();
    let (kind, result) = match request {
        Request::Get { key } => (Kind::Get, read(&cluster, &view, key, false).await),
        Request::Digest { key } => (Kind::Digest, read(&cluster, &view, key, true).await),
        Request::GetMerged { key } => (
            Kind::Get,
            get_merged(&cluster, &view, key).await.map(Response::Value),
        ),
        Request::Merge { key, value } => (
            Kind::Merge,
            write(&cluster, &view, key, WriteRequest::Merge(value), routing)
                .await
                .map(|v| Response::Value(Some(v))),
        ),
        Request::Op { key, op } => (
            Kind::Op,
            write(&cluster, &view, key, WriteRequest::Op(op), routing)
                .await
                .map(|v| Response::Value(Some(v))),
        ),
        Request::MergeBatch { items } => (
            Kind::MergeBatch,
            Ok(merge_batch(&cluster, &view, items, routing == Routing::ForPeer).await),
        ),
        Request::DigestBatch { keys } => (Kind::Digest, digests(&cluster, &view, keys).await),
        Request::DigestList { list, keys } => (
            Kind::Digest,
            match cluster.replica().resolve_list(list, keys) {
                Ok(Some(keys)) => digests(&cluster, &view, keys.to_vec()).await,
                Ok(None) => Ok(Response::UnknownList),
                Err(e) => Err(e),
            },
        ),
        other => (
            Kind::Ping,
            Err(RequestError::BadRequest(format!("{other:?} is not routed"))),
        ),
    };
    cluster
        .metrics()
        .record(kind, result.is_ok(), started.elapsed());
    result.unwrap_or_else(|e| Response::Error(e.to_wire()))
}

/// Sends `request` to node `to`. `idempotent` requests are resent once if the connection broke.
async fn forward(
    cluster: &Cluster,
    view: &ClusterView,
    to: NodeId,
    request: Request,
    idempotent: bool,
) -> Result<Response, CallError> {
    let Some(addr) = view.addrs.get(&to) else {
        return Err(CallError::Connect {
            addr: to.to_string(),
            reason: "the cluster view has no address for it".into(),
        });
    };
    cluster.metrics().forwarded.fetch_add(1, Ordering::Relaxed);
    cluster
        .peers()
        .client(view.cluster, addr)
        .send(request, idempotent)
        .await
}

/// Whether a node's error answer means "try another replica" (it could not serve at all).
fn retry_elsewhere(e: &WireError) -> bool {
    matches!(
        e.code,
        ErrorCode::Unavailable | ErrorCode::Overloaded | ErrorCode::WrongCluster
    )
}

/// Asks the replicas in order, this node with `local`, the others over the network, and returns
/// the first answer and the position of the replica that gave it. A replica that cannot be
/// reached, or does not answer in time, is skipped.
async fn first_answer<F, Fut>(
    cluster: &Cluster,
    view: &ClusterView,
    replicas: &[NodeId],
    request: Request,
    local: F,
) -> Result<(usize, Response), RequestError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Response, RequestError>>,
{
    let mut tried = Vec::new();
    for (i, &replica) in replicas.iter().enumerate() {
        if replica == view.me {
            return Ok((i, local().await?));
        }
        match forward(cluster, view, replica, request.clone(), true).await {
            Ok(Response::Error(e)) if retry_elsewhere(&e) => tried.push(format!("{replica}: {e}")),
            Ok(Response::Error(e)) => return Err(RequestError::Remote(e)),
            Ok(answer) => return Ok((i, answer)),
            Err(e) => tried.push(format!("{replica}: {e}")),
        }
        cluster.metrics().failovers.fetch_add(1, Ordering::Relaxed);
    }
    Err(no_replica(&tried))
}

fn no_replica(tried: &[String]) -> RequestError {
    RequestError::Unavailable(format!(
        "no replica of the key could serve the request ({})",
        tried.join("; ")
    ))
}

/// A read of a key (its value, or its digest) from the first replica that answers.
async fn read(
    cluster: &Arc<Cluster>,
    view: &ClusterView,
    key: Vec<u8>,
    digest: bool,
) -> Result<Response, RequestError> {
    cluster.replica().check_key(&key)?;
    if !digest && view.in_move(&key) {
        return moving_read(cluster, view, key).await.map(Response::Value);
    }
    let replicas = view.replicas(&key).to_vec();
    let local = || async {
        if digest {
            cluster.replica().digest(&key).map(Response::Digest)
        } else {
            cluster.replica().get(&key).map(Response::Value)
        }
    };
    let request = if digest {
        Request::Digest { key: key.clone() }
    } else {
        Request::Get { key: key.clone() }
    };
    let (mut from, mut absent) = (0, 0);
    loop {
        let (i, answer) =
            first_answer(cluster, view, &replicas[from..], request.clone(), local).await?;
        // A replica without the key may be one that lost its disk or missed the writes while
        // down, not yet refilled by anti-entropy: "absent" is believed only when every replica
        // that answers says so, and they are a majority of the key's replicas (a write
        // acknowledged by a quorum is on at least one of them).
        if !matches!(answer, Response::Value(None)) {
            return Ok(answer);
        }
        absent += 1;
        if from + i + 1 >= replicas.len() {
            let majority = replicas.len() / 2 + 1;
            if absent < majority {
                return Err(RequestError::Unavailable(format!(
                    "the replicas that answered do not hold the key, but only {absent} of {} \
                     answered: it may be on the others",
                    replicas.len()
                )));
            }
            return Ok(answer);
        }
        from += i + 1;
    }
}

/// A read of a key whose partition moves: the merge of a majority of the replicas this router
/// sends the key to. Writes meanwhile need a majority of the old and of the new replicas, and
/// the new ones serve only once their stream completed (they then hold what the old one they
/// replace held), so any majority holds every acknowledged write, whichever replica answers
/// alone before and after the switch.
async fn moving_read(
    cluster: &Arc<Cluster>,
    view: &ClusterView,
    key: Vec<u8>,
) -> Result<Option<Value>, RequestError> {
    let replicas = view.replicas(&key).to_vec();
    let majority = replicas.len() / 2 + 1;
    let (mut answered, mut merged, mut tried) = (0usize, None::<Value>, Vec::new());
    for replica in replicas {
        let answer = if replica == view.me {
            cluster.replica().get(&key).map_err(|e| e.to_string())
        } else {
            match forward(
                cluster,
                view,
                replica,
                Request::Get { key: key.clone() },
                true,
            )
            .await
            {
                Ok(Response::Value(v)) => Ok(v),
                Ok(other) => Err(format!("{other:?}")),
                Err(e) => Err(e.to_string()),
            }
        };
        match answer {
            Ok(value) => {
                answered += 1;
                match (&mut merged, value) {
                    (Some(m), Some(v)) => m.merge(v).map_err(|e| {
                        RequestError::Remote(WireError::new(ErrorCode::TypeMismatch, e.to_string()))
                    })?,
                    (None, Some(v)) => merged = Some(v),
                    (_, None) => {}
                }
                if answered >= majority {
                    return Ok(merged);
                }
            }
            Err(e) => {
                cluster.metrics().failovers.fetch_add(1, Ordering::Relaxed);
                tried.push(format!("{replica}: {e}"));
            }
        }
    }
    Err(no_replica(&tried))
}

/// A write, coordinated by the first replica that answers (this node, if it comes first or the
/// ones before it do not answer); or here, if a peer sent it to this node as a replica.
async fn write(
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
async fn merge_batch(
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

/// Digests of many keys: one request per group of keys that share their replicas.
async fn digests(
    cluster: &Arc<Cluster>,
    view: &Arc<ClusterView>,
    keys: Vec<Vec<u8>>,
) -> Result<Response, RequestError> {
    for key in &keys {
        cluster.replica().check_key(key)?;
    }
    let mut groups: BTreeMap<Vec<NodeId>, Vec<usize>> = BTreeMap::new();
    for (i, key) in keys.iter().enumerate() {
        groups
            .entry(view.replicas(key).to_vec())
            .or_default()
            .push(i);
    }
    let keys = Arc::new(keys);
    let mut tasks = JoinSet::new();
    for (replicas, indices) in groups {
        let (cluster, view, keys) = (cluster.clone(), view.clone(), keys.clone());
        tasks.spawn(async move {
            let group: Vec<Vec<u8>> = indices.iter().map(|&i| keys[i].clone()).collect();
            let request = Request::DigestBatch {
                keys: group.clone(),
            };
            let local = || cluster.replica().digests(Arc::new(group));
            let answer = first_answer(&cluster, &view, &replicas, request, local)
                .await
                .map(|(_, answer)| answer);
            (indices, answer)
        });
    }
    let mut out = vec![None; keys.len()];
    while let Some(joined) = tasks.join_next().await {
        let (indices, answer) =
            joined.map_err(|e| RequestError::Unavailable(format!("a digest task failed: {e}")))?;
        match answer? {
            Response::Digests(d) if d.len() == indices.len() => {
                for (i, digest) in indices.into_iter().zip(d) {
                    out[i] = digest;
                }
            }
            other => {
                return Err(RequestError::Unavailable(format!(
                    "a replica answered a digest batch with {other:?}"
                )));
            }
        }
    }
    Ok(Response::Digests(out))
}

/// Reads a key from every replica, merges what they hold, and sends the merge to those whose
/// copy differed (read repair).
async fn get_merged(
    cluster: &Arc<Cluster>,
    view: &Arc<ClusterView>,
    key: Vec<u8>,
) -> Result<Option<Value>, RequestError> {
    cluster.replica().check_key(&key)?;
    let mut tasks = JoinSet::new();
    for &replica in view.replicas(&key) {
        let (cluster, view, key) = (cluster.clone(), view.clone(), key.clone());
        tasks.spawn(async move {
            let answer = if replica == view.me {
                cluster.replica().get(&key).map_err(|e| e.to_string())
            } else {
                match forward(&cluster, &view, replica, Request::Get { key }, true).await {
                    Ok(Response::Value(v)) => Ok(v),
                    Ok(other) => Err(format!("{other:?}")),
                    Err(e) => Err(e.to_string()),
                }
            };
            (replica, answer)
        });
    }
    let (mut answers, mut tried) = (Vec::new(), Vec::new());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((replica, Ok(value))) => answers.push((replica, value)),
            Ok((replica, Err(e))) => tried.push(format!("{replica}: {e}")),
            Err(e) => tried.push(e.to_string()),
        }
    }
    if answers.is_empty() {
        return Err(no_replica(&tried));
    }
    let mut merged: Option<Value> = None;
    for value in answers.iter().filter_map(|(_, v)| v.clone()) {
        match &mut merged {
            None => merged = Some(value),
            Some(m) => m.merge(value).map_err(|e| {
                RequestError::Remote(WireError::new(ErrorCode::TypeMismatch, e.to_string()))
            })?,
        }
    }
    let Some(merged) = merged else {
        return Ok(None);
    };
    for (replica, value) in answers {
        if value.as_ref() == Some(&merged) {
            continue;
        }
        cluster
            .metrics()
            .read_repairs
            .fetch_add(1, Ordering::Relaxed);
        let repaired = if replica == view.me {
            cluster
                .replica()
                .writes()
                .write(
                    key.clone(),
                    WriteRequest::Merge(merged.clone()),
                    Priority::Foreground,
                )
                .await
                .map(drop)
        } else {
            let items = vec![(key.clone(), merged.clone())];
            forward(cluster, view, replica, Request::Copy { items }, true)
                .await
                .map(drop)
                .map_err(|e| RequestError::Unavailable(e.to_string()))
        };
        if let Err(e) = repaired {
            tracing::debug!(%replica, error = %e, "a read repair failed");
        }
    }
    Ok(Some(merged))
}
