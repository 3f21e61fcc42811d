//! What a node knows of its cluster, and what the membership change under way asks of it for
//! a key.

use std::collections::BTreeMap;

use haze_ring::{MoveState, NodeId, PartitionId, PartitionTable, Transition};

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
    /// The view node `me` takes from the controller's `status`, once it has a table.
    pub fn from_status(status: &haze_controller::api::Status, me: NodeId) -> Option<ClusterView> {
        Some(ClusterView {
            cluster: status.cluster.0,
            me,
            table: status.table.clone()?,
            addrs: status
                .members
                .iter()
                .map(|m| (m.id, m.addr.clone()))
                .collect(),
            transition: status.transition.clone(),
        })
    }

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
