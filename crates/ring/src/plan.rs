//! What changes between two partition tables: the moves of repartitioning.

use crate::{NodeId, PartitionId, PartitionTable};

/// One replica slot of one partition changing hands: `from` streams the partition to `to`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Move {
    /// The partition.
    pub partition: PartitionId,
    /// The node giving up its replica, or `None` when the partition gains a replica (the
    /// replication factor grew): then any current replica can stream it.
    pub from: Option<NodeId>,
    /// The node receiving it.
    pub to: NodeId,
}

/// Returns the moves that turn `old` into `new`: for each partition, each node that joins its
/// replica set, paired with a node that leaves it (in order). Reorderings of the same nodes
/// (a new primary among the same replicas) move no data and are not moves.
///
/// # Panics
///
/// If the tables have different partition counts.
pub fn moves(old: &PartitionTable, new: &PartitionTable) -> Vec<Move> {
    assert_eq!(
        old.partitions(),
        new.partitions(),
        "the partition count is fixed for a cluster's life"
    );
    let mut out = Vec::new();
    for p in 0..new.partitions() {
        let partition = PartitionId(p);
        let (before, after) = (old.replicas(partition), new.replicas(partition));
        let mut leaving = before.iter().filter(|n| !after.contains(n));
        for &to in after.iter().filter(|n| !before.contains(n)) {
            out.push(Move {
                partition,
                from: leaving.next().copied(),
                to,
            });
        }
    }
    out
}
