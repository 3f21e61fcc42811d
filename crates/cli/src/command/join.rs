//! How `haze serve --controller` joins its cluster: register, remember the cluster, then keep
//! the node's view of the partition table current.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use haze_controller::api::{Registered, SeenRequest, Status};
use haze_controller::{ClientError, ControllerClient};
use haze_node::Node;
use haze_node::cluster::ClusterView;
use tokio_util::sync::CancellationToken;

use crate::command::serve::Joining;

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

/// The file in the data directory that names the cluster the data belongs to.
const CLUSTER_FILE: &str = "cluster-id";

/// Registers with the controller (retrying: a node may start before its controller), checks
/// that the data directory belongs to the controller's cluster, then installs every new table
/// the controller publishes, until `shutdown`.
pub(crate) async fn join_cluster(joining: Joining, node: Arc<Node>, shutdown: CancellationToken) {
    let client = ControllerClient::new(&joining.controller);
    let Some(registered) = register(&client, &joining, &shutdown).await else {
        return;
    };
    if let Err(e) = claim_data(&joining.data, registered.cluster.0) {
        tracing::error!(
            error = %e,
            "this node will not join: its data directory belongs to another cluster"
        );
        return;
    }
    let progressed = node.handoff_progressed();
    let mut known: Option<u64> = None;
    loop {
        let epoch = node.view().map(|v| v.table.epoch().0);
        let (streams, cleaned) = node.handoff_reports();
        let report = SeenRequest {
            node: registered.node,
            epoch,
            streams,
            cleaned,
            known,
            wait_ms: Some(LONG_POLL.as_millis() as u64),
        };
        let answer = tokio::select! {
            () = shutdown.cancelled() => return,
            answer = client.seen(&report) => answer,
            // A stream completed or a partition was deleted: the controller can move on now.
            () = progressed.notified() => continue,
        };
        let mut interval = WATCH_INTERVAL;
        match answer {
            Ok(status) => {
                known = status.version;
                if status.transition.is_some() {
                    interval = MOVING_INTERVAL;
                }
                if let Some(view) = view_of(&status, &registered) {
                    node.install_view(view);
                }
                if known.is_some() {
                    // It waited for news: ask again at once (after a moment, so that a state
                    // that changed on every request could not make this loop spin).
                    tokio::time::sleep(MIN_GAP).await;
                    continue;
                }
            }
            Err(ClientError::Refused(e)) if e.error == "unknown_node" => node.leave_cluster(),
            Err(e) => tracing::debug!(error = %e, "asking the controller for the table"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
            () = progressed.notified() => {}
        }
    }
}

async fn register(
    client: &ControllerClient,
    joining: &Joining,
    shutdown: &CancellationToken,
) -> Option<Registered> {
    let mut delay = Duration::from_millis(100);
    loop {
        match client.register(&joining.advertise).await {
            Ok(r) => {
                tracing::info!(node = %r.node, cluster = %r.cluster, controller = %joining.controller, addr = %joining.advertise, "registered with the controller");
                return Some(r);
            }
            Err(e @ ClientError::Refused(_)) => {
                tracing::error!(error = %e, "the controller refused to register this node");
                return None;
            }
            Err(e) => tracing::warn!(error = %e, "registering with the controller; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
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
    let table = status.table.clone()?;
    Some(ClusterView {
        cluster: status.cluster.0,
        me: registered.node,
        table,
        addrs: status
            .members
            .iter()
            .map(|m| (m.id, m.addr.clone()))
            .collect(),
        transition: status.transition.clone(),
    })
}

/// Records in the data directory which cluster its data belongs to, or checks that it is
/// `cluster`: a node must not bring one cluster's data into another.
fn claim_data(dir: &Path, cluster: u64) -> std::io::Result<()> {
    let path = dir.join(CLUSTER_FILE);
    let ours = format!("{cluster:016x}");
    match std::fs::read_to_string(&path) {
        Ok(found) if found.trim() == ours => Ok(()),
        Ok(found) => Err(std::io::Error::other(format!(
            "{} names cluster {}, but the controller runs cluster {ours}; \
             start this node with an empty --data to join that cluster",
            path.display(),
            found.trim()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let temp = dir.join(format!("{CLUSTER_FILE}.tmp"));
            std::fs::write(&temp, format!("{ours}\n"))?;
            std::fs::File::open(&temp)?.sync_all()?;
            std::fs::rename(&temp, &path)?;
            std::fs::File::open(dir)?.sync_all()
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_directory_stays_with_its_cluster() {
        let dir = tempfile::tempdir().unwrap();
        claim_data(dir.path(), 7).unwrap();
        claim_data(dir.path(), 7).unwrap();
        let err = claim_data(dir.path(), 8).unwrap_err();
        assert!(err.to_string().contains("0000000000000007"), "{err}");
    }
}
