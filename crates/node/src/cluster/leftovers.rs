//! Leftover copies: partitions this node holds data of although it is none of their replicas
//! and no move involves it (it was down when a move's cleanup ran, its stream was given to
//! another node, or a move was rolled back). Each is handed back, then deleted.
//!
//! Handing back first: the copy may hold writes the replicas missed (a write this node took
//! before it went down, say), so every key whose digest differs is sent to every replica of the
//! partition, and a majority must take it, before anything is deleted; otherwise the copy stays
//! until the next round.
//!
//! Safety against a move that starts meanwhile (the partition coming back to this node, whose
//! stream and writes must not be deleted): while a partition is handed back, this node refuses
//! every write of its keys (`Handoff::sweep`, checked where every write is submitted), and it
//! checks its newest view again after marking it and after handing it back. A write accepted
//! before the mark was accepted under a view in which this node holds the partition: the check
//! after the mark sees that view (or a newer one) and leaves the partition alone. (If a newer
//! view gave the partition up again, such a write also reached a majority of the replicas that
//! hold it.) Writes are refused only if such a move brings the partition back to this node
//! while it is being handed back; the router then sends them to another replica.

use std::sync::Arc;

use haze_ring::PartitionId;

use super::Cluster;
use super::handoff::{buckets_of, count_deleted, push_partition_to};
use super::{ClusterError, ClusterView};

/// Whether `partition` is a leftover copy for this node in `view` (its data aside): not a
/// replica of it, and no move of it under way.
fn unclaimed(view: &ClusterView, partition: PartitionId) -> bool {
    !view.table.replicas(partition).contains(&view.me)
        && view
            .transition
            .as_ref()
            .is_none_or(|t| t.get(partition).is_none())
}

/// Hands every leftover copy of this node back to a majority of its partition's replicas and
/// deletes it. Returns the partitions deleted. Errors are logged: the next round tries again.
pub async fn hand_back_leftovers(cluster: &Arc<Cluster>, view: &ClusterView) -> usize {
    let Ok(digests) = cluster.replica().store().bucket_digests() else {
        return 0;
    };
    let mut deleted = 0;
    for p in 0..view.table.partitions() {
        let partition = PartitionId(p);
        let buckets = buckets_of(view, partition);
        let held = digests
            .get(buckets.clone())
            .is_some_and(|d| d.iter().any(|d| *d != 0));
        if !held || !unclaimed(view, partition) {
            continue;
        }
        let _mark = cluster.handoff().sweep(buckets);
        match hand_back(cluster, partition).await {
            Ok(Some(keys)) => {
                deleted += 1;
                count_deleted(cluster, keys);
                tracing::info!(%partition, keys, "a leftover copy was handed back and deleted");
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(%partition, error = %e, "a leftover copy could not be handed back; trying again later")
            }
        }
    }
    deleted
}

/// Sends every replica of `partition` what this node's copy holds differently and, once a
/// majority took it, deletes the copy. `Ok(None)`: the partition is no longer a leftover (the
/// view changed). The caller has marked the partition (writes of it are refused).
async fn hand_back(
    cluster: &Arc<Cluster>,
    partition: PartitionId,
) -> Result<Option<u64>, ClusterError> {
    let Some(view) = cluster.view().filter(|v| unclaimed(v, partition)) else {
        return Ok(None);
    };
    // Every replica is offered the copy, and a majority must take it: one alone might be a
    // replica that is itself leaving, or whose acknowledgement is not yet synced.
    let replicas = view.table.replicas(partition);
    let mut failures = Vec::new();
    for &to in replicas {
        if let Err(e) = push_partition_to(cluster, &view, partition, to).await {
            failures.push(e);
        }
    }
    if replicas.len() - failures.len() < replicas.len() / 2 + 1 {
        return Err(ClusterError::Several(failures));
    }
    if !cluster.view().is_some_and(|v| unclaimed(&v, partition)) {
        return Ok(None);
    }
    let buckets = buckets_of(&view, partition);
    let deleted = cluster
        .replica()
        .on_store(move |store| store.delete_buckets(buckets))
        .await??;
    Ok(Some(deleted))
}
