//! The observed-remove map of nested CRDTs.

use std::collections::BTreeMap;
use std::collections::btree_map::{Entry as Slot, OccupiedEntry, VacantEntry};
use std::convert::Infallible;

use super::Join;
use super::entry::Entry;
use crate::Crdt;
use crate::clock::{ActorId, Dot, VersionVector};
use crate::merge_join::{MergeJoin, Side};

/// An observed-remove map whose values are themselves CRDTs: a map of counters, sets,
/// registers or maps.
///
/// Every update of a key is named by a dot and stores the value it wrote: removing a key takes
/// out the updates seen, and an update concurrent with a remove survives it (update wins), with
/// the value its writer had. Concurrent updates of a key keep one value each, and a read sees
/// their merge, until the next update replaces them all with that merge. Because each update's
/// value is kept under its own dot, a replica that removed a key and then wrote it afresh never
/// gets the state from before its remove back from an older copy.
///
/// # Examples
///
/// ```
/// use haze_crdt::{ActorId, Crdt, GCounter, OrMap};
///
/// let (phone, laptop) = (ActorId::new(1), ActorId::new(2));
/// let mut scores: OrMap<String, GCounter> = OrMap::new();
/// scores.try_update(phone, "alice".to_string(), |c| c.increment(phone, 3))?;
///
/// let mut on_laptop = scores.clone();
/// on_laptop.try_update(laptop, "alice".to_string(), |c| c.increment(laptop, 2))?;
/// on_laptop.try_update(laptop, "bob".to_string(), |c| c.increment(laptop, 1))?;
/// scores.remove(&"alice".to_string()); // concurrent with the laptop's update: update wins
///
/// let merged = scores.merge(on_laptop);
/// assert_eq!(merged.get(&"alice".to_string()).map(GCounter::value), Some(5));
/// assert_eq!(merged.get(&"bob".to_string()).map(GCounter::value), Some(1));
/// # Ok::<(), haze_crdt::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrMap<K, V> {
    /// Every update seen.
    seen: VersionVector,
    /// The live keys, each with the values of the updates that keep it alive (all in `seen`).
    entries: BTreeMap<K, Entry<V>>,
}

impl<K, V> Default for OrMap<K, V> {
    fn default() -> Self {
        OrMap {
            seen: VersionVector::new(),
            entries: BTreeMap::new(),
        }
    }
}

impl<K: Ord, V: Join> OrMap<K, V> {
    /// Returns an empty map.
    pub const fn new() -> Self {
        OrMap {
            seen: VersionVector::new(),
            entries: BTreeMap::new(),
        }
    }

    /// Builds a map from checked parts (the decoders' entry point): every key's `(dot, value)`
    /// pairs are sorted by dot, strictly, non-empty, and every dot is in `seen`.
    pub(crate) fn from_parts(seen: VersionVector, entries: BTreeMap<K, Vec<(Dot, V)>>) -> Self {
        let entries = entries
            .into_iter()
            .map(|(k, values)| (k, Entry::from_sorted(values)))
            .collect();
        OrMap { seen, entries }
    }

    /// Updates the value of `key` on behalf of `actor` with `f`, starting from `V::default()`
    /// if the key is absent, and returns what `f` returns.
    pub fn update<R>(&mut self, actor: ActorId, key: K, f: impl FnOnce(&mut V) -> R) -> R
    where
        V: Default,
    {
        match self.try_update_or_insert_with(actor, key, V::default, |v| Ok::<R, Infallible>(f(v)))
        {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }

    /// Updates the value of `key` on behalf of `actor` with a fallible `f`, starting from
    /// `V::default()` if the key is absent.
    ///
    /// # Errors
    ///
    /// Returns what `f` returns. On an error the map holds the same keys and values, provided `f`
    /// leaves the value unchanged when it fails, as every operation of this crate does (the
    /// nested value's causal context may have advanced, which no read can see).
    pub fn try_update<R, E>(
        &mut self,
        actor: ActorId,
        key: K,
        f: impl FnOnce(&mut V) -> Result<R, E>,
    ) -> Result<R, E>
    where
        V: Default,
    {
        self.try_update_or_insert_with(actor, key, V::default, f)
    }

    /// Updates the value of `key` on behalf of `actor` with `f`, starting from `init()` if the
    /// key is absent (for value types without a `Default`, such as a [`Value`](crate::Value)).
    ///
    /// The update replaces every value of the key seen here with their merge, changed by `f`.
    ///
    /// # Errors
    ///
    /// As [`try_update`](Self::try_update).
    pub fn try_update_or_insert_with<R, E>(
        &mut self,
        actor: ActorId,
        key: K,
        init: impl FnOnce() -> V,
        f: impl FnOnce(&mut V) -> Result<R, E>,
    ) -> Result<R, E> {
        // One search of the tree: the key's slot is updated where it is (a remove and an
        // insert searched twice and moved entries about, for every update of a large map).
        let (mut value, rest, slot) = match self.entries.entry(key) {
            Slot::Occupied(mut slot) => {
                // Emptied only until this function puts an entry back, on either outcome.
                let (value, rest) = std::mem::take(slot.get_mut()).into_value();
                (value, Some(rest), Ok(slot))
            }
            Slot::Vacant(slot) => (init(), None, Err(slot)),
        };
        // One sequence of dots per actor for the map and everything nested in it: the nested
        // value's next dot is above every dot this actor drew here, so a key removed and created
        // afresh never reuses a dot of its earlier life (which the other replicas may have seen
        // removed).
        value.advance_causal_counter(actor, self.seen.get(actor));
        match f(&mut value) {
            Ok(r) => {
                put(&mut self.seen, slot, actor, value);
                Ok(r)
            }
            Err(e) => {
                // `f` left `value` as it was, but for the advanced causal counter, which changes
                // nothing a read sees.
                if let (Ok(mut occupied), Some(rest)) = (slot, rest) {
                    *occupied.get_mut() = Entry::restore(value, rest);
                }
                Err(e)
            }
        }
    }

    /// Replaces the value of `key` on behalf of `actor` with the value `f` makes from the
    /// current one (`init()` if the key is absent), which it reads without changing; `f` starts
    /// its value's causal counter where the map's is for `actor` (see
    /// [`try_update_or_insert_with`](Self::try_update_or_insert_with)). On an error nothing
    /// changed. One search of the tree.
    pub(crate) fn try_replace_with<R, E>(
        &mut self,
        actor: ActorId,
        key: K,
        init: impl FnOnce() -> V,
        f: impl FnOnce(&V) -> Result<(V, R), E>,
    ) -> Result<R, E> {
        let (value, r, slot) = match self.entries.entry(key) {
            Slot::Occupied(slot) => {
                let (value, r) = f(slot.get().value())?;
                (value, r, Ok(slot))
            }
            Slot::Vacant(slot) => {
                let (value, r) = f(&init())?;
                (value, r, Err(slot))
            }
        };
        put(&mut self.seen, slot, actor, value);
        Ok(r)
    }

    /// Removes `key` (the updates of it seen here) and returns whether it was present.
    pub fn remove(&mut self, key: &K) -> bool {
        self.entries.remove(key).is_some()
    }

    /// Returns the value of `key`: the merge of the values of its live updates.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(Entry::value)
    }

    /// Returns whether `key` is present.
    pub fn contains_key(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Iterates over the keys and values in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, e)| (k, e.value()))
    }

    /// Iterates over the keys with the dots and values of the updates that keep them alive,
    /// sorted by dot (one pair, unless updates were concurrent).
    pub fn entries(&self) -> impl ExactSizeIterator<Item = (&K, &[(Dot, V)])> {
        self.entries.iter().map(|(k, e)| (k, e.dotted_values()))
    }

    /// Returns the number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Returns whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Returns the causal context: every update this replica has seen.
    pub fn seen(&self) -> &VersionVector {
        &self.seen
    }

    /// Consumes the map, returning its causal context and each key's dotted values.
    pub(crate) fn into_parts(self) -> (VersionVector, BTreeMap<K, Vec<(Dot, V)>>) {
        let entries = self
            .entries
            .into_iter()
            .map(|(k, e)| (k, e.into_dotted_values()))
            .collect();
        (self.seen, entries)
    }
}

impl<K: Ord, V: Join> Crdt for OrMap<K, V> {
    fn causal_counter(&self, actor: ActorId) -> u64 {
        self.seen.get(actor)
    }

    fn advance_causal_counter(&mut self, actor: ActorId, counter: u64) {
        self.seen.raise(actor, counter);
    }

    fn merge_from(&mut self, other: Self) {
        let mine = std::mem::take(&mut self.entries);
        let (my_seen, their_seen) = (&self.seen, &other.seen);
        self.entries = MergeJoin::new(mine.into_iter(), other.entries.into_iter())
            .filter_map(|(key, side)| {
                let entry = match side {
                    Side::Mine(entry) => entry.unseen_by(their_seen)?,
                    Side::Theirs(entry) => entry.unseen_by(my_seen)?,
                    Side::Both(a, b) => Entry::join(a, my_seen, b, their_seen)?,
                };
                Some((key, entry))
            })
            .collect();
        self.seen.merge_from(other.seen);
    }
}

/// A key's slot in the tree, found by one search: the entry there, or where it goes.
type KeySlot<'a, K, V> = Result<OccupiedEntry<'a, K, Entry<V>>, VacantEntry<'a, K, Entry<V>>>;

/// Puts `value` in `slot` as `actor`'s update of the key: the map's context `seen` raised to
/// the value's causal counter (the nested value drew its dots from the map's sequence), then
/// the update's own dot drawn after them.
fn put<K: Ord, V: Join>(
    seen: &mut VersionVector,
    slot: KeySlot<'_, K, V>,
    actor: ActorId,
    value: V,
) {
    seen.raise(actor, value.causal_counter(actor));
    let entry = Entry::single(seen.next_dot(actor), value);
    match slot {
        Ok(mut occupied) => *occupied.get_mut() = entry,
        Err(vacant) => {
            vacant.insert(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GCounter, OrSet};

    const A: ActorId = ActorId::new(1);
    const B: ActorId = ActorId::new(2);

    #[test]
    fn remove_then_fresh_update_does_not_resurrect_old_state() {
        let mut a: OrMap<u8, GCounter> = OrMap::new();
        a.try_update(A, 1, |c| c.increment(A, 5)).unwrap();
        let old = a.clone();
        a.remove(&1);
        a.try_update(A, 1, |c| c.increment(B, 1)).unwrap();
        let merged = a.merge(old);
        assert_eq!(merged.get(&1).map(GCounter::value), Some(1));
    }

    #[test]
    fn a_failed_update_changes_nothing() {
        let mut a: OrMap<u8, GCounter> = OrMap::new();
        a.try_update(A, 1, |c| c.increment(A, u64::MAX)).unwrap();
        let before = a.clone();
        assert!(a.try_update(A, 1, |c| c.increment(A, 1)).is_err());
        assert!(
            a.try_update(A, 2, |c| c
                .increment(A, u64::MAX)
                .and_then(|_| c.increment(A, 1)))
                .is_err()
        );
        assert_eq!(a, before);
    }

    #[test]
    fn re_creating_a_removed_key_does_not_lose_a_fresh_insert() {
        // Found in review: the re-created nested set restarted its dots at 1, which the other
        // replica had already seen (and so treated as removed).
        let mut x: OrMap<&str, OrSet<&str>> = OrMap::new();
        x.update(A, "k", |s| s.insert(A, "old"));
        let mut y = x.clone();
        x.remove(&"k");
        x.update(A, "k", |s| s.insert(A, "new"));
        y.update(B, "k", |s| s.insert(B, "other"));
        let merged = x.merge(y);
        let items: Vec<&str> = merged.get(&"k").unwrap().iter().copied().collect();
        assert_eq!(items, ["new", "other"]); // "old" was observed and removed by x
    }

    #[test]
    fn concurrent_updates_are_read_merged_and_collapse_on_the_next_update() {
        let mut a: OrMap<&str, OrSet<u8>> = OrMap::new();
        a.update(A, "k", |s| s.insert(A, 1));
        let mut b = a.clone();
        b.update(B, "k", |s| s.insert(B, 2));
        a.update(A, "k", |s| s.insert(A, 3));
        let mut merged = a.merge(b);
        assert_eq!(merged.entries().next().unwrap().1.len(), 2);
        assert_eq!(
            merged
                .get(&"k")
                .unwrap()
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            [1, 2, 3]
        );
        merged.update(A, "k", |s| s.remove(&1));
        assert_eq!(merged.entries().next().unwrap().1.len(), 1);
        assert_eq!(
            merged
                .get(&"k")
                .unwrap()
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            [2, 3]
        );
    }
}
