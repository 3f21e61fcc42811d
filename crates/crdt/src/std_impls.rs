//! `Crdt` for standard collections: sets under union, maps merged pointwise, `Option`.

// The hash collections are banned in this crate's replicated state (their iteration order is
// random, so equal states would encode differently). Implementing `Crdt` for them is still a
// convenience for application types; converting one into a `Value` sorts it.
#![allow(clippy::disallowed_types)]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasher, Hash};

use crate::Crdt;

/// A set under union: the lattice of subsets.
impl<T: Eq + Hash, S: BuildHasher> Crdt for HashSet<T, S> {
    fn merge_from(&mut self, other: Self) {
        self.extend(other);
    }
}

/// A set under union: the lattice of subsets.
impl<T: Ord> Crdt for BTreeSet<T> {
    fn merge_from(&mut self, mut other: Self) {
        if other.len() > self.len() {
            std::mem::swap(self, &mut other);
        }
        self.extend(other);
    }
}

/// A map merged pointwise: a key present on one side is kept, values under the same key merge.
impl<K: Eq + Hash, V: Crdt, S: BuildHasher> Crdt for HashMap<K, V, S> {
    fn merge_from(&mut self, other: Self) {
        for (key, value) in other {
            match self.get_mut(&key) {
                Some(mine) => mine.merge_from(value),
                None => {
                    self.insert(key, value);
                }
            }
        }
    }
}

/// A map merged pointwise: a key present on one side is kept, values under the same key merge.
impl<K: Ord, V: Crdt> Crdt for BTreeMap<K, V> {
    fn merge_from(&mut self, other: Self) {
        for (key, value) in other {
            match self.get_mut(&key) {
                Some(mine) => mine.merge_from(value),
                None => {
                    self.insert(key, value);
                }
            }
        }
    }
}

/// `None` is the bottom of the lattice: `None ⊔ x = x`.
impl<T: Crdt> Crdt for Option<T> {
    fn merge_from(&mut self, other: Self) {
        match (self.as_mut(), other) {
            (_, None) => {}
            (None, Some(theirs)) => *self = Some(theirs),
            (Some(mine), Some(theirs)) => mine.merge_from(theirs),
        }
    }
}

/// The unit type is the one-point lattice (useful as the value of a set-like map).
impl Crdt for () {
    fn merge_from(&mut self, _other: Self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ActorId, GCounter};

    #[test]
    fn hash_set_merges_by_union() {
        let a: HashSet<u32> = [1, 2].into();
        let b: HashSet<u32> = [2, 3].into();
        assert_eq!(a.merge(b), [1, 2, 3].into());
    }

    #[test]
    fn btree_set_merges_by_union_whichever_side_is_larger() {
        let a: BTreeSet<u32> = [1].into();
        let b: BTreeSet<u32> = [2, 3, 4].into();
        assert_eq!(a.clone().merge(b.clone()), b.merge(a));
    }

    #[test]
    fn maps_merge_pointwise() {
        let mut c1 = GCounter::new();
        c1.increment(ActorId::new(1), 1).unwrap();
        let mut c2 = GCounter::new();
        c2.increment(ActorId::new(2), 2).unwrap();
        let a: BTreeMap<&str, GCounter> = [("x", c1.clone())].into();
        let b: BTreeMap<&str, GCounter> = [("x", c2.clone()), ("y", c2.clone())].into();
        let merged = a.merge(b);
        assert_eq!(merged["x"].value(), 3);
        assert_eq!(merged["y"].value(), 2);

        let h: HashMap<&str, GCounter> = [("x", c1)].into();
        let merged = h.merge([("x", c2)].into());
        assert_eq!(merged["x"].value(), 3);
    }

    #[test]
    fn none_is_bottom() {
        let some: Option<BTreeSet<u8>> = Some([1].into());
        assert_eq!(None.merge(some.clone()), some);
        assert_eq!(some.clone().merge(None), some);
    }
}
