//! How `haze serve --controller` reaches its controller: the node's control plane over the
//! controller's HTTP API (the loop that follows the controller is the node's own:
//! `haze_node::cluster::join`). Registering also claims the data directory for the cluster.

use std::path::{Path, PathBuf};

use haze_controller::api::{Registered, SeenRequest, Status};
use haze_controller::{ClientError, ControllerClient};
use haze_node::cluster::{ControlError, ControlPlane};
use haze_protocol::BoxFuture;

/// The file in the data directory that names the cluster the data belongs to.
const CLUSTER_FILE: &str = "cluster-id";

/// The controller at an address, over HTTP, for a node whose data is in `data`.
pub(crate) struct HttpControlPlane {
    client: ControllerClient,
    data: PathBuf,
}

impl HttpControlPlane {
    /// With `tls`, the controller is reached over TLS with the node's certificate, which is
    /// how the controller knows which node calls.
    pub(crate) fn new(
        controller: &str,
        data: &Path,
        tls: Option<std::sync::Arc<haze_tls::rustls::ClientConfig>>,
    ) -> HttpControlPlane {
        let client = ControllerClient::new(controller);
        HttpControlPlane {
            client: match tls {
                Some(tls) => client.with_tls(tls),
                None => client,
            },
            data: data.to_path_buf(),
        }
    }
}

fn control_error(e: ClientError) -> ControlError {
    match e {
        ClientError::Refused(body) => ControlError::Refused {
            code: body.error,
            message: body.message,
        },
        other => ControlError::Unreachable(other.to_string()),
    }
}

impl ControlPlane for HttpControlPlane {
    /// Registers, then checks that the data directory belongs to the controller's cluster (a
    /// node must not bring one cluster's data into another): if not, the registration counts
    /// as refused, and the node does not join.
    fn register<'a>(
        &'a self,
        advertise: &'a str,
    ) -> BoxFuture<'a, Result<Registered, ControlError>> {
        Box::pin(async move {
            let registered = self
                .client
                .register(advertise)
                .await
                .map_err(control_error)?;
            claim_data(&self.data, registered.cluster.0).map_err(|e| ControlError::Refused {
                code: "wrong_cluster".into(),
                message: format!("this node's data directory belongs to another cluster: {e}"),
            })?;
            Ok(registered)
        })
    }

    fn seen<'a>(&'a self, report: &'a SeenRequest) -> BoxFuture<'a, Result<Status, ControlError>> {
        Box::pin(async move { self.client.seen(report).await.map_err(control_error) })
    }
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
