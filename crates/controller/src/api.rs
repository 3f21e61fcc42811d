//! The controller's HTTP/JSON API: the bodies it takes and gives (docs/cluster.md), and
//! nothing else: the server (`server`) and the summary of the state in a [`Status`]
//! (`status`) are beside it.

pub use haze_ring::{CleanReport, StreamReport};
use haze_ring::{MoveState, NodeId, PartitionId, PartitionTable, Stream, Transition};

use crate::tokens::{Right, Token, TokenId, TokenTable};
use crate::{Change, ClusterId, MemberState, MoveLimits, Outcome};

/// `POST /v1/nodes`: a node announcing itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The address other nodes and clients reach it at.
    pub addr: String,
}

/// The answer to a registration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Registered {
    /// The node's id in the cluster (the same every time it registers with that address).
    pub node: NodeId,
    /// The cluster's identity.
    pub cluster: ClusterId,
    /// Whether the node is on standby (new, or registered and never added): it holds no
    /// partition, so an empty store has nothing to refill (partitions reach it by streams, or
    /// in a new cluster's first table, which holds no data yet).
    #[serde(default)]
    pub standby: bool,
}

/// `POST /v1/cluster/add` and `/v1/cluster/remove`: nodes to give partitions, or to take
/// them from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddRequest {
    /// Ids (`n3` or `3`) or addresses of registered nodes.
    pub nodes: Vec<String>,
}

/// `POST /v1/cluster/plan`: a change to plan (and keep for `commit`).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    /// Standby nodes to give partitions (ids or addresses).
    #[serde(default)]
    pub add: Vec<String>,
    /// Active nodes to take them from.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// One partition's move in a [`Status`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MoveStatus {
    /// The partition.
    pub partition: PartitionId,
    /// Where it stands.
    pub state: MoveState,
    /// Replicas before, primary first.
    pub before: Vec<NodeId>,
    /// Replicas after.
    pub after: Vec<NodeId>,
    /// Each stream with its last report.
    pub streams: Vec<StreamStatus>,
    /// Milliseconds in this state (since the controller started, at most).
    pub in_state_ms: u64,
    /// In this state for longer than the controller's `--stuck-after`.
    pub stuck: bool,
    /// How many times its streams were planned.
    pub attempts: u32,
    /// Why it was re-planned or waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One stream in a [`MoveStatus`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamStatus {
    /// Sender and receiver.
    #[serde(flatten)]
    pub stream: Stream,
    /// Its sender's last report, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<StreamReport>,
}

/// The change under way, in a [`Status`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChangeStatus {
    /// Its number.
    pub change: u64,
    /// What was asked.
    pub description: String,
    /// How many partitions are in each state, in protocol order (pending … done).
    pub counts: [usize; 6],
    /// Every partition's move.
    pub moves: Vec<MoveStatus>,
}

/// `GET /v1/cluster`: everything the controller knows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Status {
    /// The cluster's identity.
    pub cluster: ClusterId,
    /// `Q`.
    pub partitions: u32,
    /// The replication factor asked for.
    pub replicas: usize,
    /// The table's epoch, once there is a table.
    pub epoch: Option<u64>,
    /// The registered nodes, by id.
    pub members: Vec<MemberStatus>,
    /// The partition table, once nodes were added.
    pub table: Option<PartitionTable>,
    /// The change under way: what nodes act on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition: Option<Transition>,
    /// Its progress, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<ChangeStatus>,
    /// Changes committed after it, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queued: Vec<String>,
    /// Queued changes that could not start when their turn came, and why (the last few).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<String>,
    /// How the last changes ended (the last few), oldest first: done as asked, or not and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<Outcome>,
    /// In answers to `add`, `remove` and `commit` only: the change that request committed
    /// (which nodes it adds and removes), so that the caller can tell how it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed: Option<Change>,
    /// The controller's move limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<MoveLimits>,
    /// In answers to `/v1/seen` only: changes with every change of the state (another
    /// controller process starts elsewhere), what a node sends back as [`SeenRequest::known`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// In answers to `/v1/seen` only (never in `GET /v1/cluster`): every client token's hash,
    /// scope and expiry, which nodes check presented tokens against (`Some` and empty: there
    /// is none; `None`: a controller that does not send them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenTable>,
}

/// One member in a [`Status`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberStatus {
    /// Its id.
    pub id: NodeId,
    /// Its address.
    pub addr: String,
    /// Standby or active.
    pub state: MemberState,
    /// The partitions it holds a replica of.
    pub partitions: usize,
    /// The partitions it is the primary of.
    pub primaries: usize,
    /// When the node last asked for the table, and which epoch it had then (`None`: not since
    /// this controller started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<Seen>,
}

/// A node's last report (`POST /v1/seen`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Seen {
    /// The epoch of the table the node had installed (`None`: no table yet).
    pub epoch: Option<u64>,
    /// Milliseconds since the report.
    pub ago_ms: u64,
}

/// A node's report of the table it has, sent when it asks for the current one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeenRequest {
    /// The reporting node.
    pub node: NodeId,
    /// The epoch of the table it has installed, if any.
    pub epoch: Option<u64>,
    /// Its streams' progress (the partitions it sends).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<StreamReport>,
    /// The partitions it deleted after they moved away.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cleaned: Vec<CleanReport>,
    /// The [`Status::version`] it has: if the controller's is still that one, it answers only
    /// once the state changes or `wait_ms` passed (a long poll: nodes hear of each step of a
    /// change at once instead of at their next poll).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known: Option<u64>,
    /// How long to wait for a change, in milliseconds (at most [`MAX_WAIT_MS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// The longest a `/v1/seen` request waits for the state to change.
pub const MAX_WAIT_MS: u64 = 5_000;

/// `POST /v1/tokens`: a token to create. The expiry is given one way or neither (never).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// Key prefixes it may touch (byte prefixes; none: every key).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
    /// Its rights: `read`, `write`, `admin` (at least one).
    pub rights: Vec<Right>,
    /// It expires this many milliseconds after it is created (by the controller's clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<u64>,
    /// It expires at this time, in milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    /// What it is for, for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// A token as people see it (`GET /v1/tokens`): never its text or hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenInfo {
    /// Its id (`t3`).
    pub id: TokenId,
    /// The key prefixes it may touch (none: every key).
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Its rights.
    pub rights: Vec<Right>,
    /// When it expires, in milliseconds since the epoch (absent: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    /// Whether it has expired, by the controller's clock.
    #[serde(default)]
    pub expired: bool,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// When it was created, in milliseconds since the epoch.
    pub created_ms: u64,
}

impl TokenInfo {
    /// What people see of `token` at `now_ms`.
    pub fn of(token: &Token, now_ms: u64) -> TokenInfo {
        TokenInfo {
            id: token.id,
            prefixes: token.prefixes.clone(),
            rights: token.rights.iter().copied().collect(),
            expires_at_ms: token.expires_at_ms,
            expired: token.expired(now_ms),
            description: token.description.clone(),
            created_ms: token.created_ms,
        }
    }
}

/// The answer to `POST /v1/tokens`: the token's text, given this once, and what it grants.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CreatedToken {
    /// The token (`haze_` and 64 hex digits): the controller keeps only its hash.
    pub token: String,
    /// What it grants.
    #[serde(flatten)]
    pub info: TokenInfo,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("token", &"..")
            .field("info", &self.info)
            .finish()
    }
}

/// `GET /v1/tokens`: every token, by id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenList {
    /// The tokens.
    pub tokens: Vec<TokenInfo>,
}

/// An error, as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiError {
    /// A stable code: `unknown_node`, `nothing_to_add`, `not_active`, `too_few_nodes`,
    /// `nothing_proposed`, `no_room`, `too_many_members`, `bad_request`, `state`, `not_found`,
    /// `internal`, `unauthorized`, `forbidden`, `unknown_token`, `too_many_tokens`
    /// (docs/cluster.md).
    pub error: String,
    /// What happened, for people.
    pub message: String,
}
