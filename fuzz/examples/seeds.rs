//! Writes the seed corpus of every target under `fuzz/corpus/<target>/` from real encodings:
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds` (from the repository's root).
//! Run it again when an encoding changes; the fuzzer's own finds are kept beside these.

use std::path::Path;

use haze_crdt::{ActorId, EnableWinsFlag, GCounter, MvRegister, OrSet, PnCounter, Value};
use haze_protocol::Request;
use haze_storage::wal_fuzzing::{merge_payload, segment_of};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("corpus folder");
    std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("seed written");
}

fn values() -> Vec<(&'static str, Value)> {
    let mut g = GCounter::new();
    g.increment(ActorId::new(1), 5).unwrap();
    g.increment(ActorId::new(2), 3).unwrap();
    let mut pn = PnCounter::new();
    pn.increment(ActorId::new(1), 7).unwrap();
    pn.decrement(ActorId::new(3), 2).unwrap();
    let mut set = OrSet::new();
    set.insert(ActorId::new(1), "milk".to_string());
    set.insert(ActorId::new(2), "eggs".to_string());
    set.remove(&"milk".to_string());
    let mut reg = MvRegister::new();
    reg.set(ActorId::new(1), "blue".to_string());
    let mut flag = EnableWinsFlag::new();
    flag.enable(ActorId::new(4));
    vec![
        ("gcounter", Value::from(g)),
        ("pncounter", Value::from(pn)),
        ("orset", Value::from(set)),
        ("mvregister", Value::from(reg)),
        ("flag", Value::from(flag)),
    ]
}

fn main() {
    let values = values();
    for (name, value) in &values {
        write("value", name, &value.encode());
        write("value_json", name, &serde_json::to_vec(value).unwrap());
    }
    let (_, set) = &values[2];
    let requests = [
        (
            "get",
            Request::Get {
                key: b"visits".to_vec(),
            },
        ),
        (
            "digest",
            Request::Digest {
                key: b"cart:7".to_vec(),
            },
        ),
        (
            "merge",
            Request::Merge {
                key: b"cart:7".to_vec(),
                value: set.clone(),
            },
        ),
        (
            "merge-batch",
            Request::MergeBatch {
                items: values
                    .iter()
                    .map(|(n, v)| (n.as_bytes().to_vec(), v.clone()))
                    .collect(),
            },
        ),
    ];
    for (id, (name, request)) in (1u64..).zip(requests) {
        let mut body = Vec::new();
        request.encode(id, &mut body);
        write("request", name, &body);
    }
    let entries: Vec<(Vec<u8>, Vec<u8>)> = values
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.encode()))
        .collect();
    write("wal", "one-record", &segment_of(&[entries[..1].to_vec()]));
    write(
        "wal",
        "three-records",
        &segment_of(&[
            entries.clone(),
            entries[1..3].to_vec(),
            entries[..1].to_vec(),
        ]),
    );
    let mut torn = segment_of(&[entries.clone(), entries[..2].to_vec()]);
    torn.truncate(torn.len() - 5);
    write("wal", "torn-tail", &torn);
    let mut flipped = segment_of(&[entries[..2].to_vec(), entries[2..].to_vec()]);
    flipped[40] ^= 0x10;
    write("wal", "damaged-first", &flipped);
    write("wal", "payload", &merge_payload(&entries));
    let lines: &[(&str, &[u8])] = &[
        ("add", b"\x01{\"nodes\":[\"n4\"]}\n\x05{\"node\":1,\"epoch\":1}\n\x05{\"node\":4,\"epoch\":1,\"known\":3,\"wait_ms\":2000}"),
        ("remove", b"\x02{\"nodes\":[\"127.0.0.1:7702\"]}\n\x05{\"node\":1,\"epoch\":1}\n\x05{\"node\":3,\"epoch\":1}\n\x05{\"node\":4,\"epoch\":1}"),
        ("plan-commit", b"\x03{\"add\":[\"n4\"],\"remove\":[\"n1\"]}\n\x04\n\x05{\"node\":2,\"epoch\":1}"),
        ("register", b"\x00{\"addr\":\"db-5.example:7705\"}\n\x01{\"nodes\":[\"n5\",\"4\"]}"),
        ("token", b"\x06{\"rights\":[\"read\",\"write\"],\"prefixes\":[\"cart:\"],\"expires_in_ms\":60000}"),
    ];
    for (name, bytes) in lines {
        write("controller", name, bytes);
    }
}
