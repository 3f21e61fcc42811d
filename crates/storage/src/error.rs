//! The store's errors.

use haze_crdt::ValueKind;

/// The store itself failed: it can no longer be trusted to make writes durable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The disk or the engine failed (an fsync, a write, a read).
    #[error("storage I/O failed: {0}")]
    Io(String),
    /// A stored value does not decode: the data on disk is damaged.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// An earlier failure stopped the store: it acknowledges nothing more until restarted.
    #[error("the store stopped after an earlier failure: {0}")]
    Stopped(String),
    /// The data directory was written by an incompatible version.
    #[error("unsupported storage format {found} (this build reads {expected})")]
    UnsupportedFormat {
        /// The version found on disk.
        found: u64,
        /// The version this build reads.
        expected: u64,
    },
}

/// One write was refused; nothing of it was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The key is longer than the configured limit.
    #[error("key of {size} bytes exceeds the limit of {limit} bytes")]
    KeyTooLarge {
        /// The key's length.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The merged value would be larger than the configured limit.
    #[error("value of {size} bytes exceeds the limit of {limit} bytes")]
    ValueTooLarge {
        /// The encoded size the value would have.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The stored value has another type than the one given.
    #[error("type mismatch: the stored value is a {stored}, the given value is a {given}")]
    TypeMismatch {
        /// The stored type.
        stored: ValueKind,
        /// The given type.
        given: ValueKind,
    },
    /// The operation was refused by the value (a counter overflow, a nesting limit).
    #[error("{0}")]
    Refused(haze_crdt::Error),
    /// The store failed; the write may or may not be durable.
    #[error(transparent)]
    Store(#[from] Error),
    /// The write could not be queued: the queue is full (the node is overloaded), or the writer
    /// has stopped. Nothing was written.
    #[error("the write was not queued: {0}")]
    NotQueued(crate::SubmitError),
}

impl From<haze_crdt::Error> for WriteError {
    fn from(e: haze_crdt::Error) -> Self {
        match e {
            haze_crdt::Error::TypeMismatch { stored, given } => {
                WriteError::TypeMismatch { stored, given }
            }
            other => WriteError::Refused(other),
        }
    }
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
