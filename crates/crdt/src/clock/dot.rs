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
    /// The largest counter a dot (and a causal context) may hold: 2^63 − 1. Decoders refuse
    /// larger ones, so that minting the next dot can never overflow; no replica makes 2^63
    /// updates.
    pub const MAX_COUNTER: u64 = i64::MAX as u64;

    /// Returns the dot of `actor`'s `counter`-th update.
    pub const fn new(actor: ActorId, counter: u64) -> Self {
        Dot { actor, counter }
    }
}
