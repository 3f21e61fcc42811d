//! The phone-and-laptop story, end to end: two devices edit a shopping list, a counter and a
//! title offline (with a concurrent add and remove of the same item), sync through a Haze node,
//! and converge; then the node loses its data and the devices restore it.
//!
//! `cargo run -p haze-client --example phone_and_laptop`
//!
//! The node runs inside this process (an in-memory store, so that "losing its disk" is a
//! restart); with a real node, pass its address to `Client::connect` instead.

#![allow(clippy::print_stdout)] // an example prints

use std::sync::Arc;

use haze_client::{Client, Replica, Scalar};
use haze_crdt::{ActorId, LwwRegister, ManualClock, OrSet, PnCounter};
use haze_node::{Node, NodeConfig};
use haze_storage::MemStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Starts a node with an empty in-memory store; returns its address and its stop switch.
async fn start_node() -> (String, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let http = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("bound").to_string();
    let config = NodeConfig::default();
    let node = Node::start(
        config.clone(),
        Arc::new(MemStore::new(config.store)),
        ActorId::new(0x0de),
        Arc::new(ManualClock::new(0)),
    )
    .expect("the node starts");
    let stop = CancellationToken::new();
    tokio::spawn(haze_node::serve(node, listener, http, stop.clone()));
    (addr, stop)
}

fn show(name: &str, device: &Replica) -> Result<(), haze_client::Error> {
    let list: OrSet<Scalar> = device.get_typed("list")?.unwrap_or_default();
    let visits: PnCounter = device.get_typed("visits")?.unwrap_or_default();
    let title: LwwRegister<Scalar> = device.get_typed("title")?.unwrap_or_default();
    let items: Vec<String> = list.iter().map(ToString::to_string).collect();
    let title = title.get().map(ToString::to_string).unwrap_or_default();
    println!(
        "  {name:<7} title={title:?} list={items:?} visits={}",
        visits.value()
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), haze_client::Error> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // Each device keeps its replica in a file, with its own actor id (64 random bits in an app;
    // fixed here so the output is the same every run), and its own clock.
    let clock = Arc::new(ManualClock::new(1_764_133_200_000));
    let mut phone = Replica::open(
        &dir.path().join("phone.haze"),
        ActorId::new(0x9f1c_2e07_b3a5_0d41),
        clock.clone(),
    )?;
    let mut laptop = Replica::open(
        &dir.path().join("laptop.haze"),
        ActorId::new(0x4ab2_91f0_6c3d_e852),
        clock.clone(),
    )?;
    let (addr, stop) = start_node().await;
    let store = Client::connect(&addr).await?;

    println!("The phone starts a list and syncs; the laptop fetches it by name:");
    phone.set_add("list", [Scalar::from("milk"), Scalar::from("coffee")])?;
    phone.sync(&store).await?;
    laptop.fetch(&store, "list").await?;
    show("phone", &phone)?;
    show("laptop", &laptop)?;

    println!("\nOffline, both edit (the phone buys the milk while the laptop adds milk again):");
    phone.set_remove("list", [Scalar::from("milk")])?;
    phone.set_add("list", [Scalar::from("bread")])?;
    phone.counter_add("visits", 2)?;
    laptop.set_add("list", [Scalar::from("milk"), Scalar::from("eggs")])?;
    laptop.counter_add("visits", 3)?;
    clock.advance(60_000);
    laptop.register_set("title", "Groceries (Saturday)")?;
    show("phone", &phone)?;
    show("laptop", &laptop)?;

    println!("\nBoth sync twice (learning each other's keys by name):");
    for _ in 0..2 {
        for key in ["list", "visits", "title"] {
            phone.fetch(&store, key).await?;
            laptop.fetch(&store, key).await?;
        }
        let report = phone.sync(&store).await?;
        println!(
            "  phone:  {} keys checked, {} sent, {} updated",
            report.checked, report.sent, report.updated
        );
        let report = laptop.sync(&store).await?;
        println!(
            "  laptop: {} keys checked, {} sent, {} updated",
            report.checked, report.sent, report.updated
        );
    }
    show("phone", &phone)?;
    show("laptop", &laptop)?;
    println!(
        "  The milk stays: the laptop's add was concurrent with the phone's remove (add wins)."
    );

    println!("\nThe node loses its data; the devices' next syncs restore it:");
    stop.cancel();
    let (addr, stop) = start_node().await;
    let store = Client::connect(&addr).await?;
    println!(
        "  the store holds list: {}",
        store.get("list").await?.is_some()
    );
    phone.sync(&store).await?;
    laptop.sync(&store).await?;
    let list: OrSet<Scalar> = store.get_typed("list").await?.unwrap_or_default();
    let visits: PnCounter = store.get_typed("visits").await?.unwrap_or_default();
    println!(
        "  the store holds list={:?} visits={}",
        list.iter().map(ToString::to_string).collect::<Vec<_>>(),
        visits.value()
    );
    stop.cancel();
    Ok(())
}
