//! Connections to the other nodes of the cluster.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use haze_client::{Client, ClientConfig};
use haze_protocol::{Dial, Role};

/// One lazily opened, pipelined client per other node, keyed by address, all saying they come
/// from cluster `cluster`. A client whose node is down costs nothing until used; it reconnects
/// on its next request once the node is back.
pub(crate) struct Peers {
    dial: Arc<dyn Dial>,
    timeout: Duration,
    clients: Mutex<(u64, BTreeMap<String, Client>)>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Peers {
    /// Returns an empty set of peers that connect with `dial` and give up on a request after
    /// `timeout` (then the router tries the next replica).
    pub(crate) fn new(dial: Arc<dyn Dial>, timeout: Duration) -> Peers {
        Peers {
            dial,
            timeout,
            clients: Mutex::new((0, BTreeMap::new())),
        }
    }

    /// Returns the client of the node at `addr`, as a member of cluster `cluster`.
    pub(crate) fn client(&self, cluster: u64, addr: &str) -> Client {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if clients.0 != cluster {
            // Another cluster (a view from a new controller): old connections say the old id.
            *clients = (cluster, BTreeMap::new());
        }
        clients
            .1
            .entry(addr.to_string())
            .or_insert_with(|| {
                Client::lazy(
                    addr,
                    ClientConfig {
                        dial: self.dial.clone(),
                        connect_timeout: self.timeout,
                        request_timeout: self.timeout,
                        role: Role::Peer { cluster },
                        ..ClientConfig::default()
                    },
                )
            })
            .clone()
    }
}
