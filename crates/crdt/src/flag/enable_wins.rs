//! The enable-wins flag.

use crate::Crdt;
use crate::clock::{ActorId, Dot, DotSet, VersionVector};

/// A boolean where an enable concurrent with a disable wins: an [`OrSet`](crate::OrSet) of one
/// element, the flag itself.
///
/// # Examples
///
/// ```
/// use haze_crdt::{ActorId, Crdt, EnableWinsFlag};
///
/// let (phone, laptop) = (ActorId::new(1), ActorId::new(2));
/// let mut done = EnableWinsFlag::new();
/// done.enable(phone);
/// let mut on_laptop = done.clone();
/// on_laptop.disable();
/// done.enable(phone); // concurrent with the disable
/// assert!(done.merge(on_laptop).is_enabled());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct EnableWinsFlag {
    /// Every enable seen.
    seen: VersionVector,
    /// The enables that keep the flag on (all in `seen`); `None` when off.
    dots: Option<DotSet>,
}

impl EnableWinsFlag {
    /// Returns a disabled flag.
    pub const fn new() -> Self {
        EnableWinsFlag {
            seen: VersionVector::new(),
            dots: None,
        }
    }

    /// Builds a flag from checked parts (the decoders' entry point).
    pub(crate) fn from_parts(seen: VersionVector, dots: Option<DotSet>) -> Self {
        EnableWinsFlag { seen, dots }
    }

    /// Turns the flag on, on behalf of `actor`; returns the dot of the enable.
    pub fn enable(&mut self, actor: ActorId) -> Dot {
        let dot = self.seen.next_dot(actor);
        self.dots = Some(DotSet::single(dot));
        dot
    }

    /// Turns the flag off (the enables seen here).
    pub fn disable(&mut self) {
        self.dots = None;
    }

    /// Returns whether the flag is on.
    pub fn is_enabled(&self) -> bool {
        self.dots.is_some()
    }

    /// Returns the causal context: every enable seen.
    pub fn seen(&self) -> &VersionVector {
        &self.seen
    }

    /// Returns the enables that keep the flag on.
    pub fn dots(&self) -> Option<&DotSet> {
        self.dots.as_ref()
    }
}

impl Crdt for EnableWinsFlag {
    fn causal_counter(&self, actor: ActorId) -> u64 {
        self.seen.get(actor)
    }

    fn advance_causal_counter(&mut self, actor: ActorId, counter: u64) {
        self.seen.raise(actor, counter);
    }

    fn merge_from(&mut self, other: Self) {
        self.dots = match (self.dots.take(), other.dots) {
            (None, None) => None,
            (Some(mine), None) => mine.unseen_by(&other.seen),
            (None, Some(theirs)) => theirs.unseen_by(&self.seen),
            (Some(mine), Some(theirs)) => DotSet::join(mine, &self.seen, theirs, &other.seen),
        };
        self.seen.merge_from(other.seen);
    }
}
