//! The device core's errors.

use haze_crdt::ValueKind;

/// Why an edit, a merge, a save or a sync step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An edit of one type was asked of a key (or a map field) that holds another type.
    /// Nothing changed.
    #[error("the value is a {found}, not a {expected}")]
    WrongType {
        /// The type the edit works on.
        expected: ValueKind,
        /// The type held.
        found: ValueKind,
    },
    /// A state of another type was merged into a key. Nothing changed.
    #[error("type mismatch: the stored value is a {stored}, the given value is a {given}")]
    TypeMismatch {
        /// The type held.
        stored: ValueKind,
        /// The type given.
        given: ValueKind,
    },
    /// The CRDT refused the edit: a counter would overflow, the replica's actor is out of dots
    /// (a merged state claimed so), maps would nest too deep. Nothing changed.
    #[error("{0}")]
    Crdt(#[from] haze_crdt::Error),
    /// The store could not load or save. An edit whose save failed is undone.
    #[error("{0}")]
    Store(String),
    /// An answer that does not fit the message it answers (the wrong kind, a wrong count, an
    /// id never sent).
    #[error("{0}")]
    Protocol(String),
    /// The store refused a key's state (too large, another type there, ...). The key keeps its
    /// local state and is sent again by the next sync.
    #[error("refused: {0}")]
    Refused(String),
}

/// The device core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
