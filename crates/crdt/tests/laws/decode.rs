//! Decoding untrusted bytes: never a panic, never a huge allocation, and whatever decodes is the
//! canonical encoding of its value.

use haze_crdt::Value;
use proptest::prelude::*;
use proptest::sample::Index;

use crate::checker::{self, Subject};
use crate::subjects::MapValue;

fn decode_is_total_and_canonical(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(value) = Value::decode(bytes) {
        prop_assert_eq!(
            value.encode(),
            bytes,
            "a decoded value re-encodes to the same bytes"
        );
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Truncate(Index),
    Insert(Index, u8),
    Remove(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), any::<u8>()).prop_map(|(i, x)| Mutation::Insert(i, x)),
        any::<Index>().prop_map(Mutation::Remove),
    ]
}

proptest! {
    #![proptest_config(checker::config())]

    #[test]
    fn decoding_random_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        decode_is_total_and_canonical(&bytes)?;
        // The same bytes behind a valid version byte reach deeper into the decoder.
        let mut versioned = vec![1];
        versioned.extend_from_slice(&bytes);
        decode_is_total_and_canonical(&versioned)?;
    }

    #[test]
    fn decoding_mutated_valid_encodings_never_panics(
        script in checker::script::<MapValue>(3, 30),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let (finals, _) = checker::run::<MapValue>(&script);
        let mut bytes = finals.into_iter().fold(MapValue::bottom(), haze_crdt::Crdt::merge).0.encode();
        for m in mutations {
            let len = bytes.len().max(1);
            match m {
                Mutation::Flip(i, x) => if let Some(b) = bytes.get_mut(i.index(len)) { *b ^= x },
                Mutation::Truncate(i) => bytes.truncate(i.index(len)),
                Mutation::Insert(i, x) => bytes.insert(i.index(len + 1).min(bytes.len()), x),
                Mutation::Remove(i) => if !bytes.is_empty() { bytes.remove(i.index(len)); },
            }
        }
        decode_is_total_and_canonical(&bytes)?;
    }
}

#[test]
fn a_length_claiming_gigabytes_is_refused_without_allocating_it() {
    // Version 1, an OR-set, a version vector claiming 2^62 entries.
    let mut bytes = vec![1, 5];
    bytes.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
    let err = Value::decode(&bytes).unwrap_err();
    assert!(
        matches!(err, haze_crdt::DecodeError::LengthTooLarge { .. }),
        "{err}"
    );
    // A string leaf claiming 4 GiB inside a max register.
    let bytes = [1, 8, 1, 1, 0x80, 0x80, 0x80, 0x80, 0x10, b'x'];
    assert!(matches!(
        Value::decode(&bytes),
        Err(haze_crdt::DecodeError::LengthTooLarge { .. })
    ));
}

#[test]
fn maps_nested_too_deeply_are_refused() {
    // 40 maps, each holding one field (uint key 0, one inline dot of actor 0) that is the next
    // map: type 6, context {0: 1}, one entry, header (uint tag, inline actor 0), key 0, counter 1.
    let mut bytes = vec![1];
    for _ in 0..40 {
        bytes.extend_from_slice(&[6, 1, 0, 1, 1, 0b0000_0011, 0, 1]);
    }
    bytes.extend_from_slice(&[6, 0, 0]);
    assert_eq!(
        Value::decode(&bytes),
        Err(haze_crdt::DecodeError::TooDeep(
            haze_crdt::encode::MAX_DEPTH
        ))
    );
}

/// A set with 60 actors reaches every entry layout: one inline dot, one explicit dot (actor
/// index 48 or more), 2 to 15 dots, and the escaped count of 16 or more.
fn set_with_every_entry_layout() -> Value {
    use haze_crdt::{ActorId, Crdt, OrSet, Scalar};
    let replicas: Vec<OrSet<Scalar>> = (0..60u64)
        .map(|i| {
            let mut s = OrSet::new();
            s.insert(ActorId::new(i), Scalar::from("everyone")); // 60 concurrent adds
            s.insert(ActorId::new(i), Scalar::UInt(i)); // one dot of actor i
            if i < 5 {
                s.insert(ActorId::new(i), Scalar::from("a few")); // 5 dots
            }
            s
        })
        .collect();
    Value::from(replicas.into_iter().fold(OrSet::new(), OrSet::merge))
}

#[test]
fn every_entry_layout_round_trips_and_every_single_byte_corruption_is_caught_or_canonical() {
    let value = set_with_every_entry_layout();
    let bytes = value.encode();
    assert_eq!(Value::decode(&bytes).unwrap(), value);
    for i in 0..bytes.len() {
        for flip in [0x01, 0x80, 0xff] {
            let mut corrupted = bytes.clone();
            corrupted[i] ^= flip;
            decode_is_total_and_canonical(&corrupted).unwrap();
        }
        decode_is_total_and_canonical(&bytes[..i]).unwrap();
    }
}

#[test]
fn a_one_dot_entry_that_could_be_inline_must_be() {
    // An OR-set with context {0: 1} and the element 0u kept alive by dot (0, 1).
    let canonical = [1, 5, 1, 0, 1, 1, 0b0000_0011, 0, 1];
    assert!(Value::decode(&canonical).is_ok());
    // The same dot written explicitly (mode 48: one dot, then actor index 0 and counter 1).
    let explicit = [1, 5, 1, 0, 1, 1, 0b1100_0011, 0, 0, 1];
    assert!(matches!(
        Value::decode(&explicit),
        Err(haze_crdt::DecodeError::InvalidState(_))
    ));
}

/// A map whose one field holds two concurrent values, each the same `child`.
fn two_values_of(child: &[u8]) -> Vec<u8> {
    // Map, context {0: 1, 1: 1}, one field: uint key 0 with two explicit dots (mode 49).
    let mut out = vec![6, 2, 0, 1, 1, 1, 1, 0b1100_0111, 0, 0, 1];
    out.extend_from_slice(child);
    out.extend_from_slice(&[1, 1]);
    out.extend_from_slice(child);
    out
}

#[test]
fn nested_concurrent_values_decode_in_memory_proportional_to_their_size() {
    // Found in review: merging concurrent values eagerly on decode made memory grow as 3^depth
    // while the input grows as 2^depth. Now merges happen on first read, so this 60 KB input
    // decodes at once; eagerly it took over half a gigabyte.
    let mut value = vec![8, 0]; // an empty max register
    for _ in 0..12 {
        value = two_values_of(&value);
    }
    let mut bytes = vec![1];
    bytes.extend_from_slice(&value);
    let decoded = Value::decode(&bytes).unwrap();
    assert_eq!(decoded.encode(), bytes);
    assert_eq!(decoded.depth(), 12);
}

#[test]
fn a_causal_context_beyond_2_pow_63_is_refused() {
    use haze_crdt::{DecodeError, Dot};
    // An OR-set whose context gives actor 0 the count 2^63: its next dot could not be minted.
    let mut bytes = vec![1, 5, 1, 0];
    let mut n = Dot::MAX_COUNTER + 1;
    while n >= 0x80 {
        bytes.push((n as u8) | 0x80);
        n >>= 7;
    }
    bytes.extend_from_slice(&[n as u8, 0]);
    assert!(matches!(
        Value::decode(&bytes),
        Err(DecodeError::InvalidState(_))
    ));
    // A grow-only counter may count that high.
    bytes[1] = 1;
    bytes.pop();
    assert!(Value::decode(&bytes).is_ok());
}
