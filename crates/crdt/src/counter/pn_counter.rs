//! The positive-negative counter.

use super::GCounter;
use crate::clock::ActorId;
use crate::{Crdt, Result};

/// A counter that goes up and down: two grow-only counters, one of increments and one of
/// decrements; the value is their difference.
///
/// # Examples
///
/// ```
/// use haze_crdt::{ActorId, Crdt, PnCounter};
///
/// let (phone, laptop) = (ActorId::new(1), ActorId::new(2));
/// let mut stock = PnCounter::new();
/// stock.increment(phone, 10)?;
/// let mut elsewhere = stock.clone();
/// stock.decrement(phone, 3)?;
/// elsewhere.decrement(laptop, 2)?;
/// assert_eq!(stock.merge(elsewhere).value(), 5);
/// # Ok::<(), haze_crdt::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PnCounter {
    increments: GCounter,
    decrements: GCounter,
}

impl PnCounter {
    /// Returns a counter at zero.
    pub const fn new() -> Self {
        PnCounter {
            increments: GCounter::new(),
            decrements: GCounter::new(),
        }
    }

    /// Builds a counter from its two halves.
    pub(crate) fn from_parts(increments: GCounter, decrements: GCounter) -> Self {
        PnCounter {
            increments,
            decrements,
        }
    }

    /// Adds `by` to the counter on behalf of `actor`.
    ///
    /// # Errors
    ///
    /// [`Error::CounterOverflow`](crate::Error::CounterOverflow) if `actor`'s increments would
    /// pass `u64::MAX`; the counter is unchanged.
    pub fn increment(&mut self, actor: ActorId, by: u64) -> Result<()> {
        self.increments.increment(actor, by)
    }

    /// Subtracts `by` from the counter on behalf of `actor`.
    ///
    /// # Errors
    ///
    /// [`Error::CounterOverflow`](crate::Error::CounterOverflow) if `actor`'s decrements would
    /// pass `u64::MAX`; the counter is unchanged.
    pub fn decrement(&mut self, actor: ActorId, by: u64) -> Result<()> {
        self.decrements.increment(actor, by)
    }

    /// Adds a signed amount: positive increments, negative decrements.
    ///
    /// # Errors
    ///
    /// As [`increment`](Self::increment) and [`decrement`](Self::decrement).
    pub fn add(&mut self, actor: ActorId, delta: i64) -> Result<()> {
        if delta >= 0 {
            self.increment(actor, delta.unsigned_abs())
        } else {
            self.decrement(actor, delta.unsigned_abs())
        }
    }

    /// Returns increments minus decrements. It is an `i128` so that it cannot overflow.
    pub fn value(&self) -> i128 {
        // Each sum is below 2^64 * 2^64 = 2^128 only in theory; in practice the number of actors
        // is far below 2^63, so both sums fit in i128 with room to spare.
        self.increments.value() as i128 - self.decrements.value() as i128
    }

    /// Returns the grow-only counter of increments.
    pub fn increments(&self) -> &GCounter {
        &self.increments
    }

    /// Returns the grow-only counter of decrements.
    pub fn decrements(&self) -> &GCounter {
        &self.decrements
    }
}

impl Crdt for PnCounter {
    fn merge_from(&mut self, other: Self) {
        self.increments.merge_from(other.increments);
        self.decrements.merge_from(other.decrements);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_add_goes_both_ways() {
        let mut c = PnCounter::new();
        c.add(ActorId::new(1), 5).unwrap();
        c.add(ActorId::new(1), -7).unwrap();
        c.add(ActorId::new(1), i64::MIN).unwrap();
        assert_eq!(c.value(), 5 - 7 + i128::from(i64::MIN));
    }
}
