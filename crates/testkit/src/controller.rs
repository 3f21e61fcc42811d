//! The real controller (`haze-controller`, its HTTP API) serving on loopback in the test's
//! process, and one poll of the loop a node follows it with.
//!
//! A controller's state machine driven by direct calls, without HTTP, is `Control` in
//! `crates/node/tests/common/control.rs`: it is shared with the simulation, which keeps its own
//! adapters on purpose.

use haze_controller::api::SeenRequest;
use haze_controller::{Controller, ControllerClient, MoveLimits};
use haze_node::cluster::ClusterView;
use haze_ring::NodeId;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::node::TestNode;

/// `haze_controller::serve` of a [`Controller`] on a free loopback port; dropped, it shuts down
/// (without waiting: see [`stop`](Self::stop)).
#[derive(Debug)]
pub struct TestController {
    /// Where it serves its API (`host:port`).
    pub addr: String,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestController {
    /// Serves `controller` (opened by the test with [`Controller::open`]) with `limits`.
    pub async fn start(controller: Controller, limits: MoveLimits) -> TestController {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(haze_controller::serve(
            controller,
            limits,
            listener,
            shutdown.clone(),
        ));
        TestController {
            addr,
            shutdown,
            task: Some(task),
        }
    }

    /// A client of its API.
    pub fn client(&self) -> ControllerClient {
        ControllerClient::new(&self.addr)
    }

    /// Shuts down and waits until the controller has stopped.
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

impl Drop for TestController {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// One poll of the loop a node follows its controller with (`haze serve --controller`):
/// `node`, as node `id`, reports what it has and installs the view the controller's answer
/// gives. A failed request is ignored (the next poll retries), as the loop does.
pub async fn poll_controller(client: &ControllerClient, node: &TestNode, id: NodeId) {
    let (streams, cleaned) = node.node.handoff_reports();
    let report = SeenRequest {
        node: id,
        epoch: node.node.view().map(|v| v.table.epoch().0),
        streams,
        cleaned,
        known: None,
        wait_ms: None,
    };
    let Ok(status) = client.seen(&report).await else {
        return;
    };
    if let Some(view) = ClusterView::from_status(&status, id) {
        node.node.install_view(view);
    }
}
