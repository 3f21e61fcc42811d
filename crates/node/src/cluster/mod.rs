//! The cluster: how a node that belongs to one routes, replicates and repairs.
//!
//! A node learns its [`ClusterView`] (the cluster's id, its own node id, the partition table and
//! every member's address) from whoever runs it (the CLI polls the controller; a simulation
//! installs views directly) through [`Node::install_view`](crate::Node::install_view). Without a
//! view, a node serves every request from its own store, as a single node does.
//!
//! With a view:
//!
//! * `route` — a client's request for a key goes to the key's replicas in table order: the
//!   primary first, the next replica when one does not answer within the forward timeout. The
//!   replica that takes a write *coordinates* it (`replicate`): applies it durably, then copies
//!   the merged state to the other replicas and waits for as many acknowledgements as the
//!   [`AckPolicy`] asks.
//! * `peers` — one pipelined connection per other node, opened on first use, whose hello names
//!   the cluster (a node of another cluster is refused).
//! * `handoff` — repartitioning on this node: streaming partitions to their new replicas,
//!   forwarding writes meanwhile, deleting them once they moved.
//! * `anti_entropy` — every node compares its bucket digests with each node it shares partitions
//!   with and exchanges the keys that differ, both ways.
//! * `leftovers` — after each anti-entropy round, copies of partitions this node is no replica
//!   of (and no move involves) are handed back to a replica and deleted.

mod anti_entropy;
mod handoff;
mod leftovers;
mod peers;
mod replicate;
mod route;

use std::collections::BTreeMap;

use haze_ring::{MoveState, NodeId, PartitionId, PartitionTable, Transition};

pub use anti_entropy::{RoundReport, run_anti_entropy, sync_round};
pub(crate) use handoff::{Handoff, on_view};
pub use leftovers::hand_back_leftovers;
pub(crate) use peers::Peers;
pub(crate) use route::{is_routed, route};

use std::sync::Arc;

use haze_protocol::{Request, Response, Role};

use crate::error::RequestError;
use crate::node::Node;

/// Answers a client's data request from outside the binary protocol (the HTTP API): routed in a
/// cluster, refused while the node waits for its table, `None` on a single node.
pub(crate) async fn answer(
    node: &Arc<Node>,
    request: Request,
) -> Result<Option<Response>, RequestError> {
    if !is_routed(&request, Role::Client) {
        return Ok(None);
    }
    if let Some(view) = node.view() {
        return Ok(Some(route(node.clone(), view, request, false).await));
    }
    if node.awaits_view() {
        return Err(RequestError::Unavailable(
            "this node has not received its cluster's partition table yet".into(),
        ));
    }
    Ok(None)
}

/// What a node knows of its cluster: enough to route any key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    /// The cluster's id: node-to-node connections carry it.
    pub cluster: u64,
    /// This node's id.
    pub me: NodeId,
    /// The partition table.
    pub table: PartitionTable,
    /// The address of every member's binary protocol.
    pub addrs: BTreeMap<NodeId, String>,
    /// The membership change under way, if any: it changes, partition by partition, who
    /// streams, forwards, proxies and deletes (docs/repartitioning.md).
    pub transition: Option<Transition>,
}

impl ClusterView {
    /// Returns the replicas a request for `key` goes to, primary first: the table's, or the
    /// new replicas of a partition whose move has passed streaming.
    pub fn replicas(&self, key: &[u8]) -> &[NodeId] {
        self.replicas_of(self.table.partition_of_key(key))
    }

    /// Returns the replicas of `partition` requests go to (see [`replicas`](Self::replicas)).
    pub fn replicas_of(&self, partition: PartitionId) -> &[NodeId] {
        match &self.transition {
            Some(t) => t.routing(&self.table, partition, self.me),
            None => self.table.replicas(partition),
        }
    }

    /// Returns whether this node applies writes to `key` as a replica: it is one, or the key's
    /// partition is streaming to it.
    pub fn holds(&self, key: &[u8]) -> bool {
        let partition = self.table.partition_of_key(key);
        match &self.transition {
            Some(t) => t.accepts(&self.table, partition, self.me),
            None => self.table.replicas(partition).contains(&self.me),
        }
    }

    /// Returns the move of `key`'s partition while writes must reach both its old and new
    /// replicas.
    pub fn moving(&self, key: &[u8]) -> Option<&haze_ring::PartitionMove> {
        self.transition
            .as_ref()?
            .moving(self.table.partition_of_key(key))
    }

    /// Returns whether `key`'s partition is moving (streaming or later, not done): reads then
    /// merge a majority of replicas, since the replica that answers alone may change.
    pub fn in_move(&self, key: &[u8]) -> bool {
        self.transition.as_ref().is_some_and(|t| {
            t.get(self.table.partition_of_key(key))
                .is_some_and(|m| m.state >= MoveState::Streaming && m.state < MoveState::Done)
        })
    }

    /// Returns whether this node takes a peer's copy of `key`: it holds the key, or it is leaving
    /// the key's partition and has not begun to delete it.
    pub fn takes_copy(&self, key: &[u8]) -> bool {
        self.holds(key)
            || self
                .transition
                .as_ref()
                .is_some_and(|t| t.keeps(self.table.partition_of_key(key), self.me))
    }

    /// Returns whether this node is leaving `key`'s partition and has not deleted it: a write
    /// another node forwards here is passed on to the new replicas, not refused.
    pub fn departing(&self, key: &[u8]) -> bool {
        self.transition
            .as_ref()
            .is_some_and(|t| t.departing(self.table.partition_of_key(key), self.me))
    }
}

/// How many replicas must have a write durably before the coordinator acknowledges it. The
/// coordinator always applies it durably itself first; the others receive a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AckPolicy {
    /// The coordinator alone (fastest; a write is lost if that node's disk is lost before
    /// anti-entropy or the copies reached another replica).
    Primary,
    /// A majority of the key's replicas (N/2 + 1): survives the loss of any minority.
    #[default]
    Quorum,
    /// Every replica: a write fails (though it stays where it was applied) if any replica does
    /// not answer.
    All,
}

impl AckPolicy {
    /// Returns how many replicas (the coordinator included) must hold a write among `n`.
    pub fn required(self, n: usize) -> usize {
        match self {
            AckPolicy::Primary => 1,
            AckPolicy::Quorum => n / 2 + 1,
            AckPolicy::All => n,
        }
        .min(n.max(1))
    }

    /// Returns the policy's name, as flags and docs spell it.
    pub fn name(self) -> &'static str {
        match self {
            AckPolicy::Primary => "primary",
            AckPolicy::Quorum => "quorum",
            AckPolicy::All => "all",
        }
    }
}

impl std::fmt::Display for AckPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for AckPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "primary" => Ok(AckPolicy::Primary),
            "quorum" => Ok(AckPolicy::Quorum),
            "all" => Ok(AckPolicy::All),
            other => Err(format!(
                "unknown acknowledgement policy {other:?}: use primary, quorum or all"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_count_the_coordinator() {
        assert_eq!(AckPolicy::Primary.required(3), 1);
        assert_eq!(AckPolicy::Quorum.required(3), 2);
        assert_eq!(AckPolicy::Quorum.required(2), 2);
        assert_eq!(AckPolicy::Quorum.required(1), 1);
        assert_eq!(AckPolicy::All.required(3), 3);
        assert_eq!("all".parse::<AckPolicy>(), Ok(AckPolicy::All));
        assert!("most".parse::<AckPolicy>().is_err());
    }
}
