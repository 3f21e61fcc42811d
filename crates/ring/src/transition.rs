//! A membership change in progress: the partitions whose replicas change, and where each
//! stands in the repartitioning protocol (docs/repartitioning.md).
//!
//! The controller owns a [`Transition`] and advances it; every node receives it with the table
//! and reads from it what it must do for each partition: stream it, forward writes, proxy, or
//! delete it. The queries here are what nodes ask on their request paths.

use crate::{Epoch, NodeId, PartitionId, PartitionTable, moves};

/// Where a partition's move stands. The order is the protocol's.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum MoveState {
    /// Waiting for its turn (a few partitions move at a time).
    Pending,
    /// Each joining replica receives the partition from a source replica, which also forwards
    /// every write it applies to the partition. The old replicas serve it.
    Streaming,
    /// Every stream completed: the old replicas send the partition's requests to the new ones.
    Proxying,
    /// A table in which the new replicas hold the partition is published (`routed_at`).
    Routed,
    /// The old epoch is out of use: departing replicas delete their copy.
    Cleaning,
    /// Finished.
    Done,
}

impl MoveState {
    /// Returns the state's name, as status and metrics spell it.
    pub fn name(self) -> &'static str {
        match self {
            MoveState::Pending => "pending",
            MoveState::Streaming => "streaming",
            MoveState::Proxying => "proxying",
            MoveState::Routed => "routed",
            MoveState::Cleaning => "cleaning",
            MoveState::Done => "done",
        }
    }

    /// Every state, in protocol order.
    pub const ALL: [MoveState; 6] = [
        MoveState::Pending,
        MoveState::Streaming,
        MoveState::Proxying,
        MoveState::Routed,
        MoveState::Cleaning,
        MoveState::Done,
    ];
}

/// One stream of a partition: `source` (a replica before the change) sends it to `to` (a
/// replica after it that is not one before).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stream {
    /// The node receiving the partition.
    pub to: NodeId,
    /// The node sending it: the replica `to` replaces, or another one if that one is down.
    pub source: NodeId,
}

/// A partition whose replica set changes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionMove {
    /// The partition.
    pub partition: PartitionId,
    /// Its replicas before the change, primary first.
    pub before: Vec<NodeId>,
    /// Its replicas after it, primary first.
    pub after: Vec<NodeId>,
    /// One stream per joining replica.
    pub streams: Vec<Stream>,
    /// Where it stands.
    pub state: MoveState,
    /// The epoch of the table that gave it its new replicas, once routed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routed_at: Option<Epoch>,
    /// How many times its streams were planned (more than one: a source was replaced).
    pub attempts: u32,
    /// Why it was re-planned, or why it waits, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl PartitionMove {
    /// Returns whether `node` leaves this partition's replicas.
    pub fn departs(&self, node: NodeId) -> bool {
        self.before.contains(&node) && !self.after.contains(&node)
    }

    /// Returns whether `node` joins this partition's replicas.
    pub fn joins(&self, node: NodeId) -> bool {
        self.after.contains(&node) && !self.before.contains(&node)
    }
}

/// A membership change being carried out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Transition {
    /// The change's number: reports of progress name it, so a late report of an earlier change
    /// is not mistaken for this one's.
    pub change: u64,
    /// What was asked, for people ("add n4", "remove n2").
    pub description: String,
    /// The table once every move is done.
    pub target: PartitionTable,
    /// The partitions whose replicas change, by partition.
    pub moves: Vec<PartitionMove>,
    /// The most bytes per second a node streams, all its streams together (0: no limit).
    pub rate: u64,
}

impl Transition {
    /// Plans the change from `table` to `target`: one [`PartitionMove`] per partition whose
    /// replica set changes (a new order of the same replicas moves no data and is not one),
    /// each joining replica streamed from the replica it replaces, or from the first one that
    /// stays when it replaces none.
    pub fn plan(
        change: u64,
        description: String,
        table: &PartitionTable,
        target: PartitionTable,
        rate: u64,
    ) -> Transition {
        let mut by_partition: std::collections::BTreeMap<PartitionId, Vec<crate::Move>> =
            std::collections::BTreeMap::new();
        for m in moves(table, &target) {
            by_partition.entry(m.partition).or_default().push(m);
        }
        let moves = by_partition
            .into_iter()
            .map(|(partition, slot_moves)| {
                let before = table.replicas(partition).to_vec();
                let after = target.replicas(partition).to_vec();
                let staying = before.iter().copied().find(|n| after.contains(n));
                let streams = slot_moves
                    .iter()
                    .filter_map(|m| {
                        let to = m.to?;
                        let source = m.from.or(staying).or_else(|| before.first().copied())?;
                        Some(Stream { to, source })
                    })
                    .collect();
                PartitionMove {
                    partition,
                    before,
                    after,
                    streams,
                    state: MoveState::Pending,
                    routed_at: None,
                    attempts: 0,
                    note: None,
                }
            })
            .collect();
        Transition {
            change,
            description,
            target,
            moves,
            rate,
        }
    }

    /// Returns the move of `partition`, if its replicas change.
    pub fn get(&self, partition: PartitionId) -> Option<&PartitionMove> {
        self.moves
            .binary_search_by_key(&partition, |m| m.partition)
            .ok()
            .map(|i| &self.moves[i])
    }

    /// Returns the replicas router `node` sends `partition`'s requests to, given the table it
    /// has. Once the streams completed, the replicas that leave send them to the new replicas
    /// (they proxy); every other router keeps sending them to the table's replicas until the
    /// table changes, so the departing replicas see every request first and decide alone when
    /// the new ones take over.
    pub fn routing<'a>(
        &'a self,
        table: &'a PartitionTable,
        partition: PartitionId,
        node: NodeId,
    ) -> &'a [NodeId] {
        match self.get(partition) {
            Some(m) if m.state >= MoveState::Routed => &m.after,
            Some(m) if m.state == MoveState::Proxying && m.departs(node) => &m.after,
            _ => table.replicas(partition),
        }
    }

    /// Returns the move of `partition` while writes to it must reach both its old and its new
    /// replicas: from the moment it streams until the old epoch is out of use (see
    /// `docs/repartitioning.md`).
    pub fn moving(&self, partition: PartitionId) -> Option<&PartitionMove> {
        self.get(partition)
            .filter(|m| m.state >= MoveState::Streaming && m.state <= MoveState::Routed)
    }

    /// Returns whether `node` still keeps a copy of `partition` it is leaving: until the old
    /// epoch is out of use and it deletes it. Copies reaching it later are refused, so a
    /// deleted partition never comes back.
    pub fn keeps(&self, partition: PartitionId, node: NodeId) -> bool {
        self.get(partition)
            .is_some_and(|m| m.departs(node) && m.state < MoveState::Cleaning)
    }

    /// Returns whether `node` may apply writes to `partition` as one of its replicas: it is one
    /// for routing, or it joins the partition (from the moment the change is known: copies may
    /// reach it as soon as the stream starts).
    pub fn accepts(&self, table: &PartitionTable, partition: PartitionId, node: NodeId) -> bool {
        self.routing(table, partition, node).contains(&node)
            || self
                .get(partition)
                .is_some_and(|m| m.joins(node) && m.state < MoveState::Done)
    }

    /// Returns the nodes `node` forwards every write it applies to `partition` to: those it
    /// streams the partition to, until the move is done (late copies from routers with an old
    /// table may reach it until then).
    pub fn forwards(&self, partition: PartitionId, node: NodeId) -> Vec<NodeId> {
        match self.get(partition) {
            Some(m) if m.state >= MoveState::Streaming && m.state < MoveState::Done => m
                .streams
                .iter()
                .filter(|s| s.source == node && s.to != node)
                .map(|s| s.to)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Returns whether `node` is leaving `partition` and has not deleted it yet: it passes on
    /// the writes that reach it for the partition rather than refuse them.
    pub fn departing(&self, partition: PartitionId, node: NodeId) -> bool {
        self.get(partition)
            .is_some_and(|m| m.departs(node) && m.state < MoveState::Done)
    }

    /// Counts the moves in each state, in protocol order.
    pub fn counts(&self) -> [usize; 6] {
        let mut counts = [0; 6];
        for m in &self.moves {
            counts[MoveState::ALL
                .iter()
                .position(|s| *s == m.state)
                .unwrap_or(0)] += 1;
        }
        counts
    }
}

/// A stream's progress, as its sending node reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamReport {
    /// The change the stream belongs to.
    pub change: u64,
    /// The partition.
    pub partition: PartitionId,
    /// The receiving node.
    pub to: NodeId,
    /// Keys sent in the current pass.
    pub keys: u64,
    /// Bytes sent in the current pass.
    pub bytes: u64,
    /// Whether a whole pass completed with every forwarded write delivered.
    pub done: bool,
    /// Passes started (more than one: a pass failed and started over).
    #[serde(default)]
    pub passes: u32,
    /// Why the last pass failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A departing node's report that it deleted its copy of a partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CleanReport {
    /// The change.
    pub change: u64,
    /// The partition.
    pub partition: PartitionId,
    /// How many keys it deleted.
    pub keys: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(ids: &[u64]) -> Vec<NodeId> {
        ids.iter().copied().map(NodeId).collect()
    }

    #[test]
    fn a_fourth_node_streams_from_the_replicas_it_replaces() {
        let table = PartitionTable::place(None, &nodes(&[1, 2, 3]), 16, 3).unwrap();
        let target = PartitionTable::place(Some(&table), &nodes(&[1, 2, 3, 4]), 16, 3).unwrap();
        let t = Transition::plan(1, "add n4".into(), &table, target.clone(), 0);
        assert!(!t.moves.is_empty());
        for m in &t.moves {
            assert_eq!(m.streams.len(), 1, "one slot per partition moves");
            let s = m.streams[0];
            assert_eq!(s.to, NodeId(4));
            assert!(m.departs(s.source), "the source is the replaced replica");
            assert_eq!(m.after, target.replicas(m.partition));
        }
        let m = &t.moves[0];
        // Pending: routing changes for no one yet; the new replica takes copies already.
        assert_eq!(
            t.routing(&table, m.partition, NodeId(1)),
            table.replicas(m.partition)
        );
        assert!(t.accepts(&table, m.partition, NodeId(4)));
        assert!(t.forwards(m.partition, m.streams[0].source).is_empty());
    }

    #[test]
    fn each_state_changes_what_nodes_do() {
        let table = PartitionTable::place(None, &nodes(&[1, 2, 3]), 4, 2).unwrap();
        let target = PartitionTable::place(Some(&table), &nodes(&[1, 2, 3, 4]), 4, 2).unwrap();
        let mut t = Transition::plan(1, "add n4".into(), &table, target, 0);
        let p = t.moves[0].partition;
        let source = t.moves[0].streams[0].source;
        t.moves[0].state = MoveState::Streaming;
        assert!(
            t.accepts(&table, p, NodeId(4)),
            "the new replica takes the stream"
        );
        assert_eq!(t.forwards(p, source), vec![NodeId(4)]);
        assert_eq!(
            t.routing(&table, p, NodeId(4)),
            table.replicas(p),
            "the old replicas serve"
        );
        t.moves[0].state = MoveState::Proxying;
        assert_eq!(t.routing(&table, p, source), t.moves[0].after.as_slice());
        for other in (1..=4).map(NodeId).filter(|n| *n != source) {
            assert_eq!(
                t.routing(&table, p, other),
                table.replicas(p),
                "other routers go through the departing replica until the table changes"
            );
        }
        assert!(
            !t.accepts(&table, p, source),
            "the departing replica proxies"
        );
        assert!(t.departing(p, source));
        t.moves[0].state = MoveState::Cleaning;
        assert_eq!(t.forwards(p, source), vec![NodeId(4)], "until it is done");
        t.moves[0].state = MoveState::Done;
        assert!(!t.departing(p, source));
        assert!(t.forwards(p, source).is_empty());
    }

    #[test]
    fn a_partition_that_only_gains_a_replica_streams_from_one_that_stays() {
        let table = PartitionTable::place(None, &nodes(&[1]), 4, 3).unwrap();
        let target = PartitionTable::place(Some(&table), &nodes(&[1, 2]), 4, 3).unwrap();
        let t = Transition::plan(1, "add n2".into(), &table, target, 0);
        assert_eq!(t.moves.len(), 4);
        for m in &t.moves {
            assert_eq!(
                m.streams,
                vec![Stream {
                    to: NodeId(2),
                    source: NodeId(1)
                }]
            );
        }
    }

    #[test]
    fn successor_replaces_only_the_given_partitions() {
        let table = PartitionTable::place(None, &nodes(&[1, 2, 3]), 4, 2).unwrap();
        let next = table
            .successor(&[(PartitionId(2), &nodes(&[3, 1])[..])])
            .unwrap();
        assert_eq!(next.epoch().0, table.epoch().0 + 1);
        assert_eq!(next.replicas(PartitionId(2)), nodes(&[3, 1]).as_slice());
        assert_eq!(
            next.replicas(PartitionId(1)),
            table.replicas(PartitionId(1))
        );
        assert!(
            table
                .successor(&[(PartitionId(2), &nodes(&[3, 3])[..])])
                .is_err()
        );
        assert!(
            table
                .successor(&[(PartitionId(9), &nodes(&[3, 1])[..])])
                .is_err()
        );
    }
}
