//! Balanced placement with minimal movement.
//!
//! Every node gets a *target* share of the `Q × r` replica slots: `⌊Q·r/m⌋`, and one more for as
//! many nodes as the remainder (those already holding the most, so that fewer slots move). From
//! the previous table, every surviving replica stays; empty slots (of departed nodes, or a grown
//! replication factor) go to the least loaded node that does not hold that partition; then
//! slots pass one by one from nodes over their target to nodes under it. So
//! adding a node moves about `Q·r/(m+1)` slots, all to the new node, and removing one moves only
//! its own. Primaries are then spread: an overloaded primary hands the role to another replica
//! of the same partition (no data moves for that).

use std::cmp::Reverse;
use std::collections::BTreeMap;

use crate::NodeId;

/// A fixed, well-mixed hash, so that ties and sheddings spread over the ring instead of
/// clustering in the low partitions.
fn mix(partition: usize, node: NodeId) -> u64 {
    let mut x = (partition as u64) ^ node.0.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Places `r` replicas of each partition on `nodes` (sorted, distinct, at least `r`), moving as
/// little as possible from `old` (one list of replicas per partition).
pub(crate) fn place(old: &[Vec<NodeId>], nodes: &[NodeId], r: usize) -> Vec<Vec<NodeId>> {
    let (q, m) = (old.len(), nodes.len());
    debug_assert!(r >= 1 && r <= m);
    let index: BTreeMap<NodeId, usize> = nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();

    // Keep the surviving replicas, in their order (a surviving primary stays primary).
    let mut table: Vec<Vec<usize>> = old
        .iter()
        .map(|reps| {
            reps.iter()
                .filter_map(|n| index.get(n).copied())
                .take(r)
                .collect()
        })
        .collect();
    // Which slots this placement fills or passes on: they are moves already, so passing them
    // again costs nothing, while passing a surviving replica costs one more move.
    let mut fresh: Vec<Vec<bool>> = table.iter().map(|reps| vec![false; reps.len()]).collect();
    let mut load = vec![0usize; m];
    for reps in &table {
        for &i in reps {
            load[i] += 1;
        }
    }

    // Empty slots (departed nodes, a grown replication factor, a new table) go to the least
    // loaded node that does not hold the partition yet.
    for (p, reps) in table.iter_mut().enumerate() {
        while reps.len() < r {
            let chosen = (0..m)
                .filter(|i| !reps.contains(i))
                .min_by_key(|&i| (load[i], mix(p, nodes[i])))
                .expect("r <= m, so some node does not hold this partition yet");
            reps.push(chosen);
            fresh[p].push(true);
            load[chosen] += 1;
        }
    }

    // Targets: the remainder goes to the nodes holding the most already.
    let (base, extra) = ((q * r) / m, (q * r) % m);
    let mut by_load: Vec<usize> = (0..m).collect();
    by_load.sort_by_key(|&i| (Reverse(load[i]), i));
    let mut target = vec![base; m];
    for &i in by_load.iter().take(extra) {
        target[i] += 1;
    }

    // Then slots pass directly from nodes over their target to nodes under it, one at a time:
    // each transfer is one move, and never puts two replicas of a partition on one node.
    loop {
        let mut over: Vec<usize> = (0..m).filter(|&i| load[i] > target[i]).collect();
        let mut under: Vec<usize> = (0..m).filter(|&i| load[i] < target[i]).collect();
        if over.is_empty() || under.is_empty() {
            break;
        }
        over.sort_by_key(|&i| (Reverse(load[i] - target[i]), i));
        under.sort_by_key(|&j| (Reverse(target[j] - load[j]), j));
        let Some((p, pos, j)) = transfer(&table, &fresh, nodes, &over, &under) else {
            break;
        };
        let i = table[p][pos];
        table[p][pos] = j;
        fresh[p][pos] = true;
        load[i] -= 1;
        load[j] += 1;
    }

    spread_primaries(&mut table, nodes);
    table
        .into_iter()
        .map(|reps| reps.into_iter().map(|i| nodes[i]).collect())
        .collect()
}

/// Finds a slot to pass from an overloaded node to an underloaded one that does not hold that
/// partition: `(partition, position, receiver)`. Slots this placement already moves go first
/// (passing them again moves nothing more), then secondary slots; among equals the choice is
/// spread over the ring.
fn transfer(
    table: &[Vec<usize>],
    fresh: &[Vec<bool>],
    nodes: &[NodeId],
    over: &[usize],
    under: &[usize],
) -> Option<(usize, usize, usize)> {
    for &i in over {
        for &j in under {
            let best = table
                .iter()
                .enumerate()
                .filter(|(_, reps)| !reps.contains(&j))
                .filter_map(|(p, reps)| {
                    reps.iter()
                        .position(|&x| x == i)
                        .map(|pos| (!fresh[p][pos], pos == 0, mix(p, nodes[i]), p, pos))
                })
                .min();
            if let Some((_, _, _, p, pos)) = best {
                return Some((p, pos, j));
            }
        }
    }
    None
}

/// Hands the primary role of a partition from a node with more than its share of primaries to
/// a replica of the same partition with fewer.
fn spread_primaries(table: &mut [Vec<usize>], nodes: &[NodeId]) {
    let mut primaries = vec![0usize; nodes.len()];
    for reps in table.iter() {
        primaries[reps[0]] += 1;
    }
    // Each swap lowers the spread; a few passes reach the balance the replica sets allow.
    for _ in 0..16 {
        let mut changed = false;
        for reps in table.iter_mut() {
            let current = primaries[reps[0]];
            let candidate = (1..reps.len()).min_by_key(|&k| primaries[reps[k]]);
            if let Some(k) = candidate.filter(|&k| primaries[reps[k]] + 1 < current) {
                primaries[reps[0]] -= 1;
                primaries[reps[k]] += 1;
                reps.swap(0, k);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}
