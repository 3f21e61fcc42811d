//! The node's core: what every interface (binary protocol, HTTP) calls.

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use haze_crdt::{ActorId, Hlc, PhysicalClock, Value};
use haze_protocol::{Response, TypedOp};
use haze_storage::{GroupCommitter, Mutation, Priority, Store, Write, WriterHandle};
use tokio::sync::oneshot;

use crate::cluster::{ClusterView, Handoff, Peers};
use crate::config::NodeConfig;
use crate::error::RequestError;
use crate::key_lists::KeyLists;
use crate::metrics::Metrics;
use crate::ops::OpContext;

/// How many bytes of devices' key lists a node remembers for sync.
const KEY_LIST_BYTES: usize = 32 * 1024 * 1024;

/// A write, as [`Node::submit_write`] takes it.
#[derive(Debug, Clone)]
pub enum WriteRequest {
    /// Merge a full state.
    Merge(Value),
    /// Apply a typed operation with the node's actor id.
    Op(TypedOp),
}

/// A write queued to the writer, not yet committed.
type Pending = oneshot::Receiver<Result<Value, haze_storage::WriteError>>;

/// A node's state, shared by all connections.
pub struct Node {
    config: NodeConfig,
    store: Arc<dyn Store>,
    committer: GroupCommitter,
    writer: WriterHandle,
    ops: OpContext,
    metrics: Metrics,
    key_lists: Mutex<KeyLists>,
    /// The bytes of requests in flight on all connections together.
    in_flight_bytes: Arc<tokio::sync::Semaphore>,
    /// The cluster this node belongs to, once known: then requests are routed.
    view: RwLock<Option<Arc<ClusterView>>>,
    /// Connections to the other nodes.
    peers: Peers,
    /// This node's part in the membership change under way.
    handoff: Handoff,
    /// Set when the node is to belong to a cluster: until its view comes, it refuses clients'
    /// data requests rather than keep data outside the ring.
    expects_cluster: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("actor", &self.ops.actor)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Starts a node over `store`: its writer thread and its state. `actor` is the id it applies
    /// typed operations with: give every start of a node a fresh one (see `ActorId`'s docs).
    ///
    /// # Errors
    ///
    /// If the writer thread cannot start.
    pub fn start(
        config: NodeConfig,
        store: Arc<dyn Store>,
        actor: ActorId,
        clock: Arc<dyn PhysicalClock + Send + Sync>,
    ) -> Result<Arc<Node>, haze_storage::Error> {
        let committer = GroupCommitter::start(store.clone())?;
        let writer = committer.handle();
        let config_in_flight = config.max_node_in_flight_bytes.clamp(
            config.max_frame_bytes.max(1),
            tokio::sync::Semaphore::MAX_PERMITS,
        );
        let ops = OpContext {
            actor,
            hlc: Arc::new(Mutex::new(Hlc::new())),
            clock,
        };
        let largest_item = config
            .store
            .max_value_bytes
            .saturating_add(config.store.max_key_bytes)
            .saturating_add(64);
        let metrics = Metrics::default();
        let peers = Peers::new(
            config.dial.clone(),
            config.forward_timeout,
            largest_item,
            metrics.copies_failed.clone(),
        );
        Ok(Arc::new(Node {
            view: RwLock::new(None),
            peers,
            handoff: Handoff::default(),
            expects_cluster: std::sync::atomic::AtomicBool::new(false),
            config,
            store,
            committer,
            writer,
            ops,
            metrics,
            key_lists: Mutex::new(KeyLists::new(KEY_LIST_BYTES)),
            in_flight_bytes: Arc::new(tokio::sync::Semaphore::new(config_in_flight)),
        }))
    }

    /// Returns the configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Returns the actor id of this node's typed operations.
    pub fn actor(&self) -> ActorId {
        self.ops.actor
    }

    /// Returns the node-wide budget of bytes of requests in flight.
    pub(crate) fn in_flight_bytes(&self) -> Arc<tokio::sync::Semaphore> {
        self.in_flight_bytes.clone()
    }

    /// Returns the request and storage metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Returns the writer's counters.
    pub fn commit_stats(&self) -> &haze_storage::CommitStats {
        self.writer.stats()
    }

    /// Returns whether the store failed (then writes are refused with `Unavailable`).
    pub fn has_failed(&self) -> bool {
        self.writer.has_failed()
    }

    /// Installs what this node knows of its cluster, unless it already has a view of the same
    /// cluster at a later epoch (views may arrive out of order). From then on, clients' requests
    /// are routed to the replicas of their keys.
    ///
    /// A view carries the membership change under way, if any: installing it starts what the
    /// change asks of this node (streams, deletions; see docs/repartitioning.md).
    pub fn install_view(self: &Arc<Self>, view: ClusterView) {
        let view = {
            let mut current = self.view.write().unwrap_or_else(PoisonError::into_inner);
            if let Some(old) = current.as_ref() {
                let same_cluster = old.cluster == view.cluster && old.me == view.me;
                let older = same_cluster
                    && old.table.epoch() > view.table.epoch()
                    && !planted!(AcceptStaleView);
                if older || **old == view {
                    return;
                }
                if old.table != view.table {
                    self.log_view(&view);
                }
            } else {
                self.log_view(&view);
            }
            let view = Arc::new(view);
            *current = Some(view.clone());
            view
        };
        crate::cluster::on_view(self, &view);
    }

    fn log_view(&self, view: &ClusterView) {
        tracing::info!(
            cluster = format_args!("{:016x}", view.cluster),
            node = %view.me,
            epoch = view.table.epoch().0,
            partitions = view.table.partitions(),
            replicas = view.table.replication(),
            "cluster view installed"
        );
    }

    /// Returns this node's progress in the change under way, for the controller: its streams
    /// and the partitions it deleted.
    pub fn handoff_reports(&self) -> (Vec<haze_ring::StreamReport>, Vec<haze_ring::CleanReport>) {
        self.handoff.reports()
    }

    /// Returns what is signalled when this node has news for the controller (a stream
    /// completed, a partition deleted): report it without waiting for the next poll.
    pub fn handoff_progressed(&self) -> Arc<tokio::sync::Notify> {
        self.handoff.progressed()
    }

    pub(crate) fn handoff(&self) -> &Handoff {
        &self.handoff
    }

    /// Drops this node's view because its cluster no longer counts it as a member (it was
    /// removed): from then on it refuses clients' data requests, as a node waiting for its
    /// view does, rather than serve copies nobody updates any more.
    pub fn leave_cluster(&self) {
        self.expect_cluster();
        let mut current = self.view.write().unwrap_or_else(PoisonError::into_inner);
        if current.take().is_some() {
            tracing::error!(
                "this node is no longer a member of its cluster (it was removed): it serves no \
                 data any more; stop it, or start it with an empty --data to join again"
            );
        }
    }

    /// Declares that this node belongs to a cluster whose view is on its way: until
    /// [`install_view`](Self::install_view), clients' data requests are refused with
    /// `unavailable` (a write taken now would live outside the ring, where no read finds it).
    pub fn expect_cluster(&self) {
        self.expects_cluster
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Returns whether the node waits for its cluster view (see [`expect_cluster`](Self::expect_cluster)).
    pub(crate) fn awaits_view(&self) -> bool {
        self.expects_cluster
            .load(std::sync::atomic::Ordering::Relaxed)
            && self.view().is_none()
    }

    /// Returns whether clients' data requests are routed (or refused while the view is on its
    /// way) rather than served from this node's store.
    pub(crate) fn routes(&self) -> bool {
        self.view().is_some() || self.awaits_view()
    }

    /// Returns this node's view of its cluster, if it belongs to one.
    pub fn view(&self) -> Option<Arc<ClusterView>> {
        self.view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Returns the cluster's routing table as JSON, for clients that route themselves; `None`
    /// outside a cluster.
    pub(crate) fn routing_table_json(&self) -> Option<Vec<u8>> {
        let view = self.view()?;
        let routing = haze_ring::RoutingTable {
            cluster: view.cluster,
            table: view.table.clone(),
            addrs: view.addrs.clone(),
        };
        serde_json::to_vec(&routing).ok()
    }

    /// Returns the connections to the other nodes.
    pub(crate) fn peers(&self) -> &Peers {
        &self.peers
    }

    /// Returns the store.
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Applies a write here (a merge, or a typed operation with this node's actor id) and
    /// returns the new state once durable.
    ///
    /// # Errors
    ///
    /// As [`merge`](Self::merge) and [`apply`](Self::apply).
    pub async fn write_request(
        &self,
        key: Vec<u8>,
        write: WriteRequest,
    ) -> Result<Value, RequestError> {
        match write {
            WriteRequest::Merge(value) => self.merge(key, value).await,
            WriteRequest::Op(op) => self.apply(key, op).await,
        }
    }

    /// Returns the digests of `keys` from this node's store, off the threads that serve
    /// connections (inline when writes are: in a simulation no other thread may run).
    pub(crate) async fn local_digests(
        self: &Arc<Self>,
        keys: Arc<Vec<Vec<u8>>>,
    ) -> Result<Response, RequestError> {
        let read = move |node: &Node| {
            keys.iter()
                .map(|key| node.digest(key))
                .collect::<Result<Vec<_>, _>>()
                .map(Response::Digests)
        };
        if self.config.inline_writes {
            return read(self);
        }
        let node = self.clone();
        tokio::task::spawn_blocking(move || read(&node))
            .await
            .unwrap_or_else(|e| {
                Err(RequestError::Unavailable(format!(
                    "a digest task failed: {e}"
                )))
            })
    }

    pub(crate) fn check_key(&self, key: &[u8]) -> Result<(), RequestError> {
        let limit = self.config.store.max_key_bytes;
        if key.len() > limit {
            return Err(haze_storage::WriteError::KeyTooLarge {
                size: key.len(),
                limit,
            }
            .into());
        }
        Ok(())
    }

    /// Returns the value of `key`.
    ///
    /// # Errors
    ///
    /// [`RequestError`] if the key is too long or the store cannot read.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>, RequestError> {
        self.check_key(key)?;
        // redb reads are short and never wait for the writer (MVCC), so they run inline.
        Ok(self.store.get(key)?)
    }

    /// Returns the keys of the list named `list`, remembering them when they come along;
    /// `Ok(None)` if the list is unknown and its keys did not come.
    ///
    /// # Errors
    ///
    /// `BadRequest` if `keys` do not hash to `list`.
    pub(crate) fn resolve_list(
        &self,
        list: u64,
        keys: Option<Vec<Vec<u8>>>,
    ) -> Result<Option<Arc<Vec<Vec<u8>>>>, RequestError> {
        let lists = || {
            self.key_lists
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let keys = match keys {
            Some(keys) => {
                if haze_protocol::key_list_id(&keys) != list {
                    return Err(RequestError::BadRequest(
                        "the list id does not match its keys".into(),
                    ));
                }
                let keys = Arc::new(keys);
                lists().insert(list, keys.clone());
                keys
            }
            None => match lists().get(list) {
                Some(keys) => keys,
                None => return Ok(None),
            },
        };
        Ok(Some(keys))
    }

    /// Returns the digest of `key`'s value.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn digest(&self, key: &[u8]) -> Result<Option<u64>, RequestError> {
        self.check_key(key)?;
        Ok(self.store.digest(key)?)
    }

    /// Merges `value` into `key` and returns the merged value, once durable.
    ///
    /// # Errors
    ///
    /// [`RequestError`]: type mismatch, too large, overloaded, unavailable.
    pub async fn merge(&self, key: Vec<u8>, value: Value) -> Result<Value, RequestError> {
        self.write(key, Mutation::Merge(value)).await
    }

    /// Applies a typed operation to `key` with this node's actor id; returns the new value, once
    /// durable.
    ///
    /// # Errors
    ///
    /// As [`merge`](Self::merge), and `Refused` for an operation the value refuses.
    pub async fn apply(&self, key: Vec<u8>, op: TypedOp) -> Result<Value, RequestError> {
        self.write(key, self.ops.mutation(op)).await
    }

    /// Queues a write and returns at once; `reply` is called (on the writer thread) with the
    /// outcome once it is durable. The connection uses this to answer without a task per write.
    pub fn submit_write(
        &self,
        key: Vec<u8>,
        write: WriteRequest,
        reply: impl FnOnce(Result<Value, RequestError>) + Send + 'static,
    ) {
        if let Err(e) = self
            .check_key(&key)
            .and_then(|()| self.check_not_swept(&key))
        {
            return reply(Err(e));
        }
        let mutation = match write {
            WriteRequest::Merge(value) => Mutation::Merge(value),
            WriteRequest::Op(op) => self.ops.mutation(op),
        };
        let reply: haze_storage::Reply =
            Box::new(move |result| reply(result.map_err(RequestError::from)));
        if self.config.inline_writes {
            return reply(self.apply_inline(key, mutation));
        }
        if let Err((reply, e)) = self.writer.submit(key, mutation, reply) {
            reply(Err(haze_storage::WriteError::NotQueued(e)));
        }
    }

    /// Merges several keys: all are queued (in the writer's queue of `priority`) before any is
    /// awaited, so the writer commits them together. Returns one outcome per item, in order.
    pub async fn merge_batch(
        &self,
        items: Vec<(Vec<u8>, Value)>,
        priority: Priority,
    ) -> Vec<Result<Value, RequestError>> {
        let keys: Vec<Vec<u8>> = items.iter().map(|(k, _)| k.clone()).collect();
        let pending: Vec<_> = items
            .into_iter()
            .map(|(key, value)| self.submit(key, Mutation::Merge(value), priority))
            .collect();
        let mut results = Vec::with_capacity(pending.len());
        for submitted in pending {
            results.push(match submitted {
                Ok(outcome) => Self::outcome(outcome).await,
                Err(e) => Err(e),
            });
        }
        for (key, result) in keys.iter().zip(&results) {
            if let Ok(value) = result {
                self.handoff.note_write(self, key, value);
            }
        }
        results
    }

    async fn write(&self, key: Vec<u8>, mutation: Mutation) -> Result<Value, RequestError> {
        // Whether the key's partition streams from here is decided after the commit (see
        // `Handoff::note_write`), so the key is kept: a clone costs little beside a commit.
        let value =
            Self::outcome(self.submit(key.clone(), mutation, Priority::Foreground)?).await?;
        self.handoff.note_write(self, &key, &value);
        Ok(value)
    }

    /// Applies one write on the calling thread (`inline_writes`).
    fn apply_inline(
        &self,
        key: Vec<u8>,
        mutation: Mutation,
    ) -> Result<Value, haze_storage::WriteError> {
        let mut batch = [Write::new(key, mutation)];
        self.store.apply(&mut batch)?;
        if self.store.config().durability == haze_storage::Durability::Sync
            && !planted!(AckBeforeDurable)
        {
            self.store.sync()?;
        }
        let [write] = batch;
        write.outcome.unwrap_or_else(|| {
            Err(haze_storage::WriteError::Store(haze_storage::Error::Io(
                "the store left a write unapplied".into(),
            )))
        })
    }

    fn submit(
        &self,
        key: Vec<u8>,
        mutation: Mutation,
        priority: Priority,
    ) -> Result<Pending, RequestError> {
        self.check_key(&key)?;
        self.check_not_swept(&key)?;
        let (done, outcome) = oneshot::channel();
        if self.config.inline_writes {
            let _ = done.send(self.apply_inline(key, mutation));
            return Ok(outcome);
        }
        let reply = Box::new(move |result| {
            let _ = done.send(result);
        });
        self.writer
            .submit_with(priority, key, mutation, reply)
            .map_err(|(_, e)| RequestError::from(e))?;
        Ok(outcome)
    }

    /// Refuses a write of a key whose partition's leftover copy this node is handing back and
    /// deleting (`cluster/leftovers.rs`): the write goes to another replica instead.
    fn check_not_swept(&self, key: &[u8]) -> Result<(), RequestError> {
        if self.handoff.sweeps(key) {
            return Err(RequestError::NotReplica(
                "this node is handing its copy of the key's partition back to the replicas".into(),
            ));
        }
        Ok(())
    }

    async fn outcome(pending: Pending) -> Result<Value, RequestError> {
        match pending.await {
            Ok(result) => Ok(result?),
            Err(_) => Err(RequestError::Unavailable("the writer stopped".into())),
        }
    }

    /// Stops the writer after the queued writes, making everything durable.
    pub fn shutdown(&self) {
        self.committer.shutdown();
    }
}
