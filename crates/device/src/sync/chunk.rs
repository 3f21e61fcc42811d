//! How a sync cuts its keys into digest requests and its states into merge requests, and how a
//! key list is named. The node and haze-client count on these exact rules: a list's id is
//! computed on both sides, and the cuts decide which lists the node remembers.

use std::ops::Range;

use haze_crdt::Value;
use haze_crdt::encode::writer;

/// The average number of keys per digest request. Chunks end after a key whose ring hash is a
/// multiple of this (content-defined), so adding or removing a key changes only its own chunk's
/// list: the node still knows every other chunk's list from the last sync.
pub const DIGEST_CHUNK: u64 = 1024;
/// The most keys per digest request.
pub const MAX_DIGEST_CHUNK: usize = 4 * DIGEST_CHUNK as usize;
/// The most keys per merge request.
pub const MERGE_CHUNK: usize = 256;
/// The most bytes of keys, or of states, per request: well inside a node's 4 MiB frames.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Returns the id of a list of keys: a hash of the keys, in order. The same as
/// `haze_protocol::key_list_id` (haze-client's tests check it), which this crate cannot
/// depend on: haze-protocol brings tokio's networking, which does not build for wasm32.
pub fn list_id(keys: &[Vec<u8>]) -> u64 {
    let mut bytes = Vec::with_capacity(keys.iter().map(|k| k.len() + 2).sum());
    for key in keys {
        writer::bytes(&mut bytes, key);
    }
    haze_crdt::digest::key_digest(b"haze key list", &bytes)
}

/// Cuts keys into chunks that end after a key whose ring hash is a multiple of
/// [`DIGEST_CHUNK`] (or at [`MAX_DIGEST_CHUNK`] keys, or [`MAX_REQUEST_BYTES`] of keys).
pub(crate) fn chunk_by_content(keys: &[Vec<u8>]) -> Vec<Range<usize>> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, key) in keys.iter().enumerate() {
        bytes += key.len() + 2;
        let boundary = haze_crdt::digest::ring_hash(key).is_multiple_of(DIGEST_CHUNK);
        if boundary || i + 1 - start >= MAX_DIGEST_CHUNK || bytes >= MAX_REQUEST_BYTES {
            chunks.push(start..i + 1);
            (start, bytes) = (i + 1, 0);
        }
    }
    if start < keys.len() {
        chunks.push(start..keys.len());
    }
    chunks
}

/// Cuts states (with their encoded sizes) into merge requests of at most [`MERGE_CHUNK`]
/// states and about [`MAX_REQUEST_BYTES`] (a single larger state goes alone).
pub(crate) fn chunk_states(states: Vec<(Vec<u8>, Value, usize)>) -> Vec<Vec<(Vec<u8>, Value)>> {
    let mut chunks = Vec::new();
    let (mut chunk, mut bytes) = (Vec::new(), 0);
    for (key, value, size) in states {
        if !chunk.is_empty()
            && (chunk.len() >= MERGE_CHUNK || bytes + key.len() + size > MAX_REQUEST_BYTES)
        {
            chunks.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
        bytes += key.len() + size;
        chunk.push((key, value));
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use haze_crdt::{GCounter, Value};

    use super::*;

    #[test]
    fn content_chunks_cover_every_key_once_and_end_at_boundaries() {
        let keys: Vec<Vec<u8>> = (0..10_000)
            .map(|i| format!("k{i:05}").into_bytes())
            .collect();
        let chunks = chunk_by_content(&keys);
        let mut next = 0;
        for chunk in &chunks {
            assert_eq!(chunk.start, next);
            assert!(chunk.len() <= MAX_DIGEST_CHUNK);
            let last = &keys[chunk.end - 1];
            let boundary = haze_crdt::digest::ring_hash(last).is_multiple_of(DIGEST_CHUNK);
            assert!(boundary || chunk.end == keys.len() || chunk.len() == MAX_DIGEST_CHUNK);
            next = chunk.end;
        }
        assert_eq!(next, keys.len());
        assert!(chunks.len() > 1, "10,000 keys make several chunks");
    }

    #[test]
    fn adding_a_key_changes_only_its_own_chunk() {
        let keys: Vec<Vec<u8>> = (0..5_000)
            .map(|i| format!("k{i:05}").into_bytes())
            .collect();
        let lists = |keys: &[Vec<u8>]| -> Vec<u64> {
            let chunks = chunk_by_content(keys);
            chunks.into_iter().map(|c| list_id(&keys[c])).collect()
        };
        let before = lists(&keys);
        let mut more = keys.clone();
        more.insert(2_500, b"k02499x".to_vec());
        let after = lists(&more);
        let changed = after.iter().filter(|id| !before.contains(id)).count();
        assert_eq!(changed, 1, "{before:?} vs {after:?}");
    }

    #[test]
    fn merge_chunks_hold_at_most_their_count_and_a_large_state_goes_alone() {
        let state = |size| (b"k".to_vec(), Value::from(GCounter::new()), size);
        let many: Vec<_> = (0..600).map(|_| state(10)).collect();
        let sizes: Vec<usize> = chunk_states(many).iter().map(Vec::len).collect();
        assert_eq!(sizes, [MERGE_CHUNK, MERGE_CHUNK, 600 - 2 * MERGE_CHUNK]);
        let big = vec![state(10), state(MAX_REQUEST_BYTES), state(10)];
        let sizes: Vec<usize> = chunk_states(big).iter().map(Vec::len).collect();
        assert_eq!(sizes, [1, 1, 1]);
        assert!(chunk_states(Vec::new()).is_empty());
    }
}
