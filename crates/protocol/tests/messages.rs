//! Every message round-trips, decoding arbitrary or mutated bodies never panics, and the
//! generators of arbitrary messages cover every kind the decoders accept.

#[path = "messages/arbitrary.rs"]
mod arbitrary;
#[path = "messages/coverage.rs"]
mod coverage;

use haze_crdt::{ActorId, GCounter, Scalar, Value};
use haze_protocol::{ErrorCode, Request, Response, Role, TypedOp, WireError};
use proptest::prelude::*;

fn counter(n: u64) -> Value {
    let mut c = GCounter::new();
    c.increment(ActorId::new(1), n).unwrap();
    Value::from(c)
}

/// One or more examples of every request: the round-trip list, and the variants (and roles and
/// operations) `arbitrary::any_request` generates.
pub(crate) fn requests() -> Vec<Request> {
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
            token: None,
        },
        Request::Hello {
            version: 1,
            role: Role::Client,
            token: Some(format!("haze_{}", "0a".repeat(32))),
        },
        Request::Hello {
            version: 1,
            role: Role::Local,
            token: None,
        },
        Request::Hello {
            version: 1,
            role: Role::Peer {
                cluster: 0xfeed_beef_0000_0001,
            },
            token: None,
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
        Request::Watch {
            node: 3,
            lease_ms: 15_000,
            keys: vec![b"list".to_vec(), b"visits".to_vec()],
            prefixes: vec![b"todo:".to_vec()],
        },
        Request::Notify {
            items: vec![(b"list".to_vec(), counter(3))],
            missed: true,
        },
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
        Request::Op {
            key: b"todo:1".to_vec(),
            op: TypedOp::Edit(haze_device::Edit::map_update(
                "done",
                haze_device::Edit::FlagEnable,
            )),
        },
        Request::Apply {
            key: b"k".to_vec(),
            op: TypedOp::SetAdd(vec![Scalar::from("a")]),
        },
        Request::Apply {
            key: b"todo:1".to_vec(),
            op: TypedOp::Edit(haze_device::Edit::map_update(
                "done",
                haze_device::Edit::FlagEnable,
            )),
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

/// One or more examples of every response: the round-trip list, and the variants
/// `arbitrary::any_response` generates.
pub(crate) fn responses() -> Vec<Response> {
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
            role: Role::Client,
            token: None,
        }
    );
    assert!(
        Request::decode(&body)
            .unwrap_err()
            .reason
            .contains("trailing")
    );
}

#[test]
fn a_hello_token_too_long_or_not_text_is_malformed() {
    let hello = |token: &[u8]| {
        let mut body = encoded_request(&Request::Hello {
            version: 1,
            role: Role::Client,
            token: None,
        });
        haze_crdt::encode::writer::bytes(&mut body, token);
        body
    };
    let longest = "t".repeat(haze_protocol::MAX_TOKEN_BYTES);
    assert_eq!(
        Request::decode(&hello(longest.as_bytes())).unwrap().1,
        Request::Hello {
            version: 1,
            role: Role::Client,
            token: Some(longest.clone()),
        }
    );
    let too_long = Request::decode(&hello(&[b't'; 257])).unwrap_err();
    assert!(too_long.reason.contains("257 bytes"), "{too_long}");
    let not_text = Request::decode(&hello(&[0xff, 0xfe])).unwrap_err();
    assert!(not_text.reason.contains("UTF-8"), "{not_text}");
}

pub(crate) fn encoded_request(request: &Request) -> Vec<u8> {
    let mut body = Vec::new();
    request.encode(7, &mut body);
    body
}

pub(crate) fn encoded_response(response: &Response) -> Vec<u8> {
    let mut body = Vec::new();
    response.encode(7, &mut body);
    body
}

/// Decodes `body` as a request and as a response: neither panics, and whatever decodes encodes
/// to a body that decodes to the same message. Not always to the same bytes: the wire format
/// is not canonical (a hello without a role is a client's, a key may share less of the previous
/// key than it could, an error message's invalid UTF-8 decodes lossily).
fn decodes_stably(body: &[u8]) -> Result<(), TestCaseError> {
    if let Ok((id, request)) = Request::decode(body) {
        let mut again = Vec::new();
        request.encode(id, &mut again);
        prop_assert_eq!(
            Request::decode(&again),
            Ok((id, request)),
            "re-encoded request"
        );
    }
    if let Ok((id, response)) = Response::decode(body) {
        let mut again = Vec::new();
        response.encode(id, &mut again);
        prop_assert_eq!(
            Response::decode(&again),
            Ok((id, response)),
            "re-encoded response"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    #[test]
    fn decoding_arbitrary_bodies_never_panics(body in prop::collection::vec(any::<u8>(), 0..300)) {
        decodes_stably(&body)?;
    }

    #[test]
    fn a_stored_value_is_sent_exactly_as_the_value_it_encodes(
        value in prop::option::of(arbitrary::value()),
        id in any::<u64>(),
    ) {
        let stored = Response::Stored(value.as_ref().map(Value::encode));
        let (mut sent, mut expected) = (Vec::new(), Vec::new());
        stored.encode(id, &mut sent);
        Response::Value(value.clone()).encode(id, &mut expected);
        prop_assert_eq!(&sent, &expected);
        prop_assert_eq!(Response::decode(&sent), Ok((id, Response::Value(value))));
    }

    #[test]
    fn arbitrary_messages_of_every_kind_round_trip(
        request in arbitrary::any_request(&requests()),
        response in arbitrary::any_response(&responses()),
        id in any::<u64>(),
    ) {
        let mut body = Vec::new();
        request.encode(id, &mut body);
        prop_assert_eq!(Request::decode(&body), Ok((id, request)));
        body.clear();
        response.encode(id, &mut body);
        prop_assert_eq!(Response::decode(&body), Ok((id, response)));
    }

    #[test]
    fn decoding_mutated_messages_of_every_kind_never_panics(
        request in arbitrary::any_request(&requests()),
        response in arbitrary::any_response(&responses()),
        request_mutations in arbitrary::mutations(),
        response_mutations in arbitrary::mutations(),
    ) {
        let mut body = encoded_request(&request);
        arbitrary::mutate(&mut body, request_mutations);
        decodes_stably(&body)?;
        let mut body = encoded_response(&response);
        arbitrary::mutate(&mut body, response_mutations);
        decodes_stably(&body)?;
    }

    #[test]
    fn decoding_mutated_compressed_key_lists_never_panics(
        list in arbitrary::digest_list(),
        mutations in arbitrary::mutations(),
    ) {
        let mut body = encoded_request(&list);
        arbitrary::mutate(&mut body, mutations);
        decodes_stably(&body)?;
    }
}

/// Every one-byte change of a compressed key list (keys sharing prefixes of one and two-byte
/// lengths) is refused or decodes stably, and the changes reach the prefix decoder: some decode
/// to another list, some share more than the previous key has.
#[test]
fn every_one_byte_change_of_a_compressed_key_list_decodes_stably_or_is_refused() {
    let long = "p".repeat(150);
    let keys: Vec<Vec<u8>> = [
        "user:42/a",
        "user:42/ab",
        "user:42/b",
        "user:7",
        "",
        "user:7",
    ]
    .into_iter()
    .map(String::from)
    .chain([format!("{long}1"), format!("{long}2")])
    .map(String::into_bytes)
    .collect();
    let list = Request::DigestList {
        list: 5,
        keys: Some(keys.clone()),
    };
    let body = encoded_request(&list);
    let (mut other_lists, mut overlong_prefixes) = (0, 0);
    for i in 0..body.len() {
        for x in 1..=255u8 {
            let mut changed = body.clone();
            changed[i] ^= x;
            if let Err(e) = decodes_stably(&changed) {
                panic!("byte {i} ^ {x:#04x}: {e}");
            }
            match Request::decode(&changed) {
                Ok((
                    _,
                    Request::DigestList {
                        keys: Some(decoded),
                        ..
                    },
                )) if decoded != keys => {
                    other_lists += 1;
                }
                Err(e) if e.reason.contains("shares more than the previous key has") => {
                    overlong_prefixes += 1;
                }
                _ => {}
            }
        }
    }
    assert!(
        other_lists > 0 && overlong_prefixes > 0,
        "{other_lists} changes decoded to another list, {overlong_prefixes} shared too much"
    );
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
