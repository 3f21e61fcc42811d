//! Live repartitioning with four nodes in this process over loopback TCP: a node joins and
//! another leaves while clients write and read without pause; nothing acknowledged is lost, no
//! read goes back in time, and no client request fails.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use haze_client::{Client, ClientConfig};
use haze_controller::{Change, MoveLimits};
use haze_crdt::{Scalar, Value};
use haze_node::NodeConfig;
use haze_node::cluster::AckPolicy;
use haze_ring::{MoveState, NodeId};
use haze_storage::{MemStore, Store};
use haze_testkit::{TestNode, start_nodes};
use tokio::sync::Mutex;

use crate::control::Control;

const CLUSTER: u64 = 0xc1a5_7e00_0000_0005;

/// What one writer had acknowledged: per key, the counter total and the set members.
#[derive(Default)]
struct Acked {
    counters: BTreeMap<String, i128>,
    sets: BTreeMap<String, Vec<i64>>,
}

struct Writer {
    acked: Acked,
    writes: u64,
    reads: u64,
    failures: Vec<String>,
    stale_reads: Vec<String>,
}

async fn client_of(node: &TestNode) -> Client {
    let config = ClientConfig {
        request_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    };
    Client::connect_with(&node.addr.to_string(), config)
        .await
        .unwrap()
}

/// Writes counters and set members through `write_via`, reading each key back through
/// `read_via` after its write was acknowledged, until `stop`.
async fn writer(w: usize, write_via: Client, read_via: Client, stop: Arc<AtomicBool>) -> Writer {
    let mut out = Writer {
        acked: Acked::default(),
        writes: 0,
        reads: 0,
        failures: Vec::new(),
        stale_reads: Vec::new(),
    };
    let mut i: i64 = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let (ckey, skey) = (format!("c-{w}-{}", i % 64), format!("s-{w}-{}", i % 64));
        match write_via.counter_add(&ckey, 1).await {
            Ok(_) => *out.acked.counters.entry(ckey.clone()).or_default() += 1,
            Err(e) => out.failures.push(format!("counter_add {ckey}: {e}")),
        }
        match write_via.set_add(&skey, vec![Scalar::Int(i)]).await {
            Ok(_) => out.acked.sets.entry(skey.clone()).or_default().push(i),
            Err(e) => out.failures.push(format!("set_add {skey}: {e}")),
        }
        out.writes += 2;
        let want = out.acked.counters.get(&ckey).copied().unwrap_or(0);
        match read_via.get(&ckey).await {
            Ok(Some(Value::PnCounter(c))) if c.value() >= want => {}
            Ok(other) => out
                .stale_reads
                .push(format!("{ckey}: read {other:?} after {want} acknowledged")),
            Err(e) => out.failures.push(format!("get {ckey}: {e}")),
        }
        out.reads += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_and_another_leaves_under_load_without_loss_or_errors() {
    let config = NodeConfig {
        ack: AckPolicy::Quorum,
        forward_timeout: Duration::from_millis(1000),
        ..NodeConfig::default()
    };
    let (nodes, stores, addrs) = start_nodes(4, &config, 0x5000).await;
    let limits = MoveLimits {
        partitions: 3,
        per_node: 2,
        rate: 0,
        grace_ms: 3_000,
        dead_after_ms: 5_000,
        stuck_after_ms: 60_000,
    };
    let control = Arc::new(Mutex::new(Control::new(CLUSTER, 16, 3, &addrs, 3, limits)));
    let handles: Vec<_> = nodes.iter().map(|n| n.node.clone()).collect();
    // Every node polls the controller every 25 ms.
    let started = tokio::time::Instant::now();
    let polling = Arc::new(AtomicBool::new(true));
    let seen_states = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    let epochs = Arc::new(AtomicU64::new(0));
    let poller = {
        let (control, polling, seen_states, epochs) = (
            control.clone(),
            polling.clone(),
            seen_states.clone(),
            epochs.clone(),
        );
        tokio::spawn(async move {
            while polling.load(Ordering::Relaxed) {
                let now = started.elapsed().as_millis() as u64;
                let mut c = control.lock().await;
                for (i, node) in handles.iter().enumerate() {
                    c.poll(node, NodeId(i as u64 + 1), now);
                }
                if let Some(t) = c.state.transition() {
                    seen_states
                        .lock()
                        .await
                        .extend(t.moves.iter().map(|m| m.state));
                }
                epochs.store(c.state.table().unwrap().epoch().0, Ordering::Relaxed);
                drop(c);
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };
    let first_epoch = control.lock().await.state.table().unwrap().epoch().0;

    // Writers through n1 and n3 (which stay), reading back through the other one.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for (w, (via, read)) in [(0usize, 2usize), (2, 0)].into_iter().enumerate() {
        let (write_via, read_via) = (client_of(&nodes[via]).await, client_of(&nodes[read]).await);
        writers.push(tokio::spawn(writer(w, write_via, read_via, stop.clone())));
    }
    let wait_idle = |control: Arc<Mutex<Control>>| async move {
        for _ in 0..1200 {
            if control.lock().await.idle() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let c = control.lock().await;
        panic!("the change did not finish: {:?}", c.state.transition());
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    control.lock().await.commit(Change {
        add: vec![NodeId(4)],
        remove: vec![],
    });
    wait_idle(control.clone()).await;
    let after_add = control.lock().await.state.table().unwrap().clone();
    assert!(after_add.nodes().contains(&NodeId(4)));
    control.lock().await.commit(Change {
        add: vec![],
        remove: vec![NodeId(2)],
    });
    wait_idle(control.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut results = Vec::new();
    for w in writers {
        results.push(w.await.unwrap());
    }
    polling.store(false, Ordering::Relaxed);
    poller.await.unwrap();

    let table = control.lock().await.state.table().unwrap().clone();
    assert!(!table.nodes().contains(&NodeId(2)), "n2 left the table");
    assert!(
        !control
            .lock()
            .await
            .state
            .members()
            .contains_key(&NodeId(2)),
        "n2 was released"
    );
    assert!(
        stores[1].bucket_digests().unwrap().iter().all(|d| *d == 0),
        "n2 deleted every partition it gave away"
    );
    // Every acknowledged write is on a quorum of its replicas in the final table, and a read
    // through any node returns it.
    let check = client_of(&nodes[3]).await;
    let (mut writes, mut reads, mut lost) = (0, 0, Vec::new());
    for r in &results {
        writes += r.writes;
        reads += r.reads;
        assert!(r.failures.is_empty(), "failed requests: {:?}", r.failures);
        assert!(
            r.stale_reads.is_empty(),
            "reads went back in time: {:?}",
            r.stale_reads
        );
        for (key, want) in &r.acked.counters {
            let on_replicas = table
                .replicas_of_key(key.as_bytes())
                .iter()
                .filter(|id| {
                    matches!(stores[(id.0 - 1) as usize].get(key.as_bytes()),
                        Ok(Some(Value::PnCounter(c))) if c.value() >= *want)
                })
                .count();
            match check.get(key).await.unwrap() {
                Some(Value::PnCounter(c)) if c.value() >= *want && on_replicas >= 2 => {}
                other => lost.push(format!(
                    "{key}: {other:?} on {on_replicas} replicas, want {want}"
                )),
            }
        }
        for (key, members) in &r.acked.sets {
            let Some(Value::OrSet(set)) = check.get(key).await.unwrap() else {
                lost.push(format!("{key}: missing"));
                continue;
            };
            for m in members {
                if !set.contains(&Scalar::Int(*m)) {
                    lost.push(format!("{key}: member {m}"));
                }
            }
        }
    }
    let states = seen_states.lock().await.clone();
    let last_epoch = epochs.load(Ordering::Relaxed);
    #[allow(clippy::print_stdout, reason = "the test reports what it tried")]
    {
        println!(
            "repartition: add n4 then remove n2 under load: epochs {first_epoch}..{last_epoch}, \
             states seen {states:?}, {writes} writes acknowledged, {reads} reads checked, lost {}",
            lost.len()
        );
    }
    assert!(lost.is_empty(), "lost: {lost:?}");
    assert!(writes > 100, "the writers ran throughout ({writes} writes)");
    assert_eq!(
        states.len(),
        MoveState::ALL.len(),
        "every state was passed: {states:?}"
    );
    assert!(
        last_epoch > first_epoch + 2,
        "partitions switched a few at a time"
    );
    for node in nodes {
        node.stop().await;
    }
}

/// A client of `node` with `role`.
async fn client_as(node: &TestNode, role: haze_protocol::Role) -> Client {
    let config = ClientConfig {
        role,
        ..ClientConfig::default()
    };
    Client::connect_with(&node.addr.to_string(), config)
        .await
        .unwrap()
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_departing_replica_passes_a_peers_digest_batch_on_to_the_new_replicas() {
    // Found in review: a stale router's digest batch (how clients' syncs compare keys) was
    // answered from the departing replica's own copy, which no longer takes writes once the
    // new replicas serve: a client then took an old state for the current one.
    let config = NodeConfig {
        ack: AckPolicy::Quorum,
        ..NodeConfig::default()
    };
    let (nodes, _, addrs) = start_nodes(4, &config, 0x6000).await;
    let limits = MoveLimits {
        partitions: 16,
        per_node: 16,
        rate: 0,
        grace_ms: 60_000,
        dead_after_ms: 60_000,
        stuck_after_ms: 60_000,
    };
    let mut control = Control::new(CLUSTER, 16, 3, &addrs, 3, limits);
    for (i, node) in nodes.iter().enumerate() {
        control.poll(&node.node, NodeId(i as u64 + 1), 0);
    }
    control.commit(Change {
        add: vec![NodeId(4)],
        remove: vec![],
    });
    // Poll until a move has been routed: its new replicas serve, its old one only passes
    // requests on (the grace period keeps it there).
    let mut now = 0;
    let routed = loop {
        now += 50;
        assert!(now < 30_000, "no move was routed");
        for (i, node) in nodes.iter().enumerate() {
            control.poll(&node.node, NodeId(i as u64 + 1), now);
        }
        let t = control.state.transition().expect("the change runs");
        if let Some(m) = t.moves.iter().find(|m| m.state == MoveState::Routed) {
            break m.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let departing = *routed
        .before
        .iter()
        .find(|n| routed.departs(**n))
        .expect("a replica departs");
    let table = control.state.table().unwrap().clone();
    let key = (0..)
        .map(|i| format!("doc{i}"))
        .find(|k| table.partition_of_key(k.as_bytes()) == routed.partition)
        .unwrap();
    // A write the new replicas took (routed to them, as any up-to-date router does).
    for id in &routed.after {
        client_as(&nodes[id.0 as usize - 1], haze_protocol::Role::Local)
            .await
            .counter_add(&key, 5)
            .await
            .unwrap();
    }
    // A stale router asks the departing replica, as a peer. (Each new replica took its own
    // increment, so their copies differ: the read quorum merges them and repairs both, and the
    // digest passed on is the merge's.)
    let peer = client_as(
        &nodes[departing.0 as usize - 1],
        haze_protocol::Role::Peer { cluster: CLUSTER },
    )
    .await;
    let passed_on = peer.digest(&key).await.unwrap();
    let current = client_as(
        &nodes[routed.after[0].0 as usize - 1],
        haze_protocol::Role::Local,
    )
    .await
    .digest(&key)
    .await
    .unwrap();
    assert!(current.is_some());
    assert_eq!(passed_on, current, "one key");
    assert_eq!(
        peer.digest_batch(vec![key.clone().into_bytes(), b"other".to_vec()])
            .await
            .unwrap()[0],
        current,
        "a batch"
    );
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_leftover_copy_is_handed_back_to_the_replicas_then_deleted() {
    // A node that was down while its old partitions were cleaned up keeps them, possibly with
    // writes the replicas missed: here n4, a member that holds no partition, has a counter's
    // increment that no replica has.
    let (nodes, stores, addrs) = start_nodes(4, &NodeConfig::default(), 0x7000).await;
    let limits = MoveLimits::default();
    let mut control = Control::new(CLUSTER, 16, 3, &addrs, 3, limits);
    for (i, node) in nodes.iter().enumerate() {
        control.poll(&node.node, NodeId(i as u64 + 1), 0);
    }
    let client = client_of(&nodes[0]).await;
    client.counter_add("visits", 2).await.unwrap();
    client_as(&nodes[3], haze_protocol::Role::Local)
        .await
        .counter_add("visits", 7)
        .await
        .unwrap();
    assert!(stores[3].bucket_digests().unwrap().iter().any(|d| *d != 0));

    let view = control.view(NodeId(4)).unwrap();
    let handed = haze_node::cluster::hand_back_leftovers(nodes[3].node.cluster(), &view).await;
    assert_eq!(handed, 1, "one partition held by n4");
    assert!(
        stores[3].bucket_digests().unwrap().iter().all(|d| *d == 0),
        "n4 deleted its copy"
    );
    let merged = client.get_merged("visits").await.unwrap();
    assert!(
        matches!(&merged, Some(Value::PnCounter(c)) if c.value() == 9),
        "the replicas have n4's increment too: {merged:?}"
    );
    assert_eq!(
        haze_node::cluster::hand_back_leftovers(nodes[3].node.cluster(), &view).await,
        0,
        "nothing is left"
    );
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_replica_down_through_its_cleanups_hands_its_old_partitions_back_when_it_returns() {
    // n2 stops reporting once every partition it gives n4 has switched: the controller takes
    // it for down, finishes the change without its cleanups, and n2 keeps those copies. When it
    // reports again, its next sweep hands them back and deletes them; nothing acknowledged is
    // lost.
    let config = NodeConfig {
        ack: AckPolicy::Quorum,
        ..NodeConfig::default()
    };
    let (nodes, stores, addrs) = start_nodes(4, &config, 0x8000).await;
    let limits = MoveLimits {
        partitions: 16,
        per_node: 16,
        rate: 0,
        grace_ms: 500,
        dead_after_ms: 1_000,
        stuck_after_ms: 60_000,
    };
    let mut control = Control::new(CLUSTER, 16, 3, &addrs, 3, limits);
    let poll_all = |control: &mut Control, now: u64, skip: Option<usize>| {
        for (i, node) in nodes.iter().enumerate() {
            if Some(i) != skip {
                control.poll(&node.node, NodeId(i as u64 + 1), now);
            }
        }
    };
    poll_all(&mut control, 0, None);
    let client = client_of(&nodes[0]).await;
    let keys: Vec<String> = (0..200).map(|i| format!("ctr{i}")).collect();
    for key in &keys {
        client.counter_add(key, 1).await.unwrap();
    }
    control.commit(Change {
        add: vec![NodeId(4)],
        remove: vec![],
    });
    let n2 = NodeId(2);
    let (mut now, mut n2_down) = (0, false);
    while !control.idle() {
        now += 50;
        assert!(now < 60_000, "the change did not finish");
        poll_all(&mut control, now, n2_down.then_some(1));
        let t = control.state.transition();
        if !n2_down
            && t.is_some_and(|t| {
                t.moves
                    .iter()
                    .filter(|m| m.departs(n2))
                    .all(|m| m.state == MoveState::Routed)
            })
        {
            n2_down = true;
        }
        // Writes go on meanwhile (n2 still serves; it only stopped reporting).
        client
            .counter_add(&keys[(now / 50) as usize % keys.len()], 1)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(n2_down, "n2 stopped reporting mid-change");
    let table = control.state.table().unwrap().clone();
    let per_partition = haze_storage::DIGEST_BUCKETS / table.partitions() as usize;
    let leftovers = |store: &MemStore| {
        let digests = store.bucket_digests().unwrap();
        (0..table.partitions())
            .filter(|p| !table.replicas(haze_ring::PartitionId(*p)).contains(&n2))
            .filter(|p| {
                let range = *p as usize * per_partition..(*p as usize + 1) * per_partition;
                digests[range].iter().any(|d| *d != 0)
            })
            .count()
    };
    let kept = leftovers(&stores[1]);
    assert!(kept > 0, "n2 kept the partitions it gave away");

    // n2 reports again and gets the current view; its sweep hands its copies back.
    poll_all(&mut control, now + 50, None);
    let view = control.view(n2).unwrap();
    let handed = haze_node::cluster::hand_back_leftovers(nodes[1].node.cluster(), &view).await;
    assert_eq!(handed, kept);
    assert_eq!(leftovers(&stores[1]), 0, "n2 holds only its own partitions");
    let total: i128 = {
        let mut total = 0;
        for key in &keys {
            match client.get(key).await.unwrap() {
                Some(Value::PnCounter(c)) => total += c.value(),
                other => panic!("{key}: {other:?}"),
            }
        }
        total
    };
    let acked = keys.len() as i128 + (now / 50) as i128;
    #[allow(clippy::print_stdout, reason = "the test reports what it tried")]
    {
        println!(
            "n2 down through its cleanups: kept {kept} partitions, handed back {handed}, \
             {acked} increments acknowledged, {total} read back"
        );
    }
    assert!(total >= acked, "{total} of {acked} increments");
    for node in nodes {
        node.stop().await;
    }
}
