//! Every CRDT type through every front end: the `haze` data commands of maps, flags,
//! multi-value registers and max/min registers, the HTTP API's `/edit`, and the Redis
//! protocol's hash commands, all one operations table (`haze_device::Edit`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::{HAZE, ok, run};

#[test]
fn maps_flags_multi_value_registers_and_extremums_through_the_cli_http_and_resp() {
    let dir = tempfile::tempdir().unwrap();
    let node = HAZE.serve(&dir.path().join("node"), &["--resp", "127.0.0.1:0"]);

    // The CLI.
    ok(&node, &["map", "set", "user:1", "name", "Ada"]);
    assert_eq!(ok(&node, &["map", "incr", "user:1", "visits", "3"]), "3\n");
    assert_eq!(ok(&node, &["map", "incr", "user:1", "visits"]), "4\n");
    assert_eq!(ok(&node, &["map", "get", "user:1"]), "name=Ada\nvisits=4\n");
    assert_eq!(ok(&node, &["map", "get", "user:1", "name"]), "Ada\n");
    ok(&node, &["map", "remove", "user:1", "name"]);
    assert_eq!(ok(&node, &["map", "get", "user:1"]), "visits=4\n");
    ok(&node, &["flag", "enable", "dark"]);
    assert_eq!(ok(&node, &["flag", "get", "dark"]), "true\n");
    ok(&node, &["flag", "disable", "dark"]);
    assert_eq!(ok(&node, &["flag", "get", "dark"]), "false\n");
    ok(&node, &["mvreg", "set", "title", "Groceries"]);
    assert_eq!(ok(&node, &["mvreg", "get", "title"]), "Groceries\n");
    ok(&node, &["max", "set", "high", "5"]);
    assert_eq!(ok(&node, &["max", "set", "high", "3"]), "5\n");
    assert_eq!(ok(&node, &["min", "set", "low", "5"]), "5\n");
    assert_eq!(ok(&node, &["min", "set", "low", "3"]), "3\n");
    let wrong = run(&node, &["flag", "get", "user:1"]);
    assert!(
        !wrong.ok && wrong.stderr.contains("holds a or_map"),
        "{wrong:?}"
    );
    println!("CLI: a map's register and counter fields, a flag, an MV register, max and min");

    // HTTP: any edit as JSON; the answer is the new state and its view.
    let body = r#"{"map_update": {"key": {"string": "done"}, "edit": "flag_enable"}}"#;
    let mut http = TcpStream::connect(&node.http).unwrap();
    write!(
        http,
        "POST /v1/keys/todo:1/edit HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    http.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains(r#""value":[{"key":"done","type":"flag","value":true}]"#),
        "{answer}"
    );
    println!("HTTP: POST /v1/keys/todo:1/edit enabled a flag field of a map");

    // RESP: hashes are maps of register (and counter) fields.
    let mut resp = TcpStream::connect(&node.resp).unwrap();
    resp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let commands: &[&[&str]] = &[
        &["HSET", "user:2", "name", "Grace", "lang", "cobol"],
        &["HSET", "user:2", "name", "Hopper"],
        &["HINCRBY", "user:2", "visits", "5"],
        &["HGET", "user:2", "name"],
        &["HMGET", "user:2", "lang", "nope", "visits"],
        &["HLEN", "user:2"],
        &["HEXISTS", "user:2", "lang"],
        &["HDEL", "user:2", "lang", "nope"],
        &["HGETALL", "user:2"],
        &["TYPE", "user:2"],
        &["HGET", "dark", "x"],
    ];
    let mut out = String::new();
    for command in commands {
        out.push_str(&format!("*{}\r\n", command.len()));
        for arg in *command {
            out.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
    }
    resp.write_all(out.as_bytes()).unwrap();
    let expected = ":2\r\n:0\r\n:5\r\n$6\r\nHopper\r\n*3\r\n$5\r\ncobol\r\n$-1\r\n$1\r\n5\r\n:3\r\n:1\r\n:1\r\n\
                    *4\r\n$4\r\nname\r\n$6\r\nHopper\r\n$6\r\nvisits\r\n$1\r\n5\r\n+hash\r\n-WRONGTYPE";
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < expected.len() {
        match resp.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with(expected), "{got}");
    assert_eq!(
        ok(&node, &["map", "get", "user:2"]),
        "name=Hopper\nvisits=5\n"
    );
    println!(
        "RESP: HSET, HINCRBY, HGET, HMGET, HLEN, HEXISTS, HDEL, HGETALL on a map; the CLI reads it"
    );
}
