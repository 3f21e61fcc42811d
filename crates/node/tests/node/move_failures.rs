//! What the controller does when a move cannot go on, with real nodes over loopback and the real
//! controller (docs/repartitioning.md, "Failures"): a move whose receiver is down with no node
//! to replace it is rolled back, losing nothing, and the change finishes; a queued change that
//! no longer fits is dropped with the reason, and the changes behind it still run; a move in one
//! state too long is flagged stuck in the status and the controller's `/metrics`.
//!
//! Streams are held back by a move rate of one byte per second: the first batch a source sends
//! goes at once, every later one waits for many minutes, so no partition finishes streaming
//! while a test looks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use haze_client::Client;
use haze_controller::api::Status;
use haze_controller::{Change, ClusterId, Controller, MemberState, MoveLimits};
use haze_crdt::Value;
use haze_node::NodeConfig;
use haze_node::cluster::AckPolicy;
use haze_ring::{MoveState, NodeId, PartitionTable};
use haze_storage::{MemStore, Store};
use haze_testkit::{TestController, TestNode, poll_controller, start_nodes};

use crate::control::Control;

const CLUSTER: u64 = 0xc1a5_7e00_0000_0021;
/// Keys written before the change: enough for every partition to hold keys in several buckets
/// (so its stream needs several throttled batches).
const KEYS: i64 = 200;

/// Nodes in this process (quorum writes), each on its own memory store (returned too, to look
/// at what a node holds), and their addresses.
async fn nodes(n: u64, actors: u64) -> (Vec<TestNode>, Vec<Arc<MemStore>>, Vec<String>) {
    let config = NodeConfig {
        ack: AckPolicy::Quorum,
        forward_timeout: Duration::from_millis(1000),
        ..NodeConfig::default()
    };
    start_nodes(n, &config, actors).await
}

/// Moves that stall: one byte per second, every move of the change streaming at once.
fn stalling() -> MoveLimits {
    MoveLimits {
        partitions: 16,
        per_node: 16,
        rate: 1,
        grace_ms: 60_000,
        dead_after_ms: 5_000,
        stuck_after_ms: 600_000,
    }
}

/// Writes `counter-{i}` = i + 1 through `client`, for `range`.
async fn write(client: &Client, range: std::ops::Range<i64>) {
    for i in range {
        client
            .counter_add(format!("counter-{i}"), i + 1)
            .await
            .unwrap();
    }
}

/// Checks that every key of `range` reads back through `client` with its value, and that a
/// majority of its replicas in `table` hold it (`stores[i]` is node i + 1's).
async fn assert_nothing_lost(
    client: &Client,
    stores: &[Arc<MemStore>],
    table: &PartitionTable,
    range: std::ops::Range<i64>,
) {
    for i in range {
        let key = format!("counter-{i}");
        match client.get(&key).await.unwrap() {
            Some(Value::PnCounter(c)) => assert_eq!(c.value(), i128::from(i + 1), "{key}"),
            other => panic!("{key} lost: {other:?}"),
        }
        let replicas = table.replicas_of_key(key.as_bytes());
        let holding = replicas
            .iter()
            .filter(|id| {
                matches!(stores[(id.0 - 1) as usize].get(key.as_bytes()),
                    Ok(Some(Value::PnCounter(c))) if c.value() == i128::from(i + 1))
            })
            .count();
        assert!(
            holding * 2 > replicas.len(),
            "{key} is on {holding} of its replicas {replicas:?}"
        );
    }
}

/// n1..n3 active (Q = 16, N = 3) and n4..n{count} standby, with keys written, then `add n4`
/// committed and polled until every move streams (stalled). Returns the controller, the test's
/// clock and the table before the change.
async fn adding_n4_stalls(
    nodes: &[TestNode],
    addrs: &[String],
    client: &Client,
) -> (Control, u64, PartitionTable) {
    let mut control = Control::new(CLUSTER, 16, 3, addrs, 3, stalling());
    let mut now = 0;
    for (i, node) in nodes.iter().enumerate() {
        control.poll(&node.node, NodeId(i as u64 + 1), now);
    }
    write(client, 0..KEYS).await;
    let before = control.state.table().unwrap().clone();
    control.commit(Change {
        add: vec![NodeId(4)],
        remove: vec![],
    });
    loop {
        now += 50;
        assert!(now < 10_000, "the moves did not start streaming");
        for (i, node) in nodes.iter().enumerate() {
            control.poll(&node.node, NodeId(i as u64 + 1), now);
        }
        let t = control.state.transition().expect("the change runs");
        if t.moves.iter().all(|m| m.state == MoveState::Streaming) {
            break;
        }
        assert!(
            t.moves.iter().all(|m| m.state <= MoveState::Streaming),
            "a stream finished although throttled: {:?}",
            t.moves.iter().map(|m| m.state).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (control, now, before)
}

/// Polls the `live` nodes (with their ids), the test's clock going on 100 ms a round, until
/// `done` holds for the controller; panics (`what` did not happen) after 5 minutes of the
/// test's clock.
async fn poll_until(
    control: &mut Control,
    live: &[(&TestNode, NodeId)],
    now: &mut u64,
    done: impl Fn(&Control) -> bool,
    what: &str,
) {
    for _ in 0..3_000 {
        *now += 100;
        for (node, id) in live {
            control.poll(&node.node, *id, *now);
        }
        if done(control) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let moves: Vec<_> = control
        .state
        .transition()
        .iter()
        .flat_map(|t| &t.moves)
        .map(|m| {
            format!(
                "{} {:?} {}",
                m.partition,
                m.state,
                m.note.as_deref().unwrap_or("")
            )
        })
        .collect();
    panic!(
        "{what} did not happen: change {:?}, moves {moves:?}, queued {:?}",
        control.state.transition().map(|t| &t.description),
        control.state.queued().collect::<Vec<_>>()
    );
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_move_whose_receiver_is_down_with_no_replacement_is_rolled_back_losing_nothing() {
    let (mut nodes, stores, addrs) = nodes(4, 0x2100).await;
    let client = nodes[0].client().await;
    let (mut control, now, before) = adding_n4_stalls(&nodes, &addrs, &client).await;
    let moves = control.state.transition().unwrap().moves.len();
    assert!(moves > 0);

    // n4, the receiver of every move, goes down mid-stream; every other node is a replica of
    // every partition already (N = 3 of 3), so none can take its place.
    nodes.pop().unwrap().stop().await;
    // Writes while it is down go to the old replicas and to the new ones that answer.
    write(&client, KEYS..KEYS + 20).await;
    // The others poll on; n4 is silent past `dead_after`.
    let live: Vec<(&TestNode, NodeId)> =
        nodes.iter().zip(1..).map(|(n, i)| (n, NodeId(i))).collect();
    let mut now = now;
    poll_until(
        &mut control,
        &live,
        &mut now,
        Control::idle,
        "the change's end",
    )
    .await;

    assert_eq!(
        control.events.rolled_back, moves as u64,
        "every move was rolled back"
    );
    let table = control.state.table().unwrap().clone();
    // Every partition keeps its replicas (the change may still reorder them: a new primary
    // among the same nodes moves no data and takes effect when the change ends).
    let set = |t: &PartitionTable, p| {
        let mut r = t.replicas(p).to_vec();
        r.sort();
        r
    };
    for p in 0..table.partitions() {
        let p = haze_ring::PartitionId(p);
        assert_eq!(set(&table, p), set(&before, p), "{p} kept its replicas");
    }
    assert_eq!(
        control.state.members()[&NodeId(4)].state,
        MemberState::Standby,
        "n4, left with nothing, is standby again"
    );
    assert_eq!(control.state.dropped().count(), 0);
    assert_nothing_lost(&client, &stores, &table, 0..KEYS + 20).await;
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_queued_change_that_no_longer_fits_is_dropped_with_the_reason_and_the_next_runs() {
    let (mut nodes, stores, addrs) = nodes(5, 0x2200).await;
    let client = nodes[0].client().await;
    let (mut control, now, before) = adding_n4_stalls(&nodes, &addrs, &client).await;
    // Committed while `add n4` runs: queued behind it, planned against its target.
    control.commit(Change {
        add: vec![],
        remove: vec![NodeId(4)],
    });
    control.commit(Change {
        add: vec![NodeId(5)],
        remove: vec![],
    });
    assert_eq!(control.state.queued().count(), 2);

    // n4 goes down: its moves are rolled back (n5, standby, is no candidate), so when
    // `remove n4` comes up, n4 holds nothing to remove.
    let n4 = nodes.remove(3);
    n4.stop().await;
    let live: Vec<(&TestNode, NodeId)> = nodes
        .iter()
        .zip([1, 2, 3, 5])
        .map(|(n, i)| (n, NodeId(i)))
        .collect();
    let mut now = now;
    poll_until(
        &mut control,
        &live,
        &mut now,
        |c| c.state.dropped().count() > 0,
        "the drop",
    )
    .await;
    // `add n4` ended rolled back (n4 holds nothing), and the change behind the dropped one
    // started.
    assert!(!control.state.table().unwrap().nodes().contains(&NodeId(4)));
    assert_eq!(
        control.state.transition().map(|t| t.description.as_str()),
        Some("add n5"),
        "the change queued behind the dropped one started"
    );
    // From here moves stream at full speed: `add n5`, queued behind the dropped change, runs
    // to its end.
    control.limits.rate = 0;
    poll_until(
        &mut control,
        &live,
        &mut now,
        Control::idle,
        "the changes' end",
    )
    .await;

    let dropped: Vec<&String> = control.state.dropped().collect();
    assert_eq!(
        dropped,
        ["remove n4: n4 is not an active node (standby, or already being removed)"],
        "the queued removal was dropped, with the reason"
    );
    // What `haze cluster status` and `GET /v1/cluster` show.
    assert_eq!(
        Status::of(&control.state).dropped,
        ["remove n4: n4 is not an active node (standby, or already being removed)"]
    );
    assert_eq!(
        control.state.members()[&NodeId(4)].state,
        MemberState::Standby,
        "the dropped removal did nothing to n4"
    );
    let table = control.state.table().unwrap().clone();
    assert!(
        table.nodes().contains(&NodeId(5)),
        "the change queued behind the dropped one ran"
    );
    assert!(!table.nodes().contains(&NodeId(4)));
    assert_ne!(table, before);
    assert_nothing_lost(&client, &stores, &table, 0..KEYS).await;
    drop(live);
    for node in nodes {
        node.stop().await;
    }
}

/// `GET /metrics` of the controller at `addr`: the value of `name`.
async fn metric(addr: &str, name: &str) -> u64 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {answer}"))
        .parse()
        .unwrap()
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_move_in_one_state_too_long_is_flagged_stuck_in_the_status_and_the_metrics() {
    let (nodes, _stores, addrs) = nodes(4, 0x2300).await;
    let dir = tempfile::tempdir().unwrap();
    let limits = MoveLimits {
        per_node: 2,
        dead_after_ms: 60_000,
        stuck_after_ms: 500,
        ..stalling()
    };
    let controller = Controller::open(dir.path(), ClusterId(CLUSTER), 16, 3).unwrap();
    let controller = TestController::start(controller, limits).await;
    let admin = controller.client();
    for addr in &addrs {
        admin.register(addr).await.unwrap();
    }
    admin
        .add(&["n1".into(), "n2".into(), "n3".into()])
        .await
        .unwrap();
    // Every node polls the controller, as `haze serve --controller` does.
    let polling = Arc::new(AtomicBool::new(true));
    let handles: Vec<Arc<TestNode>> = nodes.into_iter().map(Arc::new).collect();
    let poller = {
        let (polling, handles, client) = (polling.clone(), handles.clone(), admin.clone());
        tokio::spawn(async move {
            while polling.load(Ordering::Relaxed) {
                for (i, node) in handles.iter().enumerate() {
                    poll_controller(&client, node, NodeId(i as u64 + 1)).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    for _ in 0..500 {
        if handles.iter().take(3).all(|n| n.node.view().is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    write(&handles[0].client().await, 0..KEYS).await;

    admin.add(&["n4".into()]).await.unwrap();
    // Wait (a hang guard, not a deadline) until every streaming move is flagged.
    let mut status: Option<Status> = None;
    for _ in 0..1_000 {
        let s = admin.status().await.unwrap();
        let progress = s.progress.as_ref().expect("the change runs");
        let streaming: Vec<_> = progress
            .moves
            .iter()
            .filter(|m| m.state == MoveState::Streaming)
            .collect();
        if !streaming.is_empty() && streaming.iter().all(|m| m.stuck) {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = status.expect("the streaming moves were never flagged stuck");
    let progress = status.progress.as_ref().unwrap();
    let stuck: Vec<_> = progress.moves.iter().filter(|m| m.stuck).collect();
    for m in &stuck {
        assert_eq!(m.state, MoveState::Streaming, "{m:?}");
        assert!(m.in_state_ms >= limits.stuck_after_ms, "{m:?}");
    }
    let pending = progress
        .moves
        .iter()
        .filter(|m| m.state == MoveState::Pending)
        .count();
    assert!(pending > 0, "some moves wait for a streaming slot");
    assert!(
        progress
            .moves
            .iter()
            .filter(|m| m.state == MoveState::Pending)
            .all(|m| !m.stuck),
        "a pending move waits its turn and is never stuck"
    );
    assert_eq!(
        metric(&controller.addr, "haze_controller_moves_stuck").await,
        stuck.len() as u64,
        "the metrics count the moves the status flags"
    );
    // Nothing moved on meanwhile (the streams are held back), so the count still holds.
    let again = admin.status().await.unwrap();
    let again = again.progress.unwrap();
    assert_eq!(again.moves.iter().filter(|m| m.stuck).count(), stuck.len());
    assert!(
        again.moves.iter().all(|m| m.state <= MoveState::Streaming),
        "no stream finished"
    );

    polling.store(false, Ordering::Relaxed);
    poller.await.unwrap();
    controller.stop().await;
    for node in handles {
        Arc::into_inner(node)
            .expect("the poller let go of the nodes")
            .stop()
            .await;
    }
}
