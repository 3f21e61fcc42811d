//! The forwarder: every write this node commits to a partition it streams goes to the
//! partition's new replica too, through the peers' copy queues; the answers are counted, so a
//! pass completes only once every write forwarded during it was delivered.

use std::sync::Weak;
use std::sync::atomic::Ordering;

use haze_ring::{NodeId, PartitionId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::super::Cluster;
use super::state::Forward;

/// Sends forwarded writes through the peers' copy queues and counts their outcomes.
pub(super) async fn forwarder(
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
