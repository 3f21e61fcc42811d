//! `cargo bench -p haze-crdt`: haze-crdt side by side with the `crdts` crate (7.3), in one run.
//!
//! Each case runs both implementations alternately in rounds and reports the median time per
//! operation of each and their ratio, so machine noise hits both alike. Sizes are encoded bytes:
//! ours is the versioned `Value` encoding; crdts' state is serialised with postcard (LEB128
//! varints, no field names: the most compact serde format at hand).
//!
//! `HAZE_BENCH_ROUNDS` sets the number of rounds (default 15).

#![allow(clippy::disallowed_methods)] // a benchmark measures wall-clock time
#![allow(clippy::print_stdout)] // and prints it

use std::hint::black_box;
use std::time::{Duration, Instant};

use crdts::{CmRDT, CvRDT};
use haze_crdt::{ActorId, Crdt, GCounter, OrSet, Scalar, Value};

/// Runs `f` on fresh inputs from `setup` for about `budget`, returning the mean time per call.
fn time_per_call<I>(
    budget: Duration,
    mut setup: impl FnMut() -> I,
    mut f: impl FnMut(I),
) -> Duration {
    let mut inputs: Vec<I> = (0..8).map(|_| setup()).collect();
    let mut calls = 0u32;
    let mut spent = Duration::ZERO;
    while spent < budget {
        let input = inputs.pop().unwrap_or_else(&mut setup);
        let start = Instant::now();
        f(input);
        spent += start.elapsed();
        calls += 1;
        if inputs.is_empty() {
            inputs = (0..8).map(|_| setup()).collect();
        }
    }
    spent / calls
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Times `ours` and `theirs` alternately and prints one row.
fn compare<I, J>(
    name: &str,
    mut ours_setup: impl FnMut() -> I,
    mut ours: impl FnMut(I),
    mut theirs_setup: impl FnMut() -> J,
    mut theirs: impl FnMut(J),
) {
    let rounds: usize = std::env::var("HAZE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let budget = Duration::from_millis(60);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        a.push(time_per_call(budget, &mut ours_setup, &mut ours));
        b.push(time_per_call(budget, &mut theirs_setup, &mut theirs));
    }
    let (a, b) = (median(a), median(b));
    println!(
        "| {name:<46} | {:>10} | {:>10} | {:>6.2}x |",
        format!("{:.1?}", a),
        format!("{:.1?}", b),
        b.as_secs_f64() / a.as_secs_f64()
    );
}

fn header(title: &str) {
    println!(
        "| {title:<46} | {:>10} | {:>10} | {:>7} |",
        "haze", "crdts", "ratio"
    );
    println!("| {:-<46} | {:->10} | {:->10} | {:->7} |", "", "", "", "");
}

fn size_row(name: &str, ours: usize, theirs: usize) {
    println!(
        "| {name:<46} | {ours:>10} | {theirs:>10} | {:>6.2}x |",
        theirs as f64 / ours as f64
    );
}

// --- OrSet vs Orswot: 10,000 elements each, 50% overlap ------------------------------------

const SET_SIZE: u64 = 10_000;

/// Two replicas sharing 5,000 elements from a common ancestor, each with 5,000 of its own.
fn our_sets() -> (OrSet<u64>, OrSet<u64>) {
    let (base_actor, a_actor, b_actor) = (ActorId::new(1), ActorId::new(2), ActorId::new(3));
    let mut base = OrSet::new();
    for x in 0..SET_SIZE / 2 {
        base.insert(base_actor, x);
    }
    let (mut a, mut b) = (base.clone(), base);
    for x in SET_SIZE / 2..SET_SIZE {
        a.insert(a_actor, x);
        b.insert(b_actor, x + SET_SIZE / 2);
    }
    (a, b)
}

fn their_sets() -> (crdts::Orswot<u64, u64>, crdts::Orswot<u64, u64>) {
    let add = |set: &mut crdts::Orswot<u64, u64>, actor: u64, x: u64| {
        let op = set.add(x, set.read_ctx().derive_add_ctx(actor));
        set.apply(op);
    };
    let mut base = crdts::Orswot::new();
    for x in 0..SET_SIZE / 2 {
        add(&mut base, 1, x);
    }
    let (mut a, mut b) = (base.clone(), base);
    for x in SET_SIZE / 2..SET_SIZE {
        add(&mut a, 2, x);
        add(&mut b, 3, x + SET_SIZE / 2);
    }
    (a, b)
}

// --- GCounter: 1,000 actors ------------------------------------------------------------------

const ACTORS: u64 = 1_000;

fn our_counters() -> (GCounter, GCounter) {
    let (mut a, mut b) = (GCounter::new(), GCounter::new());
    for i in 0..ACTORS {
        a.increment(ActorId::new(i * 7_919), 1 + i % 7).unwrap();
        b.increment(ActorId::new(i * 7_919), 1 + (i * 3) % 11)
            .unwrap();
    }
    (a, b)
}

fn their_counters() -> (crdts::GCounter<u64>, crdts::GCounter<u64>) {
    let (mut a, mut b) = (crdts::GCounter::new(), crdts::GCounter::new());
    for i in 0..ACTORS {
        a.apply(a.inc_many(i * 7_919, 1 + i % 7));
        b.apply(b.inc_many(i * 7_919, 1 + (i * 3) % 11));
    }
    (a, b)
}

// --- A 4 KiB value: a shopping list of 160 items ---------------------------------------------

fn item(i: u64) -> String {
    format!("item {i:03} of the shopping list")
}

fn our_4k() -> Value {
    let mut list = OrSet::new();
    for i in 0..140 {
        list.insert(
            ActorId::new(0x9f1c_0000_0000_0000 + i % 3),
            Scalar::String(item(i)),
        );
    }
    Value::from(list)
}

fn their_4k() -> crdts::Orswot<String, u64> {
    let mut list = crdts::Orswot::new();
    for i in 0..140 {
        let op = list.add(
            item(i),
            list.read_ctx()
                .derive_add_ctx(0x9f1c_0000_0000_0000 + i % 3),
        );
        list.apply(op);
    }
    list
}

fn main() {
    // `cargo test --benches` runs this binary with `--bench` absent: stay quick then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("run with `cargo bench -p haze-crdt` to measure");
        return;
    }
    header("time per operation (median)");

    let (sa, sb) = our_sets();
    let (ta, tb) = their_sets();
    compare(
        "OrSet merge, 2 x 10,000 elements, 50% overlap",
        || (sa.clone(), sb.clone()),
        |(a, b)| drop(black_box(a.merge(b))),
        || (ta.clone(), tb.clone()),
        |(mut a, b)| {
            a.merge(b);
            drop(black_box(a))
        },
    );
    let (ca, cb) = our_counters();
    let (da, db) = their_counters();
    compare(
        "GCounter merge, 1,000 actors",
        || (ca.clone(), cb.clone()),
        |(a, b)| drop(black_box(a.merge(b))),
        || (da.clone(), db.clone()),
        |(mut a, b)| {
            a.merge(b);
            drop(black_box(a))
        },
    );
    let v4 = our_4k();
    let t4 = their_4k();
    let v4_bytes = v4.encode();
    let t4_bytes = postcard::to_allocvec(&t4).unwrap();
    compare(
        "encode a 4 KiB value",
        || &v4,
        |v| drop(black_box(v.encode())),
        || &t4,
        |t| drop(black_box(postcard::to_allocvec(t).unwrap())),
    );
    compare(
        "decode a 4 KiB value",
        || v4_bytes.as_slice(),
        |b| drop(black_box(Value::decode(b).unwrap())),
        || t4_bytes.as_slice(),
        |b| {
            drop(black_box(
                postcard::from_bytes::<crdts::Orswot<String, u64>>(b).unwrap(),
            ))
        },
    );

    println!();
    header("encoded size (bytes)");
    let merged_ours = Value::from(sa.clone().merge(sb.clone()));
    let mut merged_theirs = ta.clone();
    merged_theirs.merge(tb.clone());
    size_row(
        "OrSet, 15,000 elements, 3 actors",
        merged_ours.encode().len(),
        postcard::to_allocvec(&merged_theirs).unwrap().len(),
    );
    size_row(
        "GCounter, 1,000 actors",
        Value::from(ca.merge(cb)).encode().len(),
        postcard::to_allocvec(&{
            let mut m = da.clone();
            m.merge(db.clone());
            m
        })
        .unwrap()
        .len(),
    );
    size_row(
        "the 4 KiB value (OrSet of 140 strings)",
        v4_bytes.len(),
        t4_bytes.len(),
    );
}
