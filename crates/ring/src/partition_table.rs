//! The partition table: which nodes hold each partition, primary first.

use std::collections::{BTreeMap, BTreeSet};

use crate::placement::place;
use crate::{Epoch, Error, NodeId, PartitionId, Result};

/// Which nodes replicate each of the `Q` partitions of the ring, primary first, at one epoch.
///
/// # Examples
///
/// ```
/// use haze_ring::{NodeId, PartitionTable};
///
/// let nodes = [NodeId(1), NodeId(2), NodeId(3)];
/// let table = PartitionTable::place(None, &nodes, 256, 3)?;
/// let replicas = table.replicas_of_key(b"visits");
/// assert_eq!(replicas.len(), 3); // primary first, three distinct nodes
///
/// // A fourth node takes about a quarter of the slots; nothing else moves.
/// let grown = PartitionTable::place(Some(&table), &[NodeId(1), NodeId(2), NodeId(3), NodeId(4)], 256, 3)?;
/// assert!(grown.epoch() > table.epoch());
/// assert!(haze_ring::moves(&table, &grown).len() <= 256 * 3 / 4 + 3);
/// # Ok::<(), haze_ring::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "TableJson", into = "TableJson")]
pub struct PartitionTable {
    epoch: Epoch,
    /// `Q`, a power of two.
    partitions: u32,
    /// Slots per partition: the replication factor, clamped to the number of nodes.
    replication: usize,
    /// `Q × replication` nodes: partition `p`'s replicas are `slots[p·r .. (p+1)·r]`.
    slots: Vec<NodeId>,
}

/// The serialised form: `{"epoch", "partitions", "replication", "assignments": [[ids], ...]}`.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TableJson {
    epoch: Epoch,
    partitions: u32,
    replication: usize,
    assignments: Vec<Vec<NodeId>>,
}

impl From<PartitionTable> for TableJson {
    fn from(t: PartitionTable) -> Self {
        let assignments = t
            .slots
            .chunks(t.replication)
            .map(<[NodeId]>::to_vec)
            .collect();
        TableJson {
            epoch: t.epoch,
            partitions: t.partitions,
            replication: t.replication,
            assignments,
        }
    }
}

impl TryFrom<TableJson> for PartitionTable {
    type Error = Error;
    fn try_from(j: TableJson) -> Result<Self> {
        check_partitions(j.partitions)?;
        if j.replication == 0 {
            return Err(Error::NoReplicas);
        }
        if j.assignments.len() != j.partitions as usize {
            return Err(Error::Invalid("one assignment per partition"));
        }
        for replicas in &j.assignments {
            if replicas.len() != j.replication {
                return Err(Error::Invalid("every partition has `replication` replicas"));
            }
            if replicas.iter().collect::<BTreeSet<_>>().len() != replicas.len() {
                return Err(Error::Invalid(
                    "a node holds at most one replica of a partition",
                ));
            }
        }
        let slots = j.assignments.into_iter().flatten().collect();
        Ok(PartitionTable {
            epoch: j.epoch,
            partitions: j.partitions,
            replication: j.replication,
            slots,
        })
    }
}

fn check_partitions(q: u32) -> Result<()> {
    if q.is_power_of_two() && q <= 4096 {
        Ok(())
    } else {
        Err(Error::BadPartitionCount(q))
    }
}

impl PartitionTable {
    /// Places `replication` replicas of each of `partitions` partitions on `nodes`, balanced, and
    /// moving as little as possible from `previous` (whose epoch the new table follows). The
    /// replication factor is clamped to the number of nodes. Deterministic: the same inputs give
    /// the same table.
    ///
    /// # Errors
    ///
    /// [`Error::BadPartitionCount`] unless `partitions` is a power of two up to 4096 (and equal to
    /// `previous`'s); [`Error::NoReplicas`]; [`Error::NoNodes`].
    pub fn place(
        previous: Option<&PartitionTable>,
        nodes: &[NodeId],
        partitions: u32,
        replication: usize,
    ) -> Result<Self> {
        check_partitions(partitions)?;
        if replication == 0 {
            return Err(Error::NoReplicas);
        }
        let nodes: Vec<NodeId> = nodes
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if nodes.is_empty() {
            return Err(Error::NoNodes);
        }
        if previous.is_some_and(|p| p.partitions != partitions) {
            return Err(Error::BadPartitionCount(partitions));
        }
        let replication = replication.min(nodes.len());
        let old: Vec<Vec<NodeId>> = match previous {
            Some(p) => (0..partitions)
                .map(|i| p.replicas(PartitionId(i)).to_vec())
                .collect(),
            None => vec![Vec::new(); partitions as usize],
        };
        let placed = place(&old, &nodes, replication);
        let epoch = match previous {
            None => Epoch(1),
            Some(p) => Epoch(
                p.epoch
                    .0
                    .checked_add(1)
                    .ok_or(Error::Invalid("the epoch cannot grow past 2^64 - 1"))?,
            ),
        };
        Ok(PartitionTable {
            epoch,
            partitions,
            replication,
            slots: placed.into_iter().flatten().collect(),
        })
    }

    /// Returns the table that follows this one (the next epoch) with the replicas of some
    /// partitions replaced: how a repartitioning switches partitions over a few at a time.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] if a partition is out of range, a list is not `replication` long or
    /// names a node twice, or the epoch would overflow.
    pub fn successor(&self, changes: &[(PartitionId, &[NodeId])]) -> Result<PartitionTable> {
        let mut next = self.with_epoch(Epoch(
            self.epoch
                .0
                .checked_add(1)
                .ok_or(Error::Invalid("the epoch cannot grow past 2^64 - 1"))?,
        ));
        for &(partition, replicas) in changes {
            if partition.0 >= self.partitions {
                return Err(Error::Invalid("a partition past the last"));
            }
            if replicas.len() != self.replication {
                return Err(Error::Invalid("every partition has `replication` replicas"));
            }
            if replicas.iter().collect::<BTreeSet<_>>().len() != replicas.len() {
                return Err(Error::Invalid(
                    "a node holds at most one replica of a partition",
                ));
            }
            let start = partition.0 as usize * self.replication;
            next.slots[start..start + self.replication].copy_from_slice(replicas);
        }
        Ok(next)
    }

    /// Returns this table under another epoch.
    pub fn with_epoch(&self, epoch: Epoch) -> PartitionTable {
        PartitionTable {
            epoch,
            ..self.clone()
        }
    }

    /// Returns the table's epoch.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// Returns `Q`, the number of partitions.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Returns the number of replicas per partition.
    pub fn replication(&self) -> usize {
        self.replication
    }

    /// Returns the partition of a ring hash: its top `log2 Q` bits.
    pub fn partition_of_hash(&self, hash: u64) -> PartitionId {
        let shift = 64 - self.partitions.trailing_zeros();
        PartitionId(hash.checked_shr(shift).unwrap_or(0) as u32)
    }

    /// Returns the partition of a key.
    pub fn partition_of_key(&self, key: &[u8]) -> PartitionId {
        self.partition_of_hash(haze_crdt::digest::ring_hash(key))
    }

    /// Returns the replicas of `partition`, primary first.
    ///
    /// # Panics
    ///
    /// If `partition` is not below [`partitions`](Self::partitions).
    pub fn replicas(&self, partition: PartitionId) -> &[NodeId] {
        let start = partition.0 as usize * self.replication;
        &self.slots[start..start + self.replication]
    }

    /// Returns the replicas of the partition holding `key`, primary first: a hash and an index.
    pub fn replicas_of_key(&self, key: &[u8]) -> &[NodeId] {
        self.replicas(self.partition_of_key(key))
    }

    /// Returns the range of ring hashes `[start, end]` of `partition`: one contiguous range of a
    /// node's ring-ordered store.
    ///
    /// # Panics
    ///
    /// If `partition` is not below [`partitions`](Self::partitions).
    pub fn hash_range(&self, partition: PartitionId) -> (u64, u64) {
        assert!(
            partition.0 < self.partitions,
            "partition {partition} of {} partitions",
            self.partitions
        );
        let width = u64::MAX
            .checked_shr(self.partitions.trailing_zeros())
            .unwrap_or(0);
        let start = u64::from(partition.0)
            .checked_shl(64 - self.partitions.trailing_zeros())
            .unwrap_or(0);
        (start, start + width)
    }

    /// Returns the nodes that hold at least one replica.
    pub fn nodes(&self) -> BTreeSet<NodeId> {
        self.slots.iter().copied().collect()
    }

    /// Returns how many replica slots each node holds.
    pub fn load(&self) -> BTreeMap<NodeId, usize> {
        let mut load = BTreeMap::new();
        for node in &self.slots {
            *load.entry(*node).or_default() += 1;
        }
        load
    }

    /// Returns how many partitions each node is primary of.
    pub fn primaries(&self) -> BTreeMap<NodeId, usize> {
        let mut load = BTreeMap::new();
        for replicas in self.slots.chunks(self.replication) {
            *load.entry(replicas[0]).or_default() += 1;
        }
        load
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(q: u32) -> PartitionTable {
        PartitionTable::place(None, &[NodeId(1), NodeId(2)], q, 2).unwrap()
    }

    #[test]
    fn partitions_cut_the_hash_space_in_equal_ranges() {
        let t = table(4);
        assert_eq!(t.partition_of_hash(0), PartitionId(0));
        assert_eq!(t.partition_of_hash(u64::MAX), PartitionId(3));
        assert_eq!(t.hash_range(PartitionId(1)), (1 << 62, (2 << 62) - 1));
        let one = table(1);
        assert_eq!(one.partition_of_hash(u64::MAX), PartitionId(0));
        assert_eq!(one.hash_range(PartitionId(0)), (0, u64::MAX));
    }

    #[test]
    fn bad_inputs_are_refused() {
        assert_eq!(
            PartitionTable::place(None, &[NodeId(1)], 3, 1),
            Err(Error::BadPartitionCount(3))
        );
        assert_eq!(
            PartitionTable::place(None, &[NodeId(1)], 8192, 1),
            Err(Error::BadPartitionCount(8192))
        );
        assert_eq!(PartitionTable::place(None, &[], 8, 1), Err(Error::NoNodes));
        assert_eq!(
            PartitionTable::place(None, &[NodeId(1)], 8, 0),
            Err(Error::NoReplicas)
        );
    }

    #[test]
    fn json_round_trips_and_is_validated() {
        let t = table(8);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<PartitionTable>(&json).unwrap(), t);
        let twice = r#"{"epoch":1,"partitions":1,"replication":2,"assignments":[[1,1]]}"#;
        assert!(serde_json::from_str::<PartitionTable>(twice).is_err());
        let short = r#"{"epoch":1,"partitions":2,"replication":1,"assignments":[[1]]}"#;
        assert!(serde_json::from_str::<PartitionTable>(short).is_err());
    }
}
