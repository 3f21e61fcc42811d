//! A node's configuration.

use std::time::Duration;

use haze_storage::StoreConfig;

/// Everything a node needs to know besides its listeners, clock and store.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Durability and size limits of the store.
    pub store: StoreConfig,
    /// The most client connections served at once; more are refused with `Overloaded`.
    pub max_connections: usize,
    /// The most requests in flight on one connection; reading pauses until one completes.
    pub max_in_flight: usize,
    /// The most bytes of requests in flight on one connection (their frames, until answered).
    pub max_in_flight_bytes: usize,
    /// The most bytes of requests in flight on all connections together.
    pub max_node_in_flight_bytes: usize,
    /// The largest frame accepted from a client.
    pub max_frame_bytes: usize,
    /// How long a new connection has to complete the handshake.
    pub handshake_timeout: Duration,
    /// How long a connection may stay without a complete request (or with a reader that does
    /// not take its responses) before it is closed.
    pub idle_timeout: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            store: StoreConfig::default(),
            max_connections: 1024,
            max_in_flight: 1024,
            max_in_flight_bytes: 16 * 1024 * 1024,
            max_node_in_flight_bytes: 256 * 1024 * 1024,
            max_frame_bytes: haze_protocol::MAX_FRAME_BYTES,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
        }
    }
}
