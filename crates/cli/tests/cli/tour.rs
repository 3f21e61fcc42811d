//! The README's tour, command by command, and the errors a user sees.

use crate::harness::{HAZE, Process, haze, ok, run, serve_command};

#[test]
fn the_data_commands_work_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let server = HAZE.serve(dir.path(), &[]);

    assert_eq!(ok(&server, &["counter", "incr", "visits"]), "1\n");
    assert_eq!(ok(&server, &["counter", "incr", "visits", "5"]), "6\n");
    assert_eq!(ok(&server, &["counter", "decr", "visits", "2"]), "4\n");
    assert_eq!(ok(&server, &["counter", "get", "visits"]), "4\n");
    assert_eq!(ok(&server, &["counter", "get", "never-written"]), "0\n");

    ok(&server, &["set", "add", "list", "milk", "eggs", "bread"]);
    ok(&server, &["set", "remove", "list", "eggs"]);
    assert_eq!(ok(&server, &["set", "members", "list"]), "bread\nmilk\n");

    ok(&server, &["register", "set", "title", "Groceries"]);
    assert_eq!(ok(&server, &["register", "get", "title"]), "Groceries\n");

    // `haze get` prints the state; `haze merge` merges a state back (here, a copy with one more
    // member added by another device).
    let state = ok(&server, &["get", "list"]);
    let mut json: serde_json::Value = serde_json::from_str(&state).unwrap();
    json["seen"]["00000000000000aa"] = 1.into();
    json["entries"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(
            {"value": {"string": "apples"}, "dots": [{"actor": "00000000000000aa", "counter": 1}]}
        ));
    let file = dir.path().join("state.json");
    std::fs::write(&file, json.to_string()).unwrap();
    ok(
        &server,
        &["merge", "list", "--file", file.to_str().unwrap()],
    );
    assert_eq!(
        ok(&server, &["set", "members", "list"]),
        "apples\nbread\nmilk\n"
    );

    // The same node answers HTTP.
    use std::io::{Read, Write};
    let mut http = std::net::TcpStream::connect(&server.http).unwrap();
    http.write_all(b"GET /v1/keys/visits HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    http.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"value\":4"), "{response}");
}

#[test]
fn failures_exit_non_zero_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = HAZE.serve(dir.path(), &[]);
    ok(&server, &["counter", "incr", "n"]);
    for (args, expected) in [
        (vec!["set", "add", "n", "x"], "type mismatch"),
        (
            vec!["set", "members", "n"],
            "holds a pn_counter, not a or_set",
        ),
        (vec!["get", "missing"], "no value under key \"missing\""),
        (
            vec!["register", "get", "missing"],
            "no value under key \"missing\"",
        ),
    ] {
        let out = run(&server, &args);
        assert!(!out.ok, "{args:?} should fail");
        assert_eq!(out.stderr.lines().count(), 1, "one line: {:?}", out.stderr);
        assert!(out.stderr.contains(expected), "{args:?}: {}", out.stderr);
    }
    let bad_file = dir.path().join("bad.json");
    std::fs::write(&bad_file, "{\"type\": \"hyperloglog\"}").unwrap();
    let out = run(
        &server,
        &["merge", "n", "--file", bad_file.to_str().unwrap()],
    );
    assert!(
        !out.ok && out.stderr.starts_with("error: parsing"),
        "{}",
        out.stderr
    );

    // Nothing listening: a clear connection error.
    let out = haze()
        .args(["counter", "get", "k", "--addr", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect to 127.0.0.1:1"));
}

#[test]
fn sigterm_stops_the_node_cleanly_and_writes_survive() {
    let dir = tempfile::tempdir().unwrap();
    let server = HAZE.serve(
        dir.path(),
        &["--durability", "periodic", "--sync-interval-ms", "60000"],
    );
    ok(&server, &["counter", "incr", "k", "7"]);
    let (status, clean) = server.terminate();
    assert!(status.success(), "{status}");
    assert!(clean, "the node logs a clean stop");
    // Periodic mode syncs on shutdown: the write is there after a restart.
    let server = HAZE.serve(dir.path(), &[]);
    assert_eq!(ok(&server, &["counter", "get", "k"]), "7\n");
}

#[test]
fn sigterm_stops_the_node_even_when_its_log_pipe_is_gone() {
    // Found when test processes outlived their test: with the reader of its stderr gone, a log
    // write failed, tracing-subscriber reported it by printing to stderr, that panicked, and the
    // SIGTERM handler died with it.
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = serve_command(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("haze node ready") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "haze serve exited early"
        );
    }
    drop(stderr); // the log pipe is gone
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
        child
    });
    match rx.recv_timeout(std::time::Duration::from_secs(10)) {
        Ok(status) => assert!(status.unwrap().success()),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid])
                .status();
            panic!("the node ignored SIGTERM");
        }
    }
}

/// The node's count of requests of `kind` with `outcome` ("ok" or "error"), from its `/metrics`.
fn requests_served(server: &Process, kind: &str, outcome: &str) -> u64 {
    use std::io::{Read, Write};
    let mut http = std::net::TcpStream::connect(&server.http).unwrap();
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    http.read_to_string(&mut response).unwrap();
    let line = format!("haze_requests_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} ");
    response
        .lines()
        .find_map(|l| l.strip_prefix(line.as_str()))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {line:?} in /metrics:\n{response}"))
}

#[test]
fn the_bench_command_drives_every_operation_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = HAZE.serve(dir.path(), &["--durability", "periodic"]);
    // The request kinds each operation sends (typed operations are "op"; `get` and `mixed`
    // write their keys first).
    for (op, kinds) in [
        ("counter-incr", &["op"][..]),
        ("set-add", &["op"]),
        ("register-set", &["op"]),
        ("get", &["get"]),
        ("mixed", &["get", "op"]),
    ] {
        let served = |outcome| -> Vec<u64> {
            kinds
                .iter()
                .map(|kind| requests_served(&server, kind, outcome))
                .collect()
        };
        let (ok_before, errors_before) = (served("ok"), served("error"));
        let out = ok(
            &server,
            &[
                "bench",
                "--op",
                op,
                "--connections",
                "4",
                "--pipeline",
                "4",
                "--keys",
                "50",
                "--duration",
                "1",
            ],
        );
        assert!(out.starts_with(&format!("haze   {op}")), "{out}");
        assert!(out.trim_end().ends_with("errors 0"), "{out}");
        // Counts, not rates: the node served requests of each kind, and refused none.
        for ((kind, before), after) in kinds.iter().zip(ok_before).zip(served("ok")) {
            assert!(after > before, "{op} sent no {kind} request: {out}");
        }
        assert_eq!(served("error"), errors_before, "{op}: {out}");
    }
    // Two targets taken in turn (here the same node twice): both measured, a ratio printed.
    let out = ok(
        &server,
        &[
            "bench",
            "--op",
            "get",
            "--connections",
            "2",
            "--pipeline",
            "2",
            "--keys",
            "20",
            "--duration",
            "2",
            "--rounds",
            "2",
            "--baseline",
            &server.addr,
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("haze   get") && lines[0].ends_with("errors 0"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("base   get") && lines[1].ends_with("errors 0"),
        "{out}"
    );
    assert!(lines[2].starts_with("ratio  haze/base throughput"), "{out}");
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    // `haze ... | head -1`: the reader goes away while haze still prints. More than a pipe
    // buffer of output makes haze write after `head` has exited, every time.
    let dir = tempfile::tempdir().unwrap();
    let replica = dir.path().join("r.haze");
    let members: Vec<String> = (0..2_000).map(|i| format!("member-{i:040}")).collect();
    let mut add = haze();
    add.args([
        "local",
        "--replica",
        replica.to_str().unwrap(),
        "set",
        "add",
        "list",
    ]);
    add.args(&members);
    assert!(add.output().unwrap().status.success());
    let script = format!(
        "'{}' local --replica '{}' set members list 2>'{}' | head -c 1 >/dev/null; echo ${{PIPESTATUS[0]}}",
        env!("CARGO_BIN_EXE_haze"),
        replica.display(),
        dir.path().join("stderr").display()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    assert_eq!(
        status, "141",
        "the status a SIGPIPE gives; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
