//! The grow-only counter.

use crate::clock::{ActorId, VersionVector};
use crate::{Crdt, Error, Result};

/// A counter that only grows: each actor counts its own increments, and the value is the sum.
///
/// Merge takes each actor's larger count, so increments are never double counted however often
/// states are exchanged.
///
/// # Examples
///
/// ```
/// use haze_crdt::{ActorId, Crdt, GCounter};
///
/// let (phone, laptop) = (ActorId::new(1), ActorId::new(2));
/// let mut on_phone = GCounter::new();
/// on_phone.increment(phone, 3)?;
/// let mut on_laptop = GCounter::new();
/// on_laptop.increment(laptop, 4)?;
///
/// on_phone.merge_from(on_laptop.clone());
/// on_phone.merge_from(on_laptop); // a duplicate delivery changes nothing
/// assert_eq!(on_phone.value(), 7);
/// # Ok::<(), haze_crdt::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct GCounter {
    counts: VersionVector,
}

impl GCounter {
    /// Returns a counter at zero.
    pub const fn new() -> Self {
        GCounter {
            counts: VersionVector::new(),
        }
    }

    /// Builds a counter from per-actor counts.
    pub(crate) fn from_counts(counts: VersionVector) -> Self {
        GCounter { counts }
    }

    /// Adds `by` to the count of `actor`.
    ///
    /// # Errors
    ///
    /// [`Error::CounterOverflow`] if the count of `actor` would pass `u64::MAX`; the counter is
    /// unchanged.
    pub fn increment(&mut self, actor: ActorId, by: u64) -> Result<()> {
        self.counts
            .checked_add(actor, by)
            .ok_or(Error::CounterOverflow)
    }

    /// Returns the sum of every actor's count. It is a `u128` so that the sum of many actors
    /// near `u64::MAX` cannot overflow.
    pub fn value(&self) -> u128 {
        self.counts.sum()
    }

    /// Returns the count of one actor.
    pub fn count_of(&self, actor: ActorId) -> u64 {
        self.counts.get(actor)
    }

    /// Returns the per-actor counts.
    pub fn counts(&self) -> &VersionVector {
        &self.counts
    }
}

impl Crdt for GCounter {
    fn merge_from(&mut self, other: Self) {
        self.counts.merge_from(other.counts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_does_not_double_count() {
        let mut a = GCounter::new();
        a.increment(ActorId::new(1), 2).unwrap();
        let b = a.clone();
        a.increment(ActorId::new(1), 1).unwrap();
        assert_eq!(a.merge(b).value(), 3);
    }

    #[test]
    fn overflow_is_refused() {
        let mut a = GCounter::new();
        a.increment(ActorId::new(1), u64::MAX).unwrap();
        assert_eq!(a.increment(ActorId::new(1), 1), Err(Error::CounterOverflow));
        a.increment(ActorId::new(2), u64::MAX).unwrap();
        assert_eq!(a.value(), 2 * u128::from(u64::MAX));
    }
}
