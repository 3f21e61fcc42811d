//! The node the replicas sync with (`haze_testkit::TestNode`, on an empty memory store), a lost
//! disk, and replicas in a temporary directory.

use std::sync::Arc;

use haze_client::Replica;
use haze_crdt::{ActorId, ManualClock};
use haze_node::NodeConfig;
use haze_testkit::TestNode;

/// The actor id of the test node: its typed operations are made with it.
pub const NODE_ACTOR: u64 = haze_testkit::node::DEFAULT_ACTOR;

/// Starts a node on an empty memory store, as `NODE_ACTOR`.
pub async fn start_node() -> TestNode {
    TestNode::start(NodeConfig::default()).await
}

/// Stops `node` and starts an empty one (new address): its store's disk is gone.
pub async fn wipe(node: TestNode) -> TestNode {
    node.stop().await;
    start_node().await
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
