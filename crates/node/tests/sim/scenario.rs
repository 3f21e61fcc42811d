//! One seeded run: a cluster of 3–5 nodes (N = 2 or 3, quorum acknowledgements) with a
//! controller, a workload of distinct set adds and counter increments through random nodes with
//! reads of acknowledged keys, two membership changes committed mid-workload (a spare node is
//! added; while that runs, a member is removed), and faults scheduled in simulated time (network
//! partitions between nodes, crashes and restarts, one node restarted with an empty disk, the
//! controller crashed and restarted, nodes cut off from the controller). After the workload,
//! every fault is healed, the changes finish and anti-entropy runs; then every acknowledged write
//! must be in every replica of its key in the final table, every partition's replicas must hold
//! equal digests, and no read of an acknowledged key may have found nothing.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use haze_client::{Client, ClientConfig};
use haze_controller::{Change, MoveLimits};
use haze_crdt::{ActorId, OrSet, PnCounter, Scalar, TypedValue};
use haze_node::cluster::{AckPolicy, run_anti_entropy};
use haze_node::{Node, NodeConfig};
use haze_ring::{NodeId, PartitionId};
use haze_storage::{DIGEST_BUCKETS, MemStore, Store, StoreConfig};
use tokio_util::sync::CancellationToken;

use crate::control::Control;
use crate::net::{SimClock, SimDial, SimListener};

const PORT: u16 = 7700;
/// How long the workload writes; every fault starts and ends within it.
const WORKLOAD: Duration = Duration::from_secs(20);
/// How long the healed cluster runs afterwards (anti-entropy every 2 s; the changes finish).
const HEAL: Duration = Duration::from_secs(24);
/// How often a node polls the controller.
const POLL: Duration = Duration::from_millis(250);
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
    /// The controller crashes: nodes cannot reach it, and what it was told is lost.
    ControllerCrash,
    /// It restarts from what it had saved.
    ControllerRestart,
    /// A node cannot reach the controller.
    Cut(u64),
    Uncut(u64),
    /// Commit the spare node's addition.
    AddSpare,
    /// Commit the removal of a member (while the addition still runs).
    Remove(u64),
    /// Crash the sending (`true`) or receiving node of a stream under way, if one is, for
    /// this many milliseconds.
    CrashMover(bool, u64),
    /// Cut the two ends of a stream under way apart for this many milliseconds.
    PartitionMovers(u64),
}

impl Event {
    /// Whether this event starts a fault (the others end one, or change membership).
    fn is_fault(self) -> bool {
        matches!(
            self,
            Event::Partition(..)
                | Event::Crash(_)
                | Event::Wipe(_)
                | Event::ControllerCrash
                | Event::Cut(_)
                | Event::CrashMover(..)
                | Event::PartitionMovers(_)
        )
    }
}

/// Which faults a run injects: all, or only those of the controller (with the membership changes
/// alone, no read may go back in time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Faults {
    All,
    ControllerOnly,
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
    /// Partitions whose replicas changed (both changes together).
    pub migrations: usize,
    /// Faults that hit the two ends of a stream under way (crashes, partitions).
    pub movers_hit: usize,
    /// Times a move's streams were re-planned, and controller restarts.
    pub resumes: u64,
    /// Reads of keys with acknowledged writes, and how many found nothing or less than had
    /// been acknowledged before they started.
    pub reads: u64,
    pub not_found: u64,
    pub stale: u64,
    /// Acknowledged writes missing from at least one replica of their key.
    pub lost: usize,
    /// Partitions whose replicas' digests differ after healing.
    pub divergent: usize,
    /// Copies of partitions left on members that are not their replicas after healing (a
    /// node down when its moved partition was cleaned up keeps it until it hands it back).
    pub leftovers: usize,
    /// Whether a change was still running at the end.
    pub unfinished: bool,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {} nodes {} N={} faults {} events {}/{} migrations {} (faults on streams {}) \
             resumes {} acked: {} set adds, {} increments; reads {} (not found {}, stale {}); \
             lost {}, divergent partitions {}, leftover copies {}{}",
            self.seed,
            self.nodes,
            self.replicas,
            self.faults,
            self.events_fired,
            self.events_planned,
            self.migrations,
            self.movers_hit,
            self.resumes,
            self.acked_adds,
            self.acked_increments,
            self.reads,
            self.not_found,
            self.stale,
            self.lost,
            self.divergent,
            self.leftovers,
            if self.unfinished { ", UNFINISHED" } else { "" }
        )
    }
}

#[derive(Default)]
struct Acked {
    adds: Vec<(String, String)>,
    increments: BTreeMap<String, u64>,
    reads: u64,
    not_found: u64,
    stale: u64,
}

fn host(id: u64) -> String {
    format!("n{id}")
}

/// Plans the membership changes (the spare node added, a member removed while that runs) and
/// the controller's faults (a crash, nodes cut off from it), then with `Faults::All` the nodes'
/// faults: one node restarted with an empty disk, one to three partitions between two nodes, up
/// to two crashes of other nodes. Each fault ends before the workload does.
fn schedule(rng: &mut Rng, nodes: u64, faults: Faults) -> Vec<(Duration, Event)> {
    let mut events = Vec::new();
    let window = WORKLOAD.as_millis() as u64 - 3_000;
    let add = rng.millis(1_000, 5_000);
    events.push((add, Event::AddSpare));
    events.push((
        add + rng.millis(300, 3_000),
        Event::Remove(1 + rng.below(nodes)),
    ));
    let at = rng.millis(2_000, window);
    events.push((at, Event::ControllerCrash));
    events.push((at + rng.millis(300, 3_000), Event::ControllerRestart));
    for _ in 0..1 + rng.below(2) {
        let node = 1 + rng.below(nodes + 1);
        let at = rng.millis(1_000, window);
        events.push((at, Event::Cut(node)));
        events.push((at + rng.millis(300, 3_000), Event::Uncut(node)));
    }
    if faults == Faults::ControllerOnly {
        events.sort_by_key(|(at, _)| *at);
        return events;
    }
    // The two ends of a stream: crashed (the source, then the receiver) and cut apart, while
    // the addition streams.
    events.push((
        add + rng.millis(300, 2_000),
        Event::CrashMover(true, rng.below(2_000) + 300),
    ));
    events.push((
        add + rng.millis(2_500, 5_000),
        Event::CrashMover(false, rng.below(2_000) + 300),
    ));
    events.push((
        add + rng.millis(500, 4_000),
        Event::PartitionMovers(rng.below(2_000) + 300),
    ));
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

/// What the hosts share with the harness: the controller, whether it is up, who is cut off
/// from it, and the simulated time in milliseconds.
#[derive(Clone)]
struct Shared {
    control: Arc<Mutex<Control>>,
    up: Arc<std::sync::atomic::AtomicBool>,
    cut: Arc<Mutex<std::collections::BTreeSet<u64>>>,
    now_ms: Arc<AtomicU64>,
}

impl Shared {
    /// One poll of the controller by node `id`, if it can reach it.
    fn poll(&self, node: &Arc<Node>, id: u64) {
        if !self.up.load(Ordering::SeqCst) || self.cut.lock().expect("not poisoned").contains(&id) {
            return;
        }
        let now = self.now_ms.load(Ordering::SeqCst);
        self.control
            .lock()
            .expect("not poisoned")
            .poll(node, NodeId(id), now);
    }
}

/// The sending and receiving node of the first stream under way, if any.
fn streaming_ends(control: &Control) -> Option<(u64, u64)> {
    let t = control.state.transition()?;
    let m = t
        .moves
        .iter()
        .find(|m| m.state == haze_ring::MoveState::Streaming)?;
    let s = m.streams.first()?;
    Some((s.source.0, s.to.0))
}

/// Runs the scenario of `seed` with every kind of fault.
pub fn run(seed: u64) -> Outcome {
    run_with(seed, Faults::All)
}

/// Runs the scenario of `seed`.
pub fn run_with(seed: u64, faults_of: Faults) -> Outcome {
    let mut rng = Rng(seed);
    let nodes = 3 + rng.below(3);
    let replicas = 2 + rng.below(2) as usize;
    // Members 1..=nodes hold partitions; one more is the spare the run adds.
    let ids: Vec<NodeId> = (1..=nodes + 1).map(NodeId).collect();
    let addrs: BTreeMap<NodeId, String> = ids
        .iter()
        .map(|id| (*id, format!("{}:{PORT}", host(id.0))))
        .collect();
    let limits = MoveLimits {
        partitions: 2,
        per_node: 2,
        rate: 0,
        grace_ms: 3_000,
        dead_after_ms: 4_000,
        stuck_after_ms: 60_000,
    };
    let shared = Shared {
        control: Arc::new(Mutex::new(Control::new(
            0x5eed,
            16,
            replicas,
            &addrs.values().cloned().collect::<Vec<_>>(),
            nodes as usize,
            limits,
        ))),
        up: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        cut: Arc::default(),
        now_ms: Arc::new(AtomicU64::new(0)),
    };
    let first_table = shared
        .control
        .lock()
        .expect("not poisoned")
        .state
        .table()
        .expect("a table")
        .clone();
    let stores: Vec<Arc<Mutex<Arc<MemStore>>>> = ids
        .iter()
        .map(|_| Arc::new(Mutex::new(Arc::new(MemStore::new(StoreConfig::default())))))
        .collect();
    let starts = Arc::new(AtomicU64::new(0));
    let mut events = schedule(&mut rng, nodes, faults_of);
    let mut planned = events.len();
    let faults = events.iter().filter(|(_, e)| e.is_fault()).count();

    let mut sim = turmoil::Builder::new()
        .simulation_duration(WORKLOAD + HEAL + Duration::from_secs(60))
        .epoch(UNIX_EPOCH + Duration::from_secs(1_790_000_000))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(10))
        .rng_seed(seed)
        .build();

    for (i, id) in ids.iter().enumerate() {
        let (slot, starts, shared) = (stores[i].clone(), starts.clone(), shared.clone());
        let id = id.0;
        sim.host(host(id), move || {
            let store = slot.lock().expect("not poisoned").clone();
            let shared = shared.clone();
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
                node.expect_cluster();
                let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
                let shutdown = CancellationToken::new();
                tokio::spawn(run_anti_entropy(node.clone(), shutdown.clone()));
                // As `haze serve --controller` does: poll for the table and the change under
                // way, reporting progress.
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
            if load.below(3) == 0 {
                // Read back a counter with acknowledged increments: never absent, never less.
                let key = format!("ctr{}", load.below(KEYS));
                let want = record.borrow().increments.get(&key).copied().unwrap_or(0);
                if want > 0 {
                    let read = via.get(&key).await;
                    let mut r = record.borrow_mut();
                    match read {
                        Ok(None) => {
                            r.reads += 1;
                            r.not_found += 1;
                        }
                        Ok(Some(v)) => {
                            r.reads += 1;
                            let got = PnCounter::try_from_value(v).map_or(0, |c| c.value());
                            if got < i128::from(want) {
                                r.stale += 1;
                            }
                        }
                        Err(_) => {}
                    }
                }
            } else if load.below(2) == 0 {
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
    let mut restarts = 0u64;
    // Nodes crashed now (a crash of one already down is skipped), events that faults on the
    // ends of a stream scheduled, and how many such faults found a stream to hit.
    let mut down = std::collections::BTreeSet::new();
    let mut later: Vec<(u64, Event)> = Vec::new();
    let mut movers_hit = 0usize;
    loop {
        shared
            .now_ms
            .store(sim.elapsed().as_millis() as u64, Ordering::SeqCst);
        while events.first().is_some_and(|(at, _)| sim.elapsed() >= *at) {
            let (_, event) = events.remove(0);
            let now = sim.elapsed().as_millis() as u64;
            let mut control = shared.control.lock().expect("not poisoned");
            match event {
                Event::AddSpare => control.commit(Change {
                    add: vec![NodeId(nodes + 1)],
                    remove: vec![],
                }),
                Event::Remove(n) => control.commit(Change {
                    add: vec![],
                    remove: vec![NodeId(n)],
                }),
                Event::ControllerCrash => shared.up.store(false, Ordering::SeqCst),
                Event::ControllerRestart => {
                    control.restart(now);
                    restarts += 1;
                    shared.up.store(true, Ordering::SeqCst);
                }
                Event::Cut(n) => {
                    shared.cut.lock().expect("not poisoned").insert(n);
                }
                Event::Uncut(n) => {
                    shared.cut.lock().expect("not poisoned").remove(&n);
                }
                Event::Partition(a, b) => sim.partition(host(a), host(b)),
                Event::Repair(a, b) => sim.repair(host(a), host(b)),
                Event::Crash(a) => {
                    if down.insert(a) {
                        sim.crash(host(a));
                    }
                }
                Event::Wipe(a) => {
                    if down.insert(a) {
                        sim.crash(host(a));
                    }
                    *stores[a as usize - 1].lock().expect("not poisoned") =
                        Arc::new(MemStore::new(StoreConfig::default()));
                }
                Event::Restart(a) => {
                    down.remove(&a);
                    sim.bounce(host(a));
                }
                Event::CrashMover(source, ms) => {
                    if let Some((from, to)) = streaming_ends(&control) {
                        let victim = if source { from } else { to };
                        if down.insert(victim) {
                            sim.crash(host(victim));
                            later.push((now + ms, Event::Restart(victim)));
                            movers_hit += 1;
                        }
                    }
                }
                Event::PartitionMovers(ms) => {
                    if let Some((from, to)) = streaming_ends(&control) {
                        sim.partition(host(from), host(to));
                        later.push((now + ms, Event::Repair(from, to)));
                        movers_hit += 1;
                    }
                }
            }
            drop(control);
            fired += 1;
            for (at, event) in later.drain(..) {
                events.push((Duration::from_millis(at), event));
                planned += 1;
            }
            events.sort_by_key(|(at, _)| *at);
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
    let control = shared.control.lock().expect("not poisoned");
    let table = control.state.table().expect("a table").clone();
    let unfinished = !control.idle();
    let migrations = haze_ring::moves(&first_table, &table)
        .iter()
        .map(|m| m.partition)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let resumes = restarts
        + control.state.transition().map_or(0, |t| {
            t.moves
                .iter()
                .map(|m| u64::from(m.attempts.saturating_sub(1)))
                .sum()
        });
    drop(control);
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
    let members = table.nodes();
    let leftovers = members
        .iter()
        .map(|n| {
            (0..table.partitions())
                .filter(|p| {
                    let range = *p as usize * per_partition..(*p as usize + 1) * per_partition;
                    !table.replicas(PartitionId(*p)).contains(n)
                        && digests[n.0 as usize - 1][range].iter().any(|d| *d != 0)
                })
                .count()
        })
        .sum();
    Outcome {
        seed,
        nodes,
        replicas,
        faults,
        events_fired: fired,
        events_planned: planned,
        acked_adds: acked.adds.len(),
        acked_increments: acked.increments.values().sum(),
        migrations,
        movers_hit,
        resumes,
        reads: acked.reads,
        not_found: acked.not_found,
        stale: acked.stale,
        lost,
        divergent,
        leftovers,
        unfinished,
    }
}
