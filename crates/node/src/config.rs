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
    /// How many replicas of a key a routed read merges (in a cluster; default: a majority).
    /// With a majority for writes too, a read includes every acknowledged write.
    pub read_quorum: ReadQuorum,
    /// A file that marks the node as refilling an empty store (a new or lost disk) until an
    /// anti-entropy round has reached every node it shares partitions with: a node restarted
    /// before that (a crash, a power loss) is still refilling, though its store is no longer
    /// empty. Without one, only a start on an empty store marks it, in memory.
    pub refill_marker: Option<std::path::PathBuf>,
    /// Web origins (`https://app.example`) whose pages may call the HTTP API from a browser
    /// (CORS); empty (the default): none.
    pub cors_origins: Vec<String>,
    /// A folder whose files the HTTP port serves for `GET` of paths outside the API (a web app
    /// then shares the API's origin); `None` (the default): none.
    pub web_root: Option<std::path::PathBuf>,
    /// Serve the HTTP port without TLS even when the node has it (`haze dev --web`, on loopback
    /// only: a browser trusts no CA of its own); the binary protocol keeps TLS.
    pub http_plaintext: bool,
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
            .field("read_quorum", &self.read_quorum)
            .field("refill_marker", &self.refill_marker)
            .field("cors_origins", &self.cors_origins)
            .field("web_root", &self.web_root)
            .field("http_plaintext", &self.http_plaintext)
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
            read_quorum: ReadQuorum::default(),
            refill_marker: None,
            cors_origins: Vec::new(),
            web_root: None,
            http_plaintext: false,
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

/// How many replicas of a key a routed read asks and merges before it answers.
///
/// A read merges the answers of `required(n)` of the key's `n` replicas (this node's own copy
/// counts as one when it is a replica) and repairs those that were behind, through the one write
/// path. When a read quorum and the write quorum ([`AckPolicy`]) together exceed `n` (a majority
/// of each does), every read meets a replica that acknowledged every write acknowledged before
/// it, whichever replicas crashed, restarted or missed copies meanwhile. A read that finds no
/// value believes "absent" only when a majority of the replicas say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadQuorum {
    /// A majority of the key's replicas (N/2 + 1).
    #[default]
    Majority,
    /// This many replicas (at least 1; capped at the key's replicas). `1` answers from the
    /// first replica that answers (this node's own copy first, when it is the key's primary):
    /// fastest, but a replica that missed writes may answer alone.
    Replicas(std::num::NonZeroUsize),
}

impl ReadQuorum {
    /// A read quorum of one replica.
    pub const ONE: ReadQuorum = ReadQuorum::Replicas(std::num::NonZeroUsize::MIN);

    /// Returns how many of a key's `n` replicas a read merges (at least 1, at most `n`).
    pub fn required(self, n: usize) -> usize {
        match self {
            ReadQuorum::Majority => n / 2 + 1,
            ReadQuorum::Replicas(r) => r.get(),
        }
        .min(n.max(1))
    }

    /// Returns whether reads are answered by one replica alone (the fast path).
    pub fn is_one(self) -> bool {
        self == ReadQuorum::ONE
    }

    /// Returns why this quorum cannot be met in a cluster of `replication` replicas per
    /// partition, if it cannot.
    pub fn check(self, replication: usize) -> Result<(), ReadQuorumTooLarge> {
        match self {
            ReadQuorum::Replicas(r) if r.get() > replication => Err(ReadQuorumTooLarge {
                quorum: r.get(),
                replication,
            }),
            _ => Ok(()),
        }
    }
}

impl std::fmt::Display for ReadQuorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadQuorum::Majority => f.write_str("majority"),
            ReadQuorum::Replicas(r) => write!(f, "{r}"),
        }
    }
}

/// A read quorum that is neither `majority` nor a number of replicas from 1 up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid read quorum {0:?}: use `majority` or a number of replicas from 1 to the \
     replication factor"
)]
pub struct InvalidReadQuorum(pub String);

/// A read quorum larger than the cluster's replication factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the read quorum {quorum} is larger than the cluster's replication factor {replication}: \
     reads merge every replica of a key instead (give --read-quorum 1 to {replication}, or \
     `majority`)"
)]
pub struct ReadQuorumTooLarge {
    pub quorum: usize,
    pub replication: usize,
}

impl std::str::FromStr for ReadQuorum {
    type Err = InvalidReadQuorum;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "majority" {
            return Ok(ReadQuorum::Majority);
        }
        s.parse::<std::num::NonZeroUsize>()
            .map(ReadQuorum::Replicas)
            .map_err(|_| InvalidReadQuorum(s.to_string()))
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

    #[test]
    fn read_quorums_are_a_majority_or_a_count_within_the_replicas() {
        assert_eq!(ReadQuorum::default().required(3), 2);
        assert_eq!(ReadQuorum::Majority.required(2), 2);
        assert_eq!(ReadQuorum::Majority.required(5), 3);
        assert_eq!(ReadQuorum::ONE.required(3), 1);
        let three: ReadQuorum = "3".parse().expect("a count");
        assert_eq!(three.required(5), 3);
        assert_eq!(three.required(2), 2, "capped at the key's replicas");
        assert_eq!("majority".parse(), Ok(ReadQuorum::Majority));
        assert!("0".parse::<ReadQuorum>().is_err());
        assert!("most".parse::<ReadQuorum>().is_err());
        assert!(three.check(3).is_ok());
        let err = three.check(2).expect_err("3 of 2 replicas");
        assert!(err.to_string().contains("replication factor 2"), "{err}");
        assert!(ReadQuorum::Majority.check(1).is_ok());
    }
}
