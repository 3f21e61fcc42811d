//! Forming a cluster with the CLI: a controller, nodes that register, `haze cluster add|status`.

use crate::harness::{Server, haze};

/// Runs `haze cluster ARGS --controller ADDR`; returns (succeeded, stdout, stderr).
fn cluster(controller: &Server, args: &[&str]) -> (bool, String, String) {
    let out = haze()
        .arg("cluster")
        .args(args)
        .args(["--controller", &controller.addr])
        .output()
        .expect("haze runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn row<'a>(status: &'a str, node: &str) -> &'a str {
    status
        .lines()
        .find(|l| l.starts_with(&format!("{node} ")))
        .unwrap_or_else(|| panic!("no row for {node} in\n{status}"))
}

#[test]
fn nodes_register_and_are_added_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let controller = Server::start_controller(&dir.path().join("controller"));
    let nodes: Vec<Server> = (1..=2)
        .map(|i| {
            let node = Server::start(
                &dir.path().join(format!("node{i}")),
                &["--controller", &controller.addr],
            );
            node.wait_for_log("registered with the controller");
            node
        })
        .collect();

    let (ok, status, err) = cluster(&controller, &["status"]);
    assert!(ok, "{err}");
    assert!(status.contains("epoch none"), "{status}");
    assert!(row(&status, "n1").contains("standby"), "{status}");

    // One by id, one by address.
    let (ok, status, err) = cluster(&controller, &["add", "n1", &nodes[1].addr]);
    assert!(ok, "{err}");
    for node in ["n1", "n2"] {
        let cells: Vec<&str> = row(&status, node).split_whitespace().collect();
        // node, address, state, partitions (3 replicas clamped to 2 nodes: all 256), primaries.
        assert_eq!(cells[2..], ["active", "256", "128"], "{status}");
    }
    assert!(status.contains("epoch 1"), "{status}");

    let (ok, json, err) = cluster(&controller, &["status", "--json"]);
    assert!(ok, "{err}");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        json["members"][1]["addr"].as_str(),
        Some(nodes[1].addr.as_str())
    );
    assert!(json["table"].is_object(), "{json}");

    // A third node would take data from the others: refused, clearly, and nothing changes.
    let third = Server::start(
        &dir.path().join("node3"),
        &["--controller", &controller.addr],
    );
    third.wait_for_log("registered with the controller");
    let (ok, _, err) = cluster(&controller, &["add", "n3"]);
    assert!(!ok);
    assert!(
        err.contains("would move") && err.contains("not supported yet"),
        "{err}"
    );
    let (_, status, _) = cluster(&controller, &["status"]);
    assert!(row(&status, "n3").contains("standby"), "{status}");

    let (ok, _, err) = cluster(&controller, &["add", "n42"]);
    assert!(!ok && err.contains("no registered node"), "{err}");
    let (ok, _, err) = cluster(&controller, &["add"]);
    assert!(!ok && err.contains("required"), "{err}");

    // What the controller acknowledged survives its restart.
    let (_, before, _) = cluster(&controller, &["status", "--json"]);
    let (exit, clean) = controller.terminate();
    assert!(exit.success() && clean);
    let controller = Server::start_controller(&dir.path().join("controller"));
    let (_, after, _) = cluster(&controller, &["status", "--json"]);
    assert_eq!(before, after);
}
