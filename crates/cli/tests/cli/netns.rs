//! A secure cluster over a real network: three "hosts" and a client on a fourth, each a network
//! namespace with its own address on a bridge, created and removed by the test. The cluster
//! started with TLS and tokens serves the client; started without them, beyond loopback, it
//! refuses to start.
//!
//! Namespaces need root: the test skips with a message where they cannot be made, except in CI
//! (`CI=true`), where it must run.

use std::path::PathBuf;

use haze_testkit::process::Process;

use crate::hosts::{Hosts, admin_token, certs, strs, tls_flags};

#[test]
fn a_secure_cluster_on_three_hosts_serves_a_fourth_and_an_insecure_one_will_not_start() {
    let Some(hosts) = Hosts::create_or_skip("ns", 4) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca: PathBuf = dir.path().join("certs");
    certs(&ca, &["init"]);
    let controller_addr = format!("{}:7600", Hosts::addr(1));
    certs(
        &ca,
        &["issue", "node", "controller", "--ip", &Hosts::addr(1)],
    );
    for i in 1..=3 {
        certs(
            &ca,
            &["issue", "node", &format!("n{i}"), "--ip", &Hosts::addr(i)],
        );
    }

    // Without TLS, beyond loopback: neither the controller nor a node starts.
    let data = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let plain = hosts
        .haze(
            1,
            &[
                "controller",
                "--listen",
                &controller_addr,
                "--data",
                &data("c0"),
            ],
        )
        .output()
        .unwrap();
    assert!(!plain.status.success());
    let said = String::from_utf8_lossy(&plain.stderr);
    assert!(said.contains("--tls-cert"), "{said}");
    let listen = format!("{}:7700", Hosts::addr(2));
    let http = format!("{}:7780", Hosts::addr(2));
    let plain = hosts
        .haze(
            2,
            &[
                "serve",
                "--listen",
                &listen,
                "--http",
                &http,
                "--controller",
                &controller_addr,
                "--data",
                &data("plain"),
            ],
        )
        .output()
        .unwrap();
    assert!(!plain.status.success());
    let said = String::from_utf8_lossy(&plain.stderr);
    assert!(
        said.contains("--tls-cert") && said.contains("--insecure"),
        "{said}"
    );
    println!(
        "without TLS on {}: controller and node refused to start",
        Hosts::addr(1)
    );

    // With TLS and tokens: a controller and three nodes on three hosts.
    let mut args = vec![
        "controller",
        "--listen",
        &controller_addr,
        "--partitions",
        "16",
    ];
    let controller_data = data("controller");
    args.extend(["--data", &controller_data]);
    let flags = tls_flags(&ca, "controller");
    args.extend(strs(&flags));
    let controller = Process::launch(hosts.haze(1, &args), "haze controller ready");
    let token = admin_token(&dir.path().join("controller"));
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let listen = format!("{}:7700", Hosts::addr(i));
        let http = format!("{}:7780", Hosts::addr(i));
        let node_data = data(&format!("node{i}"));
        let mut args = vec![
            "serve",
            "--listen",
            &listen,
            "--http",
            &http,
            "--controller",
            &controller_addr,
            "--data",
            &node_data,
        ];
        let flags = tls_flags(&ca, &format!("n{i}"));
        args.extend(strs(&flags));
        let node = Process::launch(hosts.haze(i, &args), "haze node ready");
        node.wait_for_log("registered with the controller");
        nodes.push(node);
    }

    // The client, on the fourth host.
    let client = |args: &[&str]| {
        let out = hosts
            .haze(4, args)
            .env("HAZE_TLS_CA", ca.join("ca.pem"))
            .env("HAZE_TOKEN", &token)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = client(&[
        "cluster",
        "add",
        "n1",
        "n2",
        "n3",
        "--wait",
        "--controller",
        &controller_addr,
    ]);
    assert!(ok && out.contains("done: epoch"), "{out}{err}");
    for node in &nodes {
        node.wait_for_log("cluster view installed");
    }
    let mut written = 0;
    for i in 1..=3 {
        let addr = format!("{}:7700", Hosts::addr(i));
        for k in 0..10 {
            let key = format!("visits:{k}");
            let (ok, _, err) = client(&["counter", "incr", &key, "--addr", &addr]);
            assert!(ok, "incr {key} through {addr}: {err}");
            written += 1;
        }
    }
    for i in 1..=3 {
        let addr = format!("{}:7700", Hosts::addr(i));
        for k in 0..10 {
            let key = format!("visits:{k}");
            let (ok, out, err) = client(&["counter", "get", &key, "--addr", &addr]);
            assert!(ok && out == "3\n", "{key} through {addr}: {out}{err}");
        }
    }
    // Without the token, from the fourth host: refused.
    let out = hosts
        .haze(
            4,
            &[
                "counter",
                "get",
                "visits:0",
                "--addr",
                &format!("{}:7700", Hosts::addr(2)),
            ],
        )
        .env("HAZE_TLS_CA", ca.join("ca.pem"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    println!(
        "TLS and tokens on hosts {} to {}: {written} increments from host {} acknowledged and \
         read back through every node; without a token: {}",
        Hosts::addr(1),
        Hosts::addr(3),
        Hosts::addr(4),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    drop(nodes);
    drop(controller);
}
