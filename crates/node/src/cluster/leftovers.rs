//! Leftover copies: partitions this node holds data of although it is none of their replicas
//! and no move involves it (it was down when a move's cleanup ran, its stream was given to
//! another node, or a move was rolled back). Each is handed back, then deleted.
//!
//! Handing back first: the copy may hold writes the replicas missed (a write this node took
//! before it went down, say), so every key whose digest differs is sent to a replica of the
//! partition before anything is deleted; if no replica takes it, the copy stays until the next
//! round.
//!
//! Safety against a move that starts meanwhile (the partition coming back to this node, whose
//! stream must not be deleted): while a partition is handed back, this node refuses copies of
//! it ([`Handoff::is_sweeping`](super::Handoff)), and it checks its newest view again after
//! marking it and after handing it back. A copy accepted before the mark was accepted under a
//! view in which this node takes the partition: the check after the mark sees that view (or a
//! newer one) and leaves the partition alone.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use haze_ring::PartitionId;

use super::ClusterView;
use super::anti_entropy::push_differences;
use super::handoff::{buckets_of, client_of, on_store};
use crate::node::Node;

/// Whether `partition` is a leftover copy for this node in `view` (its data aside): not a
/// replica of it, and no move of it under way.
fn unclaimed(view: &ClusterView, partition: PartitionId) -> bool {
    !view.table.replicas(partition).contains(&view.me)
        && view
            .transition
            .as_ref()
            .is_none_or(|t| t.get(partition).is_none())
}

/// Hands every leftover copy of this node back to a replica of its partition and deletes it.
/// Returns the partitions deleted. Errors are logged: the next round tries again.
pub async fn hand_back_leftovers(node: &Arc<Node>, view: &ClusterView) -> usize {
    let Ok(digests) = node.store().bucket_digests() else {
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
        let _mark = node.handoff().sweep(partition);
        match hand_back(node, partition, buckets).await {
            Ok(Some(keys)) => {
                deleted += 1;
                node.metrics()
                    .partitions_deleted
                    .fetch_add(1, Ordering::Relaxed);
                node.metrics()
                    .keys_deleted
                    .fetch_add(keys, Ordering::Relaxed);
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

/// Sends a replica of `partition` what this node's copy has that it lacks, then deletes the
/// copy. `Ok(None)`: the partition is no longer a leftover (the view changed). The caller has
/// marked the partition (copies of it are refused).
async fn hand_back(
    node: &Arc<Node>,
    partition: PartitionId,
    buckets: std::ops::Range<usize>,
) -> Result<Option<u64>, String> {
    let Some(view) = node.view().filter(|v| unclaimed(v, partition)) else {
        return Ok(None);
    };
    let mut failures = Vec::new();
    let mut handed = false;
    for &to in view.table.replicas(partition) {
        let result = match client_of(node, &view, to) {
            Ok(peer) => push_differences(node, &peer, buckets.clone()).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(_) => {
                handed = true;
                break;
            }
            Err(e) => failures.push(format!("{to}: {e}")),
        }
    }
    if !handed {
        return Err(failures.join("; "));
    }
    if !node.view().is_some_and(|v| unclaimed(&v, partition)) {
        return Ok(None);
    }
    let deleted = on_store(node, move |store| store.delete_buckets(buckets))
        .await?
        .map_err(|e| e.to_string())?;
    Ok(Some(deleted))
}
