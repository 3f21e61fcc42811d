//! Flags.

mod enable_wins;

pub use enable_wins::EnableWinsFlag;
