//! The ring's errors.

/// Why a partition table cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The partition count is not a power of two between 1 and 4096.
    #[error("the partition count must be a power of two from 1 to 4096, not {0}")]
    BadPartitionCount(u32),
    /// The replication factor is zero.
    #[error("the replication factor must be at least 1")]
    NoReplicas,
    /// A table needs at least one node.
    #[error("a partition table needs at least one node")]
    NoNodes,
    /// A serialised table breaks an invariant (a wrong size, a node twice in one partition).
    #[error("invalid partition table: {0}")]
    Invalid(&'static str),
}

/// The ring's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
