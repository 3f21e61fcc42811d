//! `haze cluster … --wait` tells how a change ended: a removal whose receiving node is down past
//! `--dead-after-secs` is rolled back, and the command says so (what happened, what to do),
//! exits with status 2, and `cluster status` (text and JSON), the controller's log and the
//! node's say it too. Once the node is back, the same removal is done as asked.

use crate::harness::{HAZE, Process, haze};

/// Quick failure detection; moves of empty partitions finish at once otherwise.
const CONTROLLER_FLAGS: [&str; 6] = [
    "--partitions",
    "16",
    "--dead-after-secs",
    "2",
    "--move-grace-secs",
    "2",
];

/// Runs `haze cluster ARGS --controller ADDR`; returns (exit status, stdout, stderr).
fn cluster(controller: &Process, args: &[&str]) -> (Option<i32>, String, String) {
    let out = haze()
        .arg("cluster")
        .args(args)
        .args(["--controller", &controller.addr])
        .output()
        .expect("haze runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn member(status: &serde_json::Value, id: u64) -> Option<&serde_json::Value> {
    status["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["id"] == id)
}

#[test]
fn a_removal_rolled_back_because_a_receiver_is_down_is_not_reported_done() {
    let dir = tempfile::tempdir().unwrap();
    let (controller, mut nodes) = HAZE.cluster(dir.path(), 4, &CONTROLLER_FLAGS, &[]);
    let (code, out, err) = cluster(&controller, &["add", "n1", "n2", "n3", "n4", "--wait"]);
    assert_eq!(code, Some(0), "{out}{err}");
    for node in &nodes {
        node.wait_for_log("cluster view installed");
    }

    // n3 goes down; removing n4 must move n4's replicas to the one node of the three left that
    // does not hold each partition, n3 among them: with n3 down past --dead-after-secs, and no
    // other node to take its place, those moves are rolled back and n4 holds them still.
    let n3_addr = nodes[2].addr.clone();
    nodes.remove(2).kill();
    let (code, out, err) = cluster(&controller, &["remove", "n4", "--wait"]);
    println!("haze cluster remove n4 --wait, with n3 down: exit {code:?}\n{out}{err}");
    assert_eq!(code, Some(2), "not done, not a failed request: {out}{err}");
    assert!(!out.contains("done: epoch"), "{out}");
    assert!(out.contains("NOT done: remove n4"), "{out}");
    assert!(out.contains("n4 was not released: it is active"), "{out}");
    assert!(out.contains("rolled back"), "why: {out}");
    assert!(out.contains("n3 is not answering"), "why: {out}");
    assert!(
        out.contains("what to do:") && out.contains("haze cluster remove n4 --wait"),
        "{out}"
    );
    assert!(err.contains("did not do what was asked"), "{err}");

    let (code, text, err) = cluster(&controller, &["status"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(text.contains("NOT done: n4 was not released"), "{text}");
    let (code, json, err) = cluster(&controller, &["status", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(member(&status, 4).expect("n4 stays")["state"], "active");
    let last = status["outcomes"]
        .as_array()
        .and_then(|o| o.last())
        .expect("an outcome");
    assert_eq!(last["remove"], serde_json::json!([4]), "{last}");
    assert_eq!(last["done"], false, "{last}");
    assert!(last["rolled_back"].as_u64().unwrap() > 0, "{last}");
    assert!(
        last["problems"][0]
            .as_str()
            .unwrap()
            .contains("n4 was not released"),
        "{last}"
    );
    let logged = controller.wait_for_log("NOT done");
    assert!(logged.contains("remove n4"), "{logged}");
    // n4 hears of it from the controller and says so too.
    let n4 = &nodes[2];
    let logged = n4.wait_for_log("NOT done");
    assert!(logged.contains("n4 was not released"), "{logged}");

    // What the command said to do works: with n3 back, n4 is released.
    let back = HAZE.serve_at(
        &dir.path().join("node3"),
        &n3_addr,
        &["--controller", &controller.addr],
    );
    back.wait_for_log("cluster view installed");
    let (code, out, err) = cluster(&controller, &["remove", "n4", "--wait"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("done: epoch"), "{out}");
    let (_, json, _) = cluster(&controller, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(member(&status, 4).is_none(), "n4 released: {json}");
    assert_eq!(
        status["outcomes"].as_array().unwrap().last().unwrap()["done"],
        true
    );
}
