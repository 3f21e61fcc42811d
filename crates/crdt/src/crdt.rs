//! The one trait every replicated type implements.

use crate::ActorId;

/// A value that replicas can merge without coordination: a join-semilattice.
///
/// For all states `a`, `b` and `c` of a type (writing `a ⊔ b` for `a.merge(b)`):
///
/// * **idempotent**: `a ⊔ a = a`;
/// * **commutative**: `a ⊔ b = b ⊔ a`;
/// * **associative**: `(a ⊔ b) ⊔ c = a ⊔ (b ⊔ c)`;
/// * **inflationary**: every operation a type offers only moves its state up the lattice, so
///   merging an older copy of a state back into it changes nothing.
///
/// Together these mean that replicas which have seen the same updates hold equal states,
/// whatever the order, grouping or repetition of the merges that brought them there. Retries,
/// duplicated messages and replays are therefore always safe.
///
/// The law checker in `tests/laws` proves all of them for every implementation in this crate,
/// over states reached by random operations on several replicas.
///
/// # Examples
///
/// ```
/// use haze_crdt::{ActorId, Crdt, GCounter};
///
/// let (phone, laptop) = (ActorId::new(1), ActorId::new(2));
/// let mut a = GCounter::new();
/// a.increment(phone, 2).unwrap();
/// let mut b = GCounter::new();
/// b.increment(laptop, 3).unwrap();
///
/// let merged = a.clone().merge(b.clone());
/// assert_eq!(merged, b.merge(a)); // commutative
/// assert_eq!(merged.value(), 5);
/// ```
pub trait Crdt: Sized {
    /// Merges `other` into `self`, leaving `self` at the least upper bound of both states.
    fn merge_from(&mut self, other: Self);

    /// Returns the least upper bound of `self` and `other`.
    #[must_use]
    fn merge(mut self, other: Self) -> Self {
        self.merge_from(other);
        self
    }

    /// Returns how many updates of `actor` this state's causal context records (0 for types
    /// without one).
    ///
    /// Containers ([`OrMap`](crate::OrMap)) use this and
    /// [`advance_causal_counter`](Crdt::advance_causal_counter) so that an actor draws the dots of
    /// a container and of everything nested in it from one sequence: a nested value that was
    /// removed and created afresh then never reuses a dot of its earlier life.
    fn causal_counter(&self, actor: ActorId) -> u64 {
        let _ = actor;
        0
    }

    /// Records that `actor` has made at least `counter` updates, so that its next dot here is
    /// above `counter`. A no-op for types without a causal context.
    ///
    /// This claims that `actor`'s dots up to `counter` have been seen: call it only on behalf of
    /// `actor`'s own replica, for dots it drew itself (as containers do), never for another actor.
    fn advance_causal_counter(&mut self, actor: ActorId, counter: u64) {
        let _ = (actor, counter);
    }
}
