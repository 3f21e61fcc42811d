//! The controller's errors.

/// Why a controller operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No registered node has this id or address.
    #[error("no registered node is {0:?}")]
    UnknownNode(String),
    /// A node to remove holds no partitions (standby, or already leaving).
    #[error("{0} is not an active node (standby, or already being removed)")]
    NotActive(String),
    /// Fewer nodes than replicas would be left.
    #[error(
        "the change would leave {left} nodes for {replicas} replicas of each partition; add \
         nodes first"
    )]
    TooFewNodes {
        /// Nodes left.
        left: usize,
        /// Replicas per partition.
        replicas: usize,
    },
    /// `commit` without a plan.
    #[error("nothing to commit: plan a change first (haze cluster plan add|remove NODE...)")]
    NothingProposed,
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
    /// Nothing to do: the nodes are already active, or the change is empty.
    #[error("nothing to change: name standby nodes to add or active nodes to remove")]
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
