//! The controller's errors: [`Error`] for its operations, and what went wrong with its state
//! file ([`StateError`], [`Inconsistency`]). The client's are beside it (`client`).

use haze_ring::NodeId;

use crate::tokens::{AuthError, TokenError, TokenId};

/// Why a controller operation failed.
#[derive(Debug, thiserror::Error)]
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
    /// A node's certificate does not match the node it reports as, or the address it
    /// registers belongs to another node's certificate.
    #[error("{0}")]
    IdentityMismatch(String),
    /// The data folder is in use by another controller.
    #[error("{0} is in use by another controller")]
    Locked(String),
    /// Nothing to do: the nodes are already active, or the change is empty.
    #[error("nothing to change: name standby nodes to add or active nodes to remove")]
    NothingToAdd,
    /// A request that needs a token came without a valid one (the controller requires
    /// tokens).
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    /// A valid token without the right the request needs.
    #[error("token {token} lacks the {needs} right this request needs")]
    Forbidden {
        /// The token's id.
        token: TokenId,
        /// The right it lacks.
        needs: crate::tokens::Right,
    },
    /// No token has this id (never created, or revoked already).
    #[error("no token is {0:?}")]
    UnknownToken(String),
    /// A token cannot be created as asked.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The ring refused the change (a bad partition count, no nodes).
    #[error(transparent)]
    Ring(#[from] haze_ring::Error),
    /// The state file could not be read or written, or is damaged.
    #[error("controller state {path}: {source}")]
    State {
        /// The file (or the folder, or its lock file).
        path: String,
        /// What went wrong.
        #[source]
        source: StateError,
    },
}

/// What went wrong with the state file (in [`Error::State`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Reading, writing, renaming or locking failed (nothing changed).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The file is not the state's JSON (or the state could not be written as JSON).
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The file's layout is another version than the one this build reads.
    #[error("format {found} is not {expected}, the one this version of Haze reads")]
    Format {
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        expected: u32,
    },
    /// The state read contradicts itself.
    #[error(transparent)]
    Inconsistent(#[from] Inconsistency),
    /// The new file is in place but its folder could not be synced: the change holds unless
    /// the machine crashes.
    #[error("the change is written but syncing its folder failed ({source}): a crash may lose it")]
    NotSynced {
        /// Why the sync failed.
        #[source]
        source: std::io::Error,
    },
}

/// How a state read from a file contradicts itself ([`StateError::Inconsistent`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Inconsistency {
    /// `Q` or `N` is one no table can have.
    #[error(transparent)]
    Parameters(#[from] haze_ring::Error),
    /// The table has another partition count than the cluster.
    #[error("the table has {table} partitions, the cluster {cluster}")]
    TablePartitions {
        /// The table's.
        table: u32,
        /// The cluster's.
        cluster: u32,
    },
    /// The table places a node that is no member, or a standby one.
    #[error("the table places {0}, not a member")]
    PlacesNonMember(NodeId),
    /// No change runs, yet an active member holds no partition.
    #[error("{0} is active but owns no partition")]
    ActiveWithoutPartition(NodeId),
    /// The change under way leads to a table of another partition count.
    #[error("the change's table has another partition count")]
    TargetPartitions,
    /// A member is active but there is no table.
    #[error("{0} is active but there is no table")]
    ActiveWithoutTable(NodeId),
    /// A change is under way but there is no table.
    #[error("a change is under way but there is no table")]
    ChangeWithoutTable,
    /// A token's id is not below the id the next token gets.
    #[error("token {id} is not below the next token id {next}")]
    TokenIdNotBelowNext {
        /// The highest token id.
        id: TokenId,
        /// The next id.
        next: u64,
    },
    /// A member's id is not below the id the next registered node gets.
    #[error("{id} is not below the next id {next}")]
    IdNotBelowNext {
        /// The highest member id.
        id: NodeId,
        /// The next id.
        next: u64,
    },
}

/// The controller's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
