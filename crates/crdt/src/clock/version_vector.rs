//! Version vectors: how many updates of each actor a replica has seen.

use super::{ActorId, Dot};
use crate::Crdt;

/// For each actor, how many of its updates have been seen: the compact causal context of the
/// causal types, and the state of a [`GCounter`](crate::GCounter).
///
/// Kept as a vector sorted by actor, with no zero entries, so that equal vectors are equal
/// values and encode to equal bytes. Lookups are binary searches; merges are linear.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct VersionVector {
    /// Sorted by actor, strictly increasing; every count is at least 1.
    entries: Vec<(ActorId, u64)>,
}

impl VersionVector {
    /// Returns the empty vector (nothing seen).
    pub const fn new() -> Self {
        VersionVector {
            entries: Vec::new(),
        }
    }

    /// Builds a vector from entries that are already sorted by actor, strictly, with no zero
    /// counts. The decoders use this after checking exactly that.
    pub(crate) fn from_sorted(entries: Vec<(ActorId, u64)>) -> Self {
        debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
        debug_assert!(entries.iter().all(|&(_, n)| n > 0));
        VersionVector { entries }
    }

    /// Returns how many updates of `actor` have been seen.
    pub fn get(&self, actor: ActorId) -> u64 {
        match self.position(actor) {
            Ok(i) => self.entries[i].1,
            Err(_) => 0,
        }
    }

    /// Returns whether the update `dot` has been seen.
    pub fn contains(&self, dot: Dot) -> bool {
        self.get(dot.actor) >= dot.counter
    }

    /// Returns the index of `actor` in [`iter`](Self::iter) order, if it has an entry.
    pub(crate) fn position(&self, actor: ActorId) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&actor, |&(a, _)| a)
    }

    /// Returns the `index`-th `(actor, count)` pair in actor order.
    pub(crate) fn entry_at(&self, index: usize) -> Option<(ActorId, u64)> {
        self.entries.get(index).copied()
    }

    /// Records the next update of `actor` and returns its dot.
    ///
    /// # Panics
    ///
    /// Panics if `actor` has already made [`Dot::MAX_COUNTER`] updates: no replica makes 2^63
    /// updates, but a state received from elsewhere can claim it did, so code that applies
    /// operations to received states checks [`has_room`](Self::has_room) first.
    pub fn next_dot(&mut self, actor: ActorId) -> Dot {
        let counter = match self.position(actor) {
            Ok(i) => {
                let slot = &mut self.entries[i].1;
                assert!(
                    *slot < Dot::MAX_COUNTER,
                    "an actor makes fewer than 2^63 - 1 updates"
                );
                *slot += 1;
                *slot
            }
            Err(i) => {
                self.entries.insert(i, (actor, 1));
                1
            }
        };
        Dot::new(actor, counter)
    }

    /// Returns whether `actor` can make `updates` more updates before its count would pass
    /// [`Dot::MAX_COUNTER`] (beyond which states no longer decode).
    pub fn has_room(&self, actor: ActorId, updates: u64) -> bool {
        self.get(actor)
            .checked_add(updates)
            .is_some_and(|n| n <= Dot::MAX_COUNTER)
    }

    /// Raises the count of `actor` to at least `count`.
    pub fn raise(&mut self, actor: ActorId, count: u64) {
        if count == 0 {
            return;
        }
        match self.position(actor) {
            Ok(i) => self.entries[i].1 = self.entries[i].1.max(count),
            Err(i) => self.entries.insert(i, (actor, count)),
        }
    }

    /// Adds `by` to the count of `actor`, or returns `None` (changing nothing) on overflow.
    pub(crate) fn checked_add(&mut self, actor: ActorId, by: u64) -> Option<()> {
        if by == 0 {
            return Some(());
        }
        match self.position(actor) {
            Ok(i) => self.entries[i].1 = self.entries[i].1.checked_add(by)?,
            Err(i) => self.entries.insert(i, (actor, by)),
        }
        Some(())
    }

    /// Returns whether every count of `self` is at most the count of `other`.
    pub fn is_dominated_by(&self, other: &VersionVector) -> bool {
        self.entries.iter().all(|&(a, n)| other.get(a) >= n)
    }

    /// Iterates over `(actor, count)` pairs in actor order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (ActorId, u64)> + '_ {
        self.entries.iter().copied()
    }

    /// Returns the number of actors with at least one update.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Returns whether no update has been seen.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Returns the sum of all counts, as a `u128` so that it cannot overflow.
    pub fn sum(&self) -> u128 {
        self.entries.iter().map(|&(_, n)| u128::from(n)).sum()
    }
}

/// Pointwise maximum.
impl Crdt for VersionVector {
    fn merge_from(&mut self, other: Self) {
        if other.entries.is_empty() {
            return;
        }
        if self.entries.is_empty() {
            *self = other;
            return;
        }
        let mut merged = Vec::with_capacity(self.entries.len().max(other.entries.len()));
        let mut mine = std::mem::take(&mut self.entries).into_iter().peekable();
        let mut theirs = other.entries.into_iter().peekable();
        loop {
            let next = match (mine.peek(), theirs.peek()) {
                (Some(&(a, n)), Some(&(b, m))) => match a.cmp(&b) {
                    std::cmp::Ordering::Less => mine.next(),
                    std::cmp::Ordering::Greater => theirs.next(),
                    std::cmp::Ordering::Equal => {
                        mine.next();
                        theirs.next();
                        Some((a, n.max(m)))
                    }
                },
                (Some(_), None) => mine.next(),
                (None, Some(_)) => theirs.next(),
                (None, None) => break,
            };
            merged.extend(next);
        }
        self.entries = merged;
    }
}

impl FromIterator<(ActorId, u64)> for VersionVector {
    /// Collects pairs, keeping the largest count of each actor and dropping zero counts.
    fn from_iter<I: IntoIterator<Item = (ActorId, u64)>>(iter: I) -> Self {
        let mut vv = VersionVector::new();
        for (actor, count) in iter {
            vv.raise(actor, count);
        }
        vv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vv(pairs: &[(u64, u64)]) -> VersionVector {
        pairs.iter().map(|&(a, n)| (ActorId::new(a), n)).collect()
    }

    #[test]
    fn next_dot_counts_per_actor() {
        let mut v = VersionVector::new();
        assert_eq!(v.next_dot(ActorId::new(7)), Dot::new(ActorId::new(7), 1));
        assert_eq!(v.next_dot(ActorId::new(7)), Dot::new(ActorId::new(7), 2));
        assert_eq!(v.next_dot(ActorId::new(3)), Dot::new(ActorId::new(3), 1));
        assert_eq!(v.iter().map(|(a, _)| a.get()).collect::<Vec<_>>(), [3, 7]);
    }

    #[test]
    fn merge_is_pointwise_max() {
        let merged = vv(&[(1, 5), (3, 1)]).merge(vv(&[(1, 2), (2, 4), (3, 9)]));
        assert_eq!(merged, vv(&[(1, 5), (2, 4), (3, 9)]));
        assert!(vv(&[(1, 2)]).is_dominated_by(&merged));
        assert!(!merged.is_dominated_by(&vv(&[(1, 2)])));
    }

    #[test]
    fn zero_counts_are_not_stored() {
        assert_eq!(vv(&[(1, 0)]), VersionVector::new());
        let mut v = VersionVector::new();
        v.checked_add(ActorId::new(1), 0).unwrap();
        assert!(v.is_empty());
    }

    #[test]
    fn checked_add_refuses_overflow_and_changes_nothing() {
        let mut v = vv(&[(1, u64::MAX - 1)]);
        assert!(v.checked_add(ActorId::new(1), 2).is_none());
        assert_eq!(v.get(ActorId::new(1)), u64::MAX - 1);
    }
}
