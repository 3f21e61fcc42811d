//! The simulated cluster's nodes: turmoil hosts running `haze_node::serve` over simulated TCP,
//! each on its own simulated disk, polling an in-process controller as `haze serve
//! --controller` polls the real one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use haze_client::ClientConfig;
use haze_crdt::ActorId;
use haze_node::cluster::{AckPolicy, ClusterView, run_anti_entropy};
use haze_node::{Node, NodeConfig};
use haze_ring::NodeId;
use tokio_util::sync::CancellationToken;

use crate::control::Control;
use crate::disk::SimDisk;
use crate::net::{SimClock, SimDial, SimListener};

pub const PORT: u16 = 7700;
/// How often a node polls the controller.
const POLL: Duration = Duration::from_millis(250);

pub fn host(id: u64) -> String {
    format!("n{id}")
}

/// What the hosts share with the harness: the controller, whether it is up, who is cut off
/// from it, stale views waiting to be delivered, and the simulated time in milliseconds.
#[derive(Clone)]
pub struct Shared {
    pub control: Arc<Mutex<Control>>,
    pub up: Arc<AtomicBool>,
    pub cut: Arc<Mutex<BTreeSet<u64>>>,
    pub stale: Arc<Mutex<BTreeMap<u64, ClusterView>>>,
    pub now_ms: Arc<AtomicU64>,
}

impl Shared {
    pub fn new(control: Control) -> Shared {
        Shared {
            control: Arc::new(Mutex::new(control)),
            up: Arc::new(AtomicBool::new(true)),
            cut: Arc::default(),
            stale: Arc::default(),
            now_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn control(&self) -> std::sync::MutexGuard<'_, Control> {
        self.control.lock().expect("not poisoned")
    }

    /// One poll of the controller by node `id`, if it can reach it; or the delivery of a stale
    /// view the harness left for it.
    fn poll(&self, node: &Arc<Node>, id: u64) {
        if let Some(view) = self.stale.lock().expect("not poisoned").remove(&id) {
            node.install_view(view);
            return;
        }
        if !self.up.load(Ordering::SeqCst) || self.cut.lock().expect("not poisoned").contains(&id) {
            return;
        }
        let now = self.now_ms.load(Ordering::SeqCst);
        self.control().poll(node, NodeId(id), now);
    }
}

/// The disk of every node, by id (index `id - 1`): a crash keeps it, a wipe or a power loss
/// replaces it.
pub type Disks = Vec<Arc<Mutex<Arc<SimDisk>>>>;

pub fn disks(count: usize) -> Disks {
    (0..count)
        .map(|_| Arc::new(Mutex::new(Arc::new(SimDisk::new()))))
        .collect()
}

/// Adds a host for each node `1..=disks.len()`: a node over its disk with quorum
/// acknowledgements, inline writes (only the simulation schedules work), anti-entropy every
/// 2 s, polling the controller every 250 ms. Every start takes a fresh actor id, as `haze serve`
/// does.
pub fn add_hosts(sim: &mut turmoil::Sim<'_>, disks: &Disks, shared: &Shared) {
    let starts = Arc::new(AtomicU64::new(0));
    for (i, slot) in disks.iter().enumerate() {
        let (slot, starts, shared) = (slot.clone(), starts.clone(), shared.clone());
        let id = i as u64 + 1;
        sim.host(host(id), move || {
            let store = slot.lock().expect("not poisoned").clone();
            let shared = shared.clone();
            let actor = ActorId::new(0x5100 + starts.fetch_add(1, Ordering::SeqCst));
            async move {
                let config = NodeConfig {
                    ack: AckPolicy::Quorum,
                    inline_writes: true,
                    dial: Arc::new(SimDial),
                    forward_timeout: Duration::from_millis(500),
                    anti_entropy_interval: Duration::from_secs(2),
                    ..NodeConfig::default()
                };
                let node = Node::start(config, store, actor, Arc::new(SimClock))?;
                node.expect_cluster();
                let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
                let shutdown = CancellationToken::new();
                tokio::spawn(run_anti_entropy(node.clone(), shutdown.clone()));
                let poller = node.clone();
                tokio::spawn(async move {
                    loop {
                        shared.poll(&poller, id);
                        tokio::time::sleep(POLL).await;
                    }
                });
                haze_node::serve(
                    node,
                    SimListener(listener),
                    None::<tokio::net::TcpListener>,
                    shutdown,
                )
                .await?;
                Ok(())
            }
        });
    }
}

/// The workload's client settings: every request has a deadline, and a connection is opened
/// again after a failure.
pub fn client_config() -> ClientConfig {
    ClientConfig {
        dial: Arc::new(SimDial),
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        ..ClientConfig::default()
    }
}
