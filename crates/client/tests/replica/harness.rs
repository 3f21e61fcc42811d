//! A node on loopback that can be wiped, and replicas in a temporary directory.

use std::sync::Arc;

use haze_client::{Client, Replica};
use haze_crdt::{ActorId, ManualClock};
use haze_node::{Node, NodeConfig};
use haze_storage::MemStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A node whose store is in memory: `wipe` replaces it with an empty one (a lost disk).
pub struct TestNode {
    pub addr: String,
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
            ActorId::new(0x0de0),
            Arc::new(ManualClock::new(1_000)),
        )
        .unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(haze_node::serve(node, listener, http, shutdown.clone()));
        TestNode {
            addr,
            shutdown,
            task: Some(task),
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.addr).await.unwrap()
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

pub fn replica(dir: &std::path::Path, name: &str, actor: u64) -> Replica {
    Replica::open(
        &dir.join(name),
        ActorId::new(actor),
        Arc::new(ManualClock::new(5_000)),
    )
    .unwrap()
}
