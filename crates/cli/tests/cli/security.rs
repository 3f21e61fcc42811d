//! A secure cluster as an attacker tries it (docs/security.md): every attempt goes through the
//! real binary's ports, and each test prints what it tried and what held.

// Real processes run on real time: how long a revocation takes to reach every node, or a slow
// client to be cut off, is read on the wall clock (bounds on a wait, never a benchmark).
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::time::{Duration, Instant};

use haze_testkit::process::{Haze, Output, Process};

use crate::harness::HAZE;

/// Runs `cmd`, which the secure `haze` built (its CA and admin token in the environment).
fn output(mut cmd: std::process::Command) -> Output {
    let out = cmd.output().expect("haze runs");
    Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `haze ARGS` as the secure binary runs it, with `token` instead of the admin's if given.
fn as_holder(haze: &Haze, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = haze.command();
    cmd.args(args);
    if let Some(token) = token {
        cmd.env("HAZE_TOKEN", token);
    }
    output(cmd)
}

/// A secure three-node cluster in `dir`, formed (every node active), with the binary that talks
/// to it.
fn secure_cluster(dir: &Path) -> (Haze, Process, Vec<Process>) {
    let haze = HAZE.secure(dir);
    let (controller, nodes) = haze.cluster(dir, 3, &["--partitions", "16"], &[]);
    let out = haze.cluster_ok(&controller.addr, &["add", "n1", "n2", "n3", "--wait"]);
    assert!(out.contains("done: epoch"), "{out}");
    for node in &nodes {
        node.wait_for_log("cluster view installed");
    }
    (haze, controller, nodes)
}

/// Creates a token with `flags` (`--prefix`, `--read`, ...) and returns it.
fn token(haze: &Haze, controller: &Process, flags: &[&str]) -> String {
    let mut args = vec!["token", "create", "--controller", &controller.addr];
    args.extend(flags);
    let out = as_holder(haze, None, &args);
    assert!(out.ok, "token create: {}", out.stderr);
    out.stdout.trim().to_string()
}

#[test]
fn a_secure_cluster_refuses_whoever_cannot_prove_who_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let (haze, controller, nodes) = secure_cluster(dir.path());
    let node = &nodes[0];
    let admin = haze.ok(node, &["counter", "incr", "visits"]);
    assert_eq!(admin, "1\n");
    println!("admin token over TLS: counter incr -> {}", admin.trim());

    // Plaintext to the TLS port: the client says what it met.
    let mut plain = haze.command();
    plain
        .env_remove("HAZE_TLS_CA")
        .args(["counter", "incr", "visits", "--addr", &node.addr]);
    let out = output(plain);
    assert!(!out.ok);
    assert!(out.stderr.contains("answered in TLS"), "{}", out.stderr);
    println!("plaintext to a TLS port: refused ({})", out.stderr.trim());

    // A server verified against another cluster's CA: the handshake fails.
    let other = dir.path().join("other-ca");
    let made = output({
        let mut c = haze.command();
        c.args(["certs", "init", "--dir"]).arg(&other);
        c
    });
    assert!(made.ok, "{}", made.stderr);
    let mut cmd = haze.command();
    cmd.env("HAZE_TLS_CA", other.join("ca.pem"))
        .args(["counter", "incr", "visits", "--addr", &node.addr]);
    let out = output(cmd);
    assert!(!out.ok);
    assert!(
        out.stderr.to_lowercase().contains("certificate"),
        "{}",
        out.stderr
    );
    println!("another CA: refused ({})", out.stderr.trim());

    // No token.
    let mut cmd = haze.command();
    cmd.env_remove("HAZE_TOKEN")
        .args(["counter", "incr", "visits", "--addr", &node.addr]);
    let out = output(cmd);
    assert!(
        !out.ok && out.stderr.contains("unauthorized"),
        "{}",
        out.stderr
    );
    println!("no token: refused ({})", out.stderr.trim());

    // A token the cluster never made.
    let out = as_holder(
        &haze,
        Some("haze_0000000000000000000000000000000000000000000000000000000000000000"),
        &["counter", "incr", "visits", "--addr", &node.addr],
    );
    assert!(
        !out.ok && out.stderr.contains("unauthorized"),
        "{}",
        out.stderr
    );
    println!("an unknown token: refused");

    // The controller: changes need an admin token; a scoped token is not one.
    let scoped = token(
        &haze,
        &controller,
        &["--prefix", "user:42/", "--read", "--write"],
    );
    let out = as_holder(
        &haze,
        Some(&scoped),
        &["cluster", "remove", "n3", "--controller", &controller.addr],
    );
    assert!(!out.ok && out.stderr.contains("admin"), "{}", out.stderr);
    let out = as_holder(
        &haze,
        Some(&scoped),
        &[
            "token",
            "create",
            "--admin",
            "--controller",
            &controller.addr,
        ],
    );
    assert!(!out.ok && out.stderr.contains("admin"), "{}", out.stderr);
    let status = haze.cluster_status(&controller.addr);
    let active = status["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["state"] == "active")
        .count();
    assert_eq!(active, 3, "nothing changed: {status}");
    println!("a scoped token asking to remove a node or make an admin token: refused, 3 active");
    drop(controller);
}

#[test]
fn a_token_reaches_its_prefixes_only_and_a_revoked_one_stops_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let (haze, controller, nodes) = secure_cluster(dir.path());
    let scoped = token(
        &haze,
        &controller,
        &["--prefix", "user:42/", "--read", "--write"],
    );
    let reader = token(&haze, &controller, &["--prefix", "user:42/", "--read"]);
    // Nodes learn of new tokens at their next poll of the controller.
    let wait_accepted = |t: &str, node: &Process| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = as_holder(
                &haze,
                Some(t),
                &["set", "members", "user:42/list", "--addr", &node.addr],
            );
            if out.ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "a new token still refused after 10 s: {}",
                out.stderr
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    for node in &nodes {
        wait_accepted(&scoped, node);
    }
    let out = as_holder(
        &haze,
        Some(&scoped),
        &[
            "set",
            "add",
            "user:42/list",
            "milk",
            "--addr",
            &nodes[1].addr,
        ],
    );
    assert!(out.ok, "{}", out.stderr);

    // Outside its prefix: forbidden, and nothing written.
    let out = as_holder(
        &haze,
        Some(&scoped),
        &[
            "set",
            "add",
            "user:420/list",
            "milk",
            "--addr",
            &nodes[1].addr,
        ],
    );
    assert!(
        !out.ok && out.stderr.contains("forbidden"),
        "{}",
        out.stderr
    );
    let absent = haze.run(&nodes[0], &["get", "user:420/list"]);
    assert!(
        !absent.ok && absent.stderr.contains("no value"),
        "{absent:?}"
    );
    println!("a write outside the token's prefix: forbidden, nothing written");

    // Read-only: no writes; no key lists or a node's own copy without admin.
    let out = as_holder(
        &haze,
        Some(&reader),
        &[
            "set",
            "add",
            "user:42/list",
            "eggs",
            "--addr",
            &nodes[0].addr,
        ],
    );
    assert!(
        !out.ok && out.stderr.contains("forbidden"),
        "{}",
        out.stderr
    );
    let out = as_holder(
        &haze,
        Some(&scoped),
        &[
            "set",
            "members",
            "user:42/list",
            "--local",
            "--addr",
            &nodes[0].addr,
        ],
    );
    assert!(!out.ok && out.stderr.contains("admin"), "{}", out.stderr);
    println!("a read-only token writing, a scoped token reading a node's own copy: refused");

    // Revoked: refused by every node within 5 s.
    let list = as_holder(
        &haze,
        None,
        &["token", "list", "--controller", &controller.addr],
    );
    assert!(list.ok, "{}", list.stderr);
    let id = list
        .stdout
        .lines()
        .find(|l| l.contains("read,write") && l.contains("user:42/"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("the token in the list: {}", list.stdout))
        .to_string();
    let revoked = as_holder(
        &haze,
        None,
        &["token", "revoke", &id, "--controller", &controller.addr],
    );
    assert!(revoked.ok, "{}", revoked.stderr);
    let start = Instant::now();
    for node in &nodes {
        loop {
            let out = as_holder(
                &haze,
                Some(&scoped),
                &["set", "members", "user:42/list", "--addr", &node.addr],
            );
            if !out.ok && out.stderr.contains("unauthorized") {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "node {} still takes a token revoked {:?} ago",
                node.addr,
                start.elapsed()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    println!(
        "token {id} revoked: refused by all {} nodes after {:?}",
        nodes.len(),
        start.elapsed()
    );

    // Expired: a token that worked for a second works no more.
    let brief = token(
        &haze,
        &controller,
        &["--prefix", "user:42/", "--read", "--expires", "1s"],
    );
    std::thread::sleep(Duration::from_millis(1500));
    let out = as_holder(
        &haze,
        Some(&brief),
        &["set", "members", "user:42/list", "--addr", &nodes[2].addr],
    );
    assert!(
        !out.ok && out.stderr.contains("unauthorized"),
        "{}",
        out.stderr
    );
    println!("a token past its expiry: refused ({})", out.stderr.trim());
}

#[test]
fn nodes_prove_they_are_nodes_to_each_other_and_to_the_controller() {
    use haze_controller::ControllerClient;
    use haze_controller::api::SeenRequest;

    let dir = tempfile::tempdir().unwrap();
    let (haze, controller, nodes) = secure_cluster(dir.path());
    let ca = haze.ca().unwrap();
    let certs = ca.parent().unwrap().to_path_buf();
    let issued = output({
        let mut c = haze.command();
        c.args(["certs", "issue", "client", "mallory", "--dir"])
            .arg(&certs);
        c
    });
    assert!(issued.ok, "{}", issued.stderr);
    let mallory = haze_tls::client_config(
        Some(&ca),
        Some((&certs.join("mallory.pem"), &certs.join("mallory.key"))),
    )
    .unwrap();
    let node2 = haze_tls::client_config(
        Some(&ca),
        Some((&certs.join("node2.pem"), &certs.join("node2.key"))),
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // A client certificate posing as a node, on a node's port.
        let status: haze_controller::api::Status =
            serde_json::from_value(haze.cluster_status(&controller.addr)).unwrap();
        let config = haze_client::ClientConfig {
            role: haze_protocol::Role::Peer {
                cluster: status.cluster.0,
            },
            dial: std::sync::Arc::new(haze_tls::TlsDial::new(
                haze_client::ClientConfig::default().dial,
                mallory.clone(),
            )),
            ..haze_client::ClientConfig::default()
        };
        let posing = haze_client::Client::connect_with(&nodes[0].addr, config).await;
        let err = match posing {
            Ok(_) => panic!("a client certificate was taken for a node"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("node's certificate"), "{err}");
        println!("a client certificate saying it is a peer: refused ({err})");

        // A forged node id in /v1/seen: with a client's certificate, and with another node's.
        let forged = SeenRequest {
            node: status.members[0].id,
            epoch: Some(999),
            streams: Vec::new(),
            cleaned: Vec::new(),
            known: None,
            wait_ms: None,
        };
        for (who, tls) in [("a client", mallory), ("node2", node2)] {
            let client = ControllerClient::new(&controller.addr).with_tls(tls);
            match client.seen(&forged).await {
                Err(haze_controller::ClientError::Refused(e)) => {
                    assert_eq!(e.error, "forbidden", "{who}: {e:?}");
                    println!("/v1/seen naming n1, sent by {who}: refused ({})", e.message);
                }
                other => panic!("{who}: {other:?}"),
            }
        }
        // Without any certificate.
        let client = ControllerClient::new(&controller.addr)
            .with_tls(haze_tls::client_config(Some(&ca), None).unwrap());
        match client.seen(&forged).await {
            Err(haze_controller::ClientError::Refused(e)) => {
                assert_eq!(e.error, "unauthorized", "{e:?}");
                println!("/v1/seen without a certificate: refused ({})", e.message);
            }
            other => panic!("no certificate: {other:?}"),
        }
    });
    let status = haze.cluster_status(&controller.addr);
    assert_ne!(status["members"][0]["seen"]["epoch"], 999, "{status}");
}

#[test]
fn a_register_stamped_an_hour_ahead_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (haze, _controller, nodes) = secure_cluster(dir.path());
    haze.ok(&nodes[0], &["register", "set", "title", "now"]);
    let state: serde_json::Value =
        serde_json::from_str(&haze.ok(&nodes[0], &["get", "title"])).unwrap();
    let mut ahead = state.clone();
    let millis = state["entry"]["millis"].as_u64().unwrap();
    ahead["entry"]["millis"] = (millis + 3_600_000).into();
    ahead["entry"]["value"] = serde_json::json!({"string": "from the future"});
    let file = dir.path().join("ahead.json");
    std::fs::write(&file, ahead.to_string()).unwrap();
    let out = haze.run(
        &nodes[1],
        &["merge", "title", "--file", file.to_str().unwrap()],
    );
    assert!(!out.ok && out.stderr.contains("clock"), "{out:?}");
    assert_eq!(haze.ok(&nodes[2], &["register", "get", "title"]), "now\n");
    println!(
        "a register stamped 1 h ahead: refused ({}); the register still says \"now\"",
        out.stderr.trim()
    );
}

#[test]
fn a_node_or_controller_beyond_loopback_without_tls_refuses_to_start() {
    // Nothing binds: the addresses are checked before listening.
    let dir = tempfile::tempdir().unwrap();
    let out = output({
        let mut c = HAZE.command();
        c.args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--http",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(dir.path().join("node"));
        c
    });
    assert!(!out.ok);
    for needed in ["0.0.0.0", "--tls-cert", "--controller", "--insecure"] {
        assert!(out.stderr.contains(needed), "{needed}: {}", out.stderr);
    }
    println!(
        "haze serve --listen 0.0.0.0:0 without TLS: {}",
        out.stderr.trim()
    );
    let out = output({
        let mut c = HAZE.command();
        c.args(["controller", "--listen", "0.0.0.0:0", "--data"])
            .arg(dir.path().join("controller"));
        c
    });
    assert!(!out.ok);
    for needed in ["0.0.0.0", "--tls-cert", "--insecure"] {
        assert!(out.stderr.contains(needed), "{needed}: {}", out.stderr);
    }
    println!(
        "haze controller --listen 0.0.0.0:0 without TLS: {}",
        out.stderr.trim()
    );
}

#[test]
fn slow_headers_are_cut_off_while_others_are_served_and_one_address_cannot_take_every_slot() {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};

    let dir = tempfile::tempdir().unwrap();
    let haze = HAZE.secure(dir.path());
    let node = haze.serve(
        &dir.path().join("node1"),
        &["--max-connections-per-address", "2"],
    );
    let controller = haze.controller(&dir.path().join("controller"));
    let http: SocketAddr = node.http.parse().unwrap();
    let ctl: SocketAddr = controller.addr.parse().unwrap();

    // Slowloris: one byte of a request every second, on the HTTP API and the controller (a
    // TLS handshake is bytes too: it is cut by the handshake deadline before the headers').
    let start = Instant::now();
    let mut slow: Vec<TcpStream> = [http, ctl]
        .iter()
        .map(|a| TcpStream::connect(a).unwrap())
        .collect();
    let mut cut = [None, None];
    while cut.iter().any(Option::is_none) && start.elapsed() < Duration::from_secs(30) {
        for (i, s) in slow.iter_mut().enumerate() {
            if cut[i].is_none() && s.write_all(b"\x16").is_err() {
                cut[i] = Some(start.elapsed());
            }
            s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
            let mut buf = [0u8; 64];
            let closed = match s.read(&mut buf) {
                Ok(n) => n == 0,
                Err(e) => !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
            };
            if cut[i].is_none() && closed {
                cut[i] = Some(start.elapsed());
            }
        }
        // Meanwhile, others are served.
        let served = haze.ok(&node, &["counter", "incr", "meanwhile"]);
        assert!(!served.is_empty());
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(cut.iter().all(Option::is_some), "never cut off: {cut:?}");
    println!("slowloris on the HTTP API and the controller: cut after {cut:?}, others served");

    // One address (127.0.0.1) takes its 2 connections; more from it are closed at once, and
    // another address (127.0.0.2) still gets in.
    let binary: SocketAddr = node.addr.parse().unwrap();
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..6 {
        let s = TcpStream::connect(binary).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut probe = s.try_clone().unwrap();
        let mut buf = [0u8; 64];
        match probe.read(&mut buf) {
            Ok(n) if n > 0 => refused += 1, // the refusal's frame, in plaintext, before TLS
            _ => held.push(s),
        }
    }
    assert!(refused >= 4, "refused {refused} of 6 from one address");
    // Another address: bound to 127.0.0.2 before connecting; no answer within a second means
    // it was taken (and waits for its TLS handshake).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let verdict = runtime.block_on(async {
        use tokio::io::AsyncReadExt;
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut stream = socket.connect(binary).await.unwrap();
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
            Err(_) => "held",
            Ok(Ok(0)) => "closed",
            Ok(_) => "refused",
        }
    });
    assert_eq!(verdict, "held");
    println!(
        "6 connections from 127.0.0.1 with a cap of 2 per address: {refused} refused at once; \
         127.0.0.2 still gets in"
    );
    drop(held);
}

#[test]
fn a_replica_keeps_its_node_and_scoped_token_for_the_next_sync() {
    let dir = tempfile::tempdir().unwrap();
    let (haze, controller, nodes) = secure_cluster(dir.path());
    let device = token(
        &haze,
        &controller,
        &[
            "--prefix",
            "user:42/",
            "--read",
            "--write",
            "--expires",
            "1d",
        ],
    );
    let ca = haze.ca().expect("a secure binary has a CA");
    let replica = dir.path().join("phone.haze");
    let kept = dir.path().join("phone.haze.remote.json");
    // A device's command: no CA, token or profile of its own but what it is given.
    let local = |args: &[&str]| {
        let mut cmd = haze.command();
        for var in ["HAZE_TLS_CA", "HAZE_TOKEN"] {
            cmd.env_remove(var);
        }
        cmd.env("HAZE_CONFIG_DIR", dir.path().join("device-config"));
        cmd.arg("local").arg("--replica").arg(&replica).args(args);
        output(cmd)
    };
    let first = local(&["set", "add", "user:42/list", "milk"]);
    assert!(first.ok, "{}", first.stderr);

    // The first sync is given the node, the CA and the token; it keeps them with the replica.
    let ca_flag = ca.to_string_lossy().into_owned();
    let given = [
        "sync",
        "--addr",
        &nodes[0].addr,
        "--tls-ca",
        &ca_flag,
        "--token",
        &device,
    ];
    let synced = local(&given);
    assert!(synced.ok, "{}", synced.stderr);
    assert!(synced.stderr.contains("kept the node"), "{}", synced.stderr);
    let text = std::fs::read_to_string(&kept).unwrap();
    assert!(
        text.contains(&device) && text.contains(&nodes[0].addr),
        "{text}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the kept token is readable by others");
    }

    // The next edits sync with no flags at all, through the kept node, CA and token, and say
    // nothing more about keeping them.
    let second = local(&["set", "add", "user:42/list", "eggs"]);
    assert!(second.ok, "{}", second.stderr);
    let again = local(&["sync"]);
    assert!(again.ok, "{}", again.stderr);
    assert!(!again.stderr.contains("kept the node"), "{}", again.stderr);
    let members = haze.ok(&nodes[1], &["set", "members", "user:42/list"]);
    assert_eq!(members, "eggs\nmilk\n");

    // The kept token is scoped: a key outside its prefix is refused and nothing is written.
    let outside = local(&["set", "add", "user:43/list", "cake"]);
    assert!(outside.ok, "{}", outside.stderr);
    let refused = local(&["sync"]);
    assert!(!refused.ok, "a sync outside the token's prefix succeeded");
    assert!(refused.stderr.contains("forbidden"), "{}", refused.stderr);
    let other = haze.run(&nodes[2], &["set", "members", "user:43/list"]);
    assert!(other.stdout.trim().is_empty(), "{}", other.stdout);

    // Kept credentials go only to the node they were kept for: another address gets none.
    let elsewhere = local(&["sync", "--addr", &nodes[1].addr]);
    assert!(!elsewhere.ok, "a sync elsewhere used the kept token");
    eprintln!(
        "held: the replica kept node, CA and token (0600); a flag-free sync used them; \
         out of prefix refused ({})",
        refused.stderr.lines().last().unwrap_or_default()
    );
}
