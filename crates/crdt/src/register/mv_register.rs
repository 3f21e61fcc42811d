//! The multi-value register.

use std::cmp::Ordering;

use crate::Crdt;
use crate::clock::{ActorId, Dot, VersionVector};

/// A register that keeps every concurrently written value: a write replaces the values it has
/// seen, and concurrent writes survive side by side until a later write replaces them all.
///
/// Each value carries the dot of its write; the causal context records every write seen
/// (dotted version vectors), so a replaced value never comes back, however old the state that
/// still holds it.
///
/// # Examples
///
/// ```
/// use haze_crdt::{ActorId, Crdt, MvRegister};
///
/// let (phone, laptop) = (ActorId::new(1), ActorId::new(2));
/// let mut on_phone = MvRegister::new();
/// on_phone.set(phone, "blue");
/// let mut on_laptop = MvRegister::new();
/// on_laptop.set(laptop, "green");
///
/// let mut both = on_phone.merge(on_laptop);
/// assert_eq!(both.values().collect::<Vec<_>>(), [&"blue", &"green"]);
/// both.set(phone, "teal"); // resolves the conflict
/// assert_eq!(both.values().collect::<Vec<_>>(), [&"teal"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MvRegister<T> {
    /// Every write seen.
    seen: VersionVector,
    /// The live values, sorted by dot, strictly; every dot is in `seen`.
    values: Vec<(Dot, T)>,
}

impl<T> Default for MvRegister<T> {
    fn default() -> Self {
        MvRegister {
            seen: VersionVector::new(),
            values: Vec::new(),
        }
    }
}

impl<T: Ord> MvRegister<T> {
    /// Returns an empty register.
    pub const fn new() -> Self {
        MvRegister {
            seen: VersionVector::new(),
            values: Vec::new(),
        }
    }

    /// Builds a register from checked parts (the decoders' entry point).
    pub(crate) fn from_parts(seen: VersionVector, values: Vec<(Dot, T)>) -> Self {
        MvRegister { seen, values }
    }

    /// Writes `value` on behalf of `actor`, replacing every value this replica has seen.
    /// Returns the dot of the write.
    pub fn set(&mut self, actor: ActorId, value: T) -> Dot {
        let dot = self.seen.next_dot(actor);
        self.values.clear();
        self.values.push((dot, value));
        dot
    }

    /// Returns the live values in the order of their dots: one after a write, several after
    /// concurrent writes, none before the first write.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &T> {
        self.values.iter().map(|(_, v)| v)
    }

    /// Returns the live values with the dots of their writes.
    pub fn entries(&self) -> &[(Dot, T)] {
        &self.values
    }

    /// Consumes the register, returning its causal context and dotted values.
    pub(crate) fn into_parts(self) -> (VersionVector, Vec<(Dot, T)>) {
        (self.seen, self.values)
    }

    /// Returns the causal context: every write this replica has seen.
    pub fn seen(&self) -> &VersionVector {
        &self.seen
    }

    /// Returns whether no value is live.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl<T: Ord> Crdt for MvRegister<T> {
    fn causal_counter(&self, actor: ActorId) -> u64 {
        self.seen.get(actor)
    }

    fn advance_causal_counter(&mut self, actor: ActorId, counter: u64) {
        self.seen.raise(actor, counter);
    }

    fn merge_from(&mut self, other: Self) {
        let mine = std::mem::take(&mut self.values);
        let mut merged = Vec::with_capacity(mine.len() + other.values.len());
        let mut mine = mine.into_iter().peekable();
        let mut theirs = other.values.into_iter().peekable();
        loop {
            let order = match (mine.peek(), theirs.peek()) {
                (Some(a), Some(b)) => a.0.cmp(&b.0),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => break,
            };
            match order {
                Ordering::Equal => {
                    let (dot, a) = mine.next().expect("peeked");
                    let (_, b) = theirs.next().expect("peeked");
                    // One dot names one write; the max keeps merge a join for dishonest input.
                    merged.push((dot, a.max(b)));
                }
                Ordering::Less => {
                    let (dot, v) = mine.next().expect("peeked");
                    if !other.seen.contains(dot) {
                        merged.push((dot, v));
                    }
                }
                Ordering::Greater => {
                    let (dot, v) = theirs.next().expect("peeked");
                    if !self.seen.contains(dot) {
                        merged.push((dot, v));
                    }
                }
            }
        }
        self.values = merged;
        self.seen.merge_from(other.seen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_value_does_not_come_back_from_an_old_state() {
        let mut a = MvRegister::new();
        a.set(ActorId::new(1), 1);
        let old = a.clone();
        a.set(ActorId::new(1), 2);
        let merged = a.merge(old);
        assert_eq!(merged.values().collect::<Vec<_>>(), [&2]);
    }
}
