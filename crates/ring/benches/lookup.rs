//! `cargo bench -p haze-ring`: the cost of finding a key's replicas (a hash and an index), and of
//! placing a table.

#![allow(clippy::disallowed_methods)] // a benchmark measures wall-clock time
#![allow(clippy::print_stdout)] // and prints it

use std::hint::black_box;
use std::time::Instant;

use haze_ring::{NodeId, PartitionTable};

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("run with `cargo bench -p haze-ring` to measure");
        return;
    }
    let nodes: Vec<NodeId> = (1..=100).map(NodeId).collect();
    let keys: Vec<Vec<u8>> = (0..100_000)
        .map(|i| format!("user:{i}/list").into_bytes())
        .collect();
    for q in [256u32, 4096] {
        let started = Instant::now();
        let table = PartitionTable::place(None, &nodes, q, 3).expect("a table");
        let placed = started.elapsed();
        let mut best = f64::MAX;
        for _ in 0..5 {
            let started = Instant::now();
            let mut acc = 0u64;
            for key in &keys {
                acc = acc.wrapping_add(black_box(table.replicas_of_key(key))[0].0);
            }
            black_box(acc);
            best = best.min(started.elapsed().as_secs_f64() / keys.len() as f64);
        }
        println!(
            "Q = {q:>4}, 100 nodes, N = 3: key -> replicas {:>5.1} ns (keys like user:123/list, best of 5 x 100,000); placing the table {:.1} ms",
            best * 1e9,
            placed.as_secs_f64() * 1e3
        );
    }
}
