//! A node on loopback that can be wiped, and replicas in a temporary directory.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use haze_client::{Client, Replica};
use haze_crdt::{ActorId, ManualClock};
use haze_node::{Node, NodeConfig};
use haze_storage::MemStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The actor id of the test node: its typed operations are made with it.
pub const NODE_ACTOR: u64 = 0x0de0;

/// A node whose store is in memory: `wipe` replaces it with an empty one (a lost disk).
pub struct TestNode {
    pub addr: String,
    node: Arc<Node>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestNode {
    pub async fn start() -> TestNode {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let config = NodeConfig::default();
        let store = Arc::new(MemStore::new(config.store));
        let node = Node::start(
            config,
            store,
            ActorId::new(NODE_ACTOR),
            Arc::new(ManualClock::new(1_000)),
        )
        .unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(haze_node::serve(
            node.clone(),
            listener,
            http,
            shutdown.clone(),
        ));
        TestNode {
            addr,
            node,
            shutdown,
            task: Some(task),
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.addr).await.unwrap()
    }

    /// Reads `key` from the node's store, in process.
    pub fn get(&self, key: &[u8]) -> Option<haze_crdt::Value> {
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
    pub async fn settle(&self, total: u64, open: u64) {
        for _ in 0..10_000 {
            let (t, o) = self.connections();
            if t >= total && o <= open {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        panic!(
            "the node did not close its connections: {:?}",
            self.connections()
        );
    }

    /// Stops the node and starts an empty one (new address).
    pub async fn wipe(mut self) -> TestNode {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        TestNode::start().await
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A directory for replica files: in memory (`/dev/shm`) where there is one, since every edit
/// syncs its file to disk and the property test makes thousands.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().unwrap()
}

pub fn replica(dir: &std::path::Path, name: &str, actor: u64) -> Replica {
    Replica::open(
        &dir.join(name),
        ActorId::new(actor),
        Arc::new(ManualClock::new(5_000)),
    )
    .unwrap()
}
