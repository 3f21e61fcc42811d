//! Garbage, truncated and oversized frames, slow and idle clients, too many connections:
//! each closes the offending connection (with an error where one can be sent) while other
//! clients go on.

use std::sync::atomic::Ordering;
use std::time::Duration;

use haze_node::NodeConfig;
use haze_protocol::{ErrorCode, PROTOCOL_VERSION, Request, Response};
use haze_testkit::TestNode;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::harness::{frame, is_closed, raw, read_response, short_timeouts};

async fn expect_error(stream: &mut TcpStream, code: ErrorCode) {
    match read_response(stream).await {
        Some((_, Response::Error(e))) => assert_eq!(e.code, code, "{}", e.message),
        other => panic!("expected a {code} error, got {other:?}"),
    }
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn garbage_closes_that_connection_and_others_go_on() {
    let node = TestNode::start(NodeConfig::default()).await;
    let client = node.client().await;
    let mut bad = raw(node.addr).await;
    bad.write_all(&[0, 0, 0, 3, 0xde, 0xad, 0xbe])
        .await
        .unwrap();
    expect_error(&mut bad, ErrorCode::BadRequest).await;
    assert!(is_closed(&mut bad).await);
    client.counter_add("k", 1).await.unwrap();
    node.stop().await;
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn garbage_instead_of_a_hello_is_refused() {
    let node = TestNode::start(NodeConfig::default()).await;
    let mut bad = TcpStream::connect(node.addr).await.unwrap();
    bad.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(
        is_closed(&mut bad).await,
        "an HTTP request on the binary port is cut off"
    );
    let mut no_hello = TcpStream::connect(node.addr).await.unwrap();
    no_hello.write_all(&frame(3, &Request::Ping)).await.unwrap();
    expect_error(&mut no_hello, ErrorCode::BadRequest).await;
    assert!(is_closed(&mut no_hello).await);
    node.stop().await;
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn an_unsupported_protocol_version_is_refused_with_its_code() {
    let node = TestNode::start(NodeConfig::default()).await;
    let mut old = TcpStream::connect(node.addr).await.unwrap();
    old.write_all(&frame(
        1,
        &Request::Hello {
            version: PROTOCOL_VERSION + 1,
            role: haze_protocol::Role::Client,
            token: None,
        },
    ))
    .await
    .unwrap();
    expect_error(&mut old, ErrorCode::UnsupportedVersion).await;
    assert!(is_closed(&mut old).await);
    node.stop().await;
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn an_oversized_length_prefix_is_refused_without_reading_it() {
    let config = NodeConfig {
        max_frame_bytes: 1024,
        ..NodeConfig::default()
    };
    let node = TestNode::start(config).await;
    let mut bad = raw(node.addr).await;
    bad.write_all(&[0xff, 0xff, 0xff, 0xff]).await.unwrap();
    expect_error(&mut bad, ErrorCode::BadRequest).await;
    assert!(is_closed(&mut bad).await);
    node.stop().await;
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_truncated_frame_then_close_is_handled() {
    let node = TestNode::start(NodeConfig::default()).await;
    let mut bad = raw(node.addr).await;
    bad.write_all(&[0, 0, 0, 50, 1, 2, 3]).await.unwrap();
    bad.shutdown().await.unwrap();
    assert!(is_closed(&mut bad).await);
    let client = node.client().await;
    client.ping().await.unwrap();
    let protocol_errors = node
        .node
        .metrics()
        .protocol_errors
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(protocol_errors, 1);
    node.stop().await;
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn frames_that_arrive_in_pieces_are_answered() {
    // Two frames sent as two writes cut at every byte: the first frame cut in its length or
    // in its body, or whole with the start of the second. The reader takes whole frames from
    // its buffer and reads the rest of a partial one.
    let node = TestNode::start(NodeConfig::default()).await;
    let mut stream = raw(node.addr).await;
    let mut id = 0;
    let first = frame(1, &Request::Ping);
    for cut in 1..first.len() + 4 {
        let bytes: Vec<u8> =
            [frame(id + 1, &Request::Ping), frame(id + 2, &Request::Ping)].concat();
        stream.write_all(&bytes[..cut]).await.unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await; // the node reads the first part
        stream.write_all(&bytes[cut..]).await.unwrap();
        for _ in 0..2 {
            id += 1;
            assert_eq!(
                read_response(&mut stream).await,
                Some((id, Response::Pong)),
                "cut at byte {cut}"
            );
        }
    }
    node.stop().await;
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn idle_and_slow_clients_are_timed_out() {
    let node = TestNode::start(short_timeouts()).await;
    // Never says hello.
    let mut silent = TcpStream::connect(node.addr).await.unwrap();
    assert!(is_closed(&mut silent).await);
    // Says hello, then idles.
    let mut idle = raw(node.addr).await;
    assert!(is_closed(&mut idle).await);
    // Sends a frame one byte at a time, slower than the timeout allows for the whole frame.
    let mut slow = raw(node.addr).await;
    let request = frame(1, &Request::Get { key: b"k".to_vec() });
    let dribble = async {
        for byte in request {
            if slow.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    dribble.await;
    assert!(is_closed(&mut slow).await);
    let timeouts = node
        .node
        .metrics()
        .timeouts
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(timeouts, 3);
    node.stop().await;
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_client_that_keeps_asking_outlives_the_idle_timeout_and_is_cut_off_once_it_stops() {
    let node = TestNode::start(short_timeouts()).await; // idle after 300 ms
    let mut client = raw(node.addr).await;
    // A request every 100 ms for 1.2 s: four idle timeouts' worth, never 300 ms without one.
    for id in 1..=12u64 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let request = frame(id, &Request::Get { key: b"k".to_vec() });
        client.write_all(&request).await.unwrap();
        match read_response(&mut client).await {
            Some((got, Response::Value(None))) => assert_eq!(got, id),
            other => panic!("request {id} of a busy client answered {other:?}"),
        }
    }
    let timeouts = |node: &TestNode| node.node.metrics().timeouts.load(Ordering::Relaxed);
    assert_eq!(timeouts(&node), 0, "a busy client is not idle");
    // Then it falls silent: cut off.
    assert!(is_closed(&mut client).await);
    assert_eq!(timeouts(&node), 1);
    node.stop().await;
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn connections_beyond_the_cap_are_refused_as_overloaded() {
    let config = NodeConfig {
        max_connections: 2,
        ..NodeConfig::default()
    };
    let node = TestNode::start(config).await;
    let _first = raw(node.addr).await;
    let _second = raw(node.addr).await;
    let mut third = TcpStream::connect(node.addr).await.unwrap();
    expect_error(&mut third, ErrorCode::Overloaded).await;
    assert!(is_closed(&mut third).await);
    node.stop().await;
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_batch_over_the_item_limit_is_refused_and_the_connection_goes_on() {
    let node = TestNode::start(NodeConfig::default()).await;
    let mut conn = raw(node.addr).await;
    let keys = vec![b"k".to_vec(); 5000];
    conn.write_all(&frame(7, &Request::DigestBatch { keys }))
        .await
        .unwrap();
    expect_error(&mut conn, ErrorCode::BadRequest).await;
    conn.write_all(&frame(8, &Request::Ping)).await.unwrap();
    assert_eq!(read_response(&mut conn).await, Some((8, Response::Pong)));
    node.stop().await;
}

/// A connection that asks for a 60 KB value 400 times and never reads the answers.
async fn flood_without_reading(node: &TestNode) -> TcpStream {
    let client = node.client().await;
    let big: Vec<haze_client::Scalar> = (0..600)
        .map(|i| haze_client::Scalar::String(format!("{i:0>90}")))
        .collect();
    client.set_add("big", big).await.unwrap();
    let mut greedy = raw(node.addr).await;
    let mut requests = Vec::new();
    for id in 1..=400u64 {
        requests.extend(frame(
            id,
            &Request::Get {
                key: b"big".to_vec(),
            },
        ));
    }
    greedy.write_all(&requests).await.unwrap();
    greedy
}

/// The number of gets the node has answered (counted when answered, before the response is
/// written).
fn gets_answered(node: &haze_node::Node) -> u64 {
    let text = node.metrics().render(node.commit_stats());
    text.lines()
        .find_map(|l| l.strip_prefix("haze_requests_total{kind=\"get\",outcome=\"ok\"} "))
        .and_then(|n| n.parse().ok())
        .expect("/metrics counts gets")
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_client_that_does_not_read_its_responses_is_cut_off() {
    // A client's responses may stay unwritten for min(idle timeout, write-stall limit), here
    // 1 s. The client sends a ping every 50 ms, so it is never idle that long: only the
    // write-stall cut-off can end its connection.
    let config = NodeConfig {
        handshake_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        ..NodeConfig::default()
    };
    let node = TestNode::start(config).await;
    let mut greedy = flood_without_reading(&node).await;
    let timeouts = || node.node.metrics().timeouts.load(Ordering::Relaxed);
    let keep_sending = async {
        for id in 1000.. {
            if timeouts() > 0 || greedy.write_all(&frame(id, &Request::Ping)).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    // A hang guard, not a timing assertion: without the cut-off the client is served forever.
    tokio::time::timeout(Duration::from_secs(20), keep_sending)
        .await
        .expect("the node never cut off a client that does not read its responses");
    assert_eq!(timeouts(), 1);
    assert_eq!(
        node.node.metrics().stalled_readers.load(Ordering::Relaxed),
        1,
        "cut off for not reading, not for idling"
    );
    assert!(is_closed(&mut greedy).await);
    node.client().await.ping().await.unwrap();
    node.stop().await;
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn shutdown_does_not_wait_for_a_client_that_does_not_read() {
    // Found in review: with the default 300 s idle timeout, such a client held SIGTERM for 300 s.
    // With the defaults its connection is cut off only after 30 s of unwritten responses (the
    // write-stall limit); shutdown must not wait for that, only for its 2 s grace.
    let node = TestNode::start(NodeConfig::default()).await;
    let mut greedy = flood_without_reading(&node).await;
    // Once all 400 gets are answered, 24 MB of responses wait for a client that reads none:
    // far more than the sockets' buffers hold, so the node's writer is stuck.
    let answered = async {
        while gets_answered(&node.node) < 400 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), answered)
        .await
        .expect("the node answers the 400 gets");
    let core = node.node.clone();
    // A hang guard, well below the 30 s write-stall limit: without the grace, shutdown waits
    // for that limit.
    tokio::time::timeout(Duration::from_secs(10), node.stop())
        .await
        .expect("shutdown waited for a client that does not read");
    // The node stopped before the client read anything, and gave up on it: the client finds
    // what the sockets held, then the end, not all 400 responses.
    let mut received = 0;
    while read_response(&mut greedy).await.is_some() {
        received += 1;
    }
    assert!(received < 400, "all {received} responses were delivered");
    assert_eq!(core.metrics().connections_open.load(Ordering::Relaxed), 0);
}
