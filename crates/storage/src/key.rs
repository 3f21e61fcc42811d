//! Ring order: where a key lives on the ring, and the digests kept per slice of it.

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Returns the key's position on the ring: a stable 64-bit hash of its bytes (xxh3, seed 0).
///
/// Stable across versions and machines: the ring's partitions and every stored key's order
/// depend on it. Never change it.
pub fn ring_hash(key: &[u8]) -> u64 {
    xxh3_64(key)
}

/// Returns the key as stored: its ring hash (big-endian, so byte order is ring order), then the
/// key bytes. A partition of the ring, `[start, end)` of hashes, is one contiguous range.
pub(crate) fn store_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.len());
    out.extend_from_slice(&ring_hash(key).to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// The number of digest buckets: the ring cut into this many equal slices by the top bits of the
/// hash. Any partition count Q ≤ 4096 (a power of two) is a union of whole buckets.
pub const DIGEST_BUCKETS: usize = 4096;

/// Returns the digest bucket of a ring hash.
pub fn digest_bucket(hash: u64) -> usize {
    (hash >> (64 - DIGEST_BUCKETS.trailing_zeros())) as usize
}

/// Returns the digest of one stored key: a hash of its encoded value, seeded by the key's ring
/// hash. A bucket's digest is the XOR of its keys' digests, so a write updates it in O(1)
/// (XOR out the old digest, XOR in the new) instead of rescanning.
pub fn key_digest(key: &[u8], encoded_value: &[u8]) -> u64 {
    xxh3_64_with_seed(encoded_value, ring_hash(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_hash_is_stable() {
        // Pinned: changing the hash would reorder every stored key and move every partition.
        assert_eq!(ring_hash(b""), 0x2d06_8005_38d3_94c2);
        assert_eq!(ring_hash(b"visits"), xxh3_64(b"visits"));
    }

    #[test]
    fn store_keys_sort_by_ring_hash() {
        let mut keys: Vec<Vec<u8>> = (0..100u32).map(|i| store_key(&i.to_le_bytes())).collect();
        keys.sort();
        let hashes: Vec<u64> = keys
            .iter()
            .map(|k| u64::from_be_bytes(k[..8].try_into().unwrap()))
            .collect();
        assert!(hashes.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn buckets_cover_the_ring_in_order() {
        assert_eq!(digest_bucket(0), 0);
        assert_eq!(digest_bucket(u64::MAX), DIGEST_BUCKETS - 1);
        assert_eq!(digest_bucket(1 << 52), 1);
    }
}
