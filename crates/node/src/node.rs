//! The node: its two layers (the local replica, and the cluster layer above it), its metrics,
//! its limits, and the owner of its background tasks. What every front end (binary protocol,
//! HTTP) holds.

use std::sync::Arc;

use haze_crdt::{ActorId, PhysicalClock, Value};
use haze_protocol::TypedOp;
use haze_storage::{Priority, Store};

use crate::cluster::{Cluster, ClusterView, Peers, Settings};
use crate::config::NodeConfig;
use crate::error::RequestError;
use crate::metrics::Metrics;
use crate::replica::{Replica, WriteRequest, Writes};
use crate::supervisor::Supervisor;

/// A node's state, shared by all connections.
pub struct Node {
    config: NodeConfig,
    replica: Arc<Replica>,
    cluster: Arc<Cluster>,
    metrics: Arc<Metrics>,
    tasks: Arc<Supervisor>,
    /// The bytes of requests in flight on all connections together.
    in_flight_bytes: Arc<tokio::sync::Semaphore>,
    /// Live updates: who is subscribed to what.
    live: Arc<crate::live::Hub>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("actor", &self.replica.actor())
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
        let replica = Arc::new(Replica::open(store, actor, clock, config.inline_writes)?);
        let live = Arc::new(crate::live::Hub::default());
        replica
            .writes()
            .hook(Arc::new(crate::live::LiveHook(live.clone())));
        let node_in_flight = config.max_node_in_flight_bytes.clamp(
            config.max_frame_bytes.max(1),
            tokio::sync::Semaphore::MAX_PERMITS,
        );
        let largest_item = config
            .store
            .max_value_bytes
            .saturating_add(config.store.max_key_bytes)
            .saturating_add(64);
        let metrics = Arc::new(Metrics::default());
        let tasks = Arc::new(Supervisor::default());
        // Other nodes are dialled over TLS with this node's certificate when it has one: they
        // take a peer only from a node of the cluster's CA.
        let dial: Arc<dyn haze_protocol::Dial> = match &config.security.peer_tls {
            Some(tls) => Arc::new(haze_tls::TlsDial::new(config.dial.clone(), tls.clone())),
            None => config.dial.clone(),
        };
        let peers = Peers::new(
            dial,
            config.forward_timeout,
            largest_item,
            metrics.copies_failed.clone(),
            tasks.clone(),
        );
        let settings = Settings {
            ack: config.ack,
            read_quorum: config.read_quorum,
            anti_entropy_interval: config.anti_entropy_interval,
        };
        let cluster = Cluster::new(
            replica.clone(),
            metrics.clone(),
            settings,
            tasks.clone(),
            peers,
            config.refill_marker.clone(),
        );
        Ok(Arc::new(Node {
            config,
            replica,
            cluster,
            metrics,
            tasks,
            in_flight_bytes: Arc::new(tokio::sync::Semaphore::new(node_in_flight)),
            live,
        }))
    }

    /// Returns the live updates' hub: subscribe to hear of committed writes.
    pub fn live(&self) -> &Arc<crate::live::Hub> {
        &self.live
    }

    /// Returns the configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Returns the local replica (the lower layer).
    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    /// Returns the cluster layer.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Returns the write handle: every write to this node's store goes through it.
    pub fn writes(&self) -> &Writes {
        self.replica.writes()
    }

    /// Returns the owner of the node's background tasks (for status: what runs).
    pub fn tasks(&self) -> &Supervisor {
        &self.tasks
    }

    /// Returns the actor id of this node's typed operations.
    pub fn actor(&self) -> ActorId {
        self.replica.actor()
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
        self.replica.commit_stats()
    }

    /// Returns whether the store failed (then writes are refused with `Unavailable`).
    pub fn has_failed(&self) -> bool {
        self.replica.has_failed()
    }

    /// Installs what this node knows of its cluster (see [`Cluster::install_view`]).
    pub fn install_view(&self, view: ClusterView) {
        self.cluster.install_view(view);
    }

    /// Returns this node's progress in the change under way, for the controller.
    pub fn handoff_reports(&self) -> (Vec<haze_ring::StreamReport>, Vec<haze_ring::CleanReport>) {
        self.cluster.handoff_reports()
    }

    /// Returns what is signalled when this node has news for the controller.
    pub fn handoff_progressed(&self) -> Arc<tokio::sync::Notify> {
        self.cluster.handoff_progressed()
    }

    /// Drops this node's view: it was removed from its cluster (see [`Cluster::leave`]).
    pub fn leave_cluster(&self) {
        self.cluster.leave();
    }

    /// Declares that this node belongs to a cluster whose view is on its way (see
    /// [`Cluster::expect`]).
    pub fn expect_cluster(&self) {
        self.cluster.expect();
    }

    /// Returns whether clients' data requests are routed (or refused while the view is on its
    /// way) rather than served from this node's store.
    pub(crate) fn routes(&self) -> bool {
        self.cluster.view().is_some() || self.cluster.awaits_view()
    }

    /// Returns this node's view of its cluster, if it belongs to one.
    pub fn view(&self) -> Option<Arc<ClusterView>> {
        self.cluster.view()
    }

    /// Returns the value of `key` in this node's store.
    ///
    /// # Errors
    ///
    /// [`RequestError`] if the key is too long or the store cannot read.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>, RequestError> {
        self.replica.get(key)
    }

    /// Returns the encoding of `key`'s value in this node's store, not decoded: for an answer
    /// that carries it as it is.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn get_encoded(&self, key: &[u8]) -> Result<Option<Vec<u8>>, RequestError> {
        self.replica.get_encoded(key)
    }

    /// Returns the digest of `key`'s value in this node's store.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn digest(&self, key: &[u8]) -> Result<Option<u64>, RequestError> {
        self.replica.digest(key)
    }

    /// Merges `value` into `key` here and returns the merged value, once durable.
    ///
    /// # Errors
    ///
    /// [`RequestError`]: type mismatch, too large, overloaded, unavailable.
    pub async fn merge(&self, key: Vec<u8>, value: Value) -> Result<Value, RequestError> {
        self.writes()
            .write(key, WriteRequest::Merge(value), Priority::Foreground)
            .await
    }

    /// Applies a typed operation to `key` here with this node's actor id; returns the new
    /// value, once durable.
    ///
    /// # Errors
    ///
    /// As [`merge`](Self::merge), and `Refused` for an operation the value refuses.
    pub async fn apply(&self, key: Vec<u8>, op: TypedOp) -> Result<Value, RequestError> {
        self.writes()
            .write(key, WriteRequest::Op(op), Priority::Foreground)
            .await
    }

    /// Starts the background scrub: every stored value verified against its checksum, at
    /// `bytes_per_sec`, the ring walked again a minute after each pass. A corrupt value is
    /// quarantined by the store (and repaired from another replica by anti-entropy or read
    /// repair); each is logged here with its key.
    pub fn start_scrub(&self, bytes_per_sec: u64) {
        /// The pause between two passes of the ring (and the most an empty store is looked at).
        const BETWEEN_PASSES: std::time::Duration = std::time::Duration::from_secs(60);
        let store = self.replica.store().clone();
        self.tasks.spawn("scrub", move |stop| async move {
            let mut scrubber = Arc::new(std::sync::Mutex::new(
                haze_storage::Scrubber::new(bytes_per_sec),
            ));
            loop {
                let (step_store, step_scrubber) = (store.clone(), scrubber.clone());
                let step = tokio::task::spawn_blocking(move || {
                    step_scrubber
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .step(&*step_store)
                })
                .await;
                let wait = match step {
                    Ok(Ok((step, wait))) => {
                        for bad in &step.corrupt {
                            tracing::error!(key = %String::from_utf8_lossy(&bad.key), "the scrub found a corrupt value: quarantined until a replica's copy repairs it");
                        }
                        if step.wrapped { wait.max(BETWEEN_PASSES) } else { wait }
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "scrub step failed; trying again later");
                        BETWEEN_PASSES
                    }
                    Err(_) => {
                        // The step panicked (a bug, logged by the runtime): start over.
                        scrubber = Arc::new(std::sync::Mutex::new(
                            haze_storage::Scrubber::new(bytes_per_sec),
                        ));
                        BETWEEN_PASSES
                    }
                };
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        });
    }

    /// Stops the node's background tasks and waits for them to end, then closes its
    /// connections to other nodes.
    pub async fn stop_tasks(&self) {
        self.tasks.stop().await;
        self.cluster.peers().close();
    }

    /// Stops the writer after the queued writes, making everything durable.
    pub fn shutdown(&self) {
        self.replica.shutdown();
    }
}
