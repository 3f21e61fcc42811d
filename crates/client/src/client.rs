//! The client: requests over a shared connection, reconnecting when it breaks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use haze_crdt::{LwwRegister, OrSet, PnCounter, Scalar, TypedValue, Value};
use haze_protocol::{Dial, Request, Response, Role, TcpDial, TypedOp};
use tokio::sync::Mutex;

use crate::connection::Connection;
use crate::router::Router;
use crate::{Error, Result};

/// How a [`Client`] connects and waits.
#[derive(Clone)]
pub struct ClientConfig {
    /// How connections are opened: tokio's TCP by default; a simulation passes its own.
    pub dial: Arc<dyn Dial>,
    /// How long to wait for a connection and its handshake (default 5 s).
    pub connect_timeout: Duration,
    /// How long to wait for each response (default 10 s).
    pub request_timeout: Duration,
    /// The largest frame accepted from the node.
    pub max_frame_bytes: usize,
    /// After an attempt to connect that found no node (refused, or no answer in time), requests
    /// fail at once (with that attempt's error) for this long instead of trying again (default 0: every request tries). Nodes set it for
    /// their connections to each other, so a node that stopped answering costs one timeout,
    /// not one per request.
    pub reconnect_backoff: Duration,
    /// Send each request about one key straight to the key's primary, using the cluster's
    /// routing table (fetched from the node this client connects to, and fetched again when a
    /// node says the table changed). Requests about many keys, and any request whose primary
    /// cannot be reached, go to the first node, which routes them. Default `false`: every
    /// request goes to the first node. Ignored outside a cluster.
    pub direct: bool,
    /// Who this client says it is in its hello (default [`Role::Client`]: requests are routed
    /// to the replicas that own their keys; [`Role::Local`]: served by the contacted node's
    /// own copy).
    pub role: Role,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("role", &self.role)
            .field("direct", &self.direct)
            .field("reconnect_backoff", &self.reconnect_backoff)
            .finish_non_exhaustive()
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            dial: Arc::new(TcpDial),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            // Responses to batches carry merged states: allow more than a node accepts.
            max_frame_bytes: 16 * haze_protocol::MAX_FRAME_BYTES,
            role: Role::Client,
            direct: false,
            reconnect_backoff: Duration::ZERO,
        }
    }
}

/// The line for opening a connection, and the last attempt that found no node.
#[derive(Debug, Default)]
struct Slot {
    failed: Option<(tokio::time::Instant, Error)>,
}

/// A client of one Haze node. Cheap to clone: clones share the connection, and requests from
/// any number of tasks are pipelined over it.
#[derive(Debug, Clone)]
pub struct Client {
    addr: Arc<str>,
    config: ClientConfig,
    connection: Arc<Mutex<Slot>>,
    /// The open connection, for requests that need not wait in line (`connection` is the line
    /// for opening one).
    live: Arc<std::sync::Mutex<Option<Arc<Connection>>>>,
    /// The latest table epoch any node told this client of (see [`Response::Epoch`]).
    epochs: Arc<AtomicU64>,
    /// With [`ClientConfig::direct`]: the cached routing table and a client per node.
    router: Option<Arc<Router>>,
}

impl Client {
    /// Connects to the node at `addr` (`host:port`) with the default configuration.
    ///
    /// # Errors
    ///
    /// [`Error::Connect`] if the node cannot be reached or refuses the handshake.
    pub async fn connect(addr: &str) -> Result<Client> {
        Client::connect_with(addr, ClientConfig::default()).await
    }

    /// Connects to the node at `addr` with `config`.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_with(addr: &str, config: ClientConfig) -> Result<Client> {
        let client = Client::lazy(addr, config);
        client.connection().await?;
        Ok(client)
    }

    /// Returns a client of the node at `addr` that connects on its first request (and again
    /// whenever the connection broke), for a caller that keeps clients of nodes that may be down.
    pub fn lazy(addr: &str, config: ClientConfig) -> Client {
        let router = config.direct.then(|| Arc::new(Router::default()));
        Client {
            addr: addr.into(),
            config,
            connection: Arc::default(),
            live: Arc::default(),
            epochs: Arc::default(),
            router,
        }
    }

    /// A client of one node for the router: it shares the epochs it hears with `parent`.
    pub(crate) fn node_of(parent: &Client, addr: &str) -> Client {
        Client {
            addr: addr.into(),
            config: ClientConfig {
                direct: false,
                // A primary that cannot be reached is skipped (the first node routes) for a
                // while instead of being dialled at every request.
                reconnect_backoff: parent
                    .config
                    .reconnect_backoff
                    .max(Duration::from_millis(500)),
                ..parent.config.clone()
            },
            connection: Arc::default(),
            live: Arc::default(),
            epochs: parent.epochs.clone(),
            router: None,
        }
    }

    /// Returns the latest table epoch a node told this client of.
    pub(crate) fn epoch_heard(&self) -> u64 {
        self.epochs.load(Ordering::Relaxed)
    }

    /// Returns the address this client connects to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends any request and returns the node's response as it came, errors included
    /// ([`Response::Error`]): for a node that forwards requests and passes the answers on.
    /// `idempotent` requests are retried once over a new connection if the connection was lost.
    ///
    /// # Errors
    ///
    /// [`Error::Connect`], [`Error::Timeout`], [`Error::ConnectionLost`] and protocol errors:
    /// the node's own answer is never an error here.
    pub async fn send(&self, request: Request, idempotent: bool) -> Result<Response> {
        let conn = self.connection().await?;
        match conn.call(&request, self.config.request_timeout).await {
            // The connection closed before the request left: any request may go again.
            Err(Error::Connect { .. }) => {
                self.connection()
                    .await?
                    .call(&request, self.config.request_timeout)
                    .await
            }
            // The first try may have been applied: if the second cannot even be sent, the
            // outcome is still unknown, and the caller must hear that, not "cannot connect".
            Err(lost @ Error::ConnectionLost(_)) if idempotent => {
                let again = match self.connection().await {
                    Ok(conn) => conn.call(&request, self.config.request_timeout).await,
                    Err(e) => Err(e),
                };
                match again {
                    Err(Error::Connect { .. } | Error::Refused(_)) => Err(lost),
                    other => other,
                }
            }
            other => other,
        }
    }

    fn live_connection(&self) -> Option<Arc<Connection>> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .filter(|c| !c.is_closed())
            .cloned()
    }

    /// Returns the live connection, opening a new one if there is none or it broke.
    async fn connection(&self) -> Result<Arc<Connection>> {
        // The common case, without waiting in line: the connection is up.
        if let Some(conn) = self.live_connection() {
            return Ok(conn);
        }
        let arrived = tokio::time::Instant::now();
        let mut slot = self.connection.lock().await;
        // Someone ahead in line may have opened it.
        if let Some(conn) = self.live_connection() {
            return Ok(conn);
        }
        // An attempt that failed while this caller waited in line answers for it too (callers
        // queued behind an attempt that waited out its timeout must not each wait out their
        // own); so does any failure within the backoff.
        if let Some((at, e)) = &slot.failed
            && (*at >= arrived || at.elapsed() < self.config.reconnect_backoff)
        {
            return Err(e.clone());
        }
        let opened = Connection::open(
            &*self.config.dial,
            &self.addr,
            self.config.connect_timeout,
            self.config.max_frame_bytes,
            self.config.role,
            self.epochs.clone(),
        )
        .await;
        match opened {
            Ok(conn) => {
                let conn = Arc::new(conn);
                slot.failed = None;
                *self
                    .live
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                // Only an unreachable node: one that answered (and refused the handshake, say
                // because it has not joined the cluster yet) may accept the next attempt.
                if matches!(e, Error::Connect { .. }) {
                    slot.failed = Some((tokio::time::Instant::now(), e.clone()));
                }
                Err(e)
            }
        }
    }

    /// Sends a request; an idempotent one is retried once over a new connection if the
    /// connection was lost.
    async fn call(&self, request: Request, idempotent: bool) -> Result<Response> {
        let answer = match &self.router {
            Some(router) => match router.send(self, &request, idempotent).await {
                Some(answer) => answer?,
                None => self.send(request, idempotent).await?,
            },
            None => self.send(request, idempotent).await?,
        };
        match answer {
            Response::Error(e) => Err(e.into()),
            other => Ok(other),
        }
    }

    async fn value_call(&self, request: Request, idempotent: bool) -> Result<Option<Value>> {
        match self.call(request, idempotent).await? {
            Response::Value(v) => Ok(v),
            other => Err(Error::Protocol(format!("expected a value, got {other:?}"))),
        }
    }

    async fn written(&self, request: Request, idempotent: bool) -> Result<Value> {
        self.value_call(request, idempotent)
            .await?
            .ok_or_else(|| Error::Protocol("a write answered with no value".into()))
    }

    /// Applies a typed operation and returns the new state as `T`.
    async fn op<T: TypedValue>(&self, key: &[u8], op: TypedOp, idempotent: bool) -> Result<T> {
        typed(
            self.written(
                Request::Op {
                    key: key.to_vec(),
                    op,
                },
                idempotent,
            )
            .await?,
        )
    }

    /// Returns the value stored under `key`, or `None`.
    ///
    /// # Errors
    ///
    /// [`Error`] for connection failures, timeouts and the node's refusals.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        self.value_call(
            Request::Get {
                key: key.as_ref().to_vec(),
            },
            true,
        )
        .await
    }

    /// Reads `key` from every replica, merges the answers and repairs the replicas whose copy
    /// differed; returns the merged value. On a single node this is [`get`](Self::get).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn get_merged(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        self.value_call(
            Request::GetMerged {
                key: key.as_ref().to_vec(),
            },
            true,
        )
        .await
    }

    /// Returns the value stored under `key` as the typed CRDT `T`, or `None`.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get), and [`Error::WrongType`] if another type is stored.
    pub async fn get_typed<T: TypedValue>(&self, key: impl AsRef<[u8]>) -> Result<Option<T>> {
        self.get(key).await?.map(typed::<T>).transpose()
    }

    /// Merges `value` (a full state) into `key` and returns the merged state.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get); [`Error::TypeMismatch`] if another type is stored;
    /// [`Error::TooLarge`] past the node's limits.
    pub async fn merge(&self, key: impl AsRef<[u8]>, value: impl Into<Value>) -> Result<Value> {
        self.written(
            Request::Merge {
                key: key.as_ref().to_vec(),
                value: value.into(),
            },
            true,
        )
        .await
    }

    /// Merges a typed CRDT into `key` and returns the merged state, typed.
    ///
    /// # Errors
    ///
    /// As [`merge`](Self::merge).
    pub async fn merge_typed<T: TypedValue>(&self, key: impl AsRef<[u8]>, value: T) -> Result<T> {
        typed(self.merge(key, value.into_value()).await?)
    }

    /// Merges several keys in one request (committed together by the node). Returns one
    /// outcome per item, in order.
    ///
    /// # Errors
    ///
    /// The outer error if the request as a whole failed; per-item errors inside.
    pub async fn merge_batch(&self, items: Vec<(Vec<u8>, Value)>) -> Result<Vec<Result<Value>>> {
        let n = items.len();
        match self.call(Request::MergeBatch { items }, true).await? {
            Response::Batch(results) if results.len() == n => Ok(results
                .into_iter()
                .map(|r| r.map_err(Error::from))
                .collect()),
            other => Err(Error::Protocol(format!(
                "expected {n} results, got {other:?}"
            ))),
        }
    }

    /// Returns the digest of `key`'s value (a hash of its state), or `None`.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn digest(&self, key: impl AsRef<[u8]>) -> Result<Option<u64>> {
        match self
            .call(
                Request::Digest {
                    key: key.as_ref().to_vec(),
                },
                true,
            )
            .await?
        {
            Response::Digest(d) => Ok(d),
            other => Err(Error::Protocol(format!("expected a digest, got {other:?}"))),
        }
    }

    /// Returns the digests of several keys in one request, in order (`None`: absent).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn digest_batch(&self, keys: Vec<Vec<u8>>) -> Result<Vec<Option<u64>>> {
        let n = keys.len();
        match self.call(Request::DigestBatch { keys }, true).await? {
            Response::Digests(d) if d.len() == n => Ok(d),
            other => Err(Error::Protocol(format!(
                "expected {n} digests, got {other:?}"
            ))),
        }
    }

    /// Returns the digests of a key list named by `list` ([`haze_protocol::key_list_id`] of
    /// `keys`), sending the keys only when `keys` is given. `Ok(None)` means the node does not know
    /// the list: ask again with the keys.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn digest_list(
        &self,
        list: u64,
        keys: Option<Vec<Vec<u8>>>,
    ) -> Result<Option<Vec<Option<u64>>>> {
        match self.call(Request::DigestList { list, keys }, true).await? {
            Response::Digests(d) => Ok(Some(d)),
            Response::UnknownList => Ok(None),
            other => Err(Error::Protocol(format!("expected digests, got {other:?}"))),
        }
    }

    /// Adds `delta` to the PN-counter under `key` (the node applies it with its actor id) and
    /// returns the counter. Not retried: after [`Error::is_indeterminate`] errors it may or may
    /// not have been applied.
    ///
    /// # Errors
    ///
    /// As [`merge`](Self::merge).
    pub async fn counter_add(&self, key: impl AsRef<[u8]>, delta: i64) -> Result<PnCounter> {
        self.op(key.as_ref(), TypedOp::CounterAdd(delta), false)
            .await
    }

    /// Adds members to the OR-set under `key` and returns the set.
    ///
    /// # Errors
    ///
    /// As [`merge`](Self::merge).
    pub async fn set_add(
        &self,
        key: impl AsRef<[u8]>,
        members: impl IntoIterator<Item = Scalar>,
    ) -> Result<OrSet<Scalar>> {
        let op = TypedOp::SetAdd(members.into_iter().collect());
        // Adding is idempotent in effect (the member is present either way): safe to retry.
        self.op(key.as_ref(), op, true).await
    }

    /// Removes members (as the node has seen them) from the OR-set under `key` and returns the
    /// set.
    ///
    /// # Errors
    ///
    /// As [`merge`](Self::merge).
    pub async fn set_remove(
        &self,
        key: impl AsRef<[u8]>,
        members: impl IntoIterator<Item = Scalar>,
    ) -> Result<OrSet<Scalar>> {
        let op = TypedOp::SetRemove(members.into_iter().collect());
        // Not retried: a second try removes whatever the node has seen by then, which may
        // include an addition made meanwhile.
        self.op(key.as_ref(), op, false).await
    }

    /// Writes the last-writer-wins register under `key` and returns it.
    ///
    /// # Errors
    ///
    /// As [`merge`](Self::merge).
    pub async fn register_set(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Scalar>,
    ) -> Result<LwwRegister<Scalar>> {
        let op = TypedOp::RegisterSet(value.into());
        typed(
            self.written(
                Request::Op {
                    key: key.as_ref().to_vec(),
                    op,
                },
                false,
            )
            .await?,
        )
    }

    /// Applies a typed operation and returns the new state, untyped. Only set additions are
    /// retried after a lost connection: a retried counter addition could apply twice, a register
    /// write overwrite a later one, and a set removal remove an addition made meanwhile.
    ///
    /// # Errors
    ///
    /// As [`merge`](Self::merge).
    pub async fn apply(&self, key: impl AsRef<[u8]>, op: TypedOp) -> Result<Value> {
        let idempotent = matches!(op, TypedOp::SetAdd(_));
        let key = key.as_ref().to_vec();
        self.written(Request::Op { key, op }, idempotent).await
    }

    /// Merges states into the contacted node's own copies, without routing or replicating
    /// (only for [`Role::Peer`] and [`Role::Local`] connections). Returns one outcome per item.
    ///
    /// # Errors
    ///
    /// As [`merge_batch`](Self::merge_batch).
    pub async fn copy(&self, items: Vec<(Vec<u8>, Value)>) -> Result<Vec<Result<()>>> {
        self.acked(items.len(), Request::Copy { items }).await
    }

    /// As [`copy`](Self::copy), as background work the contacted node commits after the writes
    /// its clients wait for (a move's stream).
    ///
    /// # Errors
    ///
    /// As [`merge_batch`](Self::merge_batch).
    pub async fn backfill(&self, items: Vec<(Vec<u8>, Value)>) -> Result<Vec<Result<()>>> {
        self.acked(items.len(), Request::Backfill { items }).await
    }

    /// Sends a request of `n` items answered with one acknowledgement per item.
    async fn acked(&self, n: usize, request: Request) -> Result<Vec<Result<()>>> {
        match self.call(request, true).await? {
            Response::Acks(results) if results.len() == n => Ok(results
                .into_iter()
                .map(|r| r.map_err(Error::from))
                .collect()),
            other => Err(Error::Protocol(format!(
                "expected {n} results, got {other:?}"
            ))),
        }
    }

    /// Returns the contacted node's digest of every bucket of the ring (for anti-entropy).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn buckets(&self) -> Result<Vec<u64>> {
        match self.call(Request::Buckets, true).await? {
            Response::Buckets(d) => Ok(d),
            other => Err(Error::Protocol(format!("expected buckets, got {other:?}"))),
        }
    }

    /// Returns a page of the keys the contacted node holds in `bucket`, with their digests,
    /// starting after `after`, and whether more follow (for anti-entropy).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn bucket_keys(
        &self,
        bucket: u32,
        after: Option<Vec<u8>>,
    ) -> Result<(Vec<(Vec<u8>, u64)>, bool)> {
        match self
            .call(Request::BucketKeys { bucket, after }, true)
            .await?
        {
            Response::KeyDigests { keys, more } => Ok((keys, more)),
            other => Err(Error::Protocol(format!("expected keys, got {other:?}"))),
        }
    }

    /// Checks that the node answers.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn ping(&self) -> Result<()> {
        match self.call(Request::Ping, true).await? {
            Response::Pong => Ok(()),
            other => Err(Error::Protocol(format!("expected a pong, got {other:?}"))),
        }
    }
}

pub(crate) fn typed<T: TypedValue>(value: Value) -> Result<T> {
    if value.kind() != T::KIND {
        return Err(Error::WrongType {
            expected: T::KIND,
            found: value.kind(),
        });
    }
    Ok(T::try_from_value(value)?)
}
