//! Requests and responses: what a client and a node say to each other. How they travel in a
//! frame body is `codec`'s business.

use haze_crdt::{Scalar, Value};

use crate::ErrorCode;

/// Chosen by the client per request; the response carries the same id.
pub type RequestId = u64;

/// The first bytes of a client's hello.
pub const HELLO_MAGIC: [u8; 4] = *b"HAZE";

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// The longest bearer token a hello may carry; a longer one is malformed.
pub const MAX_TOKEN_BYTES: usize = 256;

/// A request from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The handshake: must be the first request of a connection.
    Hello {
        /// The client's protocol version.
        version: u16,
        /// Who is connecting, and so how the node serves the connection's requests.
        role: Role,
        /// The bearer token of a client (what it may read and write), if it has one. At most
        /// [`MAX_TOKEN_BYTES`] bytes.
        token: Option<String>,
    },
    /// Read a key's value.
    Get {
        /// The key.
        key: Vec<u8>,
    },
    /// Merge a full state into a key; the response is the merged state.
    Merge {
        /// The key.
        key: Vec<u8>,
        /// The state to merge.
        value: Value,
    },
    /// Merge several keys in one request; the response holds one result per item, in order.
    MergeBatch {
        /// The keys and states.
        items: Vec<(Vec<u8>, Value)>,
    },
    /// Read the digest of a key's value (a hash of its state), for sync.
    Digest {
        /// The key.
        key: Vec<u8>,
    },
    /// Apply a typed operation with the node's own actor id; the response is the new state.
    Op {
        /// The key.
        key: Vec<u8>,
        /// The operation.
        op: TypedOp,
    },
    /// As [`Op`](Request::Op), answered only with whether it was applied
    /// ([`Response::Acks`] of one item; a refusal is a [`Response::Error`] as for `Op`): for a
    /// caller that does not read the new state back. A set's add then sends no set back, and a
    /// node need not copy the state for the answer. (Nodes before this request answer it as a
    /// malformed request.)
    Apply {
        /// The key.
        key: Vec<u8>,
        /// The operation.
        op: TypedOp,
    },
    /// Check that the connection is alive.
    Ping,
    /// Read the digests of several keys (for sync: only keys whose digests differ need states).
    DigestBatch {
        /// The keys.
        keys: Vec<Vec<u8>>,
    },
    /// Read the digests of a list of keys named by its id ([`key_list_id`](crate::key_list_id)). The keys travel only
    /// when the node does not know the list yet (it answers [`Response::UnknownList`] then), so
    /// a device that syncs the same keys again sends a few bytes per thousand keys.
    DigestList {
        /// The list's id: [`key_list_id`](crate::key_list_id) of its keys.
        list: u64,
        /// The keys, in order, or `None` to name a list sent before.
        keys: Option<Vec<Vec<u8>>>,
    },
    /// Read a key from every replica, merge the answers, and write the merge back to the replicas
    /// whose copy differed (read repair). The response is the merged value.
    GetMerged {
        /// The key.
        key: Vec<u8>,
    },
    /// Merge states into this node's own copies, without routing or replicating: how a
    /// coordinator copies a write to the other replicas, and how anti-entropy and read repair
    /// send what a replica misses. Only on [`Role::Peer`] and [`Role::Local`] connections. The
    /// response is [`Response::Acks`].
    Copy {
        /// The keys and states.
        items: Vec<(Vec<u8>, Value)>,
    },
    /// As [`Copy`](Request::Copy), for work no client waits for: a move's stream, a cleanup's
    /// last pass, a leftover copy handed back. The receiver commits these after the
    /// writes clients wait for, a few hundred per commit, so a client's write never queues
    /// behind a whole stream. The response is [`Response::Acks`].
    Backfill {
        /// The keys and states.
        items: Vec<(Vec<u8>, Value)>,
    },
    /// Read this node's digest of every slice of the ring (`haze_storage::DIGEST_BUCKETS` of
    /// them): for anti-entropy. The response is [`Response::Buckets`].
    Buckets,
    /// Read the keys of one digest bucket held by this node and their digests, in ring order,
    /// a page at a time: for anti-entropy. The response is [`Response::KeyDigests`].
    BucketKeys {
        /// The bucket.
        bucket: u32,
        /// Start after this key (the last key of the previous page), or at the bucket's start.
        after: Option<Vec<u8>>,
    },
    /// Read the cluster's routing table (for a client that sends each key's requests straight
    /// to its primary). The response is [`Response::Table`].
    Table,
    /// Notify node `node` of this node's commits to `keys` and to keys under `prefixes` (an
    /// empty prefix: every key), with [`Notify`](Request::Notify), for `lease_ms`: what the
    /// devices subscribed on `node` watch. A later `Watch` from the same node replaces it and
    /// renews the lease. Only on [`Role::Peer`] connections. Answered with an empty
    /// [`Response::Acks`].
    Watch {
        /// The watching node's id.
        node: u64,
        /// How long the watch lasts unless renewed, in milliseconds.
        lease_ms: u32,
        /// The keys.
        keys: Vec<Vec<u8>>,
        /// The key prefixes.
        prefixes: Vec<Vec<u8>>,
    },
    /// Commits to keys the receiver watches (see [`Watch`](Request::Watch)): each key's state
    /// after the commit, for the receiver's subscribed devices (it stores nothing). Only on
    /// [`Role::Peer`] connections. Answered with an empty [`Response::Acks`].
    Notify {
        /// The keys and their states.
        items: Vec<(Vec<u8>, Value)>,
        /// Whether the sender dropped notices it could not send in time: the receiver's devices
        /// may have missed updates and must resync.
        missed: bool,
    },
}

impl Request {
    /// Returns the key of a request about one key (get, digest, merged get, merge, operation):
    /// the requests a router sends to the key's replicas.
    pub fn key(&self) -> Option<&[u8]> {
        match self {
            Request::Get { key }
            | Request::Digest { key }
            | Request::GetMerged { key }
            | Request::Merge { key, .. }
            | Request::Op { key, .. }
            | Request::Apply { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// Who opens a connection, named in its hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// An application or the CLI: requests are routed to the replicas that own their keys.
    #[default]
    Client,
    /// A diagnostic client: every request is served from the contacted node's own copy, never
    /// routed (`haze get --local`).
    Local,
    /// Another node of the cluster with this id: reads and copies are served from this node's
    /// own copy; writes are coordinated here (this node applies them and copies them to the
    /// other replicas). A node of another cluster is refused with `wrong_cluster`.
    Peer {
        /// The cluster's id.
        cluster: u64,
    },
}

/// An operation the node applies on the client's behalf, with the node's actor id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypedOp {
    /// Add to a PN-counter (negative subtracts).
    CounterAdd(i64),
    /// Add members to an OR-set.
    SetAdd(Vec<Scalar>),
    /// Remove members from an OR-set (those the node has seen).
    SetRemove(Vec<Scalar>),
    /// Write a last-writer-wins register.
    RegisterSet(Scalar),
    /// Any typed edit of any CRDT type (maps with nested fields, flags, multi-value registers,
    /// max and min registers, grow-only counters, and the four above): the operations table
    /// every front end maps onto (`haze_device::Edit`).
    Edit(haze_device::Edit),
}

/// An error that crossed the wire: a stable code and a message for humans.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct WireError {
    /// What went wrong.
    pub code: ErrorCode,
    /// Details, for humans.
    pub message: String,
}

impl WireError {
    /// Returns an error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError {
            code,
            message: message.into(),
        }
    }
}

/// A response from a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The handshake's answer: the version the node will speak.
    Hello {
        /// The node's protocol version.
        version: u16,
    },
    /// A key's value (absent: `None`), or the merged state after a write.
    Value(Option<Value>),
    /// A key's value as a store holds it, its encoding ([`Value::encode`]), sent without
    /// decoding it first. Only a node sends it: on the wire it is exactly [`Response::Value`],
    /// which is what the receiver decodes.
    Stored(Option<Vec<u8>>),
    /// One result per item of a batch.
    Batch(Vec<Result<Value, WireError>>),
    /// A key's digest (absent: `None`).
    Digest(Option<u64>),
    /// The answer to a ping.
    Pong,
    /// One digest per key of a digest batch or list, in order (absent: `None`).
    Digests(Vec<Option<u64>>),
    /// The node does not know the key list named by a `DigestList`: send it again with its keys.
    UnknownList,
    /// The digest of every bucket of the ring, in order.
    Buckets(Vec<u64>),
    /// One outcome per item of a `Copy` or `Backfill`, in order: only whether each was merged
    /// (the merged states stay on the node: a copy's sender does not need them). The answer to
    /// an `Apply`: one item.
    Acks(Vec<Result<(), WireError>>),
    /// The cluster's routing table as JSON (`haze_ring::RoutingTable`), or `None` if the node
    /// is not in a cluster.
    Table(Option<Vec<u8>>),
    /// Not an answer: a notice, with request id 0, that the node routed a request elsewhere
    /// because the key's partition is not on it, and that its table has this epoch. A client
    /// routing with an older table refreshes it; others ignore the notice.
    Epoch(u64),
    /// A page of a bucket's keys and their digests, in ring order.
    KeyDigests {
        /// The keys and digests.
        keys: Vec<(Vec<u8>, u64)>,
        /// Whether the bucket has more keys after the last one.
        more: bool,
    },
    /// The request failed.
    Error(WireError),
}
