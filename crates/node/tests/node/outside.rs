//! A node outside its cluster's table serves no data: one that expects a cluster and has no
//! table yet answers clients' data requests with `unavailable` (a write it took alone would live
//! outside the ring), and so does one its cluster removed, once it drops its view
//! (docs/cluster.md, docs/repartitioning.md "A removed node"). Through the binary protocol and
//! the HTTP API alike.

use std::sync::Arc;

use haze_client::Error as ClientError;
use haze_controller::{Change, MoveLimits};
use haze_crdt::{GCounter, Scalar, Value};
use haze_node::NodeConfig;
use haze_node::cluster::AckPolicy;
use haze_protocol::{ErrorCode, Request, Response};
use haze_ring::NodeId;
use haze_storage::{MemStore, Store, StoreConfig};
use haze_testkit::{TestNode, start_nodes};
use tokio::io::AsyncWriteExt;

use crate::control::Control;
use crate::harness::{frame, http, raw, read_response};

const CLUSTER: u64 = 0xc1a5_7e00_0000_0011;

fn gcounter(n: u64) -> Value {
    let mut c = GCounter::new();
    c.increment(haze_crdt::ActorId::new(0xabc), n).unwrap();
    Value::from(c)
}

/// Every kind of client data request through the binary protocol: each must be refused with
/// `unavailable`, naming the missing table.
async fn assert_refused_by_protocol(node: &TestNode, why: &str) {
    let client = node.client().await;
    let key = "outside-key";
    let keys = vec![key.as_bytes().to_vec()];
    let list = haze_protocol::key_list_id(&keys);
    let outcomes: Vec<(&str, Result<(), ClientError>)> = vec![
        ("get", client.get(key).await.map(drop)),
        ("get_merged", client.get_merged(key).await.map(drop)),
        ("digest", client.digest(key).await.map(drop)),
        ("counter_add", client.counter_add(key, 1).await.map(drop)),
        (
            "set_add",
            client.set_add(key, vec![Scalar::Int(1)]).await.map(drop),
        ),
        ("merge", client.merge(key, gcounter(3)).await.map(drop)),
        (
            "merge_batch",
            client
                .merge_batch(vec![(keys[0].clone(), gcounter(3))])
                .await
                .map(drop),
        ),
        (
            "digest_batch",
            client.digest_batch(keys.clone()).await.map(drop),
        ),
        (
            "digest_list",
            client.digest_list(list, Some(keys.clone())).await.map(drop),
        ),
    ];
    for (kind, outcome) in outcomes {
        match outcome {
            Err(ClientError::Unavailable(message)) => assert!(
                message.contains("partition table"),
                "{why}: {kind} refused, but not because of the table: {message}"
            ),
            other => panic!("{why}: {kind} was not refused as unavailable: {other:?}"),
        }
    }
    // The exact code on the wire (the client maps several codes to `Unavailable`).
    let mut stream = raw(node.addr).await;
    stream
        .write_all(&frame(
            7,
            &Request::Get {
                key: key.as_bytes().to_vec(),
            },
        ))
        .await
        .unwrap();
    match read_response(&mut stream).await {
        Some((7, Response::Error(e))) => assert_eq!(e.code, ErrorCode::Unavailable, "{why}"),
        other => panic!("{why}: a raw get was answered {other:?}"),
    }
    // Not a data request: a node outside its table still answers a ping.
    client.ping().await.unwrap();
}

/// Every data endpoint of the HTTP API: each must answer 503 `unavailable`.
async fn assert_refused_by_http(node: &TestNode, why: &str) {
    let requests = [
        ("GET", "/v1/keys/outside-key", ""),
        ("GET", "/v1/keys/outside-key/digest", ""),
        ("POST", "/v1/keys/outside-key/counter", r#"{"add": 1}"#),
        (
            "POST",
            "/v1/keys/outside-key/set/add",
            r#"{"members": ["a"]}"#,
        ),
        (
            "POST",
            "/v1/keys/outside-key/set/remove",
            r#"{"members": ["a"]}"#,
        ),
        ("POST", "/v1/keys/outside-key/register", r#"{"value": "v"}"#),
        (
            "POST",
            "/v1/keys/outside-key/merge",
            r#"{"type": "g_counter", "counts": {"0000000000000abc": 3}}"#,
        ),
    ];
    for (method, path, body) in requests {
        let (status, answer) = http(node.http, method, path, body).await;
        assert_eq!(status, 503, "{why}: {method} {path} answered {answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(
            answer["error"]["code"], "unavailable",
            "{why}: {method} {path}: {answer}"
        );
    }
    let (status, _) = http(node.http, "GET", "/health", "").await;
    assert_eq!(status, 200, "{why}: /health is not a data request");
}

/// Checks that `node` serves data requests (the control for the refusals above).
async fn assert_serves(node: &TestNode, why: &str) {
    let client = node.client().await;
    assert_eq!(
        client.counter_add("served", 2).await.unwrap().value(),
        2,
        "{why}"
    );
    let (status, answer) = http(
        node.http,
        "POST",
        "/v1/keys/served/counter",
        r#"{"add": 1}"#,
    )
    .await;
    assert_eq!(status, 200, "{why}: {answer}");
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_node_waiting_for_its_table_refuses_clients_data_requests() {
    let store = Arc::new(MemStore::new(StoreConfig::default()));
    let node = TestNode::start_with(NodeConfig::default(), store.clone()).await;
    // What `haze serve --controller` does before it registers.
    node.node.expect_cluster();
    assert!(node.node.view().is_none());
    assert_refused_by_protocol(&node, "no table yet").await;
    assert_refused_by_http(&node, "no table yet").await;
    assert!(
        store.bucket_digests().unwrap().iter().all(|d| *d == 0),
        "a refused write left nothing in the node's store"
    );

    // The table arrives, placing the node: the same requests are served.
    let mut control = Control::new(
        CLUSTER,
        16,
        1,
        &[node.addr.to_string()],
        1,
        MoveLimits::default(),
    );
    control.poll(&node.node, NodeId(1), 0);
    assert!(node.node.view().is_some());
    assert_serves(&node, "once placed").await;
    node.stop().await;
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_node_removed_from_its_cluster_drops_its_view_and_refuses_data_requests() {
    let config = NodeConfig {
        ack: AckPolicy::Quorum,
        ..NodeConfig::default()
    };
    let (nodes, stores, addrs) = start_nodes(3, &config, 0x0a00).await;
    let limits = MoveLimits {
        rate: 0,
        grace_ms: 60_000,
        dead_after_ms: 60_000,
        ..MoveLimits::default()
    };
    // Two replicas of 16 partitions on three nodes.
    let mut control = Control::new(CLUSTER, 16, 2, &addrs, 3, limits);
    for (i, node) in nodes.iter().enumerate() {
        control.poll(&node.node, NodeId(i as u64 + 1), 0);
    }
    let client = nodes[0].client().await;
    for i in 0..50 {
        client
            .counter_add(format!("kept-{i}"), i + 1)
            .await
            .unwrap();
    }
    // n3 serves (routes) while it is a member.
    assert_serves(&nodes[2], "n3 while a member").await;

    control.commit(Change {
        add: vec![],
        remove: vec![NodeId(3)],
    });
    let mut now = 0;
    while !control.idle() {
        now += 20;
        assert!(now < 60_000, "the removal did not finish");
        for (i, node) in nodes.iter().enumerate() {
            control.poll(&node.node, NodeId(i as u64 + 1), now);
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(
        !control.state.members().contains_key(&NodeId(3)),
        "n3 was released"
    );
    // The controller now answers n3's polls with `unknown_node`, on which the loop that
    // follows the controller (`haze serve --controller`) makes the node leave its cluster;
    // `outside.rs` of the CLI tests runs that loop for real.
    assert!(nodes[2].node.view().is_some(), "n3 still has its last view");
    nodes[2].node.leave_cluster();
    assert!(nodes[2].node.view().is_none(), "n3 dropped its view");
    assert_refused_by_protocol(&nodes[2], "removed").await;
    assert_refused_by_http(&nodes[2], "removed").await;
    // Leaving again (every later poll hears `unknown_node` too) changes nothing.
    nodes[2].node.leave_cluster();
    assert_refused_by_protocol(&nodes[2], "removed, told twice").await;

    // The others serve every key, from their own replicas.
    let table = control.state.table().unwrap().clone();
    assert!(!table.nodes().contains(&NodeId(3)));
    for i in 0..50i64 {
        let key = format!("kept-{i}");
        match client.get(&key).await.unwrap() {
            Some(Value::PnCounter(c)) => assert_eq!(c.value(), i128::from(i + 1), "{key}"),
            other => panic!("{key}: {other:?}"),
        }
        for id in table.replicas_of_key(key.as_bytes()) {
            assert!(
                stores[(id.0 - 1) as usize]
                    .get(key.as_bytes())
                    .unwrap()
                    .is_some(),
                "{key} is on its replica {id}"
            );
        }
    }
    for node in nodes {
        node.stop().await;
    }
}
