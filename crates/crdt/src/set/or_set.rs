//! The add-wins observed-remove set.

use std::collections::BTreeMap;

use crate::Crdt;
use crate::clock::{ActorId, Dot, DotSet, VersionVector};
use crate::merge_join::{MergeJoin, Side};

/// An add-wins observed-remove set: a remove takes out only the additions its replica has
/// seen, so an addition concurrent with a remove survives it.
///
/// Each element carries the dots of the additions that keep it alive; the causal context
/// (a version vector) records every addition seen. A remove simply drops the element: an
/// element missing from one side but alive on the other is kept only if the side missing it
/// never saw those additions. So there are no per-remove tombstones: the metadata is the live
/// elements (one dot each, plus one per concurrent adder) and one counter per actor.
///
/// # Examples
///
/// ```
/// use haze_crdt::{ActorId, Crdt, OrSet};
///
/// let (phone, laptop) = (ActorId::new(1), ActorId::new(2));
/// let mut list = OrSet::new();
/// list.insert(phone, "milk");
/// list.insert(phone, "eggs");
///
/// let mut on_laptop = list.clone();
/// on_laptop.remove(&"milk"); // the laptop removes milk...
/// list.insert(phone, "milk"); // ...while the phone adds it again
/// list.remove(&"eggs");
///
/// let merged = list.merge(on_laptop);
/// assert_eq!(merged.iter().collect::<Vec<_>>(), [&"milk"]); // add wins; eggs stay removed
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrSet<T> {
    /// Every addition seen.
    seen: VersionVector,
    /// The live elements and the additions that keep them alive; every dot is in `seen`.
    entries: BTreeMap<T, DotSet>,
}

impl<T> Default for OrSet<T> {
    fn default() -> Self {
        OrSet {
            seen: VersionVector::new(),
            entries: BTreeMap::new(),
        }
    }
}

impl<T: Ord> OrSet<T> {
    /// Returns an empty set.
    pub const fn new() -> Self {
        OrSet {
            seen: VersionVector::new(),
            entries: BTreeMap::new(),
        }
    }

    /// Builds a set from checked parts (the decoders' entry point).
    pub(crate) fn from_parts(seen: VersionVector, entries: BTreeMap<T, DotSet>) -> Self {
        OrSet { seen, entries }
    }

    /// Adds `item` on behalf of `actor` and returns the dot of the addition.
    ///
    /// The new dot replaces the dots `item` had here: they are all in the causal context, so
    /// they need not be kept to keep `item` alive.
    pub fn insert(&mut self, actor: ActorId, item: T) -> Dot {
        self.insert_new(actor, item).0
    }

    /// As [`insert`](Self::insert), and returns whether `item` was absent before (as
    /// `BTreeSet::insert` does: what Redis's `SADD` counts), found by the one lookup the
    /// insertion makes.
    pub fn insert_new(&mut self, actor: ActorId, item: T) -> (Dot, bool) {
        let dot = self.seen.next_dot(actor);
        let absent = self.entries.insert(item, DotSet::single(dot)).is_none();
        (dot, absent)
    }

    /// Removes `item` (the additions of it seen here) and returns whether it was present.
    pub fn remove(&mut self, item: &T) -> bool {
        self.entries.remove(item).is_some()
    }

    /// Removes every element seen here.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Returns whether `item` is in the set.
    pub fn contains(&self, item: &T) -> bool {
        self.entries.contains_key(item)
    }

    /// Iterates over the elements in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &T> + DoubleEndedIterator {
        self.entries.keys()
    }

    /// Iterates over the elements with the dots that keep them alive.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = (&T, &DotSet)> {
        self.entries.iter()
    }

    /// Returns the number of elements.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Returns whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Returns the causal context: every addition this replica has seen.
    pub fn seen(&self) -> &VersionVector {
        &self.seen
    }

    /// Consumes the set, returning its causal context and entries.
    pub(crate) fn into_parts(self) -> (VersionVector, BTreeMap<T, DotSet>) {
        (self.seen, self.entries)
    }
}

impl<T: Ord> Crdt for OrSet<T> {
    fn causal_counter(&self, actor: ActorId) -> u64 {
        self.seen.get(actor)
    }

    fn advance_causal_counter(&mut self, actor: ActorId, counter: u64) {
        self.seen.raise(actor, counter);
    }

    fn merge_from(&mut self, other: Self) {
        let mine = std::mem::take(&mut self.entries);
        let (my_seen, their_seen) = (&self.seen, &other.seen);
        // Both sides are sorted, so this is one linear pass and `collect` bulk-builds the tree.
        self.entries = MergeJoin::new(mine.into_iter(), other.entries.into_iter())
            .filter_map(|(item, side)| {
                let dots = match side {
                    Side::Mine(dots) => dots.unseen_by(their_seen),
                    Side::Theirs(dots) => dots.unseen_by(my_seen),
                    Side::Both(a, b) => DotSet::join(a, my_seen, b, their_seen),
                };
                Some((item, dots?))
            })
            .collect();
        self.seen.merge_from(other.seen);
    }
}

impl<T: Ord> Extend<(ActorId, T)> for OrSet<T> {
    /// Inserts each `(actor, item)` pair.
    fn extend<I: IntoIterator<Item = (ActorId, T)>>(&mut self, iter: I) {
        for (actor, item) in iter {
            self.insert(actor, item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ActorId = ActorId::new(1);
    const B: ActorId = ActorId::new(2);

    #[test]
    fn concurrent_add_and_remove_keeps_the_element() {
        let mut base = OrSet::new();
        base.insert(A, 'x');
        let mut remover = base.clone();
        remover.remove(&'x');
        let mut adder = base;
        adder.insert(B, 'x');
        assert!(remover.clone().merge(adder.clone()).contains(&'x'));
        assert!(adder.merge(remover).contains(&'x'));
    }

    #[test]
    fn an_observed_remove_wins_over_the_old_state() {
        let mut a = OrSet::new();
        a.insert(A, 1);
        let old = a.clone();
        a.remove(&1);
        assert!(!a.merge(old).contains(&1));
    }

    #[test]
    fn insert_new_says_whether_the_item_was_absent() {
        let mut a = OrSet::new();
        assert!(a.insert_new(A, 1).1);
        assert!(!a.insert_new(B, 1).1);
        a.remove(&1);
        assert!(a.insert_new(A, 1).1);
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn re_adding_keeps_one_dot() {
        let mut a = OrSet::new();
        for _ in 0..10 {
            a.insert(A, 1);
        }
        assert_eq!(a.entries().next().unwrap().1.len(), 1);
    }
}
