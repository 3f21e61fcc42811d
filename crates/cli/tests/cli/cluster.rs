//! Forming a cluster with the CLI: a controller, nodes that register, `haze cluster
//! add|plan|commit|remove|status`.

use crate::harness::{HAZE, Process, haze, ok};

/// Runs `haze cluster ARGS --controller ADDR`; returns (succeeded, stdout, stderr).
fn cluster(controller: &Process, args: &[&str]) -> (bool, String, String) {
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
    let (controller, nodes) = HAZE.cluster(
        dir.path(),
        2,
        &["--partitions", "16", "--move-partitions", "16"],
        &[],
    );

    let (ok, status, err) = cluster(&controller, &["status"]);
    assert!(ok, "{err}");
    assert!(status.contains("epoch none"), "{status}");
    assert!(row(&status, "n1").contains("standby"), "{status}");

    // One by id, one by address.
    let (ok, status, err) = cluster(&controller, &["add", "n1", &nodes[1].addr]);
    assert!(ok, "{err}");
    for node in ["n1", "n2"] {
        let cells: Vec<&str> = row(&status, node).split_whitespace().collect();
        // node, address, state, partitions (3 replicas clamped to 2 nodes: all 16), primaries.
        assert_eq!(cells[2..5], ["active", "16", "8"], "{status}");
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

    // A third node takes data from the others: the plan shows it, the commit carries it out.
    let _third = HAZE.join(&dir.path().join("node3"), &controller.addr, &[]);
    let (ok, plan, err) = cluster(&controller, &["plan", "add", "n3"]);
    assert!(ok, "{err}");
    assert!(plan.contains("plan: add n3"), "{plan}");
    assert!(
        plan.contains("16 of 16 partitions change replicas"),
        "{plan}"
    );
    assert!(plan.contains("n3: 0 → 16 replicas (+16)"), "{plan}");
    let (_, status, _) = cluster(&controller, &["status"]);
    assert!(
        row(&status, "n3").contains("standby"),
        "a plan alone changes nothing"
    );
    let (ok, out, err) = cluster(&controller, &["commit", "--wait"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("change 2 (add n3)") && out.contains("done: epoch"),
        "{out}"
    );
    let (_, status, _) = cluster(&controller, &["status"]);
    let cells: Vec<&str> = row(&status, "n3").split_whitespace().collect();
    assert_eq!(cells[2..4], ["active", "16"], "{status}");
    // Three replicas need three nodes.
    let (ok, _, err) = cluster(&controller, &["remove", "n1"]);
    assert!(
        !ok && err.contains("would leave 2 nodes for 3 replicas"),
        "{err}"
    );
    let (ok, _, err) = cluster(&controller, &["commit"]);
    assert!(!ok && err.contains("nothing to commit"), "{err}");

    let (ok, _, err) = cluster(&controller, &["add", "n42"]);
    assert!(!ok && err.contains("no registered node"), "{err}");
    let (ok, _, err) = cluster(&controller, &["add"]);
    assert!(!ok && err.contains("required"), "{err}");

    // What the controller acknowledged survives its restart (what nodes last reported is
    // kept in memory only, and the limits are flags, so they are left out of the comparison).
    let durable = |json: &str| {
        let mut status: serde_json::Value = serde_json::from_str(json).unwrap();
        for member in status["members"].as_array_mut().unwrap() {
            member.as_object_mut().unwrap().remove("seen");
        }
        // The limits are the running controller's flags.
        status.as_object_mut().unwrap().remove("limits");
        status
    };
    let (_, before, _) = cluster(&controller, &["status", "--json"]);
    let (exit, clean) = controller.terminate();
    assert!(exit.success() && clean);
    let controller = HAZE.controller_with(
        &dir.path().join("controller"),
        "127.0.0.1:0",
        &["--partitions", "16"],
    );
    let (_, after, _) = cluster(&controller, &["status", "--json"]);
    assert_eq!(durable(&before), durable(&after));
}

#[test]
fn haze_dev_forms_a_local_cluster_in_one_command() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    // `haze dev` is secure: it writes the profile `dev` (its CA and admin token) here, and the
    // commands below find it by the address they connect to.
    let config = dir.path().join("config");
    let haze = || {
        let mut command = super::harness::haze();
        command.env("HAZE_CONFIG_DIR", &config);
        command
    };
    let mut child = haze()
        .args([
            "dev",
            "--nodes",
            "3",
            "--base-port",
            "0",
            "--partitions",
            "16",
            "--data",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    // Whatever fails below, the process is stopped by its PID.
    struct Stop(String);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &self.0])
                .status();
        }
    }
    let _stop = Stop(pid.clone());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.starts_with("try:");
        printed.push(line);
        if done {
            break;
        }
    }
    let word = |prefix: &str, n: usize| -> String {
        let line = printed
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in {printed:?}"));
        line.split_whitespace().nth(n).unwrap().to_string()
    };
    let controller = word("controller ", 1);
    let n2 = word("n2 ", 1);

    let out = haze()
        .args(["cluster", "status", "--controller", &controller])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout);
    assert_eq!(status.matches(" active ").count(), 3, "{status}");
    let out = haze()
        .args(["counter", "incr", "visits", "--addr", &n2])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");

    // A fourth node started with `haze serve --controller` joins the dev cluster, then leaves.
    assert!(
        printed
            .iter()
            .any(|l| l.starts_with("grow: haze certs issue node n4")),
        "{printed:?}"
    );
    let certs = dir.path().join("certs");
    let issued = haze()
        .args(["certs", "issue", "node", "n4", "--dir"])
        .arg(&certs)
        .output()
        .unwrap();
    assert!(issued.status.success());
    let pem = |name: &str| certs.join(name).to_string_lossy().into_owned();
    let fourth = HAZE.join(
        &dir.path().join("node4"),
        &controller,
        &[
            "--tls-cert",
            &pem("n4.pem"),
            "--tls-key",
            &pem("n4.key"),
            "--tls-ca",
            &pem("ca.pem"),
        ],
    );
    let cluster_cmd = |args: &[&str]| {
        let out = haze()
            .arg("cluster")
            .args(args)
            .args(["--controller", &controller])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = cluster_cmd(&["add", "n4", "--wait"]);
    assert!(out.contains("done: epoch"), "{out}");
    let status = cluster_cmd(&["status"]);
    assert_eq!(status.matches(" active ").count(), 4, "{status}");
    let out = cluster_cmd(&["remove", "n4", "--wait"]);
    assert!(out.contains("done: epoch"), "{out}");
    let status = cluster_cmd(&["status"]);
    assert!(!status.contains(&fourth.addr), "n4 left: {status}");
    let out = haze()
        .args(["counter", "get", "visits", "--addr", &n2])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");

    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_node_started_before_its_controller_registers_when_it_comes_up() {
    let dir = tempfile::tempdir().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let controller_addr = free.local_addr().unwrap().to_string();
    drop(free);
    let node = HAZE.serve(
        &dir.path().join("node"),
        &["--controller", &controller_addr],
    );
    node.wait_for_log("retrying");
    let controller = HAZE.controller_at(&dir.path().join("controller"), &controller_addr);
    node.wait_for_log("registered with the controller");
    let (ok, status, err) = cluster(&controller, &["status"]);
    assert!(ok, "{err}");
    assert!(row(&status, "n1").contains(&node.addr), "{status}");
}

/// `name VALUE` in a node's `/metrics`.
fn metric(node: &Process, name: &str) -> u64 {
    use std::io::{Read, Write};
    let mut http = std::net::TcpStream::connect(&node.http).unwrap();
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    http.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn the_benchmark_in_direct_mode_sends_each_key_to_its_primary() {
    let dir = tempfile::tempdir().unwrap();
    // One replica per key: a request reaching a node other than the key's primary is
    // forwarded, and counted.
    let (controller, nodes) = HAZE.cluster(
        dir.path(),
        3,
        &["--partitions", "16", "--replicas", "1"],
        &[],
    );
    let (added, _, err) = cluster(&controller, &["add", "n1", "n2", "n3", "--wait"]);
    assert!(added, "{err}");
    for node in &nodes {
        node.wait_for_log("cluster view installed");
    }
    let bench = |direct: bool| {
        let mut args = vec![
            "bench",
            "--op",
            "counter-incr",
            "--connections",
            "6",
            "--pipeline",
            "4",
            "--keys",
            "300",
            "--duration",
            "1",
        ];
        if direct {
            args.push("--direct");
        }
        let out = ok(&nodes[0], &args);
        assert!(out.trim_end().ends_with("errors 0"), "{out}");
    };
    let forwarded = || -> u64 {
        nodes
            .iter()
            .map(|n| metric(n, "haze_forwarded_total"))
            .sum()
    };
    bench(false);
    let through_one = forwarded();
    assert!(
        through_one > 0,
        "two thirds of the keys go through node 1 to their primary"
    );
    bench(true);
    assert_eq!(forwarded(), through_one, "--direct forwarded requests");
    let served: Vec<u64> = nodes
        .iter()
        .map(|n| metric(n, "haze_requests_total{kind=\"op\",outcome=\"ok\"}"))
        .collect();
    assert!(
        served.iter().all(|&n| n > 0),
        "every primary served: {served:?}"
    );
}
