//! A dot: one update, named by its actor and that actor's count.

/// One update: the `counter`-th update made by `actor`. Counters start at 1.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Dot {
    /// Who made the update.
    pub actor: ActorId,
    /// How many updates `actor` had made, this one included.
    pub counter: u64,
}

use super::ActorId;

impl Dot {
    /// Returns the dot of `actor`'s `counter`-th update.
    pub const fn new(actor: ActorId, counter: u64) -> Self {
        Dot { actor, counter }
    }
}
