//! One seeded run: a cluster of 3–5 nodes (N = 2 or 3, quorum acknowledgements), a workload of
//! distinct set adds and counter increments through random nodes, and faults scheduled in
//! simulated time (network partitions between nodes, crashes and restarts, one node restarted
//! with an empty disk). After the workload, every fault is healed and anti-entropy runs; then
//! every acknowledged write must be in every replica of its key, and every partition's replicas
//! must hold equal digests.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use haze_client::{Client, ClientConfig};
use haze_crdt::{ActorId, OrSet, PnCounter, Scalar, TypedValue};
use haze_node::cluster::{AckPolicy, ClusterView, run_anti_entropy};
use haze_node::{Node, NodeConfig};
use haze_ring::{NodeId, PartitionId, PartitionTable};
use haze_storage::{DIGEST_BUCKETS, MemStore, Store, StoreConfig};
use tokio_util::sync::CancellationToken;

use crate::net::{SimClock, SimDial, SimListener};

const PORT: u16 = 7700;
/// How long the workload writes; every fault starts and ends within it.
const WORKLOAD: Duration = Duration::from_secs(20);
/// How long the healed cluster runs afterwards (anti-entropy every 2 s).
const HEAL: Duration = Duration::from_secs(16);
const KEYS: u64 = 8;

/// A small deterministic generator (splitmix64): the scenario depends on the seed alone.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from))
    }
}

#[derive(Debug, Clone, Copy)]
enum Event {
    Partition(u64, u64),
    Repair(u64, u64),
    Crash(u64),
    Wipe(u64),
    Restart(u64),
}

impl Event {
    /// Whether this event starts a fault (the others end one).
    fn is_fault(self) -> bool {
        matches!(
            self,
            Event::Partition(..) | Event::Crash(_) | Event::Wipe(_)
        )
    }
}

/// What one run did and what held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub seed: u64,
    pub nodes: u64,
    pub replicas: usize,
    pub faults: usize,
    pub events_fired: usize,
    pub events_planned: usize,
    pub acked_adds: usize,
    pub acked_increments: u64,
    /// Acknowledged writes missing from at least one replica of their key.
    pub lost: usize,
    /// Partitions whose replicas' digests differ after healing.
    pub divergent: usize,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {} nodes {} N={} faults {} events {}/{} acked: {} set adds, {} increments; \
             lost {}, divergent partitions {}",
            self.seed,
            self.nodes,
            self.replicas,
            self.faults,
            self.events_fired,
            self.events_planned,
            self.acked_adds,
            self.acked_increments,
            self.lost,
            self.divergent
        )
    }
}

#[derive(Default)]
struct Acked {
    adds: Vec<(String, String)>,
    increments: BTreeMap<String, u64>,
}

fn host(id: u64) -> String {
    format!("n{id}")
}

/// Plans the faults: one node restarted with an empty disk, one to three partitions between
/// two nodes, up to two crashes of other nodes; each ends before the workload does.
fn schedule(rng: &mut Rng, nodes: u64) -> Vec<(Duration, Event)> {
    let mut events = Vec::new();
    let window = WORKLOAD.as_millis() as u64 - 3_000;
    let wiped = 1 + rng.below(nodes);
    let at = rng.millis(2_000, window);
    events.push((at, Event::Wipe(wiped)));
    events.push((at + rng.millis(200, 2_000), Event::Restart(wiped)));
    for _ in 0..1 + rng.below(3) {
        let a = 1 + rng.below(nodes);
        let b = 1 + (a + rng.below(nodes - 1)) % nodes;
        let at = rng.millis(500, window);
        events.push((at, Event::Partition(a, b)));
        events.push((at + rng.millis(300, 3_000), Event::Repair(a, b)));
    }
    let crashes = rng.below(3);
    for c in 0..crashes {
        let node = 1 + (wiped + c) % nodes;
        if node == wiped {
            continue;
        }
        let at = rng.millis(500, window);
        events.push((at, Event::Crash(node)));
        events.push((at + rng.millis(200, 3_000), Event::Restart(node)));
    }
    events.sort_by_key(|(at, _)| *at);
    events
}

/// Runs the scenario of `seed`.
pub fn run(seed: u64) -> Outcome {
    let mut rng = Rng(seed);
    let nodes = 3 + rng.below(3);
    let replicas = 2 + rng.below(2) as usize;
    let ids: Vec<NodeId> = (1..=nodes).map(NodeId).collect();
    let table = PartitionTable::place(None, &ids, 16, replicas).expect("a table");
    let addrs: BTreeMap<NodeId, String> = ids
        .iter()
        .map(|id| (*id, format!("{}:{PORT}", host(id.0))))
        .collect();
    let stores: Vec<Arc<Mutex<Arc<MemStore>>>> = ids
        .iter()
        .map(|_| Arc::new(Mutex::new(Arc::new(MemStore::new(StoreConfig::default())))))
        .collect();
    let starts = Arc::new(AtomicU64::new(0));
    let mut events = schedule(&mut rng, nodes);
    let planned = events.len();
    let faults = events.iter().filter(|(_, e)| e.is_fault()).count();

    let mut sim = turmoil::Builder::new()
        .simulation_duration(WORKLOAD + HEAL + Duration::from_secs(60))
        .epoch(UNIX_EPOCH + Duration::from_secs(1_790_000_000))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(10))
        .rng_seed(seed)
        .build();

    for (i, id) in ids.iter().enumerate() {
        let (slot, starts) = (stores[i].clone(), starts.clone());
        let view = ClusterView {
            cluster: 0x5eed,
            me: *id,
            table: table.clone(),
            addrs: addrs.clone(),
            transition: None,
        };
        sim.host(host(id.0), move || {
            let store = slot.lock().expect("not poisoned").clone();
            let view = view.clone();
            // Every start takes a fresh actor id, as `haze serve` does.
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
                node.install_view(view);
                let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
                let shutdown = CancellationToken::new();
                tokio::spawn(run_anti_entropy(node.clone(), shutdown.clone()));
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

    let acked = Rc::new(RefCell::new(Acked::default()));
    let record = acked.clone();
    let mut load = Rng(seed ^ 0x10ad);
    let targets: Vec<String> = addrs.values().cloned().collect();
    sim.client("workload", async move {
        let config = ClientConfig {
            dial: Arc::new(SimDial),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(2),
            ..ClientConfig::default()
        };
        let clients: Vec<Client> = targets
            .iter()
            .map(|a| Client::lazy(a, config.clone()))
            .collect();
        let end = tokio::time::Instant::now() + WORKLOAD;
        let mut i = 0u64;
        while tokio::time::Instant::now() < end {
            let via = &clients[load.below(clients.len() as u64) as usize];
            if load.below(2) == 0 {
                let (key, member) = (format!("set{}", load.below(KEYS)), format!("m{i}"));
                if via
                    .set_add(&key, [Scalar::from(member.as_str())])
                    .await
                    .is_ok()
                {
                    record.borrow_mut().adds.push((key, member));
                }
            } else {
                let key = format!("ctr{}", load.below(KEYS));
                if via.counter_add(&key, 1).await.is_ok() {
                    *record.borrow_mut().increments.entry(key).or_default() += 1;
                }
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(HEAL).await;
        Ok(())
    });

    let mut fired = 0;
    loop {
        while events.first().is_some_and(|(at, _)| sim.elapsed() >= *at) {
            let (_, event) = events.remove(0);
            match event {
                Event::Partition(a, b) => sim.partition(host(a), host(b)),
                Event::Repair(a, b) => sim.repair(host(a), host(b)),
                Event::Crash(a) => sim.crash(host(a)),
                Event::Wipe(a) => {
                    sim.crash(host(a));
                    *stores[a as usize - 1].lock().expect("not poisoned") =
                        Arc::new(MemStore::new(StoreConfig::default()));
                }
                Event::Restart(a) => sim.bounce(host(a)),
            }
            fired += 1;
        }
        match sim.step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => panic!("seed {seed}: the simulation failed: {e}"),
        }
    }

    let stores: Vec<Arc<MemStore>> = stores
        .iter()
        .map(|s| s.lock().expect("not poisoned").clone())
        .collect();
    let acked = acked.borrow();
    let replicas_of = |key: &str| -> Vec<Arc<MemStore>> {
        table
            .replicas_of_key(key.as_bytes())
            .iter()
            .map(|r| stores[r.0 as usize - 1].clone())
            .collect()
    };
    let mut lost = 0;
    for (key, member) in &acked.adds {
        let member = Scalar::from(member.as_str());
        let held = replicas_of(key).iter().all(|store| {
            store
                .get(key.as_bytes())
                .ok()
                .flatten()
                .and_then(|v| OrSet::<Scalar>::try_from_value(v).ok())
                .is_some_and(|set| set.contains(&member))
        });
        lost += usize::from(!held);
    }
    for (key, count) in &acked.increments {
        for store in replicas_of(key) {
            let value = store
                .get(key.as_bytes())
                .ok()
                .flatten()
                .and_then(|v| PnCounter::try_from_value(v).ok())
                .map_or(0, |c| c.value());
            // Every acknowledged increment is there (unacknowledged ones may be too).
            lost += usize::try_from(i128::from(*count) - value).unwrap_or(0);
        }
    }
    let digests: Vec<Vec<u64>> = stores
        .iter()
        .map(|s| s.bucket_digests().expect("memory"))
        .collect();
    let per_partition = DIGEST_BUCKETS / table.partitions() as usize;
    let divergent = (0..table.partitions())
        .filter(|p| {
            let range = *p as usize * per_partition..(*p as usize + 1) * per_partition;
            let replicas = table.replicas(PartitionId(*p));
            replicas.windows(2).any(|w| {
                digests[w[0].0 as usize - 1][range.clone()]
                    != digests[w[1].0 as usize - 1][range.clone()]
            })
        })
        .count();
    Outcome {
        seed,
        nodes,
        replicas,
        faults,
        events_fired: fired,
        events_planned: planned,
        acked_adds: acked.adds.len(),
        acked_increments: acked.increments.values().sum(),
        lost,
        divergent,
    }
}
