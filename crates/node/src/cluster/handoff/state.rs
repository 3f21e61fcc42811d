//! This node's part in the change under way: the forwards it issued and their answers, its
//! streams' progress and the partitions it deleted (what it reports to the controller), the
//! node-wide throttle of its streams, and the partitions it is handing back.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use haze_crdt::Value;
use haze_ring::{CleanReport, NodeId, PartitionId, StreamReport};
use haze_storage::digest_bucket;
use tokio::sync::mpsc;

use super::super::{Cluster, ClusterError};

/// How long a pass waits for its forwarded writes to be answered.
const DRAIN_WAIT: Duration = Duration::from_secs(30);

/// A write to forward: key, merged state, its partition, receiving nodes.
pub(super) type Forward = (Vec<u8>, Value, PartitionId, Vec<NodeId>);

/// This node's part in the change under way.
#[derive(Debug, Default)]
pub(crate) struct Handoff {
    /// Whether any partition streams from this node: only then do writes look for forwards.
    pub(super) active: AtomicBool,
    pub(super) forward: Mutex<Option<mpsc::Sender<Forward>>>,
    /// Per partition and receiving node: forwarded writes issued, answered, and failed (or
    /// found no room), ever. A pass is complete once every write issued before its end was
    /// answered, and none of its stream failed during it.
    pub(super) forwards: Mutex<BTreeMap<(PartitionId, NodeId), ForwardCount>>,
    pub(super) reports: Mutex<Reports>,
    /// When the next streamed batch may leave (node-wide throttle).
    pub(super) next_send: Mutex<Option<tokio::time::Instant>>,
    /// Signalled when a stream completes or a partition is deleted: whoever reports to the
    /// controller can do so at once rather than at its next poll.
    pub(super) progressed: Arc<tokio::sync::Notify>,
    /// Signalled whenever a forwarded write is answered (a pass waits for its last ones).
    pub(super) answers: tokio::sync::Notify,
    /// The digest buckets of partitions whose leftover copy is being handed back and deleted:
    /// writes to them are refused meanwhile (see the `leftovers` module). `sweeps` counts them,
    /// so that writes look at the list only while one runs.
    pub(super) sweeping: Mutex<Vec<std::ops::Range<usize>>>,
    pub(super) sweeps: std::sync::atomic::AtomicUsize,
}

/// Marks a partition's buckets as being swept (see [`Handoff::sweep`]) until dropped.
pub(crate) struct SweepMark<'a> {
    pub(super) handoff: &'a Handoff,
    pub(super) buckets: std::ops::Range<usize>,
}

impl Drop for SweepMark<'_> {
    fn drop(&mut self) {
        let mut sweeping = lock(&self.handoff.sweeping);
        if let Some(i) = sweeping.iter().position(|b| *b == self.buckets) {
            sweeping.swap_remove(i);
            self.handoff.sweeps.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct ForwardCount {
    pub(super) issued: u64,
    pub(super) answered: u64,
    pub(super) failed: u64,
}

#[derive(Debug, Default)]
pub(super) struct Reports {
    pub(super) change: u64,
    pub(super) streams: BTreeMap<(PartitionId, NodeId), StreamReport>,
    /// The forward failure count of each stream's node when it completed: a failure after it
    /// reopens it.
    pub(super) done_at: BTreeMap<(PartitionId, NodeId), u64>,
    pub(super) cleaned: BTreeMap<PartitionId, CleanReport>,
    pub(super) running: BTreeSet<(PartitionId, NodeId)>,
    pub(super) cleaning: BTreeSet<PartitionId>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Handoff {
    /// Marks the digest buckets of a partition as being swept: writes to their keys are
    /// refused until the mark is dropped.
    pub(crate) fn sweep(&self, buckets: std::ops::Range<usize>) -> SweepMark<'_> {
        lock(&self.sweeping).push(buckets.clone());
        self.sweeps.fetch_add(1, Ordering::SeqCst);
        SweepMark {
            handoff: self,
            buckets,
        }
    }

    /// Whether `key`'s partition is being swept: a write of it must be refused.
    pub(crate) fn sweeps(&self, key: &[u8]) -> bool {
        if self.sweeps.load(Ordering::SeqCst) == 0 {
            return false;
        }
        let bucket = digest_bucket(haze_storage::ring_hash(key));
        lock(&self.sweeping).iter().any(|b| b.contains(&bucket))
    }

    /// Returns what is signalled when there is news for the controller.
    pub(crate) fn progressed(&self) -> Arc<tokio::sync::Notify> {
        self.progressed.clone()
    }

    /// Returns whether writes must be offered to [`note_write`](Self::note_write).
    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Forwards a write this node committed, if its partition streams from this node. Called
    /// after every commit: whether the partition streams is decided now, so a write committed
    /// after a stream started is forwarded, and one committed before is in the store the stream
    /// reads.
    pub(crate) fn note_write(&self, cluster: &Cluster, key: &[u8], value: &Value) {
        if !self.is_active() {
            return;
        }
        if planted!(NoForwarding) {
            return;
        }
        let Some(view) = cluster.view() else { return };
        let Some(t) = &view.transition else { return };
        let partition = view.table.partition_of_key(key);
        let targets = t.forwards(partition, view.me);
        if targets.is_empty() {
            return;
        }
        let mut forwards = lock(&self.forwards);
        let queued = lock(&self.forward).as_ref().is_some_and(|tx| {
            tx.try_send((key.to_vec(), value.clone(), partition, targets.clone()))
                .is_ok()
        });
        for to in targets {
            let count = forwards.entry((partition, to)).or_default();
            count.issued += 1;
            if !queued {
                count.answered += 1;
                count.failed += 1;
                cluster
                    .metrics()
                    .handoff_forward_failures
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Records the answer to a write of `partition` forwarded to `to`.
    pub(super) fn answered(&self, cluster: &Cluster, partition: PartitionId, to: NodeId, ok: bool) {
        let mut forwards = lock(&self.forwards);
        let count = forwards.entry((partition, to)).or_default();
        count.answered += 1;
        if !ok {
            count.failed += 1;
            cluster
                .metrics()
                .handoff_forward_failures
                .fetch_add(1, Ordering::Relaxed);
        }
        drop(forwards);
        self.answers.notify_waiters();
    }

    pub(super) fn count(&self, stream: (PartitionId, NodeId)) -> ForwardCount {
        lock(&self.forwards)
            .get(&stream)
            .copied()
            .unwrap_or_default()
    }

    /// Returns what to tell the controller: the streams' progress and the partitions deleted,
    /// for the change under way. A stream a forwarded write failed since it completed is
    /// reported incomplete (it makes another pass with the next view).
    pub(crate) fn reports(&self) -> (Vec<StreamReport>, Vec<CleanReport>) {
        let reports = lock(&self.reports);
        let streams = reports
            .streams
            .iter()
            .map(|(key, r)| {
                let mut r = r.clone();
                let failed = self.count(*key).failed;
                r.done &= reports.done_at.get(key).is_some_and(|at| *at == failed);
                r
            })
            .collect();
        (streams, reports.cleaned.values().cloned().collect())
    }

    /// Waits until every write of the stream forwarded so far was answered (woken by each
    /// answer, not polling).
    pub(super) async fn drained(&self, stream: (PartitionId, NodeId)) -> Result<(), ClusterError> {
        let issued = self.count(stream).issued;
        let deadline = tokio::time::Instant::now() + DRAIN_WAIT;
        loop {
            // Registered before the check, so an answer between the two is not missed.
            let answered = self.answers.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            if self.count(stream).answered >= issued {
                return Ok(());
            }
            tokio::select! {
                () = answered => {}
                () = tokio::time::sleep_until(deadline) => {
                    return Err(ClusterError::ForwardsUnanswered(stream.1));
                }
            }
        }
    }

    /// Waits for the node-wide throttle to let `bytes` go at `rate` bytes per second.
    pub(super) async fn throttle(&self, bytes: usize, rate: u64) {
        if rate == 0 {
            return;
        }
        let at = {
            let mut next = lock(&self.next_send);
            let now = tokio::time::Instant::now();
            let start = next.map_or(now, |n| n.max(now));
            *next = Some(start + Duration::from_secs_f64(bytes as f64 / rate as f64));
            start
        };
        tokio::time::sleep_until(at).await;
    }

    /// Runs `f` on the bookkeeping if it is still that of change `change` (a task of an earlier
    /// change leaves the next one's alone).
    pub(super) fn with_change(&self, change: u64, f: impl FnOnce(&mut Reports)) {
        let mut reports = lock(&self.reports);
        if reports.change == change {
            f(&mut reports);
        }
    }

    pub(super) fn update(
        &self,
        change: u64,
        key: (PartitionId, NodeId),
        f: impl FnOnce(&mut StreamReport),
    ) {
        let mut reports = lock(&self.reports);
        if reports.change != change {
            return;
        }
        let entry = reports.streams.entry(key).or_insert_with(|| StreamReport {
            change,
            partition: key.0,
            to: key.1,
            keys: 0,
            bytes: 0,
            done: false,
            passes: 0,
            error: None,
        });
        f(entry);
    }
}

#[cfg(test)]
mod tests {
    use haze_storage::digest_bucket;

    use super::*;

    #[test]
    fn a_sweep_mark_refuses_the_writes_of_its_buckets_until_dropped() {
        let handoff = Handoff::default();
        let key = b"doc-1".as_slice();
        let bucket = digest_bucket(haze_storage::ring_hash(key));
        let other = (0..)
            .map(|i| format!("doc-{i}").into_bytes())
            .find(|k| digest_bucket(haze_storage::ring_hash(k)) != bucket)
            .unwrap();
        assert!(!handoff.sweeps(key));
        {
            let _mark = handoff.sweep(bucket..bucket + 1);
            let _second = handoff.sweep(bucket..bucket + 1);
            assert!(handoff.sweeps(key));
            assert!(!handoff.sweeps(&other));
        }
        assert!(!handoff.sweeps(key), "both marks dropped");
        assert_eq!(handoff.sweeps.load(Ordering::SeqCst), 0);
    }
}
