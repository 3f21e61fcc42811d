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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use haze_crdt::Value;
use haze_ring::{CleanReport, MoveState, NodeId, PartitionId, StreamReport};
use haze_storage::{Priority, digest_bucket};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::peers::Peer;
use super::{Cluster, ClusterError, ClusterView};

/// Writes waiting to be forwarded; past this a write is not forwarded and the stream makes
/// another pass instead.
const FORWARD_QUEUE: usize = 16 * 1024;
/// Keys read from the store at once.
const PAGE_KEYS: usize = 512;
/// `Backfill` batches of one stream sent and not yet answered.
const STREAM_WINDOW: usize = 4;
/// The most bytes of one `Backfill` batch of a stream: a request's memory on both sides stays
/// small, and its decoding holds a connection's task for well under a millisecond.
const BATCH_BYTES: usize = 256 * 1024;
/// How long a pass waits for its forwarded writes to be answered.
const DRAIN_WAIT: Duration = Duration::from_secs(30);
/// The first and the longest wait before a failed pass or cleanup is tried again.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// A write to forward: key, merged state, its partition, receiving nodes.
type Forward = (Vec<u8>, Value, PartitionId, Vec<NodeId>);

/// This node's part in the change under way.
#[derive(Debug, Default)]
pub(crate) struct Handoff {
    /// Whether any partition streams from this node: only then do writes look for forwards.
    active: AtomicBool,
    forward: Mutex<Option<mpsc::Sender<Forward>>>,
    /// Per partition and receiving node: forwarded writes issued, answered, and failed (or
    /// found no room), ever. A pass is complete once every write issued before its end was
    /// answered, and none of its stream failed during it.
    forwards: Mutex<BTreeMap<(PartitionId, NodeId), ForwardCount>>,
    reports: Mutex<Reports>,
    /// When the next streamed batch may leave (node-wide throttle).
    next_send: Mutex<Option<tokio::time::Instant>>,
    /// Signalled when a stream completes or a partition is deleted: whoever reports to the
    /// controller can do so at once rather than at its next poll.
    progressed: Arc<tokio::sync::Notify>,
    /// Signalled whenever a forwarded write is answered (a pass waits for its last ones).
    answers: tokio::sync::Notify,
    /// The digest buckets of partitions whose leftover copy is being handed back and deleted:
    /// writes to them are refused meanwhile (see the `leftovers` module). `sweeps` counts them,
    /// so that writes look at the list only while one runs.
    sweeping: Mutex<Vec<std::ops::Range<usize>>>,
    sweeps: std::sync::atomic::AtomicUsize,
}

/// Marks a partition's buckets as being swept (see [`Handoff::sweep`]) until dropped.
pub(crate) struct SweepMark<'a> {
    handoff: &'a Handoff,
    buckets: std::ops::Range<usize>,
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
struct ForwardCount {
    issued: u64,
    answered: u64,
    failed: u64,
}

#[derive(Debug, Default)]
struct Reports {
    change: u64,
    streams: BTreeMap<(PartitionId, NodeId), StreamReport>,
    /// The forward failure count of each stream's node when it completed: a failure after it
    /// reopens it.
    done_at: BTreeMap<(PartitionId, NodeId), u64>,
    cleaned: BTreeMap<PartitionId, CleanReport>,
    running: BTreeSet<(PartitionId, NodeId)>,
    cleaning: BTreeSet<PartitionId>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
    fn answered(&self, cluster: &Cluster, partition: PartitionId, to: NodeId, ok: bool) {
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

    fn count(&self, stream: (PartitionId, NodeId)) -> ForwardCount {
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
    async fn drained(&self, stream: (PartitionId, NodeId)) -> Result<(), ClusterError> {
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
    async fn throttle(&self, bytes: usize, rate: u64) {
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
    fn with_change(&self, change: u64, f: impl FnOnce(&mut Reports)) {
        let mut reports = lock(&self.reports);
        if reports.change == change {
            f(&mut reports);
        }
    }

    fn update(&self, change: u64, key: (PartitionId, NodeId), f: impl FnOnce(&mut StreamReport)) {
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

/// Sends forwarded writes through the peers' copy queues and counts their outcomes.
async fn forwarder(
    weak: Weak<Cluster>,
    mut queue: mpsc::Receiver<Forward>,
    stop: CancellationToken,
) {
    // Each copy's tag indexes `streams`: its partition and receiving node.
    let (done, mut outcomes) = mpsc::unbounded_channel::<(usize, bool)>();
    let mut streams: Vec<(PartitionId, NodeId)> = Vec::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            item = queue.recv() => {
                let Some((key, value, partition, targets)) = item else { return };
                let Some(cluster) = weak.upgrade() else { return };
                let view = cluster.view();
                for to in targets {
                    let addr = view.as_ref().and_then(|v| Some((v.cluster, v.addrs.get(&to)?.clone())));
                    let Some((id, addr)) = addr else {
                        cluster.handoff().answered(&cluster, partition, to, false);
                        continue;
                    };
                    cluster.metrics().handoff_forwarded.fetch_add(1, Ordering::Relaxed);
                    let tag = streams.iter().position(|s| *s == (partition, to)).unwrap_or_else(|| {
                        streams.push((partition, to));
                        streams.len() - 1
                    });
                    cluster.peers()
                        .copy(id, &addr, key.clone(), value.clone(), tag, done.clone())
                        .await;
                }
            }
            Some((tag, ok)) = outcomes.recv() => {
                let Some(cluster) = weak.upgrade() else { return };
                if let Some(&(partition, to)) = streams.get(tag) {
                    cluster.handoff().answered(&cluster, partition, to, ok);
                }
            }
        }
    }
}

/// Returns the view if the change `change` still asks `state` of `partition` and `check`
/// holds for its move.
fn wanted(
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

/// Streams `partition` to `to` until a pass completes with every forwarded write delivered,
/// or the change no longer asks it.
async fn stream_task(
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

/// Sends the new replicas what they lack of this node's copy of `partition`, then deletes it.
async fn clean_task(
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
    // The joining replicas first, then the others: one new replica holding this copy is
    // enough (anti-entropy spreads it among them), so one that is down does not hold it up.
    let mut targets: Vec<NodeId> = m.after.iter().copied().filter(|n| m.joins(*n)).collect();
    targets.extend(
        m.after
            .iter()
            .copied()
            .filter(|n| !m.joins(*n) && *n != view.me),
    );
    let last_pass = !planted!(NoLastPass);
    let mut resent = 0;
    if last_pass {
        let mut failures = Vec::new();
        for to in targets {
            match push_partition_to(cluster, view, partition, to).await {
                Ok(keys) => {
                    resent = keys;
                    break;
                }
                Err(e) => failures.push(e),
            }
        }
        if !failures.is_empty() && failures.len() == m.after.len() {
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
pub(super) fn count_deleted(cluster: &Cluster, keys: u64) {
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
pub(super) async fn push_partition_to(
    cluster: &Arc<Cluster>,
    view: &ClusterView,
    partition: PartitionId,
    to: NodeId,
) -> Result<usize, ClusterError> {
    let peer = Peer::of(cluster.peers(), view, to)?;
    super::anti_entropy::push_differences(cluster, &peer, buckets_of(view, partition)).await
}

/// Whether change `change` still asks this node to clean `partition` up.
fn still_cleaning(cluster: &Cluster, change: u64, partition: PartitionId) -> bool {
    wanted(cluster, change, partition, MoveState::Cleaning, |m, me| {
        m.departs(me)
    })
    .is_some()
}

/// The digest buckets of `partition`.
pub(super) fn buckets_of(view: &ClusterView, partition: PartitionId) -> std::ops::Range<usize> {
    let (start, end) = view.table.hash_range(partition);
    digest_bucket(start)..digest_bucket(end) + 1
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
    let refused: Vec<String> = acks.into_iter().filter_map(Result::err).collect();
    match refused.first() {
        None => Ok(()),
        Some(first) => Err(ClusterError::Refused {
            peer: peer.id,
            count: refused.len(),
            first: first.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
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
