//! The client: typed requests over a [`Channel`] to one node (and, routing directly, to each
//! key's primary).

use std::sync::Arc;

use haze_crdt::{LwwRegister, OrSet, PnCounter, Scalar, TypedValue, Value};
use haze_protocol::{Channel, Request, Response, TypedOp};

use crate::router::Router;
use crate::{ClientConfig, Error, Result};

/// A client of one Haze node. Cheap to clone: clones share the connection, and requests from
/// any number of tasks are pipelined over it.
#[derive(Debug, Clone)]
pub struct Client {
    /// The connection to the node, opened on first use and again whenever it broke.
    channel: Channel,
    /// With [`ClientConfig::direct`]: the cached routing table and a channel per node.
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
        let channel = Channel::connect(addr, config.channel()).await?;
        Ok(Client::over(channel, config.direct))
    }

    /// Returns a client of the node at `addr` that connects on its first request (and again
    /// whenever the connection broke), for a caller that keeps clients of nodes that may be down.
    pub fn lazy(addr: &str, config: ClientConfig) -> Client {
        Client::over(Channel::lazy(addr, config.channel()), config.direct)
    }

    fn over(channel: Channel, direct: bool) -> Client {
        Client {
            channel,
            router: direct.then(|| Arc::new(Router::default())),
        }
    }

    /// The channel to the node (the router's channels to other nodes share its epoch notices).
    pub(crate) fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Returns the address this client connects to.
    pub fn addr(&self) -> &str {
        self.channel.addr()
    }

    /// Sends any request and returns the node's response as it came, errors included
    /// ([`Response::Error`]): for a node that forwards requests and passes the answers on.
    /// `idempotent` requests are retried once over a new connection if the connection was lost
    /// (see [`Channel::send`]).
    ///
    /// # Errors
    ///
    /// [`Error::Connect`], [`Error::Timeout`], [`Error::ConnectionLost`] and protocol errors:
    /// the node's own answer is never an error here.
    pub async fn send(&self, request: Request, idempotent: bool) -> Result<Response> {
        Ok(self.channel.send(request, idempotent).await?)
    }

    /// Sends a request; an idempotent one is retried once over a new connection if the
    /// connection was lost.
    pub(crate) async fn call(&self, request: Request, idempotent: bool) -> Result<Response> {
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

    /// Applies a typed operation as [`apply`](Self::apply) does (retried alike), but returns
    /// only once it is applied, without the new state: for a caller that does not read the
    /// state back. A set's add then costs the same whatever the set's size: the node sends no
    /// set back, and need not copy it for the answer. Needs a node of this version or later
    /// (an earlier one refuses it as malformed).
    ///
    /// # Errors
    ///
    /// As [`merge`](Self::merge).
    pub async fn apply_ack(&self, key: impl AsRef<[u8]>, op: TypedOp) -> Result<()> {
        let idempotent = matches!(op, TypedOp::SetAdd(_));
        let key = key.as_ref().to_vec();
        match self.call(Request::Apply { key, op }, idempotent).await? {
            Response::Acks(mut acks) if acks.len() == 1 => {
                acks.pop().expect("one").map_err(Error::from)
            }
            other => Err(Error::Protocol(format!(
                "expected one acknowledgement, got {other:?}"
            ))),
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
