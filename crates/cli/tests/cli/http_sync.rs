//! A device's sync over the node's HTTP port, as a browser app would run it: digests first,
//! then the differing states, as JSON and as the binary protocol's encoding; CORS for the
//! origins allowed only.

use std::io::{Read, Write};
use std::net::TcpStream;

use haze_crdt::{ActorId, OrSet, PnCounter, Scalar, Value};
use haze_protocol::{Request, Response};
use serde_json::json;

use crate::harness::{HAZE, ok};

/// One HTTP/1.1 exchange (the connection closed after it): the status line, the headers (in
/// lower case) and the body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (String, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete answer");
    let head = String::from_utf8_lossy(&answer[..split]).to_string();
    let (status, headers) = head.split_once("\r\n").unwrap_or((&head, ""));
    (
        status.to_string(),
        headers.to_lowercase(),
        answer[split + 4..].to_vec(),
    )
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

#[test]
fn a_device_syncs_over_http_digests_first_in_json_or_binary() {
    let dir = tempfile::tempdir().unwrap();
    let node = HAZE.serve(
        &dir.path().join("node"),
        &["--cors-origin", "https://app.example"],
    );
    ok(&node, &["counter", "incr", "visits", "5"]);
    ok(&node, &["set", "add", "list", "milk"]);

    // The device's replica: a set the node lacks a member of, and a key the node lacks.
    let device = ActorId::new(0xd0d0);
    let mut list = OrSet::default();
    list.insert(device, Scalar::from("eggs"));
    let mut steps = PnCounter::default();
    steps.add(device, 3).unwrap();
    let list = Value::OrSet(list);
    let steps = Value::PnCounter(steps);

    // 1. Digests of the device's keys, as a list the node remembers by its id.
    let keys = json!(["list", "steps", "visits"]);
    let (status, _, body) = http(
        &node.http,
        "POST",
        "/v1/sync/digests",
        &[("Content-Type", "application/json")],
        serde_json::json!({"keys": keys}).to_string().as_bytes(),
    );
    assert!(
        status.contains("200"),
        "{status}: {}",
        String::from_utf8_lossy(&body)
    );
    let answer = json(&body);
    let digests = answer["digests"].clone();
    let list_id = answer["list"].as_str().unwrap().to_string();
    assert!(
        digests[0].is_string() && digests[1].is_null() && digests[2].is_string(),
        "{digests}"
    );
    // The same list again, by its id alone.
    let (_, _, body) = http(
        &node.http,
        "POST",
        "/v1/sync/digests",
        &[],
        serde_json::json!({ "list": list_id })
            .to_string()
            .as_bytes(),
    );
    assert_eq!(json(&body)["digests"], digests);
    let (_, _, body) = http(
        &node.http,
        "POST",
        "/v1/sync/digests",
        &[],
        br#"{"list": "0000000000000008"}"#,
    );
    assert_eq!(json(&body)["unknown_list"], true);

    // 2. The states that differ, merged both ways: the answer is the node's merged state.
    let merge = serde_json::json!({"items": [
        {"key": "list", "state": list},
        {"key": "steps", "state": steps},
    ]});
    let (status, _, body) = http(
        &node.http,
        "POST",
        "/v1/sync/merge",
        &[],
        merge.to_string().as_bytes(),
    );
    assert!(
        status.contains("200"),
        "{status}: {}",
        String::from_utf8_lossy(&body)
    );
    let items = json(&body)["items"].clone();
    let merged: Value = serde_json::from_value(items[0]["state"].clone()).unwrap();
    let Value::OrSet(merged) = merged else {
        panic!("{items}")
    };
    let members: Vec<&Scalar> = merged.iter().collect();
    assert_eq!(members, [&Scalar::from("eggs"), &Scalar::from("milk")]);
    assert_eq!(ok(&node, &["counter", "get", "steps"]), "3\n");
    println!("JSON sync: digests of 3 keys (1 missing on the node), 2 states merged both ways");

    // 3. The binary protocol's encoding, over the same port.
    let mut frame = Vec::new();
    Request::DigestList {
        list: u64::from_str_radix(&list_id, 16).unwrap(),
        keys: None,
    }
    .encode(42, &mut frame);
    let (status, headers, body) = http(
        &node.http,
        "POST",
        "/v1/sync",
        &[("Content-Type", "application/x-haze")],
        &frame,
    );
    assert!(
        status.contains("200") && headers.contains("application/x-haze"),
        "{status}"
    );
    let (id, answer) = Response::decode(&body).unwrap();
    assert_eq!(id, 42);
    let Response::Digests(now) = answer else {
        panic!("{answer:?}")
    };
    assert!(
        now.iter().all(Option::is_some),
        "every key is on the node now: {now:?}"
    );
    let (status, _, _) = http(
        &node.http,
        "POST",
        "/v1/sync",
        &[("Content-Type", "application/x-haze")],
        b"\xff\x00junk",
    );
    assert!(status.contains("400"), "{status}");
    println!("binary sync over HTTP: the digests of the remembered list, all present now");

    // 4. CORS: an allowed origin's preflight is answered; another origin gets no grant.
    let preflight = |origin: &str| {
        http(
            &node.http,
            "OPTIONS",
            "/v1/sync/merge",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                (
                    "Access-Control-Request-Headers",
                    "authorization, content-type",
                ),
            ],
            b"",
        )
    };
    let (status, headers, _) = preflight("https://app.example");
    assert!(status.contains("200"), "{status}");
    assert!(
        headers.contains("access-control-allow-origin: https://app.example"),
        "{headers}"
    );
    assert!(headers.contains("authorization"), "{headers}");
    let (_, headers, _) = preflight("https://evil.example");
    assert!(
        !headers.contains("access-control-allow-origin"),
        "{headers}"
    );
    println!("CORS: https://app.example allowed, https://evil.example not");
}
