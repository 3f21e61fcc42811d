//! A three-node cluster of real processes, secure (TLS on every port, tokens required):
//! routing, failover, anti-entropy, a wiped disk.

use std::path::Path;

use haze_ring::{NodeId, PartitionTable};

use haze_testkit::process::Haze;

use crate::harness::{HAZE, Process, pause};

/// Flags that make a test cluster fail over and heal quickly.
const FAST: [&str; 4] = ["--anti-entropy-ms", "300", "--forward-timeout-ms", "1000"];

fn node_args(controller: &Process) -> Vec<&str> {
    let mut args = vec!["--controller", controller.addr.as_str()];
    args.extend(FAST);
    args
}

fn table(h: &Haze, controller: &Process) -> PartitionTable {
    serde_json::from_value(h.cluster_status(&controller.addr)["table"].clone()).unwrap()
}

/// Retries `check` every 200 ms for up to 30 s; panics with `what` if it never holds.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..150 {
        if check() {
            return;
        }
        pause(200);
    }
    panic!("never: {what}");
}

fn node(nodes: &[Option<Process>], id: NodeId) -> &Process {
    nodes[id.0 as usize - 1].as_ref().expect("running")
}

fn restart(h: &Haze, dir: &Path, i: usize, addr: &str, controller: &Process) -> Process {
    let node = h.serve_at(&dir.join(format!("node{i}")), addr, &node_args(controller));
    node.wait_for_log("cluster view installed");
    node
}

#[test]
fn a_cluster_serves_through_any_node_survives_a_killed_primary_and_refills_a_wiped_disk() {
    let dir = tempfile::tempdir().unwrap();
    let h = HAZE.secure(dir.path());
    // One at a time, so node i is n<i>.
    let (controller, nodes) = h.cluster(dir.path(), 3, &[], &FAST);
    let mut nodes: Vec<Option<Process>> = nodes.into_iter().map(Some).collect();
    h.cluster_ok(&controller.addr, &["add", "n1", "n2", "n3"]);
    for node in nodes.iter().flatten() {
        node.wait_for_log("cluster view installed");
    }
    // Every node reports the table it has; `haze cluster status` shows it.
    eventually("every node reports epoch 1 to the controller", || {
        let out = h
            .command()
            .args(["cluster", "status", "--controller", &controller.addr])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .matches("ago, epoch 1")
            .count()
            == 3
    });

    // Writes through n1 read back through every node.
    let keys: Vec<String> = (0..20).map(|i| format!("page:{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        h.ok(
            node(&nodes, NodeId(1)),
            &["counter", "incr", key, &(i + 1).to_string()],
        );
    }
    for id in [NodeId(2), NodeId(3)] {
        for (i, key) in keys.iter().enumerate() {
            let read = h.ok(node(&nodes, id), &["counter", "get", key]);
            assert_eq!(read.trim(), (i + 1).to_string(), "{key} through {id}");
        }
    }

    // SIGKILL the primary of a key; reads and writes go on through the others.
    let table = table(&h, &controller);
    let primary = table.replicas_of_key(b"cart")[0];
    let others: Vec<NodeId> = [NodeId(1), NodeId(2), NodeId(3)]
        .into_iter()
        .filter(|n| *n != primary)
        .collect();
    h.ok(node(&nodes, others[0]), &["set", "add", "cart", "apple"]);
    let primary_addr = node(&nodes, primary).addr.clone();
    nodes[primary.0 as usize - 1].take().unwrap().kill();
    h.ok(node(&nodes, others[0]), &["set", "add", "cart", "pear"]);
    h.ok(node(&nodes, others[1]), &["set", "add", "cart", "plum"]);
    let members = h.ok(node(&nodes, others[1]), &["set", "members", "cart"]);
    assert_eq!(members, "apple\npear\nplum\n");
    println!("killed {primary} (primary of \"cart\"); 2 writes and a read went through {others:?}");

    // Back on its old disk, it missed two writes; anti-entropy makes every copy equal.
    nodes[primary.0 as usize - 1] = Some(restart(
        &h,
        dir.path(),
        primary.0 as usize,
        &primary_addr,
        &controller,
    ));
    eventually(
        "every replica's own copy of cart holds the three members",
        || {
            nodes.iter().flatten().all(|n| {
                let out = h.run(n, &["set", "members", "cart", "--local"]);
                out.ok && out.stdout == "apple\npear\nplum\n"
            })
        },
    );

    // Wipe one node's data directory: anti-entropy refills it from the others.
    let wiped = others[1];
    let wiped_addr = node(&nodes, wiped).addr.clone();
    let (status, _) = nodes[wiped.0 as usize - 1].take().unwrap().terminate();
    assert!(status.success());
    std::fs::remove_dir_all(dir.path().join(format!("node{}", wiped.0))).unwrap();
    nodes[wiped.0 as usize - 1] = Some(restart(
        &h,
        dir.path(),
        wiped.0 as usize,
        &wiped_addr,
        &controller,
    ));
    eventually("the wiped node holds every key again", || {
        let n = node(&nodes, wiped);
        keys.iter().enumerate().all(|(i, key)| {
            let out = h.run(n, &["counter", "get", key, "--local"]);
            out.ok && out.stdout.trim() == (i + 1).to_string()
        }) && h.run(n, &["set", "members", "cart", "--local"]).stdout == "apple\npear\nplum\n"
    });
    println!(
        "wiped {wiped}'s data directory; anti-entropy refilled its {} keys",
        keys.len() + 1
    );
}
