//! `cargo bench -p haze-client --bench sync`: time and bytes to sync 10,000 keys with a node, when
//! nothing changed, when 1% changed, and when all changed.
//!
//! The node runs in this process on loopback, over an in-memory store (the figures are about
//! the sync protocol, not the disk). Keys look like an app's: `user:42/item:00000` and on.

#![allow(clippy::disallowed_methods)] // a benchmark measures wall-clock time
#![allow(clippy::print_stdout)] // and prints it

use std::sync::Arc;
use std::time::Instant;

use haze_client::{Client, Replica, Scalar, SyncReport};
use haze_crdt::{ActorId, ManualClock};
use haze_node::{Node, NodeConfig};
use haze_storage::MemStore;

const KEYS: usize = 10_000;

fn key(i: usize) -> String {
    format!("user:42/item:{i:05}")
}

fn row(case: &str, report: &SyncReport, secs: f64, full: u64) {
    println!(
        "| {case:<28} | {:>6} | {:>6} | {:>8.1} ms | {:>10} | {:>10} | {:>6.2}% |",
        report.checked,
        report.sent,
        secs * 1e3,
        report.bytes_sent,
        report.bytes_received,
        100.0 * report.bytes_sent as f64 / full as f64
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), haze_client::Error> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("run with `cargo bench -p haze-client --bench sync` to measure");
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let http = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("bound").to_string();
    let config = NodeConfig::default();
    let node = Node::start(
        config.clone(),
        Arc::new(MemStore::new(config.store)),
        ActorId::new(7),
        Arc::new(ManualClock::new(0)),
    )
    .expect("a node");
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(haze_node::serve(node, listener, http, stop.clone()));
    let client = Client::connect(&addr).await?;

    let dir = tempfile::tempdir().expect("a temp dir");
    let mut phone = Replica::open(
        &dir.path().join("phone.haze"),
        ActorId::new(0x9f1c),
        Arc::new(ManualClock::new(0)),
    )?;
    // Build the replica in memory through merges, then save once (10,000 saves would measure
    // the file system, not the sync).
    for i in 0..KEYS {
        let mut set = haze_crdt::OrSet::new();
        for item in ["milk", "eggs", "bread"] {
            set.insert(phone.actor(), Scalar::from(item));
        }
        phone.merge(key(i), haze_crdt::Value::from(set))?;
    }

    println!(
        "| case                         |   keys |   sent |     time |  bytes out |   bytes in | out / full |"
    );
    println!(
        "| ---------------------------- | ------ | ------ | -------- | ---------- | ---------- | ------ |"
    );
    let timed = |r: SyncReport, t: Instant| (r, t.elapsed().as_secs_f64());
    let started = Instant::now();
    let (full, secs) = timed(phone.sync(&client).await?, started);
    let full_bytes = full.bytes_sent;
    row("first sync (all new)", &full, secs, full_bytes);

    let started = Instant::now();
    let (same, secs) = timed(phone.sync(&client).await?, started);
    row("nothing changed", &same, secs, full_bytes);

    for i in (0..KEYS).step_by(100) {
        phone.set_add(key(i), [Scalar::from("coffee")])?;
    }
    let started = Instant::now();
    let (some, secs) = timed(phone.sync(&client).await?, started);
    row("1% changed", &some, secs, full_bytes);

    for i in 0..KEYS {
        let mut set = haze_crdt::OrSet::new();
        set.insert(ActorId::new(0x77), Scalar::from("tea"));
        phone.merge(key(i), haze_crdt::Value::from(set))?;
    }
    let started = Instant::now();
    let (all, secs) = timed(phone.sync(&client).await?, started);
    row("all changed", &all, secs, full_bytes);
    stop.cancel();
    Ok(())
}
