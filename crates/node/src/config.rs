//! A node's configuration.

use std::sync::Arc;
use std::time::Duration;

use haze_protocol::{Dial, TcpDial};
use haze_storage::StoreConfig;

/// Everything a node needs to know besides its listeners, clock and store.
#[derive(Clone)]
pub struct NodeConfig {
    /// Durability and size limits of the store.
    pub store: StoreConfig,
    /// The most client connections served at once; more are refused with `Overloaded`.
    pub max_connections: usize,
    /// The most client connections at once from one address, on each port (default 256, a
    /// quarter of the default `max_connections`): one client cannot hold every slot.
    pub max_connections_per_address: usize,
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
    /// How many replicas must hold a write before the node that coordinates it acknowledges it
    /// (in a cluster; default `quorum`).
    pub ack: AckPolicy,
    /// How long to wait for another node before trying the next replica (default 2 s).
    pub forward_timeout: Duration,
    /// How often anti-entropy compares this node with the other replicas (default 10 s).
    pub anti_entropy_interval: Duration,
    /// How connections to other nodes are opened: TCP, or a simulated network.
    pub dial: Arc<dyn Dial>,
    /// TLS, node certificates and client tokens (default: none of them: a single node on
    /// loopback).
    pub security: crate::Security,
    /// Apply each write on the task that submits it instead of the writer thread (no group
    /// commit; in `sync` mode, one fsync per write, on a runtime thread): for deterministic
    /// simulations, where no other thread may run. Not for serving.
    pub inline_writes: bool,
}

impl std::fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConfig")
            .field("store", &self.store)
            .field("max_connections", &self.max_connections)
            .field(
                "max_connections_per_address",
                &self.max_connections_per_address,
            )
            .field("max_in_flight", &self.max_in_flight)
            .field("max_in_flight_bytes", &self.max_in_flight_bytes)
            .field("max_node_in_flight_bytes", &self.max_node_in_flight_bytes)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("ack", &self.ack)
            .field("forward_timeout", &self.forward_timeout)
            .field("anti_entropy_interval", &self.anti_entropy_interval)
            .field("inline_writes", &self.inline_writes)
            .field("security", &self.security)
            .finish_non_exhaustive()
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            store: StoreConfig::default(),
            max_connections: 1024,
            max_connections_per_address: 256,
            max_in_flight: 1024,
            max_in_flight_bytes: 16 * 1024 * 1024,
            max_node_in_flight_bytes: 256 * 1024 * 1024,
            max_frame_bytes: haze_protocol::MAX_FRAME_BYTES,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
            ack: AckPolicy::default(),
            forward_timeout: Duration::from_secs(2),
            anti_entropy_interval: Duration::from_secs(10),
            dial: Arc::new(TcpDial),
            inline_writes: false,
            security: crate::Security::default(),
        }
    }
}

/// How many replicas must have a write durably before the coordinator acknowledges it. The
/// coordinator always applies it durably itself first; the others receive a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AckPolicy {
    /// The coordinator alone (fastest; a write is lost if that node's disk is lost before
    /// anti-entropy or the copies reached another replica).
    Primary,
    /// A majority of the key's replicas (N/2 + 1): survives the loss of any minority.
    #[default]
    Quorum,
    /// Every replica: a write fails (though it stays where it was applied) if any replica does
    /// not answer.
    All,
}

impl AckPolicy {
    /// Returns how many replicas (the coordinator included) must hold a write among `n`.
    pub fn required(self, n: usize) -> usize {
        match self {
            AckPolicy::Primary => 1,
            AckPolicy::Quorum => n / 2 + 1,
            AckPolicy::All => n,
        }
        .min(n.max(1))
    }

    /// Returns the policy's name, as flags and docs spell it.
    pub fn name(self) -> &'static str {
        match self {
            AckPolicy::Primary => "primary",
            AckPolicy::Quorum => "quorum",
            AckPolicy::All => "all",
        }
    }
}

impl std::fmt::Display for AckPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no acknowledgement policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown acknowledgement policy {0:?}: use primary, quorum or all")]
pub struct UnknownAckPolicy(pub String);

impl std::str::FromStr for AckPolicy {
    type Err = UnknownAckPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "primary" => Ok(AckPolicy::Primary),
            "quorum" => Ok(AckPolicy::Quorum),
            "all" => Ok(AckPolicy::All),
            other => Err(UnknownAckPolicy(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_count_the_coordinator() {
        assert_eq!(AckPolicy::Primary.required(3), 1);
        assert_eq!(AckPolicy::Quorum.required(3), 2);
        assert_eq!(AckPolicy::Quorum.required(2), 2);
        assert_eq!(AckPolicy::Quorum.required(1), 1);
        assert_eq!(AckPolicy::All.required(3), 3);
        assert_eq!("all".parse::<AckPolicy>(), Ok(AckPolicy::All));
        assert!("most".parse::<AckPolicy>().is_err());
    }
}
