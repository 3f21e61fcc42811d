//! `haze serve --controller` outside its cluster's table: registered but not yet placed, it
//! answers data requests with `unavailable`; removed (`haze cluster remove`, the controller
//! releases it), it drops its view, says why in its log, and refuses them again
//! (docs/cluster.md, docs/repartitioning.md "A removed node").

use std::io::{Read, Write};
use std::time::Duration;

use crate::harness::{HAZE, Process, cluster_ok, run};

/// `POST /v1/keys/outside/counter` to the node's HTTP API: the status and body.
fn http_increment(server: &Process) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(&server.http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = r#"{"add": 1}"#;
    let head = format!(
        "POST /v1/keys/outside/counter HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).unwrap().parse().unwrap();
    (status, answer.split_once("\r\n\r\n").unwrap().1.to_string())
}

/// Checks that `node` refuses a counter increment through the binary protocol (the CLI) and
/// through HTTP with `unavailable`.
fn assert_refuses(node: &Process, why: &str) {
    let out = run(node, &["counter", "incr", "outside"]);
    assert!(
        !out.ok,
        "{why}: the CLI's increment was served: {}",
        out.stdout
    );
    assert!(
        out.stderr.contains("unavailable") && out.stderr.contains("partition table"),
        "{why}: {}",
        out.stderr
    );
    let get = run(node, &["counter", "get", "outside"]);
    assert!(
        !get.ok && get.stderr.contains("unavailable"),
        "{why}: a read was served: {} {}",
        get.stdout,
        get.stderr
    );
    let (status, body) = http_increment(node);
    assert_eq!(status, 503, "{why}: {body}");
    assert!(body.contains("\"unavailable\""), "{why}: {body}");
}

#[test]
fn a_node_outside_its_clusters_table_refuses_data_requests() {
    let dir = tempfile::tempdir().unwrap();
    // One replica per partition: two nodes can shrink to one.
    let (controller, nodes) = HAZE.cluster(
        dir.path(),
        2,
        &["--partitions", "16", "--replicas", "1"],
        &[],
    );
    // Registered, standby, no table yet.
    for node in &nodes {
        assert_refuses(node, "before the first table");
    }

    cluster_ok(
        &controller.addr,
        &["add", &nodes[0].addr, &nodes[1].addr, "--wait"],
    );
    nodes[1].wait_for_log("cluster view installed");
    for node in &nodes {
        // A node whose view came after `add` returned: wait for it (a hang guard).
        let mut served = false;
        for _ in 0..100 {
            let out = run(node, &["counter", "incr", "visits"]);
            if out.ok {
                served = true;
                break;
            }
            crate::harness::pause(50);
        }
        assert!(served, "{} serves once placed", node.addr);
    }

    cluster_ok(&controller.addr, &["remove", &nodes[1].addr, "--wait"]);
    nodes[1].wait_for_log("no longer a member of its cluster");
    assert_refuses(&nodes[1], "removed");
    // The other node serves everything, the removed node's share included.
    let out = run(&nodes[0], &["counter", "get", "visits"]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout, "2\n");
}
