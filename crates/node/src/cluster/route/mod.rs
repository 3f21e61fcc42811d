//! Routing a request to the replicas of its keys: `read` (reads, digests, merged reads with
//! read repair), `write` (writes and batches of merges, coordinated by the first replica that
//! answers), and here the dispatch and the forwarding shared by both.

mod read;
mod write;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use haze_protocol::{CallError, ErrorCode, Request, Response, WireError};
use haze_ring::NodeId;

use super::{Cluster, ClusterView};
use crate::error::RequestError;
use crate::metrics::Kind;
use crate::replica::WriteRequest;
use read::{digests, get_merged, read};
use write::{merge_batch, write};

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
        // Coordinated as an `Op` (a coordinator needs the new state for its copies, and a
        // node of an earlier version takes no `Apply`); only the answer is smaller.
        Request::Apply { key, op } => (
            Kind::Op,
            write(&cluster, &view, key, WriteRequest::Op(op), routing)
                .await
                .map(|_| Response::Acks(vec![Ok(())])),
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
pub(super) async fn forward(
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
pub(super) fn retry_elsewhere(e: &WireError) -> bool {
    matches!(
        e.code,
        ErrorCode::Unavailable | ErrorCode::Overloaded | ErrorCode::WrongCluster
    )
}

/// Asks the replicas in order, this node with `local`, the others over the network, and returns
/// the first answer and the position of the replica that gave it. A replica that cannot be
/// reached, or does not answer in time, is skipped.
pub(super) async fn first_answer<F, Fut>(
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
    let mut local = Some(local);
    for (i, &replica) in replicas.iter().enumerate() {
        if replica == view.me
            && let Some(local) = local.take()
        {
            match local().await {
                Ok(answer) => return Ok((i, answer)),
                // A damaged copy (quarantined until repaired): another replica answers.
                Err(e) if e.to_wire().code == ErrorCode::Corrupt => {
                    tried.push(format!("{replica}: {e}"));
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        match forward(cluster, view, replica, request.clone(), true).await {
            Ok(Response::Error(e)) if retry_elsewhere(&e) || e.code == ErrorCode::Corrupt => {
                tried.push(format!("{replica}: {e}"));
            }
            Ok(Response::Error(e)) => return Err(RequestError::Remote(e)),
            Ok(answer) => return Ok((i, answer)),
            Err(e) => tried.push(format!("{replica}: {e}")),
        }
        cluster.metrics().failovers.fetch_add(1, Ordering::Relaxed);
    }
    Err(no_replica(&tried))
}

pub(super) fn no_replica(tried: &[String]) -> RequestError {
    RequestError::Unavailable(format!(
        "no replica of the key could serve the request ({})",
        tried.join("; ")
    ))
}
