//! Requests and responses, and their encoding inside a frame body.
//!
//! ```text
//! body = request_id:u64 (big-endian) kind:u8 payload
//! ```
//!
//! Payload fields use the value encoding's primitives (`haze_crdt::encode`): varint lengths,
//! byte strings, scalars, and values as length-prefixed encoded `Value`s.

use haze_crdt::encode::{Reader, read_scalar, write_scalar, writer};
use haze_crdt::{Scalar, Value};

use crate::ErrorCode;

/// Chosen by the client per request; the response carries the same id.
pub type RequestId = u64;

/// The first bytes of a client's hello.
pub const HELLO_MAGIC: [u8; 4] = *b"HAZE";

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// A request from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The handshake: must be the first request of a connection.
    Hello {
        /// The client's protocol version.
        version: u16,
        /// Who is connecting, and so how the node serves the connection's requests.
        role: Role,
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
    /// Check that the connection is alive.
    Ping,
    /// Read the digests of several keys (for sync: only keys whose digests differ need states).
    DigestBatch {
        /// The keys.
        keys: Vec<Vec<u8>>,
    },
    /// Read the digests of a list of keys named by its id ([`key_list_id`]). The keys travel only
    /// when the node does not know the list yet (it answers [`Response::UnknownList`] then), so
    /// a device that syncs the same keys again sends a few bytes per thousand keys.
    DigestList {
        /// The list's id: [`key_list_id`] of its keys.
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
            | Request::Op { key, .. } => Some(key),
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

/// Returns the id of a list of keys: a hash of the keys, in order.
pub fn key_list_id(keys: &[Vec<u8>]) -> u64 {
    let mut bytes = Vec::with_capacity(keys.iter().map(|k| k.len() + 2).sum());
    for key in keys {
        writer::bytes(&mut bytes, key);
    }
    haze_crdt::digest::key_digest(b"haze key list", &bytes)
}

/// Appends keys, each as the length of the prefix it shares with the previous key and the rest
/// (sorted keys with common prefixes shrink to a few bytes each).
fn write_keys_compressed(out: &mut Vec<u8>, keys: &[Vec<u8>]) {
    writer::len(out, keys.len());
    let mut previous: &[u8] = &[];
    for key in keys {
        let shared = previous.iter().zip(key).take_while(|(a, b)| a == b).count();
        writer::len(out, shared);
        writer::bytes(out, &key[shared..]);
        previous = key;
    }
}

/// The most key bytes one compressed list may expand to: shared prefixes make a few input bytes
/// stand for a long key, so the expansion is bounded, not the input.
const MAX_EXPANDED_KEY_BYTES: usize = 16 * 1024 * 1024;

fn read_keys_compressed(r: &mut Reader<'_>) -> Decoded<Vec<Vec<u8>>> {
    let n = r.count(2)?;
    let mut keys: Vec<Vec<u8>> = Vec::with_capacity(n.min(64));
    let mut expanded = 0usize;
    for _ in 0..n {
        let shared = usize::try_from(r.varint()?)?;
        let previous = keys.last().map_or(&[][..], Vec::as_slice);
        let prefix = previous
            .get(..shared)
            .ok_or("a key shares more than the previous key has")?;
        let suffix = r.bytes()?;
        expanded += shared + suffix.len();
        if expanded > MAX_EXPANDED_KEY_BYTES {
            return Err("a key list expands past 16 MiB".into());
        }
        let mut key = prefix.to_vec();
        key.extend_from_slice(suffix);
        keys.push(key);
    }
    Ok(keys)
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
    /// (the merged states stay on the node: a copy's sender does not need them).
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

/// A frame body that is not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed message: {reason}")]
pub struct DecodeError {
    /// The request id, when the body was long enough to hold one (so the error can be answered).
    pub request_id: Option<RequestId>,
    /// What is wrong.
    pub reason: String,
}

mod kind {
    pub(super) const HELLO: u8 = 0x01;
    pub(super) const GET: u8 = 0x02;
    pub(super) const MERGE: u8 = 0x03;
    pub(super) const MERGE_BATCH: u8 = 0x04;
    pub(super) const DIGEST: u8 = 0x05;
    pub(super) const OP: u8 = 0x06;
    pub(super) const PING: u8 = 0x07;
    pub(super) const DIGEST_BATCH: u8 = 0x08;
    pub(super) const DIGEST_LIST: u8 = 0x09;
    pub(super) const GET_MERGED: u8 = 0x0a;
    pub(super) const COPY: u8 = 0x0b;
    pub(super) const BUCKETS: u8 = 0x0c;
    pub(super) const BUCKET_KEYS: u8 = 0x0d;
    pub(super) const TABLE: u8 = 0x0e;
    pub(super) const BACKFILL: u8 = 0x0f;

    pub(super) const HELLO_OK: u8 = 0x81;
    pub(super) const VALUE: u8 = 0x82;
    pub(super) const BATCH: u8 = 0x83;
    pub(super) const DIGEST_OK: u8 = 0x84;
    pub(super) const PONG: u8 = 0x85;
    pub(super) const DIGESTS: u8 = 0x86;
    pub(super) const UNKNOWN_LIST: u8 = 0x87;
    pub(super) const BUCKETS_OK: u8 = 0x88;
    pub(super) const KEY_DIGESTS: u8 = 0x89;
    pub(super) const TABLE_OK: u8 = 0x8a;
    pub(super) const EPOCH: u8 = 0x8b;
    pub(super) const ACKS: u8 = 0x8c;

    pub(super) const ROLE_CLIENT: u8 = 0;
    pub(super) const ROLE_LOCAL: u8 = 1;
    pub(super) const ROLE_PEER: u8 = 2;
    pub(super) const ERROR: u8 = 0xff;

    pub(super) const OP_COUNTER_ADD: u8 = 1;
    pub(super) const OP_SET_ADD: u8 = 2;
    pub(super) const OP_SET_REMOVE: u8 = 3;
    pub(super) const OP_REGISTER_SET: u8 = 4;
}

fn write_items(out: &mut Vec<u8>, items: &[(Vec<u8>, Value)]) {
    writer::len(out, items.len());
    for (key, value) in items {
        writer::bytes(out, key);
        write_value(out, value);
    }
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    let start = out.len();
    out.push(0); // placeholder for a one-byte length, the common case
    value.encode_into(out);
    let len = out.len() - start - 1;
    if len < 0x80 {
        out[start] = len as u8;
    } else {
        let encoded: Vec<u8> = out.split_off(start + 1);
        out.truncate(start);
        writer::bytes(out, &encoded);
    }
}

fn write_option_value(out: &mut Vec<u8>, value: Option<&Value>) {
    match value {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            write_value(out, v);
        }
    }
}

fn write_digest(out: &mut Vec<u8>, digest: Option<u64>) {
    match digest {
        None => out.push(0),
        Some(d) => {
            out.push(1);
            out.extend_from_slice(&d.to_be_bytes());
        }
    }
}

fn read_digest(r: &mut Reader<'_>) -> Decoded<Option<u64>> {
    if !read_presence(r)? {
        return Ok(None);
    }
    let mut bytes = [0u8; 8];
    for b in &mut bytes {
        *b = r.u8()?;
    }
    Ok(Some(u64::from_be_bytes(bytes)))
}

fn write_error(out: &mut Vec<u8>, e: &WireError) {
    out.extend_from_slice(&e.code.to_u16().to_be_bytes());
    writer::bytes(out, e.message.as_bytes());
}

fn write_scalars(out: &mut Vec<u8>, items: &[Scalar]) {
    writer::len(out, items.len());
    for s in items {
        write_scalar(out, s);
    }
}

impl Request {
    /// Appends the frame body of this request, with id `id`, to `out`.
    pub fn encode(&self, id: RequestId, out: &mut Vec<u8>) {
        out.extend_from_slice(&id.to_be_bytes());
        match self {
            Request::Hello { version, role } => {
                out.push(kind::HELLO);
                out.extend_from_slice(&HELLO_MAGIC);
                out.extend_from_slice(&version.to_be_bytes());
                match role {
                    Role::Client => out.push(kind::ROLE_CLIENT),
                    Role::Local => out.push(kind::ROLE_LOCAL),
                    Role::Peer { cluster } => {
                        out.push(kind::ROLE_PEER);
                        out.extend_from_slice(&cluster.to_be_bytes());
                    }
                }
            }
            Request::Get { key } => {
                out.push(kind::GET);
                writer::bytes(out, key);
            }
            Request::Merge { key, value } => {
                out.push(kind::MERGE);
                writer::bytes(out, key);
                write_value(out, value);
            }
            Request::MergeBatch { items } => {
                out.push(kind::MERGE_BATCH);
                write_items(out, items);
            }
            Request::Digest { key } => {
                out.push(kind::DIGEST);
                writer::bytes(out, key);
            }
            Request::Op { key, op } => {
                out.push(kind::OP);
                writer::bytes(out, key);
                match op {
                    TypedOp::CounterAdd(delta) => {
                        out.push(kind::OP_COUNTER_ADD);
                        writer::signed(out, *delta);
                    }
                    TypedOp::SetAdd(items) => {
                        out.push(kind::OP_SET_ADD);
                        write_scalars(out, items);
                    }
                    TypedOp::SetRemove(items) => {
                        out.push(kind::OP_SET_REMOVE);
                        write_scalars(out, items);
                    }
                    TypedOp::RegisterSet(value) => {
                        out.push(kind::OP_REGISTER_SET);
                        write_scalar(out, value);
                    }
                }
            }
            Request::Ping => out.push(kind::PING),
            Request::DigestBatch { keys } => {
                out.push(kind::DIGEST_BATCH);
                writer::len(out, keys.len());
                for key in keys {
                    writer::bytes(out, key);
                }
            }
            Request::DigestList { list, keys } => {
                out.push(kind::DIGEST_LIST);
                out.extend_from_slice(&list.to_be_bytes());
                match keys {
                    None => out.push(0),
                    Some(keys) => {
                        out.push(1);
                        write_keys_compressed(out, keys);
                    }
                }
            }
            Request::GetMerged { key } => {
                out.push(kind::GET_MERGED);
                writer::bytes(out, key);
            }
            Request::Copy { items } => {
                out.push(kind::COPY);
                write_items(out, items);
            }
            Request::Backfill { items } => {
                out.push(kind::BACKFILL);
                write_items(out, items);
            }
            Request::Buckets => out.push(kind::BUCKETS),
            Request::Table => out.push(kind::TABLE),
            Request::BucketKeys { bucket, after } => {
                out.push(kind::BUCKET_KEYS);
                out.extend_from_slice(&bucket.to_be_bytes());
                match after {
                    None => out.push(0),
                    Some(key) => {
                        out.push(1);
                        writer::bytes(out, key);
                    }
                }
            }
        }
    }

    /// Decodes a request frame body.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] (with the request id when there is one) for any malformed body.
    pub fn decode(body: &[u8]) -> Result<(RequestId, Request), DecodeError> {
        let (id, mut r) = split_id(body)?;
        let fail = |reason: String| DecodeError {
            request_id: Some(id),
            reason,
        };
        let request = decode_request(&mut r).map_err(|e| fail(e.to_string()))?;
        finish(&r).map_err(fail)?;
        Ok((id, request))
    }
}

fn split_id(body: &[u8]) -> Result<(RequestId, Reader<'_>), DecodeError> {
    let Some((id, rest)) = body.split_first_chunk::<8>() else {
        return Err(DecodeError {
            request_id: None,
            reason: "a body starts with an 8-byte request id".into(),
        });
    };
    Ok((u64::from_be_bytes(*id), Reader::new(rest)))
}

fn finish(r: &Reader<'_>) -> Result<(), String> {
    match r.remaining() {
        0 => Ok(()),
        n => Err(format!("{n} trailing bytes")),
    }
}

type Decoded<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn read_value(r: &mut Reader<'_>) -> Decoded<Value> {
    Ok(Value::decode(r.bytes()?)?)
}

fn read_scalars(r: &mut Reader<'_>) -> Decoded<Vec<Scalar>> {
    let n = r.count(2)?;
    let mut items = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        items.push(read_scalar(r)?);
    }
    Ok(items)
}

fn read_u16(r: &mut Reader<'_>) -> Decoded<u16> {
    Ok(u16::from_be_bytes([r.u8()?, r.u8()?]))
}

/// Reads a big-endian unsigned integer of `width` bytes (at most 8).
fn read_u64_of(r: &mut Reader<'_>, width: usize) -> Decoded<u64> {
    let mut n = 0u64;
    for _ in 0..width {
        n = (n << 8) | u64::from(r.u8()?);
    }
    Ok(n)
}

fn read_u64(r: &mut Reader<'_>) -> Decoded<u64> {
    read_u64_of(r, 8)
}

fn read_items(r: &mut Reader<'_>) -> Decoded<Vec<(Vec<u8>, Value)>> {
    let n = r.count(4)?;
    let mut items = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        items.push((r.bytes()?.to_vec(), read_value(r)?));
    }
    Ok(items)
}

fn decode_request(r: &mut Reader<'_>) -> Decoded<Request> {
    Ok(match r.u8()? {
        kind::HELLO => {
            let magic = [r.u8()?, r.u8()?, r.u8()?, r.u8()?];
            if magic != HELLO_MAGIC {
                return Err("not a Haze client (bad hello magic)".into());
            }
            let version = read_u16(r)?;
            // A hello without a role (from a client of the first release) is a client's.
            let role = if r.remaining() == 0 {
                Role::Client
            } else {
                match r.u8()? {
                    kind::ROLE_CLIENT => Role::Client,
                    kind::ROLE_LOCAL => Role::Local,
                    kind::ROLE_PEER => Role::Peer {
                        cluster: read_u64(r)?,
                    },
                    other => return Err(format!("unknown role {other}").into()),
                }
            };
            Request::Hello { version, role }
        }
        kind::GET => Request::Get {
            key: r.bytes()?.to_vec(),
        },
        kind::MERGE => Request::Merge {
            key: r.bytes()?.to_vec(),
            value: read_value(r)?,
        },
        kind::MERGE_BATCH => Request::MergeBatch {
            items: read_items(r)?,
        },
        kind::GET_MERGED => Request::GetMerged {
            key: r.bytes()?.to_vec(),
        },
        kind::COPY => Request::Copy {
            items: read_items(r)?,
        },
        kind::BACKFILL => Request::Backfill {
            items: read_items(r)?,
        },
        kind::BUCKETS => Request::Buckets,
        kind::TABLE => Request::Table,
        kind::BUCKET_KEYS => {
            let bucket = u32::try_from(read_u64_of(r, 4)?)?;
            let after = if read_presence(r)? {
                Some(r.bytes()?.to_vec())
            } else {
                None
            };
            Request::BucketKeys { bucket, after }
        }
        kind::DIGEST => Request::Digest {
            key: r.bytes()?.to_vec(),
        },
        kind::OP => {
            let key = r.bytes()?.to_vec();
            let op = match r.u8()? {
                kind::OP_COUNTER_ADD => TypedOp::CounterAdd(r.signed()?),
                kind::OP_SET_ADD => TypedOp::SetAdd(read_scalars(r)?),
                kind::OP_SET_REMOVE => TypedOp::SetRemove(read_scalars(r)?),
                kind::OP_REGISTER_SET => TypedOp::RegisterSet(read_scalar(r)?),
                other => return Err(format!("unknown operation {other}").into()),
            };
            Request::Op { key, op }
        }
        kind::PING => Request::Ping,
        kind::DIGEST_BATCH => {
            let n = r.count(1)?;
            let mut keys = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                keys.push(r.bytes()?.to_vec());
            }
            Request::DigestBatch { keys }
        }
        kind::DIGEST_LIST => {
            let mut id = [0u8; 8];
            for b in &mut id {
                *b = r.u8()?;
            }
            let keys = if read_presence(r)? {
                Some(read_keys_compressed(r)?)
            } else {
                None
            };
            Request::DigestList {
                list: u64::from_be_bytes(id),
                keys,
            }
        }
        other => return Err(format!("unknown request kind {other:#04x}").into()),
    })
}

impl Response {
    /// Appends the frame body of this response to request `id` to `out`.
    pub fn encode(&self, id: RequestId, out: &mut Vec<u8>) {
        out.extend_from_slice(&id.to_be_bytes());
        match self {
            Response::Hello { version } => {
                out.push(kind::HELLO_OK);
                out.extend_from_slice(&version.to_be_bytes());
            }
            Response::Value(value) => {
                out.push(kind::VALUE);
                write_option_value(out, value.as_ref());
            }
            Response::Batch(results) => {
                out.push(kind::BATCH);
                writer::len(out, results.len());
                for result in results {
                    match result {
                        Ok(value) => {
                            out.push(0);
                            write_value(out, value);
                        }
                        Err(e) => {
                            out.push(1);
                            write_error(out, e);
                        }
                    }
                }
            }
            Response::Digest(digest) => {
                out.push(kind::DIGEST_OK);
                write_digest(out, *digest);
            }
            Response::Pong => out.push(kind::PONG),
            Response::UnknownList => out.push(kind::UNKNOWN_LIST),
            Response::Digests(digests) => {
                out.push(kind::DIGESTS);
                writer::len(out, digests.len());
                for digest in digests {
                    write_digest(out, *digest);
                }
            }
            Response::Buckets(digests) => {
                out.push(kind::BUCKETS_OK);
                writer::len(out, digests.len());
                for digest in digests {
                    out.extend_from_slice(&digest.to_be_bytes());
                }
            }
            Response::Table(json) => {
                out.push(kind::TABLE_OK);
                match json {
                    None => out.push(0),
                    Some(json) => {
                        out.push(1);
                        writer::bytes(out, json);
                    }
                }
            }
            Response::Acks(results) => {
                out.push(kind::ACKS);
                writer::len(out, results.len());
                for result in results {
                    match result {
                        Ok(()) => out.push(0),
                        Err(e) => {
                            out.push(1);
                            write_error(out, e);
                        }
                    }
                }
            }
            Response::Epoch(epoch) => {
                out.push(kind::EPOCH);
                out.extend_from_slice(&epoch.to_be_bytes());
            }
            Response::KeyDigests { keys, more } => {
                out.push(kind::KEY_DIGESTS);
                writer::len(out, keys.len());
                for (key, digest) in keys {
                    writer::bytes(out, key);
                    out.extend_from_slice(&digest.to_be_bytes());
                }
                out.push(u8::from(*more));
            }
            Response::Error(e) => {
                out.push(kind::ERROR);
                write_error(out, e);
            }
        }
    }

    /// Decodes a response frame body.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] for any malformed body.
    pub fn decode(body: &[u8]) -> Result<(RequestId, Response), DecodeError> {
        let (id, mut r) = split_id(body)?;
        let fail = |reason: String| DecodeError {
            request_id: Some(id),
            reason,
        };
        let response = decode_response(&mut r).map_err(|e| fail(e.to_string()))?;
        finish(&r).map_err(fail)?;
        Ok((id, response))
    }
}

fn read_error(r: &mut Reader<'_>) -> Decoded<WireError> {
    let code = ErrorCode::from_u16(read_u16(r)?);
    let message = String::from_utf8_lossy(r.bytes()?).into_owned();
    Ok(WireError { code, message })
}

fn read_presence(r: &mut Reader<'_>) -> Decoded<bool> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(format!("a presence byte is 0 or 1, not {other}").into()),
    }
}

fn decode_response(r: &mut Reader<'_>) -> Decoded<Response> {
    Ok(match r.u8()? {
        kind::HELLO_OK => Response::Hello {
            version: read_u16(r)?,
        },
        kind::VALUE => Response::Value(if read_presence(r)? {
            Some(read_value(r)?)
        } else {
            None
        }),
        kind::BATCH => {
            let n = r.count(2)?;
            let mut results = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                results.push(if read_presence(r)? {
                    Err(read_error(r)?)
                } else {
                    Ok(read_value(r)?)
                });
            }
            Response::Batch(results)
        }
        kind::DIGEST_OK => Response::Digest(read_digest(r)?),
        kind::PONG => Response::Pong,
        kind::UNKNOWN_LIST => Response::UnknownList,
        kind::DIGESTS => {
            let n = r.count(1)?;
            let mut digests = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                digests.push(read_digest(r)?);
            }
            Response::Digests(digests)
        }
        kind::BUCKETS_OK => {
            let n = r.count(8)?;
            let mut digests = Vec::with_capacity(n.min(4096));
            for _ in 0..n {
                digests.push(read_u64(r)?);
            }
            Response::Buckets(digests)
        }
        kind::TABLE_OK => Response::Table(if read_presence(r)? {
            Some(r.bytes()?.to_vec())
        } else {
            None
        }),
        kind::EPOCH => Response::Epoch(read_u64(r)?),
        kind::ACKS => {
            let n = r.count(1)?;
            let mut results = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                results.push(if read_presence(r)? {
                    Err(read_error(r)?)
                } else {
                    Ok(())
                });
            }
            Response::Acks(results)
        }
        kind::KEY_DIGESTS => {
            let n = r.count(9)?;
            let mut keys = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                keys.push((r.bytes()?.to_vec(), read_u64(r)?));
            }
            Response::KeyDigests {
                keys,
                more: read_presence(r)?,
            }
        }
        kind::ERROR => Response::Error(read_error(r)?),
        other => return Err(format!("unknown response kind {other:#04x}").into()),
    })
}
