//! A commit's staged keys: each key's newest state in the batch, found by its ring hash.
//!
//! Why not a `BTreeMap<RingKey, _>`: a commit looks each write's key up here two or three times
//! and stores it once, and the tree's inserts (a node allocated, searched and split) cost more
//! than the rest of the lookup; nothing needs the keys sorted (the log record and the active
//! table take them in any order). The keys come out in the order of their first write, so a
//! commit's log record is the same for the same batch.
//!
//! Invariant: `index` maps a ring hash to the position in `keys` of the latest key staged with
//! it; each key links to the one staged before it with the same hash (two keys share a ring
//! hash only if their 64-bit hashes collide).

use std::collections::HashMap;

use crate::key::RingKey;
use crate::ring_map::Mix;

/// The keys of one commit and their staged states.
pub(super) struct StagedKeys<S> {
    index: HashMap<u64, usize, Mix>,
    /// Each key, its state, and the position of the key staged before it with the same hash.
    keys: Vec<(RingKey, S, Option<usize>)>,
}

impl<S> StagedKeys<S> {
    /// Room for `keys` keys without growing.
    pub(super) fn with_capacity(keys: usize) -> Self {
        StagedKeys {
            index: HashMap::with_capacity_and_hasher(keys, Mix::new()),
            keys: Vec::with_capacity(keys),
        }
    }

    fn position(&self, skey: &RingKey) -> Option<usize> {
        let mut at = *self.index.get(&skey.ring_hash())?;
        loop {
            let (key, _, before) = &self.keys[at];
            if key == skey {
                return Some(at);
            }
            at = (*before)?;
        }
    }

    /// The state staged for `skey`, if any.
    pub(super) fn get(&self, skey: &RingKey) -> Option<&S> {
        self.position(skey).map(|at| &self.keys[at].1)
    }

    /// Stages `state` for `skey` (copied only if it is new here), replacing what was staged.
    pub(super) fn set(&mut self, skey: &RingKey, state: S) {
        match self.position(skey) {
            Some(at) => self.keys[at].1 = state,
            None => self.add(skey.clone(), state),
        }
    }

    /// As [`set`](Self::set), for a key the caller owns.
    pub(super) fn insert(&mut self, skey: RingKey, state: S) {
        match self.position(&skey) {
            Some(at) => self.keys[at].1 = state,
            None => self.add(skey, state),
        }
    }

    fn add(&mut self, skey: RingKey, state: S) {
        let before = self.index.insert(skey.ring_hash(), self.keys.len());
        self.keys.push((skey, state, before));
    }

    /// The number of keys staged.
    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Every key and its state, in the order of the keys' first staging.
    pub(super) fn in_order(self) -> impl Iterator<Item = (RingKey, S)> {
        self.keys.into_iter().map(|(key, state, _)| (key, state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key with the given ring hash (the store key's first 8 bytes) and tail.
    fn key(hash: u64, tail: &[u8]) -> RingKey {
        let mut bytes = hash.to_be_bytes().to_vec();
        bytes.extend_from_slice(tail);
        RingKey::new(bytes)
    }

    #[test]
    fn keys_that_share_a_ring_hash_stay_apart_and_come_out_in_first_staging_order() {
        let mut staged = StagedKeys::with_capacity(1);
        let (a, b, c, d) = (key(7, b"a"), key(7, b"b"), key(3, b"c"), key(7, b"d"));
        staged.set(&a, 1);
        staged.insert(c.clone(), 2);
        staged.set(&b, 3);
        staged.set(&a, 4);
        staged.insert(b.clone(), 5);
        assert_eq!(staged.get(&a), Some(&4));
        assert_eq!(staged.get(&b), Some(&5));
        assert_eq!(staged.get(&c), Some(&2));
        assert_eq!(staged.get(&d), None, "same hash, another key");
        assert_eq!(staged.get(&key(8, b"a")), None);
        assert_eq!(staged.len(), 3);
        let out: Vec<(RingKey, i32)> = staged.in_order().collect();
        assert_eq!(out, vec![(a, 4), (c, 2), (b, 5)]);
    }
}
