//! The controller's errors.

/// Why a controller operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No registered node has this id or address.
    #[error("no registered node is {0:?}")]
    UnknownNode(String),
    /// The change would move data between nodes, which needs live repartitioning.
    #[error(
        "adding {0} would move {1} partition replicas between nodes; moving data live is not \
         supported yet, so nodes can only be added to a cluster that has no partitions"
    )]
    WouldMoveData(String, usize),
    /// More nodes than the cluster has replica slots (partitions × replicas).
    #[error(
        "{0} would hold no partition: the cluster has fewer replica slots (partitions × \
         replicas) than nodes"
    )]
    NoRoom(String),
    /// Too many registered nodes.
    #[error("the cluster has {0} registered nodes, the most it takes")]
    TooManyMembers(usize),
    /// A node's address is not `host:port`.
    #[error("{0:?} is not an address (host:port, printable ASCII, at most 256 bytes)")]
    BadAddress(String),
    /// The data folder is in use by another controller.
    #[error("{0} is in use by another controller")]
    Locked(String),
    /// Nothing to do: the nodes are already active.
    #[error("no standby node to add")]
    NothingToAdd,
    /// The ring refused the change (a bad partition count, no nodes).
    #[error(transparent)]
    Ring(#[from] haze_ring::Error),
    /// The state file could not be read or written, or is damaged.
    #[error("controller state {path}: {reason}")]
    State {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// The controller's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
