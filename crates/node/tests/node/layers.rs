//! The node's layers as a new front end would meet them: every write, whoever submits it, goes
//! through the one write path and its hooks; and a stopped node leaves no task behind.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use haze_controller::{Change, MoveLimits};
use haze_crdt::{GCounter, Value};
use haze_node::cluster::{ControlError, ControlPlane, Registration};
use haze_node::{NodeConfig, WriteRequest};
use haze_protocol::BoxFuture;
use haze_ring::{MoveState, NodeId};
use haze_storage::{Priority, Store};
use haze_testkit::start_nodes;

use crate::control::Control;

/// A hang guard for the waits below (not a timing assertion: each wait ends at an event).
const PATIENCE: Duration = Duration::from_secs(20);

/// A front end of its own (as RESP or a WebSocket sync would be) that writes through the node's
/// write handle, while a partition streams from that node: the handoff forwarder sees the
/// write and sends it to the partition's new replica before the stream completes.
#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_new_front_ends_writes_reach_a_streaming_partitions_new_replica() {
    let (nodes, stores, addrs) = start_nodes(2, &NodeConfig::default(), 0x1a00).await;
    // n2 joins; streams crawl at one byte per second, so no stream completes while we look.
    let limits = MoveLimits {
        rate: 1,
        ..MoveLimits::default()
    };
    let mut control = Control::new(0x1a, 16, 1, &addrs, 1, limits);
    // Keys in several buckets of every partition: each stream needs many throttled batches.
    for i in 0..400 {
        nodes[0]
            .node
            .merge(
                format!("pre-{i}").into_bytes(),
                Value::from(GCounter::new()),
            )
            .await
            .unwrap();
    }
    control.commit(Change {
        add: vec![NodeId(2)],
        remove: vec![],
    });
    let mut now = 0;
    let streaming = loop {
        now += 100;
        for (i, node) in nodes.iter().enumerate() {
            control.poll(&node.node, NodeId(i as u64 + 1), now);
        }
        let t = control.state.transition().expect("the change runs");
        if let Some(m) = t.moves.iter().find(|m| m.state == MoveState::Streaming) {
            break m.partition;
        }
        assert!(now < 60_000, "no move started streaming");
    };
    // Both nodes hear that it streams (n1 may have polled before it did).
    for (i, node) in nodes.iter().enumerate() {
        control.poll(&node.node, NodeId(i as u64 + 1), now);
    }
    let view = nodes[0].node.view().expect("a view");
    let key = (0..)
        .map(|i| format!("fresh-{i}").into_bytes())
        .find(|k| view.table.partition_of_key(k) == streaming)
        .expect("a key of the streaming partition");
    let forwarded = nodes[0]
        .node
        .metrics()
        .handoff_forwarded
        .load(Ordering::Relaxed);

    // The new front end: the write handle, nothing else.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let value = Value::from(GCounter::new());
    nodes[0].node.writes().submit(
        key.clone(),
        WriteRequest::Merge(value),
        Priority::Foreground,
        Box::new(move |outcome| {
            let _ = tx.send(outcome);
        }),
    );
    rx.await.unwrap().expect("written on n1");

    let deadline = tokio::time::Instant::now() + PATIENCE;
    while stores[1].get(&key).unwrap().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the write never reached n2"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let still = control.state.transition().expect("the change runs");
    assert_eq!(
        still.get(streaming).map(|m| m.state),
        Some(MoveState::Streaming),
        "n2 got the write while the partition was still streaming: forwarded, not streamed"
    );
    assert!(
        nodes[0]
            .node
            .metrics()
            .handoff_forwarded
            .load(Ordering::Relaxed)
            > forwarded
    );
    for node in nodes {
        node.stop().await;
    }
}

/// A controller that never answers.
struct Unreachable;

impl ControlPlane for Unreachable {
    fn register<'a>(
        &'a self,
        _: &'a str,
    ) -> BoxFuture<'a, Result<haze_controller::api::Registered, ControlError>> {
        Box::pin(async { Err(ControlError::Unreachable("nobody there".into())) })
    }

    fn seen<'a>(
        &'a self,
        _: &'a haze_controller::api::SeenRequest,
    ) -> BoxFuture<'a, Result<haze_controller::api::Status, ControlError>> {
        Box::pin(async { Err(ControlError::Unreachable("nobody there".into())) })
    }
}

/// A node with every kind of background work under way (anti-entropy, the controller loop, a
/// copier to a peer, streams) stops them all: once `serve` returns, its supervisor lists no
/// task and the runtime runs none of the node's (counted by the runtime itself).
#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_stopped_node_leaves_no_task_running() {
    let before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let (nodes, _stores, addrs) = start_nodes(2, &NodeConfig::default(), 0x1b00).await;
    let mut control = Control::new(
        0x1b,
        16,
        2,
        &addrs,
        2,
        MoveLimits {
            rate: 1,
            ..MoveLimits::default()
        },
    );
    for (i, node) in nodes.iter().enumerate() {
        control.poll(&node.node, NodeId(i as u64 + 1), 0);
        node.node.cluster().start_anti_entropy();
    }
    nodes[0].node.cluster().join(
        Arc::new(Unreachable),
        Registration {
            advertise: addrs[0].clone(),
        },
    );
    // A write through n1 copies to n2: n1's copier to n2 runs.
    let client = nodes[0].client().await;
    client.counter_add("k", 1).await.unwrap();
    drop(client);
    let running = nodes[0].node.tasks().running();
    for kind in ["anti-entropy", "controller loop"] {
        assert!(running.contains_key(kind), "{kind} runs: {running:?}");
    }
    assert!(
        running.keys().any(|k| k.starts_with("copier")),
        "a copier runs: {running:?}"
    );
    let (first, second) = (nodes[0].node.clone(), nodes[1].node.clone());
    for node in nodes {
        node.stop().await;
    }
    assert!(
        first.tasks().running().is_empty(),
        "{:?}",
        first.tasks().running()
    );
    assert!(second.tasks().running().is_empty());
    // Tasks end asynchronously after they are cancelled and joined (a connection's reader, a
    // request in flight): wait until the runtime counts as many as before the nodes started.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let alive = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        if alive <= before {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} tasks still alive after the nodes stopped ({before} before)",
            alive
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop((first, second));
}
