//! Ring order: where a key lives on the ring, and the digests kept per slice of it.

use std::ops::Bound;

pub use haze_crdt::digest::ring_hash;

/// Returns the key as stored: its ring hash (big-endian, so byte order is ring order), then the
/// key bytes. A partition of the ring, `[start, end)` of hashes, is one contiguous range.
pub(crate) fn store_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.len());
    out.extend_from_slice(&ring_hash(key).to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// A store key ([`store_key`]) as the recent tables hold it: ordered exactly as its bytes are,
/// but compared by its leading ring hash as an integer first, and by the bytes only when two
/// hashes are equal. The hash is kept beside the bytes, in the table's node itself: a lookup
/// in a table of a million keys compares dozens of keys, and each comparison followed a
/// pointer to the key's bytes (before that, `memcmp` through those pointers was a tenth of a
/// write's cost). With the hash inline, `get` over 100,000 keys went 411k → 516k requests/s.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RingKey {
    /// The first 8 bytes of `bytes` as a big-endian integer (zero-padded if shorter): the ring
    /// hash of a store key.
    hash: u64,
    bytes: Vec<u8>,
}

impl RingKey {
    /// The store key of a user key.
    pub(crate) fn of(key: &[u8]) -> RingKey {
        RingKey::new(store_key(key))
    }

    /// A store key (or a bound: any bytes) as the tables hold it.
    pub(crate) fn new(bytes: Vec<u8>) -> RingKey {
        let mut head = [0u8; 8];
        let n = bytes.len().min(8);
        head[..n].copy_from_slice(&bytes[..n]);
        RingKey {
            hash: u64::from_be_bytes(head),
            bytes,
        }
    }
}

impl RingKey {
    /// The ring hash of the store key: its first 8 bytes as an integer (zero-padded).
    pub(crate) fn ring_hash(&self) -> u64 {
        self.hash
    }
}

impl std::ops::Deref for RingKey {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.bytes
    }
}

impl Ord for RingKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // The same order as the bytes': where two zero-padded heads differ, they differ as the
        // bytes do (a shorter key's padding is below the other's byte there, and it is a
        // prefix of it up to that point); where they are equal, the bytes decide.
        self.hash
            .cmp(&other.hash)
            .then_with(|| self.bytes.cmp(&other.bytes))
    }
}

impl PartialOrd for RingKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The bounds of a range of store keys, as the recent tables take them.
pub(crate) fn ring_bounds(
    start: &Bound<Vec<u8>>,
    end: &Bound<Vec<u8>>,
) -> (Bound<RingKey>, Bound<RingKey>) {
    let ring = |b: &Bound<Vec<u8>>| b.clone().map(RingKey::new);
    (ring(start), ring(end))
}

/// The number of digest buckets: the ring cut into this many equal slices by the top bits of the
/// hash. Any partition count Q ≤ 4096 (a power of two) is a union of whole buckets.
pub const DIGEST_BUCKETS: usize = 4096;

/// Returns the digest bucket of a ring hash.
pub fn digest_bucket(hash: u64) -> usize {
    (hash >> (64 - DIGEST_BUCKETS.trailing_zeros())) as usize
}

/// A range of store keys: start and end bounds.
pub(crate) type KeyRange = (std::ops::Bound<Vec<u8>>, std::ops::Bound<Vec<u8>>);

/// Returns the ring-ordered bounds of a bucket's store keys, `[start, end)` (`end` is unbounded
/// for the last bucket), starting after `after` (a user key) when given; `None` when nothing of
/// the bucket lies after `after` (it hashes past the bucket), or the bucket is past the last.
pub(crate) fn bucket_bounds(bucket: usize, after: Option<&[u8]>) -> Option<KeyRange> {
    use std::ops::Bound;
    if bucket >= DIGEST_BUCKETS {
        return None;
    }
    let shift = 64 - DIGEST_BUCKETS.trailing_zeros();
    let first = ((bucket as u64) << shift).to_be_bytes().to_vec();
    let end = (bucket + 1 < DIGEST_BUCKETS)
        .then(|| ((bucket as u64 + 1) << shift).to_be_bytes().to_vec());
    let start = match after.map(store_key) {
        Some(after) if end.as_ref().is_some_and(|end| after >= *end) => return None,
        Some(after) if after >= first => Bound::Excluded(after),
        _ => Bound::Included(first),
    };
    Some((start, end.map_or(Bound::Unbounded, Bound::Excluded)))
}

/// Returns the ring-ordered bounds of the store keys of buckets `buckets` together; `None` when
/// the range holds no bucket.
pub(crate) fn buckets_range(buckets: &std::ops::Range<usize>) -> Option<KeyRange> {
    let last = buckets.end.min(DIGEST_BUCKETS).checked_sub(1)?;
    let (start, _) = bucket_bounds(buckets.start, None)?;
    let (_, end) = bucket_bounds(last, None)?;
    (buckets.start <= last).then_some((start, end))
}

/// Returns a stored entry's store key and its digest (computed without copying the value).
pub(crate) fn entry_digest(skey: &[u8], encoded: &[u8]) -> (Vec<u8>, u64) {
    (skey.to_vec(), key_digest(&skey[8..], encoded))
}

/// Entries of a bucket, each as its user key and an item (a digest, an encoded value), and
/// whether more follow.
pub(crate) type Page<T> = (Vec<(Vec<u8>, T)>, bool);

/// Merges the first `limit + 1` entries of several ring-ordered sources of (store key, item),
/// newest source first (an older source's entry for the same key is ignored), into a page of
/// user keys and items (digests, values), and whether more entries follow.
pub(crate) fn key_page<T>(
    sources: impl IntoIterator<Item = Vec<(Vec<u8>, T)>>,
    limit: usize,
) -> Page<T> {
    let mut merged: std::collections::BTreeMap<Vec<u8>, T> = std::collections::BTreeMap::new();
    for source in sources {
        for (skey, item) in source {
            merged.entry(skey).or_insert(item);
        }
    }
    let more = merged.len() > limit;
    let keys = merged
        .into_iter()
        .take(limit)
        .map(|(skey, item)| (skey[8..].to_vec(), item))
        .collect();
    (keys, more)
}

/// Decodes a stored value: damaged bytes are [`Error::Corrupt`](crate::Error::Corrupt).
pub(crate) fn decode(bytes: &[u8]) -> crate::Result<haze_crdt::Value> {
    haze_crdt::Value::decode(bytes).map_err(|e| crate::Error::Corrupt(e.to_string()))
}

/// Decodes the values of a page of encoded entries ([`Store::bucket_values`](crate::Store)).
pub(crate) fn decode_page((page, more): Page<Vec<u8>>) -> crate::Result<crate::ValuePage> {
    let values = page
        .into_iter()
        .map(|(key, encoded)| Ok((key, decode(&encoded)?)))
        .collect::<crate::Result<_>>()?;
    Ok((values, more))
}

/// The digest of one stored key ([`haze_crdt::digest::key_digest`]): a bucket's digest is the
/// XOR of its keys' digests, so a write updates it in O(1) (XOR out the old digest, XOR in the
/// new) instead of rescanning.
pub use haze_crdt::digest::key_digest;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keys_order_as_their_bytes_do() {
        // Keys that share hashes' leading bytes, equal hashes, short bounds, empty keys.
        let mut keys: Vec<Vec<u8>> = (0..200u32)
            .map(|i| store_key(&(i % 50).to_le_bytes()[..(i % 4) as usize]))
            .collect();
        keys.extend([vec![], vec![0], vec![0xff; 3], vec![0x80; 9], vec![0x80; 8]]);
        let near: Vec<Vec<u8>> = (keys.iter().enumerate().take(40))
            .map(|(i, k)| k[..k.len().min(8 + i % 3)].to_vec())
            .collect();
        keys.extend(near);
        for a in &keys {
            for b in &keys {
                assert_eq!(
                    RingKey::new(a.clone()).cmp(&RingKey::new(b.clone())),
                    a.cmp(b),
                    "{a:?} {b:?}"
                );
            }
        }
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
    fn a_cursor_past_its_bucket_leaves_nothing_to_read() {
        let key = b"somewhere".as_slice();
        let bucket = digest_bucket(ring_hash(key));
        assert!(bucket_bounds(bucket, Some(key)).is_some());
        if bucket > 0 {
            assert!(
                bucket_bounds(bucket - 1, Some(key)).is_none(),
                "a later bucket's key"
            );
        }
        assert!(
            bucket_bounds(bucket + 1, Some(key)).is_some(),
            "an earlier bucket's key"
        );
    }

    #[test]
    fn buckets_cover_the_ring_in_order() {
        assert_eq!(digest_bucket(0), 0);
        assert_eq!(digest_bucket(u64::MAX), DIGEST_BUCKETS - 1);
        assert_eq!(digest_bucket(1 << 52), 1);
    }
}
