//! `cargo bench -p haze-client --bench backfill`: what a stream into a node costs the clients
//! writing to it, when the stream is sent as `Copy` (the writer's foreground queue, like clients'
//! writes) and as `Backfill` (its background queue: a few per commit, after the clients' writes).
//!
//! One node runs in this process over a `DiskStore` in a scratch folder. Three streams send
//! batches of 512 fresh keys (100-byte registers, four batches in flight each, as a move's
//! senders do) while eight clients write one key at a time. The phases alternate every second
//! (no stream, `Copy`, `Backfill`), so the machine's noise falls on all three alike; the table
//! gives the clients' write latency in each and the keys streamed per second.

#![allow(clippy::disallowed_methods)] // a benchmark measures wall-clock time
#![allow(clippy::print_stdout)] // and prints it

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use haze_client::{Client, ClientConfig, Scalar};
use haze_crdt::{ActorId, GCounter, ManualClock, MvRegister, Value};
use haze_node::{Node, NodeConfig};
use haze_protocol::{Request, Response, Role};
use haze_storage::DiskStore;

const PHASES: [&str; 3] = ["no stream", "Copy", "Backfill"];
const PHASE_SECS: u64 = 1;
const ROUNDS: u64 = 10;
const STREAMS: usize = 3;
const IN_FLIGHT: usize = 4;
const BATCH_KEYS: usize = 512;
const WRITERS: usize = 8;

/// What one phase saw.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
}

fn streamed_value() -> Value {
    let mut register = MvRegister::new();
    register.set(ActorId::new(1), Scalar::from("v".repeat(100).as_str()));
    Value::MvRegister(register)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i] as f64 / 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), haze_client::Error> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("run with `cargo bench -p haze-client --bench backfill` to measure");
        return Ok(());
    }
    let dir = tempfile::tempdir().expect("a scratch folder");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let http = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("bound").to_string();
    let config = NodeConfig::default();
    let store = DiskStore::open(dir.path(), config.store).expect("a store");
    let node = Node::start(
        config,
        Arc::new(store),
        ActorId::new(7),
        Arc::new(ManualClock::new(0)),
    )
    .expect("a node");
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(haze_node::serve(node, listener, http, stop.clone()));

    // The phase under way: an index into PHASES; past the end, everyone stops.
    let phase = Arc::new(AtomicUsize::new(0));
    let streamed: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
    let tallies: Arc<Mutex<[Tally; 3]>> = Arc::new(Mutex::new(Default::default()));
    let mut tasks = tokio::task::JoinSet::new();
    let next_key = Arc::new(AtomicU64::new(0));
    for _ in 0..STREAMS {
        let local = ClientConfig {
            role: Role::Local,
            ..ClientConfig::default()
        };
        let client = Client::connect_with(&addr, local).await?;
        let (phase, streamed, next_key) = (phase.clone(), streamed.clone(), next_key.clone());
        tasks.spawn(async move {
            let value = streamed_value();
            let mut in_flight = tokio::task::JoinSet::new();
            loop {
                let now = phase.load(Ordering::Relaxed);
                if now >= PHASES.len() * ROUNDS as usize {
                    break;
                }
                let kind = now % PHASES.len();
                if kind == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                let first = next_key.fetch_add(BATCH_KEYS as u64, Ordering::Relaxed);
                let items: Vec<(Vec<u8>, Value)> = (first..first + BATCH_KEYS as u64)
                    .map(|i| (format!("moved:{i:09}").into_bytes(), value.clone()))
                    .collect();
                let (client, streamed) = (client.clone(), streamed.clone());
                in_flight.spawn(async move {
                    let request = if kind == 1 {
                        Request::Copy { items }
                    } else {
                        Request::Backfill { items }
                    };
                    let merged = match client.send(request, true).await {
                        Ok(Response::Acks(acks)) => acks.iter().filter(|r| r.is_ok()).count(),
                        _ => 0,
                    };
                    streamed[kind].fetch_add(merged as u64, Ordering::Relaxed);
                });
                while in_flight.len() >= IN_FLIGHT {
                    in_flight.join_next().await;
                }
            }
            while in_flight.join_next().await.is_some() {}
        });
    }
    for w in 0..WRITERS {
        let client = Client::connect(&addr).await?;
        let (phase, tallies) = (phase.clone(), tallies.clone());
        tasks.spawn(async move {
            let mut counter = GCounter::new();
            for i in 0u64.. {
                let now = phase.load(Ordering::Relaxed);
                if now >= PHASES.len() * ROUNDS as usize {
                    break;
                }
                counter
                    .increment(ActorId::new(w as u64 + 1), 1)
                    .expect("no overflow");
                let started = Instant::now();
                let written = client
                    .merge(format!("client:{w}:{}", i % 1000), counter.clone())
                    .await;
                let took = started.elapsed().as_micros() as u64;
                // A write that straddles a phase change counts for the phase it started in.
                if written.is_ok() {
                    tallies.lock().expect("not poisoned")[now % PHASES.len()]
                        .latencies_us
                        .push(took);
                }
                // About 1,000 writes a second from each: a steady load, not a saturating one.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
    }
    for round in 0..PHASES.len() as u64 * ROUNDS {
        phase.store(round as usize, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(PHASE_SECS)).await;
    }
    phase.store(usize::MAX, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    stop.cancel();

    let mut tallies = tallies.lock().expect("not poisoned");
    let base = {
        let t = &mut tallies[0].latencies_us;
        t.sort_unstable();
        percentile(t, 0.99)
    };
    println!(
        "{ROUNDS} rounds of {PHASE_SECS} s per phase; {STREAMS} streams of {BATCH_KEYS}-key batches \
         ({IN_FLIGHT} in flight each), {WRITERS} clients writing one key at a time\n"
    );
    println!(
        "| phase     | client writes | p50 (ms) | p99 (ms) | p999 (ms) | p99 / no stream | keys streamed/s |"
    );
    println!(
        "|-----------|--------------:|---------:|---------:|----------:|----------------:|----------------:|"
    );
    for (kind, name) in PHASES.iter().enumerate() {
        let t = &mut tallies[kind].latencies_us;
        t.sort_unstable();
        let rate = streamed[kind].load(Ordering::Relaxed) as f64 / (ROUNDS * PHASE_SECS) as f64;
        println!(
            "| {name:<9} | {:>13} | {:>8.2} | {:>8.2} | {:>9.2} | {:>14.1}x | {:>15.0} |",
            t.len(),
            percentile(t, 0.5),
            percentile(t, 0.99),
            percentile(t, 0.999),
            percentile(t, 0.99) / base.max(f64::MIN_POSITIVE),
            rate
        );
    }
    Ok(())
}
