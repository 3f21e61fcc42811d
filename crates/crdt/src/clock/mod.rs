//! Causality: actor ids, dots, version vectors, dot sets and the hybrid logical clock.

mod actor;
mod dot;
mod dot_set;
mod hlc;
mod version_vector;

pub use actor::{ActorId, ParseActorIdError};
pub use dot::Dot;
pub use dot_set::DotSet;
pub use hlc::{Hlc, HlcTimestamp, ManualClock, PhysicalClock};
pub use version_vector::VersionVector;
