//! The recent tables' map: store keys (ring-ordered, see [`RingKey`]) to values, found by their
//! ring hash in a hash table, and ordered through a separate index of the hashes.
//!
//! Why not a `BTreeMap<RingKey, _>`: every write looks its key up in the recent tables and then
//! stores it there, and every read looks it up. In a tree of 100,000 keys each lookup follows
//! five or six nodes, a cache miss each (about 250 ns here; a hash table takes about 25 ns), and
//! that was a third of the writer thread's time. Only new keys touch the ordered index; the
//! overwrites of keys already present (most writes: a key is written many times between two
//! flushes) and every lookup touch the hash table alone. Ranges (anti-entropy's bucket scans,
//! deletions of a range) and the flush walk the index in ring order.
//!
//! Invariants: `order` holds exactly the hashes that `entries` holds; a `Same::Many` holds at
//! least two entries, sorted by key, all of that hash; `len` counts the entries.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::ops::{Bound, RangeBounds};

use crate::key::RingKey;

/// Store key → value, by ring hash, with the hashes in ring order beside.
#[derive(Clone)]
pub(crate) struct RingMap<V> {
    entries: HashMap<u64, Same<V>, Mix>,
    order: BTreeSet<u64>,
    len: usize,
}

/// The entries of one ring hash: almost always one key. Two keys share a ring hash only if
/// their 64-bit hashes collide.
#[derive(Clone)]
enum Same<V> {
    One(RingKey, V),
    /// Sorted by key; at least two.
    Many(Vec<(RingKey, V)>),
}

impl<V> Same<V> {
    fn iter(&self) -> impl Iterator<Item = (&RingKey, &V)> {
        let (one, many) = match self {
            Same::One(key, value) => (Some((key, value)), None),
            Same::Many(all) => (None, Some(all.iter().map(|(k, v)| (k, v)))),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

impl<V> Default for RingMap<V> {
    fn default() -> Self {
        RingMap {
            entries: HashMap::with_hasher(Mix::new()),
            order: BTreeSet::new(),
            len: 0,
        }
    }
}

impl<V> std::fmt::Debug for RingMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingMap").field("len", &self.len).finish()
    }
}

impl<V> RingMap<V> {
    /// An empty map with room for `keys` keys without growing.
    pub(crate) fn with_capacity(keys: usize) -> Self {
        RingMap {
            entries: HashMap::with_capacity_and_hasher(keys, Mix::new()),
            ..RingMap::default()
        }
    }

    /// The number of keys.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn get(&self, key: &RingKey) -> Option<&V> {
        match self.entries.get(&key.ring_hash())? {
            Same::One(k, v) => (k == key).then_some(v),
            Same::Many(all) => all.iter().find(|(k, _)| k == key).map(|(_, v)| v),
        }
    }

    /// Stores `value` under `key`; returns the value it replaced.
    pub(crate) fn insert(&mut self, key: RingKey, value: V) -> Option<V> {
        use std::collections::hash_map::Entry;
        let hash = key.ring_hash();
        let same = match self.entries.entry(hash) {
            Entry::Vacant(room) => {
                room.insert(Same::One(key, value));
                self.order.insert(hash);
                self.len += 1;
                return None;
            }
            Entry::Occupied(same) => same.into_mut(),
        };
        match same {
            Same::One(k, v) if *k == key => return Some(std::mem::replace(v, value)),
            Same::Many(all) => match all.binary_search_by(|(k, _)| k.cmp(&key)) {
                Ok(i) => return Some(std::mem::replace(&mut all[i].1, value)),
                Err(i) => all.insert(i, (key, value)),
            },
            Same::One(..) => {
                let Same::One(k, v) = std::mem::replace(same, Same::Many(Vec::new())) else {
                    unreachable!("matched as one")
                };
                let mut all = vec![(k, v), (key, value)];
                all.sort_by(|a, b| a.0.cmp(&b.0));
                *same = Same::Many(all);
            }
        }
        self.len += 1;
        None
    }

    /// Removes `key`; returns its value.
    pub(crate) fn remove(&mut self, key: &RingKey) -> Option<V> {
        let hash = key.ring_hash();
        let same = self.entries.get_mut(&hash)?;
        let removed = match same {
            Same::One(k, _) if k == key => {
                let Some(Same::One(_, v)) = self.entries.remove(&hash) else {
                    unreachable!("matched as one")
                };
                self.order.remove(&hash);
                v
            }
            Same::One(..) => return None,
            Same::Many(all) => {
                let i = all.iter().position(|(k, _)| k == key)?;
                let (_, v) = all.remove(i);
                if all.len() == 1 {
                    let (k, last) = all.pop().expect("one left");
                    *same = Same::One(k, last);
                }
                v
            }
        };
        self.len -= 1;
        Some(removed)
    }

    /// Every entry, in ring order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&RingKey, &V)> {
        self.range((Bound::Unbounded, Bound::Unbounded))
    }

    /// Every key, in ring order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &RingKey> {
        self.iter().map(|(k, _)| k)
    }

    /// The entries within `bounds`, in ring order.
    pub(crate) fn range(
        &self,
        bounds: (Bound<RingKey>, Bound<RingKey>),
    ) -> impl Iterator<Item = (&RingKey, &V)> {
        // Keys are ordered by hash first: the keys within the bounds have hashes within the
        // bounds' hashes (inclusive, since other keys of a bound's hash may lie within).
        let hash_of = |b: &Bound<RingKey>| match b {
            Bound::Included(k) | Bound::Excluded(k) => Bound::Included(k.ring_hash()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let hashes = (hash_of(&bounds.0), hash_of(&bounds.1));
        let empty = matches!(hashes, (Bound::Included(lo), Bound::Included(hi)) if lo > hi);
        let hashes = (!empty).then(|| self.order.range(hashes)).into_iter();
        hashes
            .flatten()
            .flat_map(move |hash| self.entries.get(hash).into_iter().flat_map(Same::iter))
            .filter(move |(key, _)| bounds.contains(*key))
    }
}

impl<V> FromIterator<(RingKey, V)> for RingMap<V> {
    fn from_iter<I: IntoIterator<Item = (RingKey, V)>>(iter: I) -> Self {
        let mut map = RingMap::default();
        for (key, value) in iter {
            map.insert(key, value);
        }
        map
    }
}

/// The hash table's hasher: the ring hash is already a hash, but anyone may choose keys whose
/// hashes share their low bits (a few thousand tries each), which would pile them into a few
/// buckets; mixed with a secret drawn per table, they spread again.
#[derive(Clone)]
pub(crate) struct Mix {
    seed: u64,
}

impl Mix {
    pub(crate) fn new() -> Mix {
        Mix {
            seed: std::collections::hash_map::RandomState::new().hash_one(0x6861_7a65_u64),
        }
    }
}

impl BuildHasher for Mix {
    type Hasher = Mixer;
    fn build_hasher(&self) -> Mixer {
        Mixer {
            seed: self.seed,
            value: 0,
        }
    }
}

pub(crate) struct Mixer {
    seed: u64,
    value: u64,
}

impl Hasher for Mixer {
    fn finish(&self) -> u64 {
        self.value
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64`s are hashed here; anything else still hashes well, if slower.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // A folded multiply (as foldhash and wyhash do): every input bit reaches every output
        // bit, and without the seed the outcome cannot be foreseen.
        let product = u128::from(n ^ self.seed ^ self.value) * 0x9e37_79b9_7f4a_7c15_u128;
        self.value = (product as u64) ^ ((product >> 64) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Keys that often share their first 8 bytes (their ring hash), so collisions are common.
    fn key() -> impl Strategy<Value = RingKey> {
        (0u8..4, proptest::collection::vec(0u8..3, 0..3)).prop_map(|(head, tail)| {
            let mut bytes = vec![0, 0, 0, 0, 0, 0, 0, head];
            bytes.extend(tail);
            RingKey::new(bytes)
        })
    }

    #[derive(Debug, Clone)]
    enum Step {
        Insert(RingKey, u32),
        Remove(RingKey),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (key(), any::<u32>()).prop_map(|(k, v)| Step::Insert(k, v)),
            key().prop_map(Step::Remove),
        ]
    }

    fn bound() -> impl Strategy<Value = Bound<RingKey>> {
        prop_oneof![
            key().prop_map(Bound::Included),
            key().prop_map(Bound::Excluded),
            Just(Bound::Unbounded),
        ]
    }

    proptest! {
        /// Whatever is inserted and removed, it answers as a `BTreeMap` of the same keys does:
        /// lookups, the values replaced and removed, the length, and every range in order.
        #[test]
        fn it_behaves_as_an_ordered_map(
            steps in proptest::collection::vec(step(), 0..60),
            probes in proptest::collection::vec(key(), 8),
            ranges in proptest::collection::vec((bound(), bound()), 4),
        ) {
            let mut map = RingMap::default();
            let mut model = BTreeMap::new();
            for step in steps {
                match step {
                    Step::Insert(k, v) => prop_assert_eq!(map.insert(k.clone(), v), model.insert(k, v)),
                    Step::Remove(k) => prop_assert_eq!(map.remove(&k), model.remove(&k)),
                }
                prop_assert_eq!(map.len(), model.len());
            }
            for k in &probes {
                prop_assert_eq!(map.get(k), model.get(k));
            }
            let all: Vec<_> = map.iter().collect();
            prop_assert_eq!(all, model.iter().collect::<Vec<_>>());
            for (lo, hi) in ranges {
                // A BTreeMap panics on a range whose start is past its end; the keys within
                // such bounds are none.
                let inverted = match (&lo, &hi) {
                    (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
                        a > b || (a == b && !matches!((&lo, &hi), (Bound::Included(_), Bound::Included(_))))
                    }
                    _ => false,
                };
                let want: Vec<_> = if inverted {
                    Vec::new()
                } else {
                    model.range((lo.clone(), hi.clone())).collect()
                };
                prop_assert_eq!(map.range((lo, hi)).collect::<Vec<_>>(), want);
            }
        }
    }

    #[test]
    fn keys_with_one_ring_hash_are_all_kept_and_removed_one_by_one() {
        let keys: Vec<RingKey> = (0..3u8)
            .map(|i| RingKey::new(vec![9, 9, 9, 9, 9, 9, 9, 9, 2 - i]))
            .collect();
        let mut map: RingMap<u8> = keys.iter().cloned().zip(0..).collect();
        assert_eq!(map.len(), 3);
        assert_eq!(
            map.keys().map(|k| k[8]).collect::<Vec<_>>(),
            vec![0, 1, 2],
            "in key order"
        );
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(map.remove(key), Some(i as u8));
            assert_eq!(map.get(key), None);
        }
        assert!(map.is_empty());
        assert_eq!(map.iter().count(), 0);
    }
}
