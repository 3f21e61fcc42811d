//! A stream: passes over a partition, reading its buckets page by page and sending them to the
//! new replica in throttled `Backfill` batches, a few in flight, until a pass completes with
//! every write forwarded meanwhile delivered.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use haze_crdt::Value;
use haze_ring::{MoveState, NodeId, PartitionId};
use haze_storage::Priority;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::super::peers::Peer;
use super::super::{Cluster, ClusterError, ClusterView};
use super::{RETRY_FIRST, RETRY_MAX, buckets_of, wanted};

/// Keys read from the store at once.
const PAGE_KEYS: usize = 512;
/// `Backfill` batches of one stream sent and not yet answered.
const STREAM_WINDOW: usize = 4;
/// The most bytes of one `Backfill` batch of a stream: a request's memory on both sides stays
/// small, and its decoding holds a connection's task for well under a millisecond.
const BATCH_BYTES: usize = 256 * 1024;

/// Streams `partition` to `to` until a pass completes with every forwarded write delivered,
/// or the change no longer asks it.
pub(super) async fn stream_task(
    weak: Weak<Cluster>,
    change: u64,
    partition: PartitionId,
    to: NodeId,
    stop: CancellationToken,
) {
    // Stopping drops the stream where it is (its batches in flight with it).
    tokio::select! {
        biased;
        () = stop.cancelled() => {}
        () = stream(weak, change, partition, to) => {}
    }
}

async fn stream(weak: Weak<Cluster>, change: u64, partition: PartitionId, to: NodeId) {
    let key = (partition, to);
    let ours = move |m: &haze_ring::PartitionMove, me: NodeId| {
        m.streams.iter().any(|s| s.source == me && s.to == to)
    };
    let mut delay = RETRY_FIRST;
    loop {
        let Some(cluster) = weak.upgrade() else {
            return;
        };
        let Some(view) = wanted(&cluster, change, partition, MoveState::Streaming, ours) else {
            cluster.handoff().with_change(change, |r| {
                r.running.remove(&key);
            });
            return;
        };
        let handoff = cluster.handoff();
        let failures = handoff.count(key).failed;
        cluster
            .metrics()
            .handoff_passes
            .fetch_add(1, Ordering::Relaxed);
        cluster
            .metrics()
            .handoff_streams
            .fetch_add(1, Ordering::Relaxed);
        handoff.update(change, key, |r| {
            r.passes += 1;
            r.keys = 0;
            r.bytes = 0;
        });
        let still = || wanted(&cluster, change, partition, MoveState::Streaming, ours).is_some();
        let pass = send_partition(&cluster, &view, partition, &[to], Some(key), &still).await;
        let pass = match pass {
            Ok(()) => handoff.drained(key).await,
            Err(e) => Err(e),
        };
        cluster
            .metrics()
            .handoff_streams
            .fetch_sub(1, Ordering::Relaxed);
        let outcome = match pass {
            Ok(()) if handoff.count(key).failed == failures => None,
            Ok(()) => Some(ClusterError::ForwardFailed),
            Err(e) => Some(e),
        };
        let Some(error) = outcome else {
            if planted!(DeleteEarly) {
                let buckets = buckets_of(&view, partition);
                let _ = cluster
                    .replica()
                    .on_store(move |store| store.delete_buckets(buckets))
                    .await;
            }
            handoff.with_change(change, |r| {
                r.done_at.insert(key, failures);
                r.running.remove(&key);
            });
            handoff.update(change, key, |r| {
                r.done = true;
                r.error = None;
            });
            handoff.progressed.notify_one();
            tracing::info!(%partition, %to, "partition streamed");
            return;
        };
        tracing::warn!(%partition, %to, %error, "a stream pass failed; trying again");
        handoff.update(change, key, |r| r.error = Some(error.to_string()));
        drop(cluster);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RETRY_MAX);
    }
}

/// Sends every key of `partition` to each of `targets` in `Backfill` batches, throttled; counts
/// progress under `progress`; stops with an error once `still` says the work is no longer
/// asked for.
async fn send_partition(
    cluster: &Arc<Cluster>,
    view: &ClusterView,
    partition: PartitionId,
    targets: &[NodeId],
    progress: Option<(PartitionId, NodeId)>,
    still: &impl Fn() -> bool,
) -> Result<(), ClusterError> {
    if targets.is_empty() {
        return Ok(());
    }
    let rate = view.transition.as_ref().map_or(0, |t| t.rate);
    let change = view.transition.as_ref().map_or(0, |t| t.change);
    // Batches sent and not yet answered: a few at once, so that the receiver's commit, the
    // network and the next page's read overlap.
    let mut in_flight: JoinSet<Result<(), ClusterError>> = JoinSet::new();
    for bucket in buckets_of(view, partition) {
        let mut after: Option<Vec<u8>> = None;
        loop {
            if !still() {
                return Err(ClusterError::NotAsked);
            }
            let from = after.clone();
            let (items, more) = cluster
                .replica()
                .on_store(move |store| store.bucket_values(bucket, from.as_deref(), PAGE_KEYS))
                .await??;
            let last = items.last().map(|(key, _)| key.clone());
            for batch in batches(items) {
                let (keys, bytes) = (batch.0.len() as u64, batch.1);
                cluster.handoff().throttle(bytes, rate).await;
                // Each target but the last gets a copy of the batch; the last takes it.
                if let Some((final_target, others)) = targets.split_last() {
                    for to in others {
                        let peer = Peer::of(cluster.peers(), view, *to)?;
                        in_flight.spawn(backfill_to(peer, batch.0.clone()));
                    }
                    let peer = Peer::of(cluster.peers(), view, *final_target)?;
                    in_flight.spawn(backfill_to(peer, batch.0));
                }
                while in_flight.len() >= STREAM_WINDOW * targets.len() {
                    landed(in_flight.join_next().await)?;
                }
                cluster
                    .metrics()
                    .handoff_keys
                    .fetch_add(keys, Ordering::Relaxed);
                cluster
                    .metrics()
                    .handoff_bytes
                    .fetch_add(bytes as u64, Ordering::Relaxed);
                if let Some(key) = progress {
                    cluster.handoff().update(change, key, |r| {
                        r.keys += keys;
                        r.bytes += bytes as u64;
                    });
                }
            }
            if !more {
                break;
            }
            after = last;
        }
    }
    while let Some(joined) = in_flight.join_next().await {
        landed(Some(joined))?;
    }
    Ok(())
}

/// The outcome of a batch that was in flight.
fn landed(
    joined: Option<Result<Result<(), ClusterError>, tokio::task::JoinError>>,
) -> Result<(), ClusterError> {
    match joined {
        Some(Ok(outcome)) => outcome,
        Some(Err(e)) => Err(e.into()),
        None => Ok(()),
    }
}

/// Items of one `Backfill` request and their size in bytes.
type Batch = (Vec<(Vec<u8>, Value)>, usize);

/// Cuts items into batches of at most [`BATCH_BYTES`] (one item at least), with their sizes.
fn batches(items: Vec<(Vec<u8>, Value)>) -> Vec<Batch> {
    let mut out: Vec<Batch> = Vec::new();
    let mut current = (Vec::new(), 0usize);
    for (key, value) in items {
        let size = key.len() + value.encode().len();
        if !current.0.is_empty() && current.1 + size > BATCH_BYTES {
            out.push(std::mem::take(&mut current));
        }
        current.1 += size;
        current.0.push((key, value));
    }
    if !current.0.is_empty() {
        out.push(current);
    }
    out
}

/// Sends one `Backfill` batch to `peer` and checks that every item was merged.
async fn backfill_to(peer: Peer, items: Vec<(Vec<u8>, Value)>) -> Result<(), ClusterError> {
    let acks = peer.merge_copies(items, Priority::Background).await?;
    let refused: Vec<haze_protocol::WireError> = acks.into_iter().filter_map(Result::err).collect();
    match refused.first() {
        None => Ok(()),
        Some(first) => Err(ClusterError::Refused {
            peer: peer.id,
            count: refused.len(),
            first: first.to_string(),
        }),
    }
}
