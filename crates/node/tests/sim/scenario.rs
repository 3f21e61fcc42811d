//! One seeded run: a cluster of 3–5 nodes (N = 2 or 3, quorum acknowledgements) with a
//! controller, a workload of distinct set adds and counter increments through random nodes with
//! reads of both, two membership changes committed mid-workload (a spare node is added; while
//! that runs, a member is removed), and faults scheduled in simulated time (`schedule.rs`).
//! Every attempt is recorded with what its client was told (`history.rs`). After the workload,
//! every fault is healed, the changes finish and anti-entropy runs; then every replica of every
//! key in the final table must hold every acknowledged write and nothing nobody wrote, and every
//! partition's replicas must hold equal digests.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use haze_client::Client;
use haze_controller::{Change, MoveLimits};
use haze_crdt::{OrSet, PnCounter, Scalar, TypedValue, Value};
use haze_ring::{NodeId, PartitionId, PartitionTable};
use haze_storage::{DIGEST_BUCKETS, Store};

use crate::control::Control;
use crate::disk::SimDisk;
use crate::history::{Breaches, History, Told, check_counter, check_set};
use crate::hosts::{PORT, Shared, add_hosts, client_config, disks, host, run_to_end, simulation};
use crate::outcome::Outcome;
use crate::schedule::{DEAD_AFTER_MS, Event, Faults, Rng, WORKLOAD, schedule};

/// After the workload, the healed cluster runs until both changes finished (at most this long:
/// a change still running then is reported unfinished)...
const HEAL_MAX: Duration = Duration::from_secs(60);
/// ...and then this long, for anti-entropy (every 2 s) to bring every replica level.
const SETTLE: Duration = Duration::from_secs(10);
const KEYS: u64 = 8;
/// Bytes per second each node streams.
const STREAM_RATE: u64 = 8 * 1024;
/// Keys of filler each partition holds from the start (not part of the workload), 512 bytes
/// each: a stream of a partition lasts about a second.
const FILLER_KEYS_PER_PARTITION: usize = 16;

/// Writes the filler into the disks of its keys' replicas in `table`, as if written before.
fn preload(table: &PartitionTable, disks: &crate::hosts::Disks) {
    let filler = "x".repeat(512);
    let wanted = FILLER_KEYS_PER_PARTITION * table.partitions() as usize;
    let mut per_partition = BTreeMap::<u32, usize>::new();
    for i in 0.. {
        if per_partition.values().sum::<usize>() >= wanted {
            break;
        }
        let key = format!("filler{i}");
        let count = per_partition
            .entry(table.partition_of_key(key.as_bytes()).0)
            .or_default();
        if *count >= FILLER_KEYS_PER_PARTITION {
            continue;
        }
        *count += 1;
        let mut set = OrSet::<Scalar>::default();
        set.insert(
            haze_crdt::ActorId::new(0xf111),
            Scalar::from(filler.as_str()),
        );
        let value = Value::from(set);
        for replica in table.replicas_of_key(key.as_bytes()) {
            let disk = disks[replica.0 as usize - 1]
                .lock()
                .expect("not poisoned")
                .clone();
            let mut write = [haze_storage::Write::new(
                key.clone().into_bytes(),
                haze_storage::Mutation::Merge(value.clone()),
            )];
            disk.apply(&mut write).expect("memory");
            disk.sync().expect("memory");
        }
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

/// The members of a set value (`None` if it is no set).
fn members(value: Value) -> Option<BTreeSet<String>> {
    let set = OrSet::<Scalar>::try_from_value(value).ok()?;
    Some(set.iter().map(|m| m.to_string()).collect())
}

fn counter(value: Value) -> i128 {
    PnCounter::try_from_value(value).map_or(0, |c| c.value())
}

/// The workload: writes and reads through random nodes, one at a time, every 5 ms; each
/// recorded in `history`.
async fn workload(seed: u64, targets: Vec<String>, history: Rc<RefCell<History>>) {
    let mut load = Rng(seed ^ 0x10ad);
    let config = client_config();
    let clients: Vec<Client> = targets
        .iter()
        .map(|a| Client::lazy(a, config.clone()))
        .collect();
    let end = tokio::time::Instant::now() + WORKLOAD;
    let mut i = 0u64;
    while tokio::time::Instant::now() < end {
        let via = &clients[load.below(clients.len() as u64) as usize];
        let n = load.below(KEYS);
        match load.below(6) {
            0 => {
                let key = format!("ctr{n}");
                let read = via.get(&key).await;
                let mut h = history.borrow_mut();
                match read {
                    Ok(v) => h.read_counter(&key, v.map(counter)),
                    Err(_) => h.reads.failed += 1,
                }
            }
            1 => {
                let key = format!("set{n}");
                let read = via.get(&key).await;
                let mut h = history.borrow_mut();
                match read {
                    Ok(v) => {
                        let found = v.and_then(members);
                        h.read_set(&key, found.as_ref());
                    }
                    Err(_) => h.reads.failed += 1,
                }
            }
            2 | 3 => {
                let (key, member) = (format!("set{n}"), format!("m{i}"));
                let told = Told::of(&via.set_add(&key, [Scalar::from(member.as_str())]).await);
                history.borrow_mut().add(key, member, told);
            }
            _ => {
                let key = format!("ctr{n}");
                let told = Told::of(&via.counter_add(&key, 1).await);
                history.borrow_mut().increment(key, told);
            }
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Crashes node `n` unless it is down already; returns whether it was up.
fn crash(sim: &mut turmoil::Sim<'_>, down: &mut BTreeSet<u64>, n: u64) -> bool {
    let hit = down.insert(n);
    if hit {
        sim.crash(host(n));
    }
    hit
}

/// What the event loop counted as it happened.
#[derive(Default)]
struct Fired {
    hit: usize,
    movers_hit: usize,
    power_losses: usize,
    unsynced_dropped: usize,
    stale_views: usize,
    restarts: u64,
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
    // Streams are throttled (a few KiB per second per node), so that a stream lasts long enough
    // for faults to hit its ends, as a large partition's would.
    let limits = MoveLimits {
        partitions: 2,
        per_node: 2,
        rate: STREAM_RATE,
        grace_ms: 3_000,
        dead_after_ms: DEAD_AFTER_MS,
        stuck_after_ms: 60_000,
    };
    let control = Control::new(
        0x5eed,
        16,
        replicas,
        &addrs.values().cloned().collect::<Vec<_>>(),
        nodes as usize,
        limits,
    );
    // What the controller answers at the start: a node given it again later (a long-delayed
    // answer) must keep its newer view.
    let first_status = control.status();
    let first_table = control.state.table().expect("a table").clone();
    let shared = Shared::new(control);
    let disks = disks(ids.len());
    preload(&first_table, &disks);
    let mut events = schedule(&mut rng, nodes, faults_of);
    let faults_planned = events.iter().filter(|(_, e)| e.is_fault()).count();

    let mut sim = simulation(seed, WORKLOAD + HEAL_MAX + SETTLE + Duration::from_secs(30));
    let read_quorum = crate::hosts::read_quorum();
    add_hosts(&mut sim, &disks, &shared);
    let history = Rc::new(RefCell::new(History::default()));
    let (targets, record) = (addrs.values().cloned().collect(), history.clone());
    // Whether no change runs or waits, as the harness last saw it.
    let idle = Rc::new(std::cell::Cell::new(false));
    let seen_idle = idle.clone();
    sim.client("workload", async move {
        workload(seed, targets, record).await;
        let healed = tokio::time::Instant::now() + HEAL_MAX;
        while !idle.get() && tokio::time::Instant::now() < healed {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        tokio::time::sleep(SETTLE).await;
        Ok(())
    });

    let mut fired = Fired::default();
    // Nodes down now (a crash of one already down hits nothing), and events that faults
    // scheduled for later.
    let mut down = BTreeSet::new();
    let mut later: Vec<(u64, Event)> = Vec::new();
    run_to_end(&mut sim, seed, |sim| {
        seen_idle.set(events.is_empty() && shared.control().idle());
        shared
            .now_ms
            .store(sim.elapsed().as_millis() as u64, Ordering::SeqCst);
        while events.first().is_some_and(|(at, _)| sim.elapsed() >= *at) {
            let (_, event) = events.remove(0);
            let now = sim.elapsed().as_millis() as u64;
            let mut control = shared.control();
            let up = |n: &u64, down: &BTreeSet<u64>| !down.contains(n);
            match event {
                Event::AddSpare => control.commit(Change {
                    add: vec![NodeId(nodes + 1)],
                    remove: vec![],
                }),
                Event::Remove(n) => control.commit(Change {
                    add: vec![],
                    remove: vec![NodeId(n)],
                }),
                Event::ControllerCrash => {
                    shared.up.store(false, Ordering::SeqCst);
                    fired.hit += 1;
                }
                Event::ControllerRestart => {
                    control.restart(now);
                    fired.restarts += 1;
                    shared.up.store(true, Ordering::SeqCst);
                }
                Event::Cut(n) => {
                    fired.hit += usize::from(up(&n, &down));
                    shared.cut.lock().expect("not poisoned").insert(n);
                }
                Event::Uncut(n) => {
                    shared.cut.lock().expect("not poisoned").remove(&n);
                }
                Event::StaleView(n, ms) => {
                    // Views are ordered by their epochs: the stale answer is delivered once the
                    // node reported an epoch past it (until then it would not be stale), as the
                    // answer to its next poll, which the cut keeps it from correcting for `ms`.
                    let epoch = shared.epochs.lock().expect("not poisoned").get(&n).copied();
                    let moved_on = epoch > first_status.epoch;
                    if !moved_on {
                        later.push((now + 500, Event::StaleView(n, ms)));
                    } else if up(&n, &down) {
                        shared
                            .stale
                            .lock()
                            .expect("not poisoned")
                            .insert(n, first_status.clone());
                        shared.cut.lock().expect("not poisoned").insert(n);
                        later.push((now + ms, Event::Uncut(n)));
                        fired.hit += 1;
                        fired.stale_views += 1;
                    }
                }
                Event::Partition(a, b) => {
                    fired.hit += usize::from(up(&a, &down) && up(&b, &down));
                    sim.partition(host(a), host(b));
                }
                Event::Repair(a, b) => sim.repair(host(a), host(b)),
                Event::Crash(n) => fired.hit += usize::from(crash(sim, &mut down, n)),
                Event::Wipe(n) => {
                    fired.hit += usize::from(crash(sim, &mut down, n));
                    *disks[n as usize - 1].lock().expect("not poisoned") = Arc::new(SimDisk::new());
                }
                Event::Restart(n) => {
                    down.remove(&n);
                    sim.bounce(host(n));
                }
                Event::PowerLoss => {
                    for n in 1..=ids.len() as u64 {
                        crash(sim, &mut down, n);
                        let mut disk = disks[n as usize - 1].lock().expect("not poisoned");
                        fired.unsynced_dropped += disk.unsynced();
                        *disk = Arc::new(disk.after_power_loss());
                    }
                    fired.hit += 1;
                    fired.power_losses += 1;
                }
                Event::PowerBack => {
                    for n in 1..=ids.len() as u64 {
                        if down.remove(&n) {
                            sim.bounce(host(n));
                        }
                    }
                }
                Event::CrashMover(source, ms) => {
                    if let Some((from, to)) = streaming_ends(&control) {
                        let victim = if source { from } else { to };
                        if crash(sim, &mut down, victim) {
                            later.push((now + ms, Event::Restart(victim)));
                            fired.hit += 1;
                            fired.movers_hit += 1;
                        }
                    }
                }
                Event::PartitionMovers(ms) => {
                    if let Some((from, to)) = streaming_ends(&control) {
                        sim.partition(host(from), host(to));
                        later.push((now + ms, Event::Repair(from, to)));
                        if up(&from, &down) && up(&to, &down) {
                            fired.hit += 1;
                            fired.movers_hit += 1;
                        }
                    }
                }
            }
            drop(control);
            for (at, event) in later.drain(..) {
                events.push((Duration::from_millis(at), event));
            }
            events.sort_by_key(|(at, _)| *at);
        }
    });

    let stores: Vec<Arc<SimDisk>> = disks
        .iter()
        .map(|s| s.lock().expect("not poisoned").clone())
        .collect();
    let history = history.borrow();
    let control = shared.control();
    let table = control.state.table().expect("a table").clone();
    let migrations = haze_ring::moves(&first_table, &table)
        .iter()
        .map(|m| m.partition)
        .collect::<BTreeSet<_>>()
        .len();
    let (acked, failed, unknown) = history.writes();
    let breaches = check_replicas(&history, &table, &stores);
    let (divergent, leftovers) = compare_partitions(&table, &stores);
    Outcome {
        seed,
        faults_of,
        nodes,
        replicas,
        read_quorum,
        faults_planned,
        faults_hit: fired.hit,
        power_losses: fired.power_losses,
        unsynced_dropped: fired.unsynced_dropped,
        stale_views: fired.stale_views,
        migrations,
        movers_hit: fired.movers_hit,
        sources_replaced: control.events.sources_replaced,
        receivers_replaced: control.events.receivers_replaced,
        rolled_back: control.events.rolled_back,
        controller_restarts: fired.restarts,
        acked,
        failed,
        unknown,
        reads: history.reads,
        lost: breaches.lost,
        phantom: breaches.phantom,
        breach: breaches.example,
        divergent,
        leftovers,
        unfinished: !control.idle(),
    }
}

/// Checks every replica of every key the workload wrote, in the final table, against the
/// history: both bounds.
fn check_replicas(history: &History, table: &PartitionTable, stores: &[Arc<SimDisk>]) -> Breaches {
    let replicas_of = |key: &str| -> Vec<Arc<SimDisk>> {
        table
            .replicas_of_key(key.as_bytes())
            .iter()
            .map(|r| stores[r.0 as usize - 1].clone())
            .collect()
    };
    let read = |store: &SimDisk, key: &str| store.get(key.as_bytes()).ok().flatten();
    let mut breaches = Breaches::default();
    for key in history.set_keys() {
        for store in replicas_of(key) {
            let found = read(&store, key).and_then(members).unwrap_or_default();
            breaches += check_set(history, key, &found);
        }
    }
    for key in history.counters.keys() {
        for store in replicas_of(key) {
            let value = read(&store, key).map_or(0, counter);
            breaches += check_counter(history, key, value);
        }
    }
    breaches
}

/// Returns how many partitions' replicas hold differing digests, and how many copies of
/// partitions sit on members that are not their replicas.
fn compare_partitions(table: &PartitionTable, stores: &[Arc<SimDisk>]) -> (usize, usize) {
    let digests: Vec<Vec<u64>> = stores
        .iter()
        .map(|s| s.bucket_digests().expect("memory"))
        .collect();
    let per_partition = DIGEST_BUCKETS / table.partitions() as usize;
    let range = |p: u32| p as usize * per_partition..(p as usize + 1) * per_partition;
    let divergent = (0..table.partitions())
        .filter(|p| {
            let replicas = table.replicas(PartitionId(*p));
            replicas.windows(2).any(|w| {
                digests[w[0].0 as usize - 1][range(*p)] != digests[w[1].0 as usize - 1][range(*p)]
            })
        })
        .count();
    let leftovers = table
        .nodes()
        .iter()
        .map(|n| {
            (0..table.partitions())
                .filter(|p| {
                    !table.replicas(PartitionId(*p)).contains(n)
                        && digests[n.0 as usize - 1][range(*p)].iter().any(|d| *d != 0)
                })
                .count()
        })
        .sum();
    (divergent, leftovers)
}
