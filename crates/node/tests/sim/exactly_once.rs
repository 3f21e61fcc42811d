//! A counter addition whose outcome the router cannot know is applied at most once: the
//! primary applies it, copies it to the other replicas, and its answer to the router is lost
//! (a one-way partition); the router must not send it to another replica, which would apply it
//! a second time with its own actor id (docs/cluster.md, "Failover").

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use haze_client::Client;
use haze_controller::MoveLimits;
use haze_crdt::{PnCounter, TypedValue};
use haze_ring::NodeId;
use haze_storage::Store;

use crate::control::Control;
use crate::history::{History, Told, check_counter};
use crate::hosts::{PORT, Shared, add_hosts, client_config, disks, host, run_to_end, simulation};

/// What one run saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Once {
    pub seed: u64,
    /// What the client of the addition was told.
    pub told: Option<Told>,
    /// Each replica's final value of the counter.
    pub values: Vec<i128>,
    /// Increments above what was acknowledged or unknown, summed over replicas.
    pub phantom: u64,
    /// Acknowledged increments missing, summed over replicas.
    pub lost: u64,
}

/// Three nodes, N = 3, a key whose primary is n1, a client of n2: an addition through n2 whose
/// answer from n1 never comes back.
pub fn run(seed: u64) -> Once {
    let addrs: Vec<String> = (1..=3).map(|id| format!("{}:{PORT}", host(id))).collect();
    let control = Control::new(0x0ce, 16, 3, &addrs, 3, MoveLimits::default());
    let table = control.state.table().expect("a table").clone();
    // A key n1 is the primary of, and another to open n2's connection to n1 with.
    let keys: Vec<String> = (0..)
        .map(|i| format!("once{i}"))
        .filter(|k| table.replicas_of_key(k.as_bytes()).first() == Some(&NodeId(1)))
        .take(2)
        .collect();
    let shared = Shared::new(control);
    let disks = disks(3);
    let mut sim = simulation(seed, Duration::from_secs(60));
    add_hosts(&mut sim, &disks, &shared);
    let history = Rc::new(RefCell::new(History::default()));
    let (record, key, warm) = (history.clone(), keys[0].clone(), keys[1].clone());
    sim.client("client", async move {
        tokio::time::sleep(Duration::from_secs(1)).await; // the views arrive
        let via = Client::lazy(&format!("{}:{PORT}", host(2)), client_config());
        // Through n2, which forwards it to n1 and keeps the connection.
        via.counter_add(&warm, 1).await?;
        turmoil::partition_oneway(host(1), host(2));
        let told = Told::of(&via.counter_add(&key, 1).await);
        record.borrow_mut().increment(key.clone(), told);
        turmoil::repair_oneway(host(1), host(2));
        // Anti-entropy (every 2 s) brings every replica to the same state.
        tokio::time::sleep(Duration::from_secs(8)).await;
        Ok(())
    });
    run_to_end(&mut sim, seed, |_| {});
    let history = history.borrow();
    let key = &keys[0];
    let values: Vec<i128> = disks
        .iter()
        .map(|d| {
            let store = d.lock().expect("not poisoned").clone();
            store
                .get(key.as_bytes())
                .ok()
                .flatten()
                .and_then(|v| PnCounter::try_from_value(v).ok())
                .map_or(0, |c| c.value())
        })
        .collect();
    let (mut lost, mut phantom) = (0, 0);
    for value in &values {
        let b = check_counter(&history, key, *value);
        lost += b.lost;
        phantom += b.phantom;
    }
    let told = history.counters.get(key).map(|t| {
        if t.ok > 0 {
            Told::Ok
        } else if t.unknown > 0 {
            Told::Unknown
        } else {
            Told::Failed
        }
    });
    Once {
        seed,
        told,
        values,
        phantom,
        lost,
    }
}
