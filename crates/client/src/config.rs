//! How a client connects, waits and routes.

use std::sync::Arc;
use std::time::Duration;

use haze_protocol::{ChannelConfig, Dial, Role};

/// How a [`Client`](crate::Client) connects and waits.
#[derive(Clone)]
pub struct ClientConfig {
    /// How connections are opened: tokio's TCP by default; a simulation passes its own.
    pub dial: Arc<dyn Dial>,
    /// How long to wait for a connection and its handshake (default 5 s).
    pub connect_timeout: Duration,
    /// How long to wait for each response (default 10 s).
    pub request_timeout: Duration,
    /// The largest frame accepted from the node.
    pub max_frame_bytes: usize,
    /// After an attempt to connect that found no node (refused, or no answer in time), requests
    /// fail at once (with that attempt's error) for this long instead of trying again (default 0: every request tries). Nodes set it for
    /// their connections to each other, so a node that stopped answering costs one timeout,
    /// not one per request.
    pub reconnect_backoff: Duration,
    /// Send each request about one key straight to the key's primary, using the cluster's
    /// routing table (fetched from the node this client connects to, and fetched again when a
    /// node says the table changed). Requests about many keys, and any request whose primary
    /// cannot be reached, go to the first node, which routes them. Default `false`: every
    /// request goes to the first node. Ignored outside a cluster.
    pub direct: bool,
    /// Who this client says it is in its hello (default [`Role::Client`]: requests are routed
    /// to the replicas that own their keys; [`Role::Local`]: served by the contacted node's
    /// own copy).
    pub role: Role,
    /// The bearer token the client presents (its hello carries it): what it may read and
    /// write, in a cluster that requires tokens (default none).
    pub token: Option<String>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("role", &self.role)
            .field("direct", &self.direct)
            .field("reconnect_backoff", &self.reconnect_backoff)
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// How the channel to each node connects and waits.
    pub(crate) fn channel(&self) -> ChannelConfig {
        ChannelConfig {
            dial: self.dial.clone(),
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            max_frame_bytes: self.max_frame_bytes,
            reconnect_backoff: self.reconnect_backoff,
            role: self.role,
            token: self.token.clone(),
        }
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        // The channel's defaults: TCP, 5 s to connect, 10 s per request, frames up to 16 times
        // what a node accepts (responses to batches carry merged states), no backoff, a client.
        let ChannelConfig {
            dial,
            connect_timeout,
            request_timeout,
            max_frame_bytes,
            reconnect_backoff,
            role,
            token,
        } = ChannelConfig::default();
        ClientConfig {
            dial,
            connect_timeout,
            request_timeout,
            max_frame_bytes,
            role,
            direct: false,
            reconnect_backoff,
            token,
        }
    }
}
