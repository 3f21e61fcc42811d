//! The generators cover every kind the decoders accept: the request and response kinds, the
//! roles of a hello and the operations of an `Op`.

use std::collections::BTreeSet;

use haze_protocol::{Request, Response, Role, TypedOp};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;

use crate::{arbitrary, encoded_request, encoded_response, requests, responses};

/// A tag byte, shown in hex.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Tag(u8);

impl std::fmt::Debug for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#04x}", self.0)
    }
}

/// Every byte after `prefix` that a decoder does not refuse as `unknown` (whatever else is wrong
/// with so short a body).
fn accepted_tags(
    prefix: &[u8],
    decode: impl Fn(&[u8]) -> Result<(), String>,
    unknown: &str,
) -> BTreeSet<Tag> {
    (0..=255u8)
        .filter(|&tag| match decode(&[prefix, &[tag]].concat()) {
            Ok(()) => true,
            Err(reason) => !reason.contains(unknown),
        })
        .map(Tag)
        .collect()
}

/// `n` values of `strategy`, the same ones on every run.
fn samples<T: std::fmt::Debug>(strategy: impl Strategy<Value = T>, n: usize) -> Vec<T> {
    let mut runner = TestRunner::deterministic();
    (0..n)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("no filters")
                .current()
        })
        .collect()
}

/// The kind bytes (and roles and operations) the generators produce are exactly those the
/// decoders accept: a kind added to the protocol fails here until `requests()` or `responses()`
/// has an example of it (and `arbitrary.rs`, which must match every variant to compile, a
/// strategy for it).
#[test]
fn the_generators_cover_every_kind_the_decoders_accept() {
    let requests = samples(arbitrary::any_request(&requests()), 3_000);
    let responses = samples(arbitrary::any_response(&responses()), 3_000);
    let decode_request = |body: &[u8]| Request::decode(body).map(drop).map_err(|e| e.reason);
    let decode_response = |body: &[u8]| Response::decode(body).map(drop).map_err(|e| e.reason);
    let id = 7u64.to_be_bytes();
    // A role is a hello's last byte; an operation's tag comes before its one-byte argument.
    let hello = encoded_request(&Request::Hello {
        version: 1,
        role: Role::Client,
        token: None,
    });
    let role_at = hello.len() - 1;
    let op_of = |op: &TypedOp| Request::Op {
        key: vec![],
        op: op.clone(),
    };
    let op = encoded_request(&op_of(&TypedOp::CounterAdd(0)));
    let op_at = op.len() - 2;

    let generated: BTreeSet<Tag> = requests
        .iter()
        .map(|r| Tag(encoded_request(r)[8]))
        .collect();
    let accepted = accepted_tags(&id, decode_request, "unknown request kind");
    assert_eq!(
        generated, accepted,
        "request kinds generated (left) and accepted (right): `requests()` needs one of each"
    );

    let generated: BTreeSet<Tag> = responses
        .iter()
        .map(|r| Tag(encoded_response(r)[8]))
        .collect();
    let accepted = accepted_tags(&id, decode_response, "unknown response kind");
    assert_eq!(
        generated, accepted,
        "response kinds generated (left) and accepted (right): `responses()` needs one of each"
    );

    let hellos = requests
        .iter()
        .filter(|r| matches!(r, Request::Hello { .. }));
    let generated: BTreeSet<Tag> = hellos.map(|r| Tag(encoded_request(r)[role_at])).collect();
    let accepted = accepted_tags(&hello[..role_at], decode_request, "unknown role");
    assert_eq!(
        generated, accepted,
        "roles generated (left) and accepted (right): `requests()` needs a hello of each"
    );

    let ops = requests.iter().filter_map(|r| match r {
        Request::Op { op, .. } => Some(Tag(encoded_request(&op_of(op))[op_at])),
        _ => None,
    });
    let generated: BTreeSet<Tag> = ops.collect();
    let accepted = accepted_tags(&op[..op_at], decode_request, "unknown operation");
    assert_eq!(
        generated, accepted,
        "operations generated (left) and accepted (right): `requests()` needs an op of each"
    );
}
