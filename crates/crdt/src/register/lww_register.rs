//! The last-writer-wins register.

use crate::Crdt;
use crate::clock::{ActorId, Hlc, HlcTimestamp, PhysicalClock};

/// When and by whom a last-writer-wins value was written. Stamps order by time, then actor.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Stamp {
    /// The hybrid logical clock time of the write.
    pub time: HlcTimestamp,
    /// The writer, which breaks ties between writes at the same time.
    pub actor: ActorId,
}

/// A register holding one value: of concurrent writes, the one with the greatest [`Stamp`] wins.
///
/// Stamps come from a hybrid logical clock that first observes the stamp already in the
/// register, so a write made after seeing another (a *causally later* write) always wins, even
/// when its device's wall clock runs behind. Only truly concurrent writes are decided by time,
/// then by actor; two different values under one stamp (which honest actors never produce) are
/// decided by the greater value, so merge stays a deterministic join for any input.
///
/// # Examples
///
/// ```
/// use haze_crdt::{ActorId, Crdt, Hlc, LwwRegister, ManualClock};
///
/// let (phone, laptop) = (ActorId::new(1), ActorId::new(2));
/// let (phone_clock, laptop_clock) = (ManualClock::new(5_000), ManualClock::new(1_000));
/// let (mut phone_hlc, mut laptop_hlc) = (Hlc::new(), Hlc::new());
///
/// let mut title = LwwRegister::new();
/// title.set(phone, "Groceries", &mut phone_hlc, &phone_clock);
/// // The laptop's clock is four seconds behind, but it writes after seeing the phone's value:
/// let mut on_laptop = title.clone();
/// on_laptop.set(laptop, "Groceries (Sat)", &mut laptop_hlc, &laptop_clock);
///
/// assert_eq!(title.merge(on_laptop).get(), Some(&"Groceries (Sat)"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LwwRegister<T> {
    entry: Option<(Stamp, T)>,
}

impl<T> Default for LwwRegister<T> {
    fn default() -> Self {
        LwwRegister { entry: None }
    }
}

impl<T: Ord> LwwRegister<T> {
    /// Returns an empty register.
    pub const fn new() -> Self {
        LwwRegister { entry: None }
    }

    /// Returns a register holding `value`, written at `stamp`.
    pub fn with_stamp(stamp: Stamp, value: T) -> Self {
        LwwRegister {
            entry: Some((stamp, value)),
        }
    }

    /// Writes `value` on behalf of `actor`, stamped by `hlc` after it observed the current
    /// stamp, so the new value wins over everything this register has seen. Returns the stamp.
    pub fn set(
        &mut self,
        actor: ActorId,
        value: T,
        hlc: &mut Hlc,
        clock: &(impl PhysicalClock + ?Sized),
    ) -> Stamp {
        if let Some((stamp, _)) = &self.entry {
            hlc.observe(stamp.time);
        }
        let stamp = Stamp {
            time: hlc.tick(clock),
            actor,
        };
        self.merge_from(LwwRegister::with_stamp(stamp, value));
        stamp
    }

    /// Returns the current value, or `None` if nothing was ever written.
    pub fn get(&self) -> Option<&T> {
        self.entry.as_ref().map(|(_, v)| v)
    }

    /// Returns the stamp of the current value.
    pub fn stamp(&self) -> Option<Stamp> {
        self.entry.as_ref().map(|(s, _)| *s)
    }

    /// Returns the stamp and value, if any.
    pub fn entry(&self) -> Option<(&Stamp, &T)> {
        self.entry.as_ref().map(|(s, v)| (s, v))
    }

    /// Consumes the register, returning its stamp and value.
    pub fn into_entry(self) -> Option<(Stamp, T)> {
        self.entry
    }
}

impl<T: Ord> Crdt for LwwRegister<T> {
    fn merge_from(&mut self, other: Self) {
        let Some(theirs) = other.entry else { return };
        match &self.entry {
            // Compare (stamp, value): an honest stamp names one value, and the value breaks the
            // tie for dishonest input so that merge stays commutative.
            Some(mine) if (&mine.0, &mine.1) >= (&theirs.0, &theirs.1) => {}
            _ => self.entry = Some(theirs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    #[test]
    fn concurrent_writes_are_decided_by_time_then_actor() {
        let clock = ManualClock::new(100);
        let mut a = LwwRegister::new();
        a.set(ActorId::new(1), "a", &mut Hlc::new(), &clock);
        let mut b = LwwRegister::new();
        b.set(ActorId::new(2), "b", &mut Hlc::new(), &clock);
        assert_eq!(a.clone().merge(b.clone()).get(), Some(&"b"));
        assert_eq!(b.merge(a).get(), Some(&"b"));
    }

    #[test]
    fn a_write_after_observing_wins_despite_a_slow_clock() {
        let mut reg = LwwRegister::new();
        reg.set(
            ActorId::new(9),
            1,
            &mut Hlc::new(),
            &ManualClock::new(1_000_000),
        );
        let stamp = reg.set(ActorId::new(1), 2, &mut Hlc::new(), &ManualClock::new(0));
        assert_eq!(reg.get(), Some(&2));
        assert_eq!(reg.stamp(), Some(stamp));
    }

    #[test]
    fn equal_stamps_with_different_values_resolve_to_the_greater_value() {
        let stamp = Stamp {
            time: HlcTimestamp::new(1, 0),
            actor: ActorId::new(1),
        };
        let a = LwwRegister::with_stamp(stamp, 1);
        let b = LwwRegister::with_stamp(stamp, 2);
        assert_eq!(a.clone().merge(b.clone()), b.clone().merge(a));
    }
}
