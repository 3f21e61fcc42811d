//! Anti-entropy: replicas compare their bucket digests and exchange the keys that differ.
//!
//! Every node, every interval, for every other node it shares partitions with: fetch that
//! node's digest of each bucket (one request, 32 KiB), and for each bucket of a shared partition
//! whose digests differ, list both sides' keys and digests, then send what the other side lacks
//! or holds differently (`Copy`) and take what this side lacks or holds differently (`Get`,
//! then a local merge). After an exchange both hold the merge of both copies. Bucket digests are
//! kept up to date by every write (the store XORs each key's digest in and out), so an idle
//! round costs one small request per peer and no scan.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use haze_crdt::Value;
use haze_ring::{NodeId, PartitionId};
use haze_storage::{DIGEST_BUCKETS, Priority};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Cluster;
use super::peers::Peer;
use super::{ClusterError, ClusterView};

/// Keys listed per page, and states sent or fetched per request.
const PAGE: usize = 512;
/// The most bytes of states sent in one copy: well under a frame (4 MiB), whatever the values.
const COPY_BYTES: usize = 1024 * 1024;

/// How often a node that refills an empty store tries a round, at most.
const REFILL_RETRY: std::time::Duration = std::time::Duration::from_millis(200);

/// What one anti-entropy round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Nodes compared with.
    pub peers: usize,
    /// Nodes that did not answer (compared next round).
    pub unreachable: usize,
    /// Buckets whose digests differed.
    pub buckets_differing: usize,
    /// Keys sent to other replicas.
    pub pushed: usize,
    /// Keys taken from other replicas.
    pub pulled: usize,
    /// Keys that could not be merged on one side (a type conflict, a value over the limit):
    /// skipped, and tried again next round.
    pub refused: usize,
}

/// Runs anti-entropy rounds every `anti_entropy_interval`, while the node has a cluster view,
/// until `stop`; after each, hands back leftover copies
/// ([`hand_back_leftovers`](super::hand_back_leftovers)).
pub(super) async fn run(cluster: Arc<Cluster>, stop: CancellationToken) {
    let interval = cluster.settings().anti_entropy_interval;
    loop {
        // A node refilling an empty store does not wait a whole interval for its first rounds:
        // until one reaches every peer, it is not asked for reads.
        let wait = if cluster.serves_reads() {
            interval
        } else {
            interval.min(REFILL_RETRY)
        };
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        if let Some(view) = cluster.view() {
            let report = sync_round(&cluster, &view).await;
            if report.unreachable == 0 {
                cluster.refilled();
            }
            if report.refused > 0 {
                tracing::warn!(
                    ?report,
                    "anti-entropy could not merge some keys (type conflicts or values over the limit)"
                );
            } else if report.pushed + report.pulled > 0 {
                tracing::info!(?report, "anti-entropy repaired replicas");
            }
            super::hand_back_leftovers(&cluster, &view).await;
        }
    }
}

/// Compares this node with every node it shares partitions with, once, and exchanges the keys
/// that differ.
pub async fn sync_round(cluster: &Arc<Cluster>, view: &ClusterView) -> RoundReport {
    let table = &view.table;
    let per_partition = DIGEST_BUCKETS / table.partitions() as usize;
    let mut shared: BTreeMap<NodeId, Vec<u32>> = BTreeMap::new();
    for p in 0..table.partitions() {
        // Once a partition has streamed (until the old epoch is out of use), its old and new
        // replicas compare too: a new replica also gets what its stream's source had missed.
        // Not before: a new replica still streaming differs everywhere, and the stream, which
        // is throttled, is what fills it.
        let mut replicas = table.replicas(PartitionId(p)).to_vec();
        let moving = view
            .transition
            .as_ref()
            .and_then(|t| t.moving(PartitionId(p)))
            .filter(|m| m.state >= haze_ring::MoveState::Proxying);
        if let Some(m) = moving {
            replicas.extend(m.before.iter().chain(&m.after));
            replicas.sort_unstable();
            replicas.dedup();
        }
        if replicas.contains(&view.me) {
            for other in replicas.iter().filter(|r| **r != view.me) {
                shared.entry(*other).or_default().push(p);
            }
        }
    }
    let mut report = RoundReport::default();
    for (peer, partitions) in shared {
        report.peers += 1;
        let Ok(client) = Peer::of(cluster.peers(), view, peer) else {
            report.unreachable += 1;
            continue;
        };
        let (theirs, mine) = match (
            client.buckets().await,
            cluster.replica().store().bucket_digests(),
        ) {
            (Ok(theirs), Ok(mine)) if theirs.len() == DIGEST_BUCKETS => (theirs, mine),
            _ => {
                report.unreachable += 1;
                continue;
            }
        };
        let differing = partitions.iter().flat_map(|&p| {
            let first = p as usize * per_partition;
            first..first + per_partition
        });
        for bucket in differing.filter(|&b| mine[b] != theirs[b]) {
            report.buckets_differing += 1;
            match exchange(cluster, &client, bucket).await {
                Ok(done) => {
                    report.pushed += done.pushed;
                    report.pulled += done.pulled;
                    report.refused += done.refused;
                }
                Err(e) => {
                    tracing::debug!(%peer, bucket, error = %e, "anti-entropy stopped for this peer");
                    report.unreachable += 1;
                    break;
                }
            }
        }
    }
    let metrics = cluster.metrics();
    metrics.anti_entropy_rounds.fetch_add(1, Ordering::Relaxed);
    metrics
        .anti_entropy_pushed
        .fetch_add(report.pushed as u64, Ordering::Relaxed);
    metrics
        .anti_entropy_pulled
        .fetch_add(report.pulled as u64, Ordering::Relaxed);
    report
}

/// What one bucket's exchange did.
#[derive(Default)]
struct Exchanged {
    pushed: usize,
    pulled: usize,
    refused: usize,
}

/// Makes one bucket equal on this node and the peer. A key one side refuses to merge is
/// counted and skipped; an error talking to the peer ends the exchange.
async fn exchange(
    cluster: &Arc<Cluster>,
    peer: &Peer,
    bucket: usize,
) -> Result<Exchanged, ClusterError> {
    let mine = local_keys(cluster, bucket)?;
    let theirs = remote_keys(peer, bucket).await?;
    let to_push = differing(&mine, &theirs);
    let pull: Vec<Vec<u8>> = differing(&theirs, &mine).into_iter().cloned().collect();
    // Foreground, both ways: a round may have begun before a move, and a write it makes to a
    // departing replica (either side) that waited in a background queue could land after the
    // cleanup deleted the partition, leaving a leftover copy (the sweep hands it back later).
    // The foreground queue keeps that window about one commit long.
    let mut done = push(cluster, peer, &to_push, Priority::Foreground).await?;
    for chunk in pull.chunks(PAGE) {
        let mut items = fetch(peer, chunk).await?;
        // The round may have begun before a move: merge only keys this node still takes, by
        // its newest view (checked right before the merges are queued, as a peer's copy is), so
        // a partition its cleanup deleted meanwhile does not come back.
        let view = cluster.view();
        let before = items.len();
        items.retain(|(key, _)| view.as_ref().is_none_or(|v| v.takes_copy(key)));
        done.refused += before - items.len();
        let merged = cluster
            .replica()
            .writes()
            .merge_batch(items, Priority::Foreground)
            .await;
        for result in merged {
            match result {
                Ok(_) => done.pulled += 1,
                Err(_) => done.refused += 1,
            }
        }
    }
    Ok(done)
}

/// The keys of `ours` that `other` lacks or holds with another digest.
fn differing<'a>(
    ours: &'a BTreeMap<Vec<u8>, u64>,
    other: &BTreeMap<Vec<u8>, u64>,
) -> Vec<&'a Vec<u8>> {
    ours.iter()
        .filter(|(k, d)| other.get(*k) != Some(*d))
        .map(|(k, _)| k)
        .collect()
}

/// Sends the peer this node's state of `keys`, in batches: `Copy`, or `Backfill` for
/// background work.
async fn push(
    cluster: &Arc<Cluster>,
    peer: &Peer,
    keys: &[&Vec<u8>],
    priority: Priority,
) -> Result<Exchanged, ClusterError> {
    let mut done = Exchanged::default();
    let mut batch: Vec<(Vec<u8>, Value)> = Vec::new();
    let mut bytes = 0;
    for (i, key) in keys.iter().enumerate() {
        // The store itself: a key stored under an earlier, larger key limit is sent all the same.
        if let Some(value) = cluster.replica().store().get(key)? {
            bytes += key.len() + value.encode().len();
            batch.push(((*key).clone(), value));
        }
        let last = i + 1 == keys.len();
        if !batch.is_empty() && (last || batch.len() >= PAGE || bytes >= COPY_BYTES) {
            let items = std::mem::take(&mut batch);
            for result in peer.merge_copies(items, priority).await? {
                match result {
                    Ok(()) => done.pushed += 1,
                    Err(_) => done.refused += 1,
                }
            }
            bytes = 0;
        }
    }
    Ok(done)
}

/// Sends `peer` this node's state of every key of `buckets` that the peer lacks or holds
/// differently (`Backfill`: background work on the peer), and returns how many keys went.
/// Buckets whose digests are equal cost nothing: once a partition has streamed and its writes
/// were forwarded, few keys differ. A key the peer refuses is an error (the caller must not
/// count it as delivered).
pub(crate) async fn push_differences(
    cluster: &Arc<Cluster>,
    peer: &Peer,
    buckets: std::ops::Range<usize>,
) -> Result<usize, ClusterError> {
    let theirs = peer.buckets().await?;
    let mine = cluster.replica().store().bucket_digests()?;
    if theirs.len() != DIGEST_BUCKETS || mine.len() != DIGEST_BUCKETS {
        return Err(ClusterError::BucketCount {
            expected: DIGEST_BUCKETS,
            got: theirs.len(),
        });
    }
    let mut pushed = 0;
    for bucket in buckets.filter(|&b| mine[b] != theirs[b]) {
        let mine = local_keys(cluster, bucket)?;
        let theirs = remote_keys(peer, bucket).await?;
        let done = push(
            cluster,
            peer,
            &differing(&mine, &theirs),
            Priority::Background,
        )
        .await?;
        if done.refused > 0 {
            return Err(ClusterError::Refused {
                peer: peer.id,
                count: done.refused,
                first: format!("a key of bucket {bucket}"),
            });
        }
        pushed += done.pushed;
    }
    Ok(pushed)
}

/// Reads keys from the peer, all at once (its connection is pipelined).
async fn fetch(peer: &Peer, keys: &[Vec<u8>]) -> Result<Vec<(Vec<u8>, Value)>, ClusterError> {
    let mut tasks = JoinSet::new();
    for key in keys {
        let (peer, key) = (peer.clone(), key.clone());
        tasks.spawn(async move {
            let value = peer.get(&key).await;
            (key, value)
        });
    }
    let mut items = Vec::with_capacity(keys.len());
    while let Some(joined) = tasks.join_next().await {
        let (key, value) = joined?;
        match value {
            Ok(Some(value)) => items.push((key, value)),
            Ok(None) => {}
            // A peer that refills an empty store answers no reads; its own round pushes what
            // it holds (two nodes refilling at once must not wait for each other).
            Err(ClusterError::Answered { error, .. })
                if error.message.contains(super::REFILLING) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(items)
}

fn local_keys(cluster: &Cluster, bucket: usize) -> Result<BTreeMap<Vec<u8>, u64>, ClusterError> {
    let mut keys = BTreeMap::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let (page, more) = cluster
            .replica()
            .store()
            .bucket_keys(bucket, after.as_deref(), PAGE)?;
        after = page.last().map(|(k, _)| k.clone());
        keys.extend(page);
        if !more || after.is_none() {
            return Ok(keys);
        }
    }
}

async fn remote_keys(peer: &Peer, bucket: usize) -> Result<BTreeMap<Vec<u8>, u64>, ClusterError> {
    // A bucket index is below `DIGEST_BUCKETS` (4096).
    let bucket = u32::try_from(bucket).expect("bucket indices fit in u32");
    let mut keys = BTreeMap::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let (page, more) = peer.bucket_keys(bucket, after.clone()).await?;
        after = page.last().map(|(k, _)| k.clone());
        keys.extend(page);
        if !more || after.is_none() {
            return Ok(keys);
        }
    }
}
