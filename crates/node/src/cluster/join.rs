//! How a node follows its cluster's controller: register, then keep the node's view of the
//! partition table current and report its progress in the change under way. The loop talks to
//! the controller through a [`ControlPlane`]: HTTP in production (`haze serve --controller`),
//! in-process in the simulation, so that both run this loop.

use std::sync::Arc;
use std::time::Duration;

use haze_controller::Outcome;
use haze_controller::api::{Registered, SeenRequest, Status};
use haze_protocol::BoxFuture;
use haze_ring::NodeId;
use tokio_util::sync::CancellationToken;

use super::{Cluster, ClusterView};

/// How often the node asks the controller for the table and the change under way (and reports
/// its progress) when the controller answers at once (one without long polls). A node keeps
/// serving with the view it has while the controller is away.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// The same while a change runs: each step of a move waits for the nodes' next poll.
const MOVING_INTERVAL: Duration = Duration::from_millis(150);

/// How long the controller may hold a request until its state changes (a long poll): each step
/// of a move reaches the nodes as soon as it is taken, and an idle cluster costs one request
/// per node every few seconds. Well under the controller's `--dead-after-secs`.
const LONG_POLL: Duration = Duration::from_secs(2);

/// The least time between two answered polls.
const MIN_GAP: Duration = Duration::from_millis(10);

/// The first and the longest wait between two registration attempts.
const REGISTER_FIRST: Duration = Duration::from_millis(100);
const REGISTER_MAX: Duration = Duration::from_secs(5);

/// Why the controller could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// It answered, and refused (with its stable code, e.g. `unknown_node`).
    #[error("the controller refused: {code}: {message}")]
    Refused {
        /// The stable code.
        code: String,
        /// What it said.
        message: String,
    },
    /// It could not be reached, or its answer was not understood.
    #[error("the controller could not be reached: {0}")]
    Unreachable(String),
}

/// The node's side of the controller's API.
pub trait ControlPlane: Send + Sync + 'static {
    /// Registers the node that others reach at `advertise`.
    fn register<'a>(
        &'a self,
        advertise: &'a str,
    ) -> BoxFuture<'a, Result<Registered, ControlError>>;

    /// Reports the node's progress and returns the controller's state; the controller may
    /// hold the answer up to `report.wait_ms` until its state differs from `report.known`.
    fn seen<'a>(&'a self, report: &'a SeenRequest) -> BoxFuture<'a, Result<Status, ControlError>>;
}

/// What the node says of itself when it registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The address other nodes and clients reach this node at.
    pub advertise: String,
}

impl Cluster {
    /// Follows the controller behind `plane` until the node stops: the node waits for its view
    /// from now on (refusing clients' data requests until it comes), registers (retrying: a
    /// node may start before its controller), then installs every new table the controller
    /// publishes and reports its progress.
    pub fn join(self: &Arc<Self>, plane: Arc<dyn ControlPlane>, registration: Registration) {
        self.expect();
        let cluster = self.clone();
        self.tasks().spawn("controller loop", move |stop| {
            follow(cluster, plane, registration, stop)
        });
    }
}

async fn follow(
    cluster: Arc<Cluster>,
    plane: Arc<dyn ControlPlane>,
    registration: Registration,
    stop: CancellationToken,
) {
    let Some(registered) = register(&*plane, &registration, &stop).await else {
        return;
    };
    if registered.standby {
        // It holds no partition: an empty store is a new node's, with nothing to refill.
        cluster.nothing_to_refill();
    }
    let progressed = cluster.handoff_progressed();
    let mut known: Option<u64> = None;
    // The newest change outcome heard of (`None`: no answer yet, so none is news).
    let mut last_outcome: Option<Option<Outcome>> = None;
    loop {
        let epoch = cluster.view().map(|v| v.table.epoch().0);
        let (streams, cleaned) = cluster.handoff_reports();
        let report = SeenRequest {
            node: registered.node,
            epoch,
            streams,
            cleaned,
            known,
            wait_ms: Some(LONG_POLL.as_millis() as u64),
        };
        let answer = tokio::select! {
            () = stop.cancelled() => return,
            answer = plane.seen(&report) => answer,
            // A stream completed or a partition was deleted: the controller can move on now.
            () = progressed.notified() => continue,
        };
        let mut interval = WATCH_INTERVAL;
        match answer {
            Ok(status) => {
                known = status.version;
                tell_outcome(&status, registered.node, &mut last_outcome);
                if status.transition.is_some() {
                    interval = MOVING_INTERVAL;
                }
                if let Some(tokens) = status.tokens.clone() {
                    cluster.install_tokens(tokens);
                }
                if let Some(view) = view_of(&status, &registered) {
                    cluster.install_view(view);
                }
                if known.is_some() {
                    // It waited for news: ask again at once (after a moment, so that a state
                    // that changed on every request could not make this loop spin).
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(MIN_GAP) => {}
                    }
                    continue;
                }
            }
            Err(ControlError::Refused { code, .. }) if code == "unknown_node" => cluster.leave(),
            Err(e) => tracing::debug!(error = %e, "asking the controller for the table"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
            () = progressed.notified() => {}
        }
    }
}

/// Logs a change that ended without doing what was asked of this node (it was to be removed
/// and stays, or to be added and holds nothing), once, when the controller's status first
/// shows it (outcomes already there at the node's first answer are not news).
fn tell_outcome(status: &Status, node: NodeId, last: &mut Option<Option<Outcome>>) {
    let newest = status.outcomes.last();
    let news = last.as_ref().is_some_and(|seen| seen.as_ref() != newest);
    *last = Some(newest.cloned());
    if let Some(o) = newest
        && news
        && !o.done
        && (o.add.contains(&node) || o.remove.contains(&node))
    {
        tracing::warn!(change = o.change, "{}", o.summary());
    }
}

async fn register(
    plane: &dyn ControlPlane,
    registration: &Registration,
    stop: &CancellationToken,
) -> Option<Registered> {
    let mut delay = REGISTER_FIRST;
    loop {
        match plane.register(&registration.advertise).await {
            Ok(r) => {
                tracing::info!(node = %r.node, cluster = %r.cluster, addr = %registration.advertise, "registered with the controller");
                return Some(r);
            }
            Err(e @ ControlError::Refused { .. }) => {
                tracing::error!(error = %e, "the controller refused to register this node");
                return None;
            }
            Err(e) => tracing::warn!(error = %e, "registering with the controller; retrying"),
        }
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(REGISTER_MAX);
    }
}

/// The node's view from the controller's status, once there is a table. A node the table does
/// not place (standby, or no longer a member) still routes with it: it holds no key, so it
/// takes no write as a replica.
fn view_of(status: &Status, registered: &Registered) -> Option<ClusterView> {
    if status.cluster != registered.cluster {
        tracing::error!(
            expected = %registered.cluster,
            found = %status.cluster,
            "the controller now serves another cluster; keeping the current view"
        );
        return None;
    }
    ClusterView::from_status(status, registered.node)
}
