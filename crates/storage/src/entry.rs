//! What the values table (and the recent tables before it) stores under a key: a value with its
//! checksum, or the marker of a quarantined value (format 2 of `haze.redb`).
//!
//! ```text
//! entry = 0x5A checksum:u64 BE encoding     a value; checksum = key_digest(key, encoding)
//!       | 0xA5 damaged bytes                the entry found damaged, kept as it was found
//! ```
//!
//! The checksum is the key's digest (`key_digest`: xxh3 of the encoding seeded by the key's
//! ring hash), so it also binds the value to its key, and a bucket's digest is the XOR of its
//! entries' checksums without hashing anything again. The two tags differ in every bit: no
//! single flipped bit turns a value into a marker or back. Every read verifies the checksum of
//! the entry it serves ([`parse`]); a bucket digest counts an entry that fails as 0
//! ([`Slot::contribution`]).

use crate::key::key_digest;

/// The tag of a value entry.
pub(crate) const VALUE: u8 = 0x5A;
/// The tag of a quarantine marker.
pub(crate) const QUARANTINED: u8 = 0xA5;
/// The tag and the checksum before a value's encoding.
pub(crate) const VALUE_HEADER: usize = 9;

/// Returns the entry storing `encoded` under `key`, and its checksum.
pub(crate) fn value_entry(key: &[u8], encoded: &[u8]) -> (Vec<u8>, u64) {
    let mut framed = Vec::with_capacity(VALUE_HEADER + encoded.len());
    framed.resize(VALUE_HEADER, 0);
    framed.extend_from_slice(encoded);
    Framed(framed).into_entry(key)
}

/// A value's encoding with room before it for its entry's header: it becomes the entry where
/// it is ([`into_entry`](Self::into_entry)), instead of being copied into a new one (an
/// allocation and a copy per key of every commit).
#[derive(Debug)]
pub(crate) struct Framed(Vec<u8>);

impl Framed {
    /// Encodes `value` after the header's room; `capacity` is a guess of the encoding's size.
    pub(crate) fn encode(value: &haze_crdt::Value, capacity: usize) -> Framed {
        let mut buf = Vec::with_capacity(VALUE_HEADER.saturating_add(capacity));
        buf.resize(VALUE_HEADER, 0);
        value.encode_into(&mut buf);
        Framed(buf)
    }

    /// The value's encoding.
    pub(crate) fn encoded(&self) -> &[u8] {
        &self.0[VALUE_HEADER..]
    }

    /// The entry storing the value under `key`, made in place, and its checksum (as
    /// [`value_entry`]).
    pub(crate) fn into_entry(mut self, key: &[u8]) -> (Vec<u8>, u64) {
        let checksum = key_digest(key, self.encoded());
        self.0[0] = VALUE;
        self.0[1..VALUE_HEADER].copy_from_slice(&checksum.to_be_bytes());
        (self.0, checksum)
    }

    /// The encoding alone (copied out).
    pub(crate) fn into_encoded(self) -> Vec<u8> {
        self.encoded().to_vec()
    }
}

/// Returns the marker of a quarantined entry that was found as `damaged`.
pub(crate) fn quarantine_entry(damaged: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(1 + damaged.len());
    entry.push(QUARANTINED);
    entry.extend_from_slice(damaged);
    entry
}

/// An entry, read and verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot<'a> {
    /// A value whose checksum matches.
    Value {
        /// Its checksum: the key's digest.
        checksum: u64,
        /// The value's encoding.
        encoded: &'a [u8],
    },
    /// A value quarantined earlier.
    Quarantined,
    /// An entry that fails its check: what is wrong.
    Damaged(&'static str),
}

impl Slot<'_> {
    /// What the entry adds to its bucket's digest: its checksum if it is a sound value, else 0
    /// (a quarantined or damaged key counts as absent, so that anti-entropy sees the bucket
    /// differ from a healthy replica's and fetches the key).
    pub(crate) fn contribution(&self) -> u64 {
        match self {
            Slot::Value { checksum, .. } => *checksum,
            Slot::Quarantined | Slot::Damaged(_) => 0,
        }
    }
}

/// Reads a value entry's checksum and encoding without verifying them: for a caller that
/// needs only to know which encoding the entry holds (see `disk_store::hot`).
pub(crate) fn peek(entry: &[u8]) -> Option<(u64, &[u8])> {
    match entry.split_first() {
        Some((&VALUE, rest)) if rest.len() >= 8 => {
            let (checksum, encoded) = rest.split_at(8);
            Some((u64::from_be_bytes(checksum.try_into().ok()?), encoded))
        }
        _ => None,
    }
}

/// Reads the entry stored under `key` and verifies it.
pub(crate) fn parse<'a>(key: &[u8], entry: &'a [u8]) -> Slot<'a> {
    match entry.split_first() {
        Some((&VALUE, rest)) if rest.len() >= 8 => {
            let (checksum, encoded) = rest.split_at(8);
            let checksum = u64::from_be_bytes(checksum.try_into().expect("8 bytes"));
            if key_digest(key, encoded) == checksum {
                Slot::Value { checksum, encoded }
            } else {
                Slot::Damaged("its checksum does not match")
            }
        }
        Some((&VALUE, _)) => Slot::Damaged("it is shorter than its checksum"),
        Some((&QUARANTINED, _)) => Slot::Quarantined,
        Some(_) => Slot::Damaged("its tag byte is unknown"),
        None => Slot::Damaged("it is empty"),
    }
}

/// The stored key's bytes for messages: as text if it is printable UTF-8, else in hex.
pub(crate) fn printable(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text) if !text.chars().any(char::is_control) => format!("{text:?}"),
        _ => {
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            format!("0x{hex}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framed_encoding_becomes_the_same_entry_as_a_copied_one() {
        let mut counter = haze_crdt::GCounter::new();
        counter.increment(haze_crdt::ActorId::new(3), 42).unwrap();
        let value = haze_crdt::Value::from(counter);
        let framed = Framed::encode(&value, 0);
        let encoded = value.encode();
        assert_eq!(framed.encoded(), encoded.as_slice());
        assert_eq!(framed.into_entry(b"key"), value_entry(b"key", &encoded));
    }

    #[test]
    fn every_single_bit_flip_of_an_entry_is_caught() {
        let key = b"some key";
        let (entry, checksum) = value_entry(key, b"\x01\x03\x00");
        assert_eq!(
            parse(key, &entry),
            Slot::Value {
                checksum,
                encoded: b"\x01\x03\x00"
            }
        );
        assert_eq!(parse(b"another key", &entry).contribution(), 0);
        for bit in 0..entry.len() * 8 {
            let mut flipped = entry.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                matches!(parse(key, &flipped), Slot::Damaged(_)),
                "bit {bit} went unnoticed"
            );
        }
        let marker = quarantine_entry(&entry);
        assert_eq!(parse(key, &marker), Slot::Quarantined);
        assert_eq!(parse(key, &[]), Slot::Damaged("it is empty"));
        assert_eq!((VALUE ^ QUARANTINED).count_ones(), 8);
    }

    #[test]
    fn keys_print_as_text_or_hex() {
        assert_eq!(printable(b"user:1"), "\"user:1\"");
        assert_eq!(printable(b"\x00\xff"), "0x00ff");
    }
}
