//! Repartitioning on one node (docs/repartitioning.md): what the change under way asks of it.
//!
//! * A partition **streaming** from this node to a new replica: every write this node applies
//!   to it is forwarded to the new replica (from the moment the node learns it streams, before
//!   the first key is read), and a task sends every key of the partition in `Backfill` batches,
//!   throttled node-wide. A pass counts as complete only if every write forwarded meanwhile
//!   was delivered; otherwise it starts over (merging twice is merging once).
//! * A partition **cleaning** that this node leaves: once the node routes with a table that no
//!   longer lists it, it sends its copy to the new replicas one last time (anything that
//!   reached it late), then deletes it.
//!
//! Progress goes to the controller with the node's next poll ([`Handoff::reports`]).
//!
//! * `state` — [`Handoff`]: what this node streams, forwards, cleans, and reports.
//! * `forward` — the forwarder: writes committed to a streaming partition, to its new replica.
//! * `stream` — a stream's passes over a partition, in throttled `Backfill` batches.
//! * `cleanup` — a departing replica's last pass, then the delete.

mod cleanup;
mod forward;
mod state;
mod stream;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use haze_ring::{MoveState, NodeId, PartitionId};
use tokio::sync::mpsc;

use super::{Cluster, ClusterView};
use cleanup::clean_task;
pub(super) use cleanup::{count_deleted, push_partition_to};
use forward::forwarder;
pub(crate) use state::Handoff;
use state::{Reports, lock};
use stream::stream_task;

/// The first and the longest wait before a failed pass or cleanup is tried again.
pub(super) const RETRY_FIRST: Duration = Duration::from_millis(200);
pub(super) const RETRY_MAX: Duration = Duration::from_secs(5);

/// Writes waiting to be forwarded; past this a write is not forwarded and the stream makes
/// another pass instead.
const FORWARD_QUEUE: usize = 16 * 1024;

/// Starts what the view's change asks of this node and is not running yet.
pub(crate) fn on_view(cluster: &Arc<Cluster>, view: &ClusterView) {
    let handoff = cluster.handoff();
    let Some(t) = &view.transition else {
        handoff.active.store(false, Ordering::Relaxed);
        return;
    };
    if tokio::runtime::Handle::try_current().is_err() {
        tracing::warn!("a cluster view was installed outside a runtime: no streams start");
        return;
    }
    let tasks = cluster.tasks();
    let me = view.me;
    // Forwarding starts before any stream reads its first page.
    let active = t.moves.iter().any(|m| {
        m.state >= MoveState::Streaming
            && m.state < MoveState::Done
            && m.streams.iter().any(|s| s.source == me)
    });
    if active {
        let mut forward = lock(&handoff.forward);
        if forward.is_none() {
            let (tx, rx) = mpsc::channel(FORWARD_QUEUE);
            *forward = Some(tx);
            let weak = Arc::downgrade(cluster);
            tasks.spawn("handoff forwarder", move |stop| forwarder(weak, rx, stop));
        }
    }
    handoff.active.store(active, Ordering::SeqCst);
    let mut reports = lock(&handoff.reports);
    if reports.change != t.change {
        *reports = Reports {
            change: t.change,
            ..Reports::default()
        };
    }
    for m in &t.moves {
        let mine = m.streams.iter().filter(|s| s.source == me);
        if m.state == MoveState::Streaming {
            for s in mine {
                let key = (m.partition, s.to);
                let failures = handoff.count(key).failed;
                let reopened = reports.done_at.get(&key).is_some_and(|at| failures > *at);
                if reopened && let Some(r) = reports.streams.get_mut(&key) {
                    r.done = false;
                    reports.done_at.remove(&key);
                }
                let done = reports.streams.get(&key).is_some_and(|r| r.done);
                if !done && reports.running.insert(key) {
                    let (weak, change, partition, to) =
                        (Arc::downgrade(cluster), t.change, m.partition, s.to);
                    tasks.spawn(format!("stream {partition} to {to}"), move |stop| {
                        stream_task(weak, change, partition, to, stop)
                    });
                }
            }
        }
        if m.state == MoveState::Cleaning
            && m.departs(me)
            && !reports.cleaned.contains_key(&m.partition)
            && reports.cleaning.insert(m.partition)
        {
            let (weak, change, partition) = (Arc::downgrade(cluster), t.change, m.partition);
            tasks.spawn(format!("cleanup of {partition}"), move |stop| {
                clean_task(weak, change, partition, stop)
            });
        }
    }
}

/// Returns the view if the change `change` still asks `state` of `partition` and `check`
/// holds for its move.
pub(super) fn wanted(
    cluster: &Cluster,
    change: u64,
    partition: PartitionId,
    state: MoveState,
    check: impl Fn(&haze_ring::PartitionMove, NodeId) -> bool,
) -> Option<Arc<ClusterView>> {
    let view = cluster.view()?;
    let t = view.transition.as_ref()?;
    let m = t.get(partition)?;
    (t.change == change && m.state == state && check(m, view.me)).then_some(view)
}

/// The digest buckets of `partition`.
pub(in crate::cluster) fn buckets_of(
    view: &ClusterView,
    partition: PartitionId,
) -> std::ops::Range<usize> {
    let (start, end) = view.table.hash_range(partition);
    haze_storage::digest_bucket(start)..haze_storage::digest_bucket(end) + 1
}
