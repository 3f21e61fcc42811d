//! The cluster layer: how a node that belongs to a cluster routes, replicates and repairs. It
//! sits above the local replica ([`crate::replica`]) and depends only on it.
//!
//! A node learns its [`ClusterView`] (the cluster's id, its own node id, the partition table and
//! every member's address) from the controller ([`join`]: the loop that follows it, behind a
//! [`ControlPlane`]), or a test installs it ([`Cluster::install_view`]). Without a view, a node
//! serves every request from its own store, as a single node does.
//!
//! With a view:
//!
//! * `disposition` — one pure function decides, from the view, the key, the caller's role and
//!   the operation, whether a request is served here, coordinated here, routed, passed on to a
//!   partition's new replicas, or refused.
//! * `route` — a client's request for a key goes to the key's replicas in table order: the
//!   primary first, the next replica when one does not answer within the forward timeout. The
//!   replica that takes a write *coordinates* it (`replicate`): applies it durably, then copies
//!   the merged state to the other replicas and waits for as many acknowledgements as the
//!   [`AckPolicy`] asks.
//! * `peers` — one pipelined connection per other node, opened on first use, whose hello names
//!   the cluster (a node of another cluster is refused).
//! * `handoff` — repartitioning on this node: streaming partitions to their new replicas,
//!   forwarding writes meanwhile (a hook on the replica's one write path), deleting them once
//!   they moved.
//! * `anti_entropy` — every node compares its bucket digests with each node it shares partitions
//!   with and exchanges the keys that differ, both ways.
//! * `leftovers` — after each anti-entropy round, copies of partitions this node is no replica
//!   of (and no move involves) are handed back to a replica and deleted.
//!
//! Every long-running task of this layer is started by the node's [`Supervisor`].

mod anti_entropy;
mod disposition;
mod error;
mod handoff;
pub mod join;
mod leftovers;
mod peers;
mod replicate;
mod route;
mod view;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

use haze_crdt::Value;
use haze_protocol::{Request, Response, Role};

pub use crate::config::AckPolicy;
use crate::error::RequestError;
use crate::metrics::Metrics;
use crate::replica::{Replica, WriteHooks};
use crate::supervisor::Supervisor;
pub use anti_entropy::{RoundReport, sync_round};
pub(crate) use disposition::{Disposition, Operation, dispose};
pub use error::ClusterError;
pub(crate) use handoff::Handoff;
pub use join::{ControlError, ControlPlane, Registration};
pub use leftovers::hand_back_leftovers;
pub use peers::PeerError;

/// Node `id` of `view`, over this node's connection to it.
pub(crate) fn peer(
    cluster: &Cluster,
    view: &ClusterView,
    id: haze_ring::NodeId,
) -> Result<peers::Peer, ClusterError> {
    peers::Peer::of(&cluster.peers, view, id)
}
pub(crate) use peers::Peers;
pub(crate) use route::{Routing, route};
pub use view::ClusterView;

/// What a node that refills an empty store answers a peer's read (anti-entropy knows it: the
/// refilling node's own round pushes what it holds).
pub(crate) const REFILLING: &str =
    "refilling an empty store from the other replicas: ask another replica";

/// The settings of the cluster layer (from `NodeConfig`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) ack: AckPolicy,
    pub(crate) read_quorum: crate::config::ReadQuorum,
    pub(crate) anti_entropy_interval: Duration,
}

/// A node's cluster layer: its view, its peers, its part in the change under way.
pub struct Cluster {
    replica: Arc<Replica>,
    metrics: Arc<Metrics>,
    settings: Settings,
    tasks: Arc<Supervisor>,
    /// The cluster this node belongs to, once known: then requests are routed. When the node
    /// leaves its cluster, the view it dropped stays here as a floor: a view of that cluster
    /// no newer than it (a delayed answer of the controller) is never installed again.
    view: RwLock<Option<Arc<ClusterView>>>,
    left: RwLock<Option<Arc<ClusterView>>>,
    /// Set when the node is to belong to a cluster: until its view comes, it refuses clients'
    /// data requests rather than keep data outside the ring.
    expects: AtomicBool,
    peers: Peers,
    handoff: Handoff,
    /// The cluster's client tokens, as the controller last sent them.
    tokens: crate::security::Tokens,
    /// Set while this node, started on an empty store (a new or wiped disk) with a read quorum
    /// above one, has not yet completed an anti-entropy round with every node it shares
    /// partitions with: until then its copies may lack writes the other replicas acknowledged
    /// for it, so it does not count as an answer of a read quorum (a peer's read is refused,
    /// its own copy is not asked).
    refilling: AtomicBool,
    /// Whether the node refills when anti-entropy starts (without anti-entropy it never would).
    refills: AtomicBool,
    /// Where the refill is marked durably, if anywhere (`NodeConfig::refill_marker`).
    refill_marker: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The cluster layer's hooks on the replica's writes: a partition being handed back refuses
/// them, and a partition streaming from this node forwards what is committed to it.
struct Hooks(Weak<Cluster>);

impl WriteHooks for Hooks {
    fn admit(&self, key: &[u8]) -> Result<(), RequestError> {
        match self.0.upgrade() {
            Some(cluster) if cluster.handoff.sweeps(key) => Err(RequestError::NotReplica(
                "this node is handing its copy of the key's partition back to the replicas".into(),
            )),
            _ => Ok(()),
        }
    }

    fn committed(&self, key: &[u8], value: &Value) {
        if let Some(cluster) = self.0.upgrade() {
            cluster.handoff.note_write(&cluster, key, value);
        }
    }
}

impl Cluster {
    /// The cluster layer over `replica`, hooked into its writes.
    pub(crate) fn new(
        replica: Arc<Replica>,
        metrics: Arc<Metrics>,
        settings: Settings,
        tasks: Arc<Supervisor>,
        peers: Peers,
        refill_marker: Option<std::path::PathBuf>,
    ) -> Arc<Cluster> {
        // An empty store (a new node, or one whose disk was lost), or a refill that a restart
        // interrupted (see `refilling`): the node refills once anti-entropy starts.
        let empty = replica
            .store()
            .bucket_digests()
            .is_ok_and(|d| d.iter().all(|b| *b == 0));
        let interrupted = refill_marker.as_ref().is_some_and(|m| m.exists());
        let refills = (empty || interrupted) && !settings.read_quorum.is_one();
        let cluster = Arc::new(Cluster {
            replica,
            metrics,
            settings,
            tasks,
            view: RwLock::new(None),
            left: RwLock::new(None),
            expects: AtomicBool::new(false),
            peers,
            handoff: Handoff::default(),
            tokens: crate::security::Tokens::default(),
            refilling: AtomicBool::new(false),
            refills: AtomicBool::new(refills),
            refill_marker,
        });
        cluster
            .replica
            .writes()
            .hook(Arc::new(Hooks(Arc::downgrade(&cluster))));
        cluster
    }

    pub(crate) fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    /// Returns whether this node's copies count as answers of a read quorum: not while it
    /// refills an empty store (a new or wiped disk) from the other replicas.
    pub(crate) fn serves_reads(&self) -> bool {
        !self.refilling.load(Ordering::Acquire)
    }

    /// Refuses a peer's read while this node refills (see [`serves_reads`](Self::serves_reads)):
    /// the router asks another replica. `None` when it serves reads.
    pub(crate) fn refuse_peer_read(&self) -> Option<RequestError> {
        (!self.serves_reads()).then(|| RequestError::Unavailable(REFILLING.into()))
    }

    /// Records that this node has nothing to refill (the controller registered it on standby:
    /// it holds no partition), whether or not anti-entropy started already.
    pub(crate) fn nothing_to_refill(&self) {
        self.refills.store(false, Ordering::Release);
        self.refilled();
        if let Some(marker) = &self.refill_marker {
            let _ = std::fs::remove_file(marker);
        }
    }

    /// Records that an anti-entropy round reached every node this node shares partitions with:
    /// its copies hold what they hold, and count as a read quorum's answers from now on.
    pub(crate) fn refilled(&self) {
        if self.refilling.swap(false, Ordering::AcqRel) {
            if let Some(marker) = &self.refill_marker
                && let Err(e) = std::fs::remove_file(marker)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(marker = %marker.display(), error = %e, "could not unmark the refill");
            }
            tracing::info!("refilled from the other replicas: this node answers reads again");
        }
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    pub(crate) fn tasks(&self) -> &Supervisor {
        &self.tasks
    }

    pub(crate) fn peers(&self) -> &Peers {
        &self.peers
    }

    pub(crate) fn handoff(&self) -> &Handoff {
        &self.handoff
    }

    /// The cluster's client tokens as this node knows them.
    pub(crate) fn tokens(&self) -> &crate::security::Tokens {
        &self.tokens
    }

    /// Installs the cluster's token table (the controller sends it with every answer): a token
    /// revoked there is refused here from the next request on.
    pub fn install_tokens(&self, table: haze_controller::tokens::TokenTable) {
        self.tokens.install(table);
    }

    /// Returns this node's view of its cluster, if it belongs to one.
    pub fn view(&self) -> Option<Arc<ClusterView>> {
        self.view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Installs what this node knows of its cluster, unless it already has a view of the same
    /// cluster at a later epoch (views may arrive out of order), and starts what the change
    /// under way asks of this node (streams, deletions; docs/repartitioning.md).
    pub fn install_view(self: &Arc<Self>, view: ClusterView) {
        let view = {
            let mut current = self.view.write().unwrap_or_else(PoisonError::into_inner);
            let left = self
                .left
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let same = |old: &ClusterView| old.cluster == view.cluster && old.me == view.me;
            if let Some(left) = left
                && same(&left)
                && left.table.epoch() >= view.table.epoch()
                && !planted!(AcceptStaleView)
            {
                return; // what the node had when it left, or older
            }
            if let Some(old) = current.as_ref() {
                let older = same(old)
                    && old.table.epoch() > view.table.epoch()
                    && !planted!(AcceptStaleView);
                if older {
                    return;
                }
                if **old == view {
                    // Nothing new; but what the change asks may need starting again (a stream
                    // that completed was reopened by a forwarded write that failed since, and
                    // the controller, waiting for it, will not change the view).
                    let same = old.clone();
                    drop(current);
                    handoff::on_view(self, &same);
                    return;
                }
                if old.table != view.table {
                    log_view(&view, self.settings.read_quorum);
                }
            } else {
                log_view(&view, self.settings.read_quorum);
            }
            let view = Arc::new(view);
            *current = Some(view.clone());
            view
        };
        handoff::on_view(self, &view);
    }

    /// Drops this node's view because its cluster no longer counts it as a member (it was
    /// removed): from then on it refuses clients' data requests, as a node waiting for its
    /// view does, rather than serve copies nobody updates any more.
    pub fn leave(&self) {
        self.expect();
        let mut current = self.view.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(dropped) = current.take() {
            *self.left.write().unwrap_or_else(PoisonError::into_inner) = Some(dropped);
            tracing::error!(
                "this node is no longer a member of its cluster (it was removed): it serves no \
                 data any more; stop it, or start it with an empty --data to join again"
            );
        }
    }

    /// Declares that this node belongs to a cluster whose view is on its way: until
    /// [`install_view`](Self::install_view), clients' data requests are refused with
    /// `unavailable` (a write taken now would live outside the ring, where no read finds it).
    pub fn expect(&self) {
        self.expects.store(true, Ordering::Relaxed);
    }

    /// Returns whether the node waits for its cluster view (see [`expect`](Self::expect)).
    pub(crate) fn awaits_view(&self) -> bool {
        self.expects() && self.view().is_none()
    }

    /// Returns whether the node belongs to a cluster (its view may not have come yet). A caller
    /// that read the view already asks this rather than [`awaits_view`](Self::awaits_view),
    /// which reads the view again: a view installed between the two reads would let a request
    /// be served from this node's store, outside the ring.
    pub(crate) fn expects(&self) -> bool {
        self.expects.load(Ordering::Relaxed)
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

    /// Starts anti-entropy: a round every `anti_entropy_interval` while the node has a view,
    /// each followed by the hand-back of leftover copies, until the node stops.
    pub fn start_anti_entropy(self: &Arc<Self>) {
        if self.refills.swap(false, Ordering::AcqRel) {
            self.refilling.store(true, Ordering::Release);
            if let Some(marker) = &self.refill_marker
                && let Err(e) = std::fs::File::create(marker).and_then(|f| f.sync_all())
            {
                tracing::warn!(marker = %marker.display(), error = %e, "could not mark the refill");
            }
            tracing::info!("refilling from the other replicas before answering reads");
        }
        let cluster = self.clone();
        self.tasks.spawn_restarting("anti-entropy", move |stop| {
            anti_entropy::run(cluster.clone(), stop)
        });
    }

    /// Answers a client's data request from outside the binary protocol (the HTTP API): routed
    /// in a cluster, refused while the node waits for its table, `None` on a single node.
    pub(crate) async fn answer(
        self: &Arc<Self>,
        request: Request,
    ) -> Result<Option<Response>, RequestError> {
        let view = self.view();
        match dispose(
            view.as_deref(),
            self.expects(),
            self.settings.read_quorum.is_one(),
            Role::Client,
            &Operation::of(&request),
        ) {
            Disposition::Route { stale: _ } => {
                let view = view.expect("routing needs a view");
                Ok(Some(
                    route(self.clone(), view, request, Routing::Replicas).await,
                ))
            }
            Disposition::Refuse(e) => Err(e),
            _ => Ok(None),
        }
    }
}

fn log_view(view: &ClusterView, read_quorum: crate::config::ReadQuorum) {
    if let Err(e) = read_quorum.check(view.table.replication()) {
        tracing::error!(error = %e, "the read quorum cannot be met");
    }
    tracing::info!(
        cluster = format_args!("{:016x}", view.cluster),
        node = %view.me,
        epoch = view.table.epoch().0,
        partitions = view.table.partitions(),
        replicas = view.table.replication(),
        "cluster view installed"
    );
}
