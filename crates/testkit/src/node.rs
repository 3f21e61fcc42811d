//! A node in the test's process, serving the binary protocol and HTTP on loopback, and several
//! of them for a cluster.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use haze_crdt::{ActorId, ManualClock, Value};
use haze_node::{Node, NodeConfig};
use haze_storage::{MemStore, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The actor id of a node started by [`TestNode::start`] or [`TestNode::start_with`]: its typed
/// operations are made with it.
pub const DEFAULT_ACTOR: u64 = 0x0de0;

/// A node serving on loopback (the binary protocol at `addr`, HTTP at `http`), its clock a
/// [`ManualClock`] at 1000 ms; dropped, it shuts down (without waiting: see
/// [`stop`](Self::stop)).
#[derive(Debug)]
pub struct TestNode {
    /// Where it serves the binary protocol.
    pub addr: SocketAddr,
    /// Where it serves HTTP.
    pub http: SocketAddr,
    /// The node itself, to look at or drive in process.
    pub node: Arc<Node>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestNode {
    /// Starts a node on an empty [`MemStore`] (with `config.store`), as [`DEFAULT_ACTOR`].
    pub async fn start(config: NodeConfig) -> TestNode {
        let store = MemStore::new(config.store);
        TestNode::start_with(config, Arc::new(store)).await
    }

    /// Starts a node on `store`, as [`DEFAULT_ACTOR`].
    pub async fn start_with(config: NodeConfig, store: Arc<dyn Store>) -> TestNode {
        TestNode::start_as(config, store, ActorId::new(DEFAULT_ACTOR)).await
    }

    /// Starts a node with its own actor id (nodes of one cluster must not share one).
    pub async fn start_as(config: NodeConfig, store: Arc<dyn Store>, actor: ActorId) -> TestNode {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr, http) = (
            listener.local_addr().unwrap(),
            http_listener.local_addr().unwrap(),
        );
        let node = Node::start(config, store, actor, Arc::new(ManualClock::new(1_000))).unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(haze_node::serve(
            node.clone(),
            listener,
            http_listener,
            shutdown.clone(),
        ));
        TestNode {
            addr,
            http,
            node,
            shutdown,
            task: Some(task),
        }
    }

    /// A client of the node, connected.
    pub async fn client(&self) -> haze_client::Client {
        haze_client::Client::connect(&self.addr.to_string())
            .await
            .unwrap()
    }

    /// Reads `key` from the node's store, in process.
    pub fn get(&self, key: &[u8]) -> Option<Value> {
        self.node.get(key).unwrap()
    }

    /// Returns how many connections the node accepted, and how many are open.
    pub fn connections(&self) -> (u64, u64) {
        let metrics = self.node.metrics();
        (
            metrics.connections_total.load(Ordering::Relaxed),
            metrics.connections_open.load(Ordering::Relaxed),
        )
    }

    /// Waits until the node accepted `total` connections and only `open` remain. A connection
    /// ends once its requests in flight have answered, or at its first answer that fails to go
    /// out: with at most two requests in flight (a sync's two merge requests), the one whose
    /// answer failed has finished too, so whatever reached the node whole is merged by then.
    ///
    /// # Panics
    ///
    /// If they did not settle within 10,000 waits of 1 ms (a hang guard).
    pub async fn settle(&self, total: u64, open: u64) {
        for _ in 0..10_000 {
            let (t, o) = self.connections();
            if t >= total && o <= open {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!(
            "the node did not close its connections: {:?}",
            self.connections()
        );
    }

    /// Shuts down and waits until the node has stopped.
    ///
    /// # Panics
    ///
    /// If serving failed or panicked.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts `n` nodes with `config`, one after the other, each on its own empty [`MemStore`] (with
/// [`StoreConfig::default`](haze_storage::StoreConfig::default)) and with actor ids
/// `first_actor`, `first_actor + 1`, …. Returns the nodes, their stores (to look at what a node
/// holds) and their protocol addresses, in the same order; no view is installed.
pub async fn start_nodes(
    n: u64,
    config: &NodeConfig,
    first_actor: u64,
) -> (Vec<TestNode>, Vec<Arc<MemStore>>, Vec<String>) {
    let (mut nodes, mut stores) = (Vec::new(), Vec::new());
    for i in 0..n {
        let store = Arc::new(MemStore::new(haze_storage::StoreConfig::default()));
        let actor = ActorId::new(first_actor + i);
        nodes.push(TestNode::start_as(config.clone(), store.clone(), actor).await);
        stores.push(store);
    }
    let addrs = nodes.iter().map(|n| n.addr.to_string()).collect();
    (nodes, stores, addrs)
}
