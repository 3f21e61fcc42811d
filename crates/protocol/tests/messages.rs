//! Every message round-trips, and decoding arbitrary bodies never panics.

use haze_crdt::{ActorId, GCounter, Scalar, Value};
use haze_protocol::{ErrorCode, Request, Response, Role, TypedOp, WireError};
use proptest::prelude::*;

fn counter(n: u64) -> Value {
    let mut c = GCounter::new();
    c.increment(ActorId::new(1), n).unwrap();
    Value::from(c)
}

fn requests() -> Vec<Request> {
    let big = {
        let mut c = GCounter::new();
        for i in 0..50 {
            c.increment(ActorId::new(i << 32), 1).unwrap();
        }
        Value::from(c)
    };
    vec![
        Request::Hello {
            version: 1,
            role: Role::Client,
        },
        Request::Hello {
            version: 1,
            role: Role::Local,
        },
        Request::Hello {
            version: 1,
            role: Role::Peer {
                cluster: 0xfeed_beef_0000_0001,
            },
        },
        Request::GetMerged { key: b"k".to_vec() },
        Request::Copy {
            items: vec![(b"a".to_vec(), counter(1))],
        },
        Request::Backfill {
            items: vec![(b"b".to_vec(), counter(2))],
        },
        Request::Buckets,
        Request::Table,
        Request::BucketKeys {
            bucket: 4095,
            after: None,
        },
        Request::BucketKeys {
            bucket: 7,
            after: Some(b"last".to_vec()),
        },
        Request::Get { key: b"k".to_vec() },
        Request::Merge {
            key: b"k".to_vec(),
            value: counter(3),
        },
        Request::Merge {
            key: vec![0; 300],
            value: big.clone(),
        },
        Request::MergeBatch {
            items: vec![(b"a".to_vec(), counter(1)), (b"b".to_vec(), big)],
        },
        Request::Digest { key: b"k".to_vec() },
        Request::Op {
            key: b"k".to_vec(),
            op: TypedOp::CounterAdd(-5),
        },
        Request::Op {
            key: b"k".to_vec(),
            op: TypedOp::SetAdd(vec![Scalar::from("a"), Scalar::Int(-1)]),
        },
        Request::Op {
            key: b"k".to_vec(),
            op: TypedOp::SetRemove(vec![]),
        },
        Request::Op {
            key: b"k".to_vec(),
            op: TypedOp::RegisterSet(Scalar::Bytes(vec![1, 2])),
        },
        Request::Ping,
        Request::DigestBatch {
            keys: vec![b"a".to_vec(), vec![], vec![7; 200]],
        },
        Request::DigestList {
            list: 7,
            keys: None,
        },
        Request::DigestList {
            list: 9,
            keys: Some(vec![
                b"list:0001".to_vec(),
                b"list:0002".to_vec(),
                b"li".to_vec(),
                vec![],
                b"zz".to_vec(),
            ]),
        },
    ]
}

fn responses() -> Vec<Response> {
    vec![
        Response::Hello { version: 1 },
        Response::Value(None),
        Response::Value(Some(counter(2))),
        Response::Batch(vec![
            Ok(counter(1)),
            Err(WireError::new(ErrorCode::TypeMismatch, "nope")),
        ]),
        Response::Digest(Some(u64::MAX)),
        Response::Digest(None),
        Response::Pong,
        Response::Digests(vec![Some(1), None, Some(u64::MAX)]),
        Response::UnknownList,
        Response::Buckets(vec![0, 1, u64::MAX]),
        Response::Table(None),
        Response::Table(Some(b"{}".to_vec())),
        Response::Epoch(42),
        Response::Acks(vec![
            Ok(()),
            Err(WireError::new(ErrorCode::TypeMismatch, "no")),
        ]),
        Response::Acks(vec![]),
        Response::KeyDigests {
            keys: vec![(b"a".to_vec(), 3), (vec![], u64::MAX)],
            more: true,
        },
        Response::KeyDigests {
            keys: vec![],
            more: false,
        },
        Response::Error(WireError::new(ErrorCode::Overloaded, "busy")),
    ]
}

#[test]
fn every_message_round_trips() {
    for (id, request) in requests().into_iter().enumerate() {
        let mut body = Vec::new();
        request.encode(id as u64, &mut body);
        assert_eq!(Request::decode(&body).unwrap(), (id as u64, request));
    }
    for (id, response) in responses().into_iter().enumerate() {
        let mut body = Vec::new();
        response.encode(id as u64, &mut body);
        assert_eq!(Response::decode(&body).unwrap(), (id as u64, response));
    }
}

#[test]
fn malformed_bodies_say_what_is_wrong_and_keep_the_request_id() {
    let err = Request::decode(&[0, 0, 0, 0, 0, 0, 0, 9, 0x7e]).unwrap_err();
    assert_eq!(err.request_id, Some(9));
    assert!(
        err.reason.contains("unknown request kind"),
        "{}",
        err.reason
    );
    assert_eq!(Request::decode(&[1, 2]).unwrap_err().request_id, None);
    let mut body = Vec::new();
    Request::Ping.encode(1, &mut body);
    body.push(0);
    // A hello of the first release (no role) is a client's.
    let old_hello = [&[0u8; 8][..], &[0x01], b"HAZE", &[0, 1]].concat();
    assert_eq!(
        Request::decode(&old_hello).unwrap().1,
        Request::Hello {
            version: 1,
            role: Role::Client
        }
    );
    assert!(
        Request::decode(&body)
            .unwrap_err()
            .reason
            .contains("trailing")
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    #[test]
    fn decoding_arbitrary_bodies_never_panics(body in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Request::decode(&body);
        let _ = Response::decode(&body);
    }

    #[test]
    fn decoding_mutated_messages_never_panics(pick in 0usize..21, flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let mut body = Vec::new();
        requests()[pick].encode(7, &mut body);
        for (i, x) in flips {
            let i = i.index(body.len());
            body[i] ^= x;
        }
        let _ = Request::decode(&body);
    }
}

#[test]
fn sorted_keys_with_common_prefixes_travel_compressed() {
    let keys: Vec<Vec<u8>> = (0..1000)
        .map(|i| format!("user:42/list:{i:05}").into_bytes())
        .collect();
    let mut body = Vec::new();
    Request::DigestList {
        list: haze_protocol::key_list_id(&keys),
        keys: Some(keys.clone()),
    }
    .encode(1, &mut body);
    let raw: usize = keys.iter().map(|k| k.len()).sum();
    assert!(
        body.len() * 3 < raw,
        "{} bytes for {raw} bytes of keys",
        body.len()
    );
}

#[test]
fn a_compressed_key_list_cannot_expand_without_bound() {
    // One 1 MiB key, then a million keys that each repeat it whole: 4 MB of input, 1 TB expanded.
    let mut body = 1u64.to_be_bytes().to_vec();
    body.push(0x09); // DigestList
    body.extend_from_slice(&7u64.to_be_bytes());
    body.push(1);
    let varint = |out: &mut Vec<u8>, mut n: u64| {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    };
    varint(&mut body, 1_000_001);
    varint(&mut body, 0);
    varint(&mut body, 1 << 20);
    body.extend(std::iter::repeat_n(b'k', 1 << 20));
    for _ in 0..1_000_000 {
        varint(&mut body, 1 << 20);
        varint(&mut body, 0);
    }
    let err = Request::decode(&body).unwrap_err();
    assert!(err.reason.contains("16 MiB"), "{}", err.reason);
}
