//! Live updates over `GET /v1/ws`: a device's session subscribes to keys and prefixes, syncs
//! over the same socket, and hears of every committed write to what it watches, from whichever
//! node of the cluster committed it.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use haze_node::NodeConfig;
use haze_node::cluster::ClusterView;
use haze_ring::{NodeId, PartitionTable};
use haze_testkit::TestNode;
use serde_json::{Value as Json, json};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::http;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: SocketAddr) -> Socket {
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/ws"))
        .await
        .expect("the WebSocket upgrade");
    socket
}

async fn send(socket: &mut Socket, message: Json) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// The next JSON message, within 5 s (pings and pongs skipped).
async fn next(socket: &mut Socket) -> Json {
    let read = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected a message, got {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("a message within 5 s")
}

/// Sends a request and returns its answer (updates arriving first are skipped).
async fn ask(socket: &mut Socket, request: Json) -> Json {
    let id = request["id"].clone();
    send(socket, request).await;
    loop {
        let answer = next(socket).await;
        if answer["id"] == id {
            return answer;
        }
    }
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_session_syncs_subscribes_and_hears_of_commits_to_what_it_watches() {
    let node = TestNode::start(NodeConfig::default()).await;
    let mut socket = connect(node.http).await;

    let answer = ask(
        &mut socket,
        json!({"id": 1, "type": "subscribe", "keys": ["list"], "prefixes": ["todo:"]}),
    )
    .await;
    assert_eq!(answer, json!({"id": 1, "type": "subscribed"}));

    // Writes through another front end reach the session, each as the state after its commit.
    http(
        node.http,
        "POST",
        "/v1/keys/visits/counter",
        r#"{"add": 1}"#,
    )
    .await;
    let (status, _) = http(
        node.http,
        "POST",
        "/v1/keys/list/set/add",
        r#"{"members": ["milk"]}"#,
    )
    .await;
    assert_eq!(status, 200);
    let update = next(&mut socket).await;
    assert_eq!(
        (update["type"].as_str(), update["key"].as_str()),
        (Some("update"), Some("list"))
    );
    assert_eq!(update["state"]["type"], "or_set", "{update}");
    http(
        node.http,
        "POST",
        "/v1/keys/todo:1/counter",
        r#"{"add": 2}"#,
    )
    .await;
    let update = next(&mut socket).await;
    assert_eq!(
        update["key"], "todo:1",
        "a key under a watched prefix; `visits` was not heard"
    );

    // The digest-first sync over the same socket: digests, then a merge.
    let answer = ask(
        &mut socket,
        json!({"id": 2, "type": "digests", "keys": ["list", "absent"]}),
    )
    .await;
    assert_eq!(answer["type"], "digests", "{answer}");
    assert_eq!(answer["digests"][1], Json::Null);
    let list = answer["list"].as_str().unwrap().to_string();
    let answer = ask(
        &mut socket,
        json!({"id": 3, "type": "digests", "list": list}),
    )
    .await;
    assert_eq!(
        answer["type"], "digests",
        "a list sent before is named by its id: {answer}"
    );
    let answer = ask(
        &mut socket,
        json!({"id": 4, "type": "digests", "list": "00000000000000ff"}),
    )
    .await;
    assert_eq!(answer, json!({"id": 4, "type": "unknown_list"}));
    let state = update["state"].clone();
    let answer = ask(
        &mut socket,
        json!({"id": 5, "type": "merge", "items": [{"key": "todo:2", "state": state}]}),
    )
    .await;
    assert_eq!(answer["type"], "merged", "{answer}");
    assert_eq!(answer["items"][0]["state"], state);
    // Its own merge is not pushed back to it (it holds that state): the next update is the
    // next write's.
    http(
        node.http,
        "POST",
        "/v1/keys/todo:9/counter",
        r#"{"add": 5}"#,
    )
    .await;
    let update = next(&mut socket).await;
    assert_eq!(update["key"], "todo:9", "not the echo of todo:2: {update}");

    // Keys read over the socket, as GET /v1/keys/KEY reads them.
    let answer = ask(
        &mut socket,
        json!({"id": 9, "type": "get", "keys": ["todo:2", "absent"]}),
    )
    .await;
    assert_eq!(answer["type"], "values", "{answer}");
    assert_eq!(answer["items"][0], json!({"key": "todo:2", "state": state}));
    assert_eq!(answer["items"][1], json!({"key": "absent", "state": null}));

    // Errors are answers, and the session goes on.
    let answer = ask(&mut socket, json!({"id": 6, "type": "launch"})).await;
    assert_eq!(answer["error"]["code"], "bad_request", "{answer}");
    let answer = ask(
        &mut socket,
        json!({"id": 7, "type": "merge", "items": [{"key": "list", "state": {"type": "g_counter", "counts": {}}}]}),
    )
    .await;
    assert_eq!(
        answer["items"][0]["error"]["code"], "type_mismatch",
        "{answer}"
    );
    socket
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(next(&mut socket).await["error"]["code"], "bad_request");

    // Unsubscribed keys are heard no more; a closed session holds nothing on the node.
    let answer = ask(
        &mut socket,
        json!({"id": 8, "type": "unsubscribe", "keys": ["list"]}),
    )
    .await;
    assert_eq!(answer["type"], "unsubscribed");
    http(
        node.http,
        "POST",
        "/v1/keys/list/set/add",
        r#"{"members": ["eggs"]}"#,
    )
    .await;
    http(
        node.http,
        "POST",
        "/v1/keys/todo:3/counter",
        r#"{"add": 1}"#,
    )
    .await;
    assert_eq!(next(&mut socket).await["key"], "todo:3");
    assert_eq!(node.node.live().subscribers(), 1);
    let (_, metrics) = http(node.http, "GET", "/metrics", "").await;
    assert!(metrics.contains("haze_live_devices 1\n"), "{metrics}");
    socket.close(None).await.unwrap();
    for _ in 0..500 {
        if node.node.live().subscribers() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        node.node.live().subscribers(),
        0,
        "the closed session unsubscribed"
    );
    node.stop().await;
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_device_that_does_not_read_is_dropped_and_holds_nothing() {
    let node = TestNode::start(NodeConfig::default()).await;
    let mut socket = connect(node.http).await;
    let answer = ask(
        &mut socket,
        json!({"id": 1, "type": "subscribe", "prefixes": [""]}),
    )
    .await;
    assert_eq!(answer["type"], "subscribed");
    // The device reads nothing more: the node's sends stall once the socket buffers fill, its
    // subscription's queue fills behind them, and the hub drops it.
    let value = "x".repeat(1000);
    let mut written = 0;
    for round in 0..200 {
        let body = format!(r#"{{"value": "{value}{round}"}}"#);
        for key in 0..20 {
            http(
                node.http,
                "POST",
                &format!("/v1/keys/r{key}/register"),
                &body,
            )
            .await;
            written += 1;
        }
        if node.node.live().subscribers() == 0 {
            break;
        }
    }
    eprintln!("{written} writes of 1 kB while the device did not read");
    assert_eq!(
        node.node.live().subscribers(),
        0,
        "the stalled subscriber was dropped"
    );
    assert!(node.node.live().lagged_total() >= 1);
    // What the device finally reads ends with the close that tells it to resync.
    let close = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(Some(frame)))) => return Some(u16::from(frame.code)),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    };
    let code = tokio::time::timeout(Duration::from_secs(20), close)
        .await
        .unwrap();
    assert!(code == Some(4000) || code.is_none(), "closed with {code:?}");
    node.stop().await;
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_device_hears_of_a_write_committed_on_a_node_it_is_not_connected_to() {
    // Three nodes, one replica per key: most keys live on a node the device is not connected to.
    let (nodes, _stores, addrs) =
        haze_testkit::start_nodes(3, &NodeConfig::default(), 0x11e0).await;
    let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
    let table = PartitionTable::place(None, &ids, 16, 1).unwrap();
    let addrs: std::collections::BTreeMap<NodeId, String> =
        ids.iter().copied().zip(addrs).collect();
    for (i, node) in nodes.iter().enumerate() {
        node.node.install_view(ClusterView {
            cluster: 0x11e0,
            me: ids[i],
            table: table.clone(),
            addrs: addrs.clone(),
            transition: None,
        });
    }
    let elsewhere: Vec<String> = (0..200)
        .map(|i| format!("item:{i}"))
        .filter(|k| table.replicas_of_key(k.as_bytes())[0] != NodeId(1))
        .take(5)
        .collect();
    let mut socket = connect(nodes[0].http).await;
    let answer = ask(
        &mut socket,
        json!({"id": 1, "type": "subscribe", "keys": [elsewhere[0]], "prefixes": ["item:"]}),
    )
    .await;
    assert_eq!(answer["type"], "subscribed");
    // The watch reaches the other nodes within a moment; then every write is heard.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for key in &elsewhere {
        let owner = table.replicas_of_key(key.as_bytes())[0].0 as usize - 1;
        let started = tokio::time::Instant::now();
        let (status, _) = http(
            nodes[owner].http,
            "POST",
            &format!("/v1/keys/{key}/counter"),
            r#"{"add": 1}"#,
        )
        .await;
        assert_eq!(status, 200);
        let update = next(&mut socket).await;
        assert_eq!(update["key"].as_str(), Some(key.as_str()));
        eprintln!(
            "{key}: written on node {}, heard through node 1 after {:?}",
            owner + 1,
            started.elapsed()
        );
    }
    assert!(
        nodes[1].node.live().subscribers() + nodes[2].node.live().subscribers() >= 1,
        "node 1 watches the others"
    );
    for node in nodes {
        node.stop().await;
    }
}
