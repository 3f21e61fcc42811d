//! A departing replica's cleanup: once the node routes with a table that no longer lists it,
//! it sends the new replicas what they lack of its copy (a last pass), then deletes it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use haze_ring::{CleanReport, MoveState, NodeId, PartitionId};
use tokio_util::sync::CancellationToken;

use super::super::peers::Peer;
use super::super::{Cluster, ClusterError, ClusterView};
use super::{RETRY_FIRST, RETRY_MAX, buckets_of, wanted};

/// Sends the new replicas what they lack of this node's copy of `partition`, then deletes it.
pub(super) async fn clean_task(
    weak: Weak<Cluster>,
    change: u64,
    partition: PartitionId,
    stop: CancellationToken,
) {
    tokio::select! {
        biased;
        () = stop.cancelled() => {}
        () = clean_up(weak, change, partition) => {}
    }
}

async fn clean_up(weak: Weak<Cluster>, change: u64, partition: PartitionId) {
    let mut delay = RETRY_FIRST;
    loop {
        let Some(cluster) = weak.upgrade() else {
            return;
        };
        let Some(view) = wanted(&cluster, change, partition, MoveState::Cleaning, |m, me| {
            m.departs(me)
        }) else {
            cluster.handoff().with_change(change, |r| {
                r.cleaning.remove(&partition);
            });
            return;
        };
        match clean(&cluster, &view, change, partition).await {
            Ok((keys, resent)) => {
                count_deleted(&cluster, keys);
                tracing::info!(%partition, keys, resent, "partition deleted after it moved");
                let report = CleanReport {
                    change,
                    partition,
                    keys,
                };
                cluster.handoff().with_change(change, |r| {
                    r.cleaned.insert(partition, report);
                    r.cleaning.remove(&partition);
                });
                cluster.handoff().progressed.notify_one();
                return;
            }
            Err(e) => {
                tracing::warn!(%partition, error = %e, "cleaning up a moved partition failed; trying again")
            }
        }
        drop(cluster);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RETRY_MAX);
    }
}

/// Sends the new replicas what they lack of this node's copy of `partition`, then deletes the
/// copy. Returns the keys deleted and the keys that the last pass had to send.
async fn clean(
    cluster: &Arc<Cluster>,
    view: &ClusterView,
    change: u64,
    partition: PartitionId,
) -> Result<(u64, usize), ClusterError> {
    if view.table.replicas(partition).contains(&view.me) {
        return Err(ClusterError::StillReplica(view.table.epoch().0));
    }
    let m = view
        .transition
        .as_ref()
        .and_then(|t| t.get(partition))
        .ok_or(ClusterError::NotAsked)?;
    // The joining replicas first, then the others. The copy is deleted only once a majority of
    // the new replicas hold it (each pass sends what differs, so a replica that has it costs a
    // digest comparison): with one, a single disk lost before anti-entropy spread it would lose
    // what only this copy still had. A new replica that is down holds it up only if a majority
    // cannot be reached without it.
    let mut targets: Vec<NodeId> = m.after.iter().copied().filter(|n| m.joins(*n)).collect();
    targets.extend(
        m.after
            .iter()
            .copied()
            .filter(|n| !m.joins(*n) && *n != view.me),
    );
    let majority = m.after.len() / 2 + 1;
    let last_pass = !planted!(NoLastPass);
    let mut resent = 0;
    if last_pass {
        let mut failures = Vec::new();
        let mut hold = 0;
        for to in targets {
            match push_partition_to(cluster, view, partition, to).await {
                Ok(keys) => {
                    resent += keys;
                    hold += 1;
                    if hold >= majority {
                        break;
                    }
                }
                Err(e) => failures.push(e),
            }
        }
        if hold < majority {
            return Err(ClusterError::Several(failures));
        }
    }
    // The last pass took a while: delete only if the change still asks it (a change that moved
    // on may give the partition back to this node).
    if !still_cleaning(cluster, change, partition) {
        return Err(ClusterError::NotAsked);
    }
    let buckets = buckets_of(view, partition);
    let deleted = cluster
        .replica()
        .on_store(move |store| store.delete_buckets(buckets))
        .await??;
    Ok((deleted, resent))
}

/// Counts a partition of `keys` keys that this node deleted (moved away, or a leftover copy).
pub(in crate::cluster) fn count_deleted(cluster: &Cluster, keys: u64) {
    cluster
        .metrics()
        .partitions_deleted
        .fetch_add(1, Ordering::Relaxed);
    cluster
        .metrics()
        .keys_deleted
        .fetch_add(keys, Ordering::Relaxed);
}

/// Sends `to` whatever this node's copy of `partition` holds differently: a cleanup's last pass
/// (a write forwarded after its stream, a stale router's write), a leftover copy handed back.
/// Only the buckets whose digests differ are compared key by key, so a partition that streamed
/// cleanly costs one small request. Returns the keys sent.
pub(in crate::cluster) async fn push_partition_to(
    cluster: &Arc<Cluster>,
    view: &ClusterView,
    partition: PartitionId,
    to: NodeId,
) -> Result<usize, ClusterError> {
    let peer = Peer::of(cluster.peers(), view, to)?;
    super::super::anti_entropy::push_differences(cluster, &peer, buckets_of(view, partition)).await
}

/// Whether change `change` still asks this node to clean `partition` up.
fn still_cleaning(cluster: &Cluster, change: u64, partition: PartitionId) -> bool {
    wanted(cluster, change, partition, MoveState::Cleaning, |m, me| {
        m.departs(me)
    })
    .is_some()
}
