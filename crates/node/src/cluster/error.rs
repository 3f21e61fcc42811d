//! What the cluster layer's background work (streams, cleanups, anti-entropy, hand-backs) can
//! fail with. Each is logged and the work tried again; none reaches a client.

use haze_ring::NodeId;

use super::peers::PeerError;
use crate::error::RequestError;

/// Why a stream, a cleanup, an anti-entropy exchange or a hand-back stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// Another node could not be asked, or did not answer.
    #[error("{peer}: {source}")]
    Peer {
        /// The node asked.
        peer: NodeId,
        /// What went wrong.
        #[source]
        source: PeerError,
    },
    /// Another node answered with an error.
    #[error("{peer} answered: {error}")]
    Answered {
        /// The node asked.
        peer: NodeId,
        /// Its answer.
        error: haze_protocol::WireError,
    },
    /// Another node answered with something else than what was asked for.
    #[error("{peer} answered {answer} when asked for {asked}")]
    Unexpected {
        /// The node asked.
        peer: NodeId,
        /// What was asked for.
        asked: &'static str,
        /// The start of its answer.
        answer: String,
    },
    /// Another node refused keys it was sent (a type conflict, a value over its limit, a
    /// partition it does not take).
    #[error("{peer} refused {count} keys (first: {first})")]
    Refused {
        /// The node.
        peer: NodeId,
        /// How many it refused.
        count: usize,
        /// The first refusal.
        first: String,
    },
    /// This node's store failed.
    #[error("this node's store: {0}")]
    Store(#[from] haze_storage::Error),
    /// This node's store refused or could not serve a request.
    #[error("this node: {0}")]
    Local(#[from] RequestError),
    /// The view has no address for a node.
    #[error("no address for {0}")]
    NoAddress(NodeId),
    /// The change under way no longer asks for this work (it moved on, or ended).
    #[error("the change no longer asks for this")]
    NotAsked,
    /// The table still lists this node as a replica of the partition to delete.
    #[error("the table of epoch {0} still lists this node as a replica")]
    StillReplica(u64),
    /// Writes forwarded to a new replica during a stream were not all answered in time.
    #[error("writes forwarded to {0} were not answered in time")]
    ForwardsUnanswered(NodeId),
    /// A write forwarded to a new replica during a stream's pass failed: the pass is redone.
    #[error("a write forwarded during the pass failed: streaming again")]
    ForwardFailed,
    /// A peer answered with fewer or more bucket digests than there are buckets.
    #[error("expected {expected} bucket digests, got {got}")]
    BucketCount {
        /// How many there are.
        expected: usize,
        /// How many came.
        got: usize,
    },
    /// A task of this work ended abnormally.
    #[error("a task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// Too many of the nodes tried failed (each error listed).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<ClusterError>),
}
