//! Metadata growth: an `OrSet` keeps no tombstones, so its encoding is bounded by its live
//! elements and its actors, not by its history.

use haze_crdt::{ActorId, Crdt, OrSet, Scalar, Value};

/// The documented bound (docs/storage-format.md, "Size bounds"): an encoded `OrSet` of
/// `A` actors and `L` live elements, each kept alive by at most `D` dots, with element payloads
/// of at most `P` bytes, takes at most `8 + 21·A + L·(2 + P + 12·D)` bytes: a 10-byte actor delta
/// and 11-byte count per actor, and per element a header, payload and dots (index ≤ 2 bytes,
/// counter ≤ 10 bytes), plus the version, the type and two counts of up to 3 bytes each.
fn bound(actors: usize, live: usize, max_dots: usize, max_payload: usize) -> usize {
    8 + 21 * actors + live * (2 + max_payload + 12 * max_dots)
}

#[test]
#[allow(clippy::print_stdout)] // the figures are the point: CI shows this test's output
fn ten_thousand_add_remove_cycles_from_100_actors_stay_within_the_bound() {
    const ACTORS: usize = 100;
    const CYCLES: usize = 10_000;
    const ELEMENTS: u64 = 64;
    let actors: Vec<ActorId> = (0..ACTORS as u64)
        .map(|i| ActorId::new(0x51ed_270b_u64.wrapping_mul(i + 1)))
        .collect();
    let mut replicas: Vec<OrSet<Scalar>> = vec![OrSet::new(); ACTORS];
    // A deterministic pseudo-random walk (xorshift), so the test replays exactly.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for cycle in 0..CYCLES {
        let i = (next() % ACTORS as u64) as usize;
        let item = Scalar::UInt(next() % ELEMENTS);
        replicas[i].insert(actors[i], item);
        let removed = Scalar::UInt(next() % ELEMENTS);
        replicas[i].remove(&removed);
        // Gossip: every cycle one replica merges another's state.
        let j = (next() % ACTORS as u64) as usize;
        let message = replicas[i].clone();
        replicas[j].merge_from(message);
        if cycle % 1_000 == 999 {
            let size = Value::from(replicas[j].clone()).encode().len();
            let live = replicas[j].len();
            let max_dots = replicas[j]
                .entries()
                .map(|(_, d)| d.len())
                .max()
                .unwrap_or(0);
            assert!(
                size <= bound(ACTORS, live, max_dots, 10),
                "cycle {cycle}: {size} bytes"
            );
        }
    }
    let merged = replicas.into_iter().fold(OrSet::new(), OrSet::merge);
    let size = Value::from(merged.clone()).encode().len();
    let live = merged.len();
    let max_dots = merged.entries().map(|(_, d)| d.len()).max().unwrap_or(0);
    let limit = bound(ACTORS, live, max_dots, 10);
    println!(
        "or_set growth: {CYCLES} add/remove cycles by {ACTORS} actors -> {live} live elements, \
         at most {max_dots} dots each, {size} bytes encoded (bound {limit}, {} bytes per live element \
         and actor)",
        size / (live + ACTORS)
    );
    assert!(size <= limit, "{size} > {limit}");
    // Independent of history: the encoding is far smaller than one byte per operation.
    assert!(size < CYCLES, "{size} bytes for {CYCLES} cycles");
}
