//! Coordinating writes: apply them here, durably, then copy them to the other replicas.

use std::sync::Arc;

use haze_crdt::Value;
use tokio::sync::mpsc;

use super::ClusterView;
use crate::error::RequestError;
use crate::node::{Node, WriteRequest};

/// Applies `write` to `key` on this node (a replica of the key), durably, then copies the merged
/// state to the key's other replicas, and returns the state once as many replicas hold it as
/// the node's [`AckPolicy`](super::AckPolicy) requires.
///
/// A copy is the whole merged state, merged by the receiver: copies may arrive twice, late or
/// out of order, and the replicas still converge. Copies that fail are left to anti-entropy.
pub(crate) async fn coordinate(
    node: &Arc<Node>,
    view: &ClusterView,
    key: Vec<u8>,
    write: WriteRequest,
) -> Result<Value, RequestError> {
    let value = node.write_request(key.clone(), write).await?;
    let mut copied = copy_all(node, view, vec![(key, value.clone())]).await;
    copied.pop().unwrap_or(Ok(()))?;
    Ok(value)
}

/// Merges several keys of one replica set here (committed together), then copies them to the
/// other replicas; one outcome per item, in order.
pub(crate) async fn coordinate_batch(
    node: &Arc<Node>,
    view: &ClusterView,
    items: Vec<(Vec<u8>, Value)>,
) -> Vec<Result<Value, RequestError>> {
    let keys: Vec<Vec<u8>> = items.iter().map(|(k, _)| k.clone()).collect();
    let mut results = node.merge_batch(items).await;
    let merged: Vec<(usize, (Vec<u8>, Value))> = results
        .iter()
        .zip(keys)
        .enumerate()
        .filter_map(|(i, (r, key))| Some((i, (key, r.as_ref().ok()?.clone()))))
        .collect();
    let (indices, copies): (Vec<usize>, Vec<_>) = merged.into_iter().unzip();
    for (i, copied) in indices.into_iter().zip(copy_all(node, view, copies).await) {
        if let Err(e) = copied {
            results[i] = Err(e);
        }
    }
    results
}

/// Sends each merged state to every replica of its key but this node, and waits until each
/// item has the acknowledgements the policy requires or every copy has answered (copies still
/// in flight go on in the background). One outcome per item.
async fn copy_all(
    node: &Arc<Node>,
    view: &ClusterView,
    items: Vec<(Vec<u8>, Value)>,
) -> Vec<Result<(), RequestError>> {
    let policy = node.config().ack;
    let mut waiting = vec![(0usize, 0usize, 0usize); items.len()]; // (needed, acks, pending)
    let (done, mut outcomes) = mpsc::unbounded_channel::<(usize, bool)>();
    for (i, (key, value)) in items.into_iter().enumerate() {
        let replicas = view.replicas(&key);
        // This node's own durable write counts as one.
        let needed = policy.required(replicas.len()).saturating_sub(1);
        let others: Vec<_> = replicas.iter().filter(|r| **r != view.me).collect();
        waiting[i] = (needed, 0, others.len());
        for replica in others {
            #[cfg(feature = "planted-bugs")]
            if crate::planted::drops_copies() {
                let _ = done.send((i, true));
                continue;
            }
            match view.addrs.get(replica) {
                Some(addr) => {
                    node.peers()
                        .copy(
                            view.cluster,
                            addr,
                            key.clone(),
                            value.clone(),
                            i,
                            done.clone(),
                        )
                        .await;
                }
                None => {
                    let _ = done.send((i, false));
                }
            }
        }
    }
    drop(done);
    let unsettled = |w: &(usize, usize, usize)| w.1 < w.0 && w.2 > 0;
    let mut open = waiting.iter().filter(|w| unsettled(w)).count();
    while open > 0 {
        let Some((i, ok)) = outcomes.recv().await else {
            break;
        };
        let w = &mut waiting[i];
        let was = unsettled(w);
        w.2 = w.2.saturating_sub(1);
        w.1 += usize::from(ok);
        if was && !unsettled(w) {
            open -= 1;
        }
    }
    waiting
        .into_iter()
        .map(|(needed, acks, _)| {
            if acks >= needed {
                Ok(())
            } else {
                let n = view.table.replication();
                Err(RequestError::Unavailable(format!(
                    "the write is durable on {} of {n} replicas, and the `{policy}` policy needs \
                     {} (it stays where it was applied; anti-entropy spreads it)",
                    1 + acks,
                    1 + needed,
                )))
            }
        })
        .collect()
}
