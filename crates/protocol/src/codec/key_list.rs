//! Key lists (`DigestList`): their id, and their prefix-compressed encoding.

use haze_crdt::encode::{Reader, writer};

use super::{Decoded, Malformed};

/// The most key bytes one compressed list may expand to: shared prefixes make a few input bytes
/// stand for a long key, so the expansion is bounded, not the input.
pub(super) const MAX_EXPANDED_KEY_BYTES: usize = 16 * 1024 * 1024;

/// Returns the id of a list of keys: a hash of the keys, in order.
pub fn key_list_id(keys: &[Vec<u8>]) -> u64 {
    let mut bytes = Vec::with_capacity(keys.iter().map(|k| k.len() + 2).sum());
    for key in keys {
        writer::bytes(&mut bytes, key);
    }
    haze_crdt::digest::key_digest(b"haze key list", &bytes)
}

/// Appends keys, each as the length of the prefix it shares with the previous key and the rest
/// (sorted keys with common prefixes shrink to a few bytes each).
pub(super) fn write_keys_compressed(out: &mut Vec<u8>, keys: &[Vec<u8>]) {
    writer::len(out, keys.len());
    let mut previous: &[u8] = &[];
    for key in keys {
        let shared = previous.iter().zip(key).take_while(|(a, b)| a == b).count();
        writer::len(out, shared);
        writer::bytes(out, &key[shared..]);
        previous = key;
    }
}

/// Reads keys written by [`write_keys_compressed`], refusing a list that expands past
/// [`MAX_EXPANDED_KEY_BYTES`].
pub(super) fn read_keys_compressed(r: &mut Reader<'_>) -> Decoded<Vec<Vec<u8>>> {
    let n = r.count(2)?;
    let mut keys: Vec<Vec<u8>> = Vec::with_capacity(n.min(64));
    let mut expanded = 0usize;
    for _ in 0..n {
        // A length past `usize` shares more than any key has.
        let shared = usize::try_from(r.varint()?).map_err(|_| Malformed::SharedPrefixTooLong)?;
        let previous = keys.last().map_or(&[][..], Vec::as_slice);
        let prefix = previous
            .get(..shared)
            .ok_or(Malformed::SharedPrefixTooLong)?;
        let suffix = r.bytes()?;
        expanded += shared + suffix.len();
        if expanded > MAX_EXPANDED_KEY_BYTES {
            return Err(Malformed::KeyListTooLarge);
        }
        let mut key = prefix.to_vec();
        key.extend_from_slice(suffix);
        keys.push(key);
    }
    Ok(keys)
}
