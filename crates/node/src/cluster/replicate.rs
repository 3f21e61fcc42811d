//! Coordinating writes: apply them here, durably, then copy them to the other replicas.

use std::sync::Arc;

use haze_crdt::Value;
use haze_ring::NodeId;
use haze_storage::Priority;
use tokio::sync::mpsc;

use super::Cluster;
use super::ClusterView;
use crate::error::RequestError;
use crate::replica::WriteRequest;

/// Applies `write` to `key` on this node (a replica of the key), durably, then copies the merged
/// state to the key's other replicas, and returns the state once as many replicas hold it as
/// the node's [`AckPolicy`](super::AckPolicy) requires.
///
/// A copy is the whole merged state, merged by the receiver: copies may arrive twice, late or
/// out of order, and the replicas still converge. Copies that fail are left to anti-entropy.
pub(crate) async fn coordinate(
    cluster: &Arc<Cluster>,
    view: &ClusterView,
    key: Vec<u8>,
    write: WriteRequest,
) -> Result<Value, RequestError> {
    let value = cluster
        .replica()
        .writes()
        .write(key.clone(), write, Priority::Foreground)
        .await?;
    let mut copied = copy_all(cluster, view, vec![(key, value.clone())]).await;
    copied.pop().unwrap_or(Ok(()))?;
    Ok(value)
}

/// Merges several keys of one replica set here (committed together), then copies them to the
/// other replicas; one outcome per item, in order.
pub(crate) async fn coordinate_batch(
    cluster: &Arc<Cluster>,
    view: &ClusterView,
    items: Vec<(Vec<u8>, Value)>,
) -> Vec<Result<Value, RequestError>> {
    let keys: Vec<Vec<u8>> = items.iter().map(|(k, _)| k.clone()).collect();
    let mut results = cluster
        .replica()
        .writes()
        .merge_batch(items, Priority::Foreground)
        .await;
    let merged: Vec<(usize, (Vec<u8>, Value))> = results
        .iter()
        .zip(keys)
        .enumerate()
        .filter_map(|(i, (r, key))| Some((i, (key, r.as_ref().ok()?.clone()))))
        .collect();
    let (indices, copies): (Vec<usize>, Vec<_>) = merged.into_iter().unzip();
    for (i, copied) in indices
        .into_iter()
        .zip(copy_all(cluster, view, copies).await)
    {
        if let Err(e) = copied {
            results[i] = Err(e);
        }
    }
    results
}

/// The acknowledgements one item waits for: per replica set (the key's replicas, and while its
/// partition moves, its new replicas too), how many it needs and how many it has.
struct Waiting {
    sets: Vec<(Vec<NodeId>, usize, usize)>,
    /// Copies not answered yet.
    pending: usize,
}

impl Waiting {
    fn satisfied(&self) -> bool {
        self.sets.iter().all(|(_, needed, acks)| acks >= needed)
    }

    fn open(&self) -> bool {
        !self.satisfied() && self.pending > 0
    }
}

/// Sends each merged state to every replica of its key but this node (and, while the key's
/// partition moves, to its new replicas as well), and waits until each item has the
/// acknowledgements the policy requires in every one of those replica sets, or every copy has
/// answered (copies still in flight go on in the background). One outcome per item.
async fn copy_all(
    cluster: &Arc<Cluster>,
    view: &ClusterView,
    items: Vec<(Vec<u8>, Value)>,
) -> Vec<Result<(), RequestError>> {
    let policy = cluster.settings().ack;
    let mut waiting = Vec::with_capacity(items.len());
    // Each copy's tag indexes `sent`: its item and its receiving node.
    let mut sent: Vec<(usize, NodeId)> = Vec::new();
    let (done, mut outcomes) = mpsc::unbounded_channel::<(usize, bool)>();
    for (i, (key, value)) in items.into_iter().enumerate() {
        let moving = view
            .moving(&key)
            .filter(|_| !planted!(NoCopiesToNewReplicas));
        let sets = match moving {
            None => vec![view.replicas(&key).to_vec()],
            // While the partition moves, a write needs a quorum of the old replicas and one of
            // the new ones: whichever set a router reads a quorum of (see `route::read`) holds
            // it.
            Some(m) => vec![m.before.clone(), m.after.clone()],
        };
        let mut targets: Vec<NodeId> = sets.iter().flatten().copied().collect();
        targets.sort_unstable();
        targets.dedup();
        targets.retain(|r| *r != view.me);
        let sets = sets
            .into_iter()
            .map(|set| {
                // This node's own durable write counts as one.
                let mine = usize::from(set.contains(&view.me));
                let needed = policy.required(set.len());
                (set, needed, mine)
            })
            .collect();
        waiting.push(Waiting {
            sets,
            pending: targets.len(),
        });
        for replica in targets {
            let tag = sent.len();
            sent.push((i, replica));
            if planted!(DropCopies) {
                let _ = done.send((tag, true));
                continue;
            }
            let Some(addr) = view.addrs.get(&replica) else {
                let _ = done.send((tag, false));
                continue;
            };
            // A replica whose queue is full (a new replica busy taking a stream, say) must not
            // hold up the copies to the others: its copy waits for room in a task of its own,
            // and the write is answered as soon as the acknowledgements suffice.
            let full = cluster.peers().try_copy(
                view.cluster,
                addr,
                key.clone(),
                value.clone(),
                tag,
                &done,
            );
            if let Some((key, value)) = full {
                let Some(permit) = cluster.peers().spill() else {
                    // Too many waiting already: wait here (backpressure).
                    cluster
                        .peers()
                        .copy(view.cluster, addr, key, value, tag, done.clone())
                        .await;
                    continue;
                };
                let (cluster, addr, id, done) =
                    (cluster.clone(), addr.clone(), view.cluster, done.clone());
                tokio::spawn(async move {
                    cluster.peers().copy(id, &addr, key, value, tag, done).await;
                    drop(permit);
                });
            }
        }
    }
    drop(done);
    let mut open = waiting.iter().filter(|w| w.open()).count();
    while open > 0 {
        let Some((tag, ok)) = outcomes.recv().await else {
            break;
        };
        let Some(&(i, replica)) = sent.get(tag) else {
            continue;
        };
        let w = &mut waiting[i];
        let was = w.open();
        w.pending = w.pending.saturating_sub(1);
        if ok {
            for (set, _, acks) in &mut w.sets {
                *acks += usize::from(set.contains(&replica));
            }
        }
        if was && !w.open() {
            open -= 1;
        }
    }
    waiting
        .into_iter()
        .map(|w| {
            if w.satisfied() {
                return Ok(());
            }
            let (set, needed, acks) = w
                .sets
                .iter()
                .find(|(_, needed, acks)| acks < needed)
                .expect("unsatisfied");
            Err(RequestError::Unavailable(format!(
                "the write is durable on {acks} of the {} replicas {}, and the `{policy}` \
                 policy needs {needed} (it stays where it was applied; anti-entropy spreads it)",
                set.len(),
                set.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            )))
        })
        .collect()
}
