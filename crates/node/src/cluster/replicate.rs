//! Coordinating a write: apply it here, durably, then copy it to the other replicas.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use haze_crdt::Value;
use haze_protocol::{Request, Response};
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
    copy_to_replicas(node, view, key, value.clone()).await?;
    Ok(value)
}

/// Sends `value` to every replica of `key` but this node, and waits for the acknowledgements the
/// policy requires (the copies still in flight go on in the background).
pub(crate) async fn copy_to_replicas(
    node: &Arc<Node>,
    view: &ClusterView,
    key: Vec<u8>,
    value: Value,
) -> Result<(), RequestError> {
    let replicas = view.table.replicas_of_key(&key);
    let policy = node.config().ack;
    let required = policy.required(replicas.len());
    // This node's own durable write counts as one.
    let needed = required.saturating_sub(1);
    let others: Vec<_> = replicas.iter().filter(|r| **r != view.me).collect();
    if others.is_empty() {
        return Ok(());
    }
    let (done, mut outcomes) = mpsc::unbounded_channel();
    for replica in others {
        let Some(addr) = view.addrs.get(replica) else {
            let _ = done.send(false);
            continue;
        };
        let client = node.peers().client(view.cluster, addr);
        let (done, item, node) = (done.clone(), (key.clone(), value.clone()), node.clone());
        tokio::spawn(async move {
            #[cfg(feature = "planted-bugs")]
            if crate::planted::drops_copies() {
                let _ = done.send(true);
                return;
            }
            let copied = client.send(Request::Copy { items: vec![item] }, true).await;
            let ok = matches!(&copied, Ok(Response::Batch(r)) if r.iter().all(Result::is_ok));
            if !ok {
                node.metrics().copies_failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(?copied, "a copy to a replica failed");
            }
            let _ = done.send(ok);
        });
    }
    drop(done);
    let mut acks = 0;
    while acks < needed {
        match outcomes.recv().await {
            Some(true) => acks += 1,
            Some(false) => {}
            None => break,
        }
    }
    if acks >= needed {
        Ok(())
    } else {
        Err(RequestError::Unavailable(format!(
            "the write is durable on {} of {} replicas, and the `{policy}` policy needs {required} \
             (it stays where it was applied; anti-entropy spreads it)",
            1 + acks,
            replicas.len(),
        )))
    }
}
