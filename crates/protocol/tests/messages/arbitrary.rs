//! Strategies for requests and responses of every kind, with arbitrary contents.
//!
//! Each strategy is built from the round-trip examples (`requests()`, `responses()`), one
//! sub-strategy per variant they hold, through a `match` with no wildcard arm: a new variant of
//! `Request`, `Response`, `TypedOp` or `Role` does not compile until it has a strategy here.
//! Examples that lack a variant fail at run time instead: `coverage.rs` checks that the kind
//! bytes (and roles and operations) generated are exactly those the decoders accept.

use std::mem::{Discriminant, discriminant};

use haze_crdt::{ActorId, GCounter, OrSet, Scalar, Value};
use haze_protocol::{ErrorCode, Request, Response, Role, TypedOp, WireError};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::Union;

/// One strategy per variant among `examples` (whatever their contents), each as likely.
fn one_per_variant<T: Clone + std::fmt::Debug + 'static>(
    examples: &[T],
    like: impl Fn(&T) -> BoxedStrategy<T>,
) -> BoxedStrategy<T> {
    let mut seen: Vec<Discriminant<T>> = Vec::new();
    let mut strategies = Vec::new();
    for example in examples {
        if !seen.contains(&discriminant(example)) {
            seen.push(discriminant(example));
            strategies.push(like(example));
        }
    }
    Union::new(strategies).boxed()
}

/// Requests of every variant among `examples`, with roles and operations of every variant
/// among theirs.
pub(crate) fn any_request(examples: &[Request]) -> BoxedStrategy<Request> {
    let examples = examples.to_vec();
    one_per_variant(&examples, |like| request_like(like, &examples))
}

/// Responses of every variant among `examples`.
pub(crate) fn any_response(examples: &[Response]) -> BoxedStrategy<Response> {
    one_per_variant(examples, response_like)
}

/// Requests of `like`'s variant. No wildcard arm: see the module's comment.
fn request_like(like: &Request, examples: &[Request]) -> BoxedStrategy<Request> {
    match like {
        Request::Hello { .. } => (
            any::<u16>(),
            any_role(examples),
            proptest::option::of("[ -~]{0,80}"),
        )
            .prop_map(|(version, role, token)| Request::Hello {
                version,
                role,
                token,
            })
            .boxed(),
        Request::Get { .. } => key().prop_map(|key| Request::Get { key }).boxed(),
        Request::Merge { .. } => (key(), value())
            .prop_map(|(key, value)| Request::Merge { key, value })
            .boxed(),
        Request::MergeBatch { .. } => items()
            .prop_map(|items| Request::MergeBatch { items })
            .boxed(),
        Request::Digest { .. } => key().prop_map(|key| Request::Digest { key }).boxed(),
        Request::Op { .. } => (key(), any_op(examples))
            .prop_map(|(key, op)| Request::Op { key, op })
            .boxed(),
        Request::Apply { .. } => (key(), any_op(examples))
            .prop_map(|(key, op)| Request::Apply { key, op })
            .boxed(),
        Request::Ping => Just(Request::Ping).boxed(),
        Request::DigestBatch { .. } => prop::collection::vec(key(), 0..6)
            .prop_map(|keys| Request::DigestBatch { keys })
            .boxed(),
        Request::DigestList { .. } => digest_list(),
        Request::GetMerged { .. } => key().prop_map(|key| Request::GetMerged { key }).boxed(),
        Request::Copy { .. } => items().prop_map(|items| Request::Copy { items }).boxed(),
        Request::Backfill { .. } => items()
            .prop_map(|items| Request::Backfill { items })
            .boxed(),
        Request::Buckets => Just(Request::Buckets).boxed(),
        Request::BucketKeys { .. } => (any::<u32>(), prop::option::of(key()))
            .prop_map(|(bucket, after)| Request::BucketKeys { bucket, after })
            .boxed(),
        Request::Table => Just(Request::Table).boxed(),
        Request::Watch { .. } => (
            any::<u64>(),
            any::<u32>(),
            prop::collection::vec(key(), 0..6),
            prop::collection::vec(key(), 0..3),
        )
            .prop_map(|(node, lease_ms, keys, prefixes)| Request::Watch {
                node,
                lease_ms,
                keys,
                prefixes,
            })
            .boxed(),
        Request::Notify { .. } => (items(), any::<bool>())
            .prop_map(|(items, missed)| Request::Notify { items, missed })
            .boxed(),
    }
}

/// Roles of every variant among the roles of the hellos among `examples`.
fn any_role(examples: &[Request]) -> BoxedStrategy<Role> {
    let roles: Vec<Role> = examples
        .iter()
        .filter_map(|r| match r {
            Request::Hello { role, .. } => Some(*role),
            _ => None,
        })
        .collect();
    // No wildcard arm: see the module's comment.
    one_per_variant(&roles, |like| match like {
        Role::Client => Just(Role::Client).boxed(),
        Role::Local => Just(Role::Local).boxed(),
        Role::Peer { .. } => any::<u64>()
            .prop_map(|cluster| Role::Peer { cluster })
            .boxed(),
    })
}

/// Operations of every variant among the operations among `examples`.
fn any_op(examples: &[Request]) -> BoxedStrategy<TypedOp> {
    let ops: Vec<TypedOp> = examples
        .iter()
        .filter_map(|r| match r {
            Request::Op { op, .. } => Some(op.clone()),
            _ => None,
        })
        .collect();
    let scalars = || prop::collection::vec(scalar(), 0..4);
    // No wildcard arm: see the module's comment.
    one_per_variant(&ops, |like| match like {
        TypedOp::CounterAdd(_) => any::<i64>().prop_map(TypedOp::CounterAdd).boxed(),
        TypedOp::SetAdd(_) => scalars().prop_map(TypedOp::SetAdd).boxed(),
        TypedOp::SetRemove(_) => scalars().prop_map(TypedOp::SetRemove).boxed(),
        TypedOp::RegisterSet(_) => scalar().prop_map(TypedOp::RegisterSet).boxed(),
        TypedOp::Edit(_) => edit().prop_map(TypedOp::Edit).boxed(),
    })
}

/// Edits of every kind, maps nested a few deep.
fn edit() -> BoxedStrategy<haze_device::Edit> {
    use haze_device::Edit;
    let scalars = || prop::collection::vec(scalar(), 0..4);
    let kind = prop::sample::select(haze_crdt::ValueKind::ALL.to_vec());
    let leaf = prop_oneof![
        any::<i64>().prop_map(Edit::CounterAdd),
        any::<u64>().prop_map(Edit::GCounterAdd),
        scalars().prop_map(Edit::SetAdd),
        scalars().prop_map(Edit::SetRemove),
        Just(Edit::SetClear),
        scalar().prop_map(Edit::RegisterSet),
        scalar().prop_map(Edit::MvRegisterSet),
        Just(Edit::FlagEnable),
        Just(Edit::FlagDisable),
        scalar().prop_map(Edit::MaxSet),
        scalar().prop_map(Edit::MinSet),
        (scalar(), kind).prop_map(|(k, kind)| Edit::MapRemove(haze_crdt::Field::new(k, kind))),
    ];
    leaf.prop_recursive(3, 8, 1, |inner| {
        (scalar(), inner).prop_map(|(k, e)| Edit::map_update(k, e))
    })
    .boxed()
}

/// Responses of `like`'s variant. No wildcard arm: see the module's comment.
fn response_like(like: &Response) -> BoxedStrategy<Response> {
    match like {
        Response::Hello { .. } => any::<u16>()
            .prop_map(|version| Response::Hello { version })
            .boxed(),
        Response::Value(_) => prop::option::of(value()).prop_map(Response::Value).boxed(),
        // Never among the round-trip examples: it decodes as the `Value` it encodes like
        // (`a_stored_value_is_sent_exactly_as_the_value_it_encodes`).
        Response::Stored(_) => prop::option::of(value())
            .prop_map(|value| Response::Stored(value.map(|v| v.encode())))
            .boxed(),
        Response::Batch(_) => prop::collection::vec(result(value()), 0..4)
            .prop_map(Response::Batch)
            .boxed(),
        Response::Digest(_) => prop::option::of(any::<u64>())
            .prop_map(Response::Digest)
            .boxed(),
        Response::Pong => Just(Response::Pong).boxed(),
        Response::Digests(_) => prop::collection::vec(prop::option::of(any::<u64>()), 0..8)
            .prop_map(Response::Digests)
            .boxed(),
        Response::UnknownList => Just(Response::UnknownList).boxed(),
        Response::Buckets(_) => prop::collection::vec(any::<u64>(), 0..8)
            .prop_map(Response::Buckets)
            .boxed(),
        Response::Acks(_) => prop::collection::vec(result(Just(())), 0..6)
            .prop_map(Response::Acks)
            .boxed(),
        Response::Table(_) => prop::option::of(prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(Response::Table)
            .boxed(),
        Response::Epoch(_) => any::<u64>().prop_map(Response::Epoch).boxed(),
        Response::KeyDigests { .. } => (
            prop::collection::vec((key(), any::<u64>()), 0..5),
            any::<bool>(),
        )
            .prop_map(|(keys, more)| Response::KeyDigests { keys, more })
            .boxed(),
        Response::Error(_) => wire_error().prop_map(Response::Error).boxed(),
    }
}

/// A `DigestList` naming a list, or carrying keys that often share prefixes (some longer than
/// 127 bytes, so shared lengths take two-byte varints), in order or not.
pub(crate) fn digest_list() -> BoxedStrategy<Request> {
    let keys = (prop::collection::vec(prefixed_key(), 0..10), any::<bool>()).prop_map(
        |(mut keys, sorted)| {
            if sorted {
                keys.sort();
            }
            keys
        },
    );
    (any::<u64>(), prop::option::weighted(0.8, keys))
        .prop_map(|(list, keys)| Request::DigestList { list, keys })
        .boxed()
}

/// A key from a few shared prefixes and a short suffix over a small alphabet.
pub(crate) fn prefixed_key() -> BoxedStrategy<Vec<u8>> {
    let long = "p".repeat(150);
    let prefixes = vec![
        String::new(),
        "user:".into(),
        "user:42/".into(),
        "user:42/list:".into(),
        long.clone(),
        format!("{long}/x"),
    ];
    (
        prop::sample::select(prefixes),
        prop::collection::vec(prop::sample::select(b"01ab/".to_vec()), 0..4),
    )
        .prop_map(|(prefix, suffix)| [prefix.as_bytes(), &suffix].concat())
        .boxed()
}

fn key() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..12),
        1 => prop::collection::vec(any::<u8>(), 120..300), // a two-byte length
        1 => prefixed_key(),
    ]
    .boxed()
}

fn scalar() -> BoxedStrategy<Scalar> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..6).prop_map(Scalar::Bytes),
        prop::collection::vec(any::<char>(), 0..6)
            .prop_map(|chars| Scalar::String(chars.into_iter().collect())),
        any::<i64>().prop_map(Scalar::Int),
        any::<u64>().prop_map(Scalar::UInt),
    ]
    .boxed()
}

/// Values of a few kinds, sometimes longer than 127 bytes encoded (a two-byte length).
pub(crate) fn value() -> BoxedStrategy<Value> {
    prop_oneof![
        prop::collection::vec((0u64..64, 1u64..1_000), 0..40).prop_map(|increments| {
            let mut counter = GCounter::new();
            for (actor, by) in increments {
                counter
                    .increment(ActorId::new((actor + 1) << 32), by)
                    .expect("at most 40 increments below 1,000 do not overflow");
            }
            Value::from(counter)
        }),
        prop::collection::vec((0u64..4, scalar()), 0..6).prop_map(|inserts| {
            let mut set = OrSet::new();
            for (actor, item) in inserts {
                set.insert(ActorId::new(actor + 1), item);
            }
            Value::from(set)
        }),
    ]
    .boxed()
}

fn items() -> BoxedStrategy<Vec<(Vec<u8>, Value)>> {
    prop::collection::vec((key(), value()), 0..4).boxed()
}

fn wire_error() -> BoxedStrategy<WireError> {
    let code = prop_oneof![0u16..16, any::<u16>()].prop_map(ErrorCode::from_u16);
    let message = prop::collection::vec(any::<char>(), 0..10).prop_map(String::from_iter);
    (code, message)
        .prop_map(|(code, message)| WireError::new(code, message))
        .boxed()
}

fn result<T: Clone + std::fmt::Debug + 'static>(
    ok: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Result<T, WireError>> {
    prop_oneof![ok.prop_map(Ok), wire_error().prop_map(Err)].boxed()
}

/// A change to an encoded message.
#[derive(Debug, Clone)]
pub(crate) enum Mutation {
    Flip(Index, u8),
    Truncate(Index),
    Insert(Index, u8),
    Remove(Index),
}

pub(crate) fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let mutation = prop_oneof![
        (any::<Index>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), any::<u8>()).prop_map(|(i, x)| Mutation::Insert(i, x)),
        any::<Index>().prop_map(Mutation::Remove),
    ];
    prop::collection::vec(mutation, 1..4)
}

pub(crate) fn mutate(body: &mut Vec<u8>, mutations: Vec<Mutation>) {
    for m in mutations {
        let len = body.len().max(1);
        match m {
            Mutation::Flip(i, x) if !body.is_empty() => body[i.index(len)] ^= x,
            Mutation::Truncate(i) => body.truncate(i.index(len)),
            Mutation::Insert(i, x) => body.insert(i.index(len + 1).min(body.len()), x),
            Mutation::Remove(i) if !body.is_empty() => {
                body.remove(i.index(len));
            }
            _ => {}
        }
    }
}
