//! Placement over cluster sizes from 1 to 1,000: balanced, never two replicas of a partition on
//! one node, and adding or removing a node moves about its share of the slots, no more.

#![allow(clippy::print_stdout)] // the sweep prints the measured ratios

use haze_ring::{NodeId, PartitionTable, moves};
use proptest::prelude::*;

fn nodes(ids: impl IntoIterator<Item = u64>) -> Vec<NodeId> {
    ids.into_iter().map(NodeId).collect()
}

/// The most slots a node may hold: its share within 10%, or within one slot where the share is
/// too small for 10% to be a whole slot.
fn allowed(mean: f64) -> usize {
    (mean * 1.1).floor().max(mean.ceil()) as usize
}

fn check_table(
    table: &PartitionTable,
    members: &[NodeId],
    q: u32,
    r: usize,
) -> Result<(), TestCaseError> {
    let r = r.min(members.len());
    prop_assert_eq!(table.replication(), r);
    for p in 0..q {
        let reps = table.replicas(haze_ring::PartitionId(p));
        let mut distinct = reps.to_vec();
        distinct.sort();
        distinct.dedup();
        prop_assert_eq!(
            distinct.len(),
            r,
            "partition {} has a node twice: {:?}",
            p,
            reps
        );
        prop_assert!(reps.iter().all(|n| members.contains(n)));
    }
    let mean = f64::from(q) * r as f64 / members.len() as f64;
    let load = table.load();
    let max = load.values().copied().max().unwrap_or(0);
    prop_assert!(
        max <= allowed(mean),
        "max load {} for a mean of {:.2}",
        max,
        mean
    );
    let min = members
        .iter()
        .map(|n| load.get(n).copied().unwrap_or(0))
        .min()
        .unwrap_or(0);
    prop_assert!(
        min >= mean.floor() as usize,
        "min load {} for a mean of {:.2}",
        min,
        mean
    );
    let most_primaries = table.primaries().values().copied().max().unwrap_or(0);
    prop_assert!(
        most_primaries <= (q as usize).div_ceil(members.len()) + 1,
        "{} primaries on one node",
        most_primaries
    );
    Ok(())
}

fn cluster_size() -> impl Strategy<Value = usize> {
    prop_oneof![1usize..=12, 13usize..=200, 201usize..=1000]
}

fn partitions() -> impl Strategy<Value = u32> {
    prop::sample::select(vec![64u32, 256, 1024, 4096])
}

proptest! {
    // 64 cases per property in CI (each places up to 4,096 partitions on up to 1,000 nodes);
    // HAZE_PROPTEST_CASES for more.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("HAZE_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn placement_is_balanced_and_never_doubles_a_replica(m in cluster_size(), q in partitions(), r in 1usize..=3) {
        let members = nodes(1..=m as u64);
        let table = PartitionTable::place(None, &members, q, r).unwrap();
        check_table(&table, &members, q, r)?;
        prop_assert_eq!(PartitionTable::place(None, &members, q, r).unwrap(), table, "deterministic");
    }

    #[test]
    fn adding_a_node_moves_about_its_share_and_nothing_else(m in cluster_size(), q in partitions(), r in 1usize..=3) {
        prop_assume!(r <= m);
        let before = nodes(1..=m as u64);
        let after = nodes(1..=m as u64 + 1);
        let old = PartitionTable::place(None, &before, q, r).unwrap();
        let new = PartitionTable::place(Some(&old), &after, q, r).unwrap();
        check_table(&new, &after, q, r)?;
        let moved = moves(&old, &new);
        prop_assert!(moved.iter().all(|mv| mv.to == Some(NodeId(m as u64 + 1))), "only the new node receives slots");
        let ideal = (q as usize * r) as f64 / (m + 1) as f64;
        prop_assert!(moved.len() as f64 <= ideal.ceil() + 1.0, "{} slots moved, ideal {:.1}", moved.len(), ideal);
        prop_assert!(new.epoch() > old.epoch());
    }

    #[test]
    fn removing_a_node_moves_only_its_slots(m in 2usize..=1000, q in partitions(), r in 1usize..=3, gone in any::<prop::sample::Index>()) {
        prop_assume!(r < m);
        let before = nodes(1..=m as u64);
        let leaving = before[gone.index(m)];
        let after: Vec<NodeId> = before.iter().copied().filter(|&n| n != leaving).collect();
        let old = PartitionTable::place(None, &before, q, r).unwrap();
        let new = PartitionTable::place(Some(&old), &after, q, r).unwrap();
        check_table(&new, &after, q, r)?;
        let moved = moves(&old, &new);
        let its_slots = old.load().get(&leaving).copied().unwrap_or(0);
        prop_assert_eq!(moved.len(), its_slots, "exactly the departed node's slots move");
        prop_assert!(moved.iter().all(|mv| mv.from == Some(leaving)));
    }
}

#[test]
fn growing_from_one_to_five_nodes_raises_replication_then_balances() {
    let mut table = PartitionTable::place(None, &nodes([1]), 256, 3).unwrap();
    assert_eq!(table.replication(), 1);
    for m in 2..=5u64 {
        let next = PartitionTable::place(Some(&table), &nodes(1..=m), 256, 3).unwrap();
        let grown = moves(&table, &next);
        if m <= 3 {
            assert!(
                grown.iter().filter(|mv| mv.from.is_none()).count() >= 256,
                "partitions gain a replica"
            );
        }
        table = next;
    }
    assert_eq!(table.replication(), 3);
    assert_eq!(table.load().values().copied().max(), Some(154)); // 768 / 5 = 153.6
}

#[test]
#[allow(clippy::print_stdout)]
fn sweep_of_movement_ratios_over_cluster_sizes() {
    let mut worst_add: f64 = 0.0;
    let mut worst_remove: f64 = 0.0;
    for q in [256u32, 4096] {
        for m in [
            1usize, 2, 3, 4, 5, 7, 10, 16, 25, 50, 64, 100, 128, 250, 500, 1000,
        ] {
            let r = 3usize.min(m);
            let old = PartitionTable::place(None, &nodes(1..=m as u64), q, 3).unwrap();
            if r == 3 {
                let grown =
                    PartitionTable::place(Some(&old), &nodes(1..=m as u64 + 1), q, 3).unwrap();
                let ideal = (q as usize * r) as f64 / (m + 1) as f64;
                worst_add = worst_add.max(moves(&old, &grown).len() as f64 / ideal);
            }
            if m > 3 {
                // The least a removal can move is the departed node's own slots.
                let shrunk = PartitionTable::place(Some(&old), &nodes(2..=m as u64), q, 3).unwrap();
                let ideal = old.load().get(&NodeId(1)).copied().unwrap_or(0).max(1) as f64;
                worst_remove = worst_remove.max(moves(&old, &shrunk).len() as f64 / ideal);
            }
        }
    }
    println!(
        "ring placement sweep (Q = 256 and 4096, N = 3, 1 to 1,000 nodes): slots moved / the least \
         possible (adding: the new node's share; removing: the departed node's slots), worst case: \
         adding a node {worst_add:.3}, removing a node {worst_remove:.3}"
    );
    assert!(
        worst_add <= 1.1 && worst_remove <= 1.1,
        "add {worst_add:.3}, remove {worst_remove:.3}"
    );
}

#[test]
fn shrinking_the_replication_factor_reports_the_dropped_replicas() {
    let three = PartitionTable::place(None, &nodes(1..=3), 4, 3).unwrap();
    let two = PartitionTable::place(Some(&three), &nodes(1..=2), 4, 3).unwrap();
    let moved = moves(&three, &two);
    assert_eq!(moved.len(), 4, "node 3 drops its replica of each partition");
    assert!(
        moved
            .iter()
            .all(|mv| mv.from == Some(NodeId(3)) && mv.to.is_none())
    );
}
