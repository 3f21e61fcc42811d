//! What changes between two partition tables: the moves of repartitioning.

use crate::{NodeId, PartitionId, PartitionTable};

/// One replica slot of one partition changing: `from` gives its replica up, `to` receives one.
///
/// Usually both are set (`from` streams the partition to `to`, then drops it). `from: None` means
/// the partition gains a replica (the replication factor grew): any of its replicas in the old
/// table can stream it (they keep their data until their own moves finish). `to: None` means the
/// partition loses a replica (the replication factor shrank): `from` drops its copy once the new
/// table is in use.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Move {
    /// The partition.
    pub partition: PartitionId,
    /// The node giving up its replica, if any.
    pub from: Option<NodeId>,
    /// The node receiving a replica, if any.
    pub to: Option<NodeId>,
}

/// Returns the moves that turn `old` into `new`: for each partition, each node that joins its
/// replica set, paired with a node that leaves it (in order), then the joins or departures left
/// unpaired. Reorderings of the same nodes (a new primary among the same replicas) move no data
/// and are not moves.
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
        let mut leaving = before.iter().filter(|n| !after.contains(n)).copied();
        for &to in after.iter().filter(|n| !before.contains(n)) {
            out.push(Move {
                partition,
                from: leaving.next(),
                to: Some(to),
            });
        }
        out.extend(leaving.map(|from| Move {
            partition,
            from: Some(from),
            to: None,
        }));
    }
    out
}
