//! Carrying out a change: [`ControllerState::advance`](crate::ControllerState::advance) moves
//! each partition along the protocol (docs/repartitioning.md) from what nodes reported (the
//! [`Tracker`](crate::Tracker)).
//!
//! * `advance` — one advance: a round over the moves, then the publish and completion steps.
//! * `round` — what a round knows, and one function per move state saying what it waits for.
//! * `replan` — streams whose receiving node or source is down get another one.

mod advance;
mod replan;
mod round;

#[cfg(test)]
mod tests;
