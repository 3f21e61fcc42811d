//! A Haze node: a durable store of CRDT values behind the binary client protocol and an
//! HTTP/JSON API.
//!
//! # The request path
//!
//! A connection (binary protocol, `connection`) or an HTTP request (`http`) becomes a call on
//! [`Node`]. Reads go straight to the store (redb readers never wait for the writer). Writes —
//! full-state merges and typed operations, which the node applies with its own actor id — are
//! queued to the store's writer thread, which applies the writes that arrive together as one
//! group and, in `sync` mode, acknowledges them only after the fdatasync of the group's log record.
//!
//! In a cluster ([`cluster`]), a client's key request is routed to the key's replicas: the one
//! that takes a write applies it as above, then copies the merged state to the others.
//!
//! # Layout
//!
//! A node is two layers and the front ends above them:
//!
//! * [`replica`] — the local replica: the store, the writer thread, the one write path
//!   ([`replica::Writes`]: every write, whatever its origin, goes through it and fires its
//!   hooks), typed operations, key lists.
//! * [`cluster`] — the cluster layer, above the replica only: the view, peers, routing, write
//!   coordination, read repair, anti-entropy, repartitioning, and the loop that follows the
//!   controller; one function ([`cluster`]'s `disposition`) decides where a request is served.
//! * `node` — [`Node`]: the two layers, the metrics, the limits, and the [`Supervisor`] that
//!   owns every background task.
//! * `server`, `connection`, `handler` — the binary protocol: accept loop with a connection cap,
//!   handshake, pipelined requests, timeouts.
//! * `http` — the HTTP/JSON API and `/metrics`.
//! * `config` — [`NodeConfig`]: limits, timeouts, the acknowledgement policy.
//! * `metrics` — counters and histograms in the Prometheus format.
//! * `error` — [`RequestError`] and its stable wire codes.

/// Whether the planted bug `$bug` (`planted::Bug`) is in effect: always `false` in a normal
/// build, where the module does not exist.
macro_rules! planted {
    ($bug:ident) => {{
        #[cfg(feature = "planted-bugs")]
        let planted = crate::planted::planted(crate::planted::Bug::$bug);
        #[cfg(not(feature = "planted-bugs"))]
        let planted = false;
        planted
    }};
}

pub mod cluster;
mod config;
mod connection;
mod error;
mod handler;
pub mod http;
pub mod live;
mod metrics;
mod node;
#[cfg(feature = "planted-bugs")]
pub mod planted;
pub mod replica;
mod resp;
mod security;
mod server;
mod supervisor;

use std::sync::Arc;

pub use config::{
    AckPolicy, InvalidReadQuorum, NodeConfig, ReadQuorum, ReadQuorumTooLarge, UnknownAckPolicy,
};
pub use error::RequestError;
use haze_protocol::Listener;
pub use metrics::{Kind, Metrics};
pub use node::Node;
pub use replica::WriteRequest;
pub use security::{Caller, Security};
pub use supervisor::Supervisor;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves `node` on the binary protocol `listener` (any [`Listener`]: tokio's TCP in production,
/// a simulated network in tests) and the HTTP API on `http_listener` (if any) until `shutdown`
/// is cancelled; then stops accepting, lets open requests finish, stops the node's background
/// tasks, and makes every write durable before returning.
///
/// # Errors
///
/// If the HTTP server fails.
pub async fn serve(
    node: Arc<Node>,
    listener: impl Listener,
    http_listener: impl Into<Option<TcpListener>>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with_resp(node, listener, http_listener, None, shutdown).await
}

/// Serves `node` as [`serve`] does, and the Redis protocol on `resp_listener` (docs/resp.md)
/// until `shutdown`.
///
/// # Errors
///
/// As [`serve`].
pub async fn serve_with_resp(
    node: Arc<Node>,
    listener: impl Listener,
    http_listener: impl Into<Option<TcpListener>>,
    resp_listener: Option<TcpListener>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let http = http_listener
        .into()
        .map(|l| tokio::spawn(http::serve(node.clone(), l, shutdown.clone())));
    let resp = resp_listener.map(|l| tokio::spawn(resp::serve(node.clone(), l, shutdown.clone())));
    server::accept_loop(node.clone(), listener, shutdown.clone()).await;
    if let Some(resp) = resp {
        let _ = resp.await;
    }
    let http_result = match http {
        Some(task) => task.await.unwrap_or_else(|e| Err(std::io::Error::other(e))),
        None => Ok(()),
    };
    // Background work (anti-entropy, streams, copies, the controller loop) ends before the
    // writer: nothing is left running, and nothing writes after the last sync.
    node.stop_tasks().await;
    // Last: flush the writer, so every acknowledged write is durable before we return.
    let flush = node.clone();
    let _ = tokio::task::spawn_blocking(move || flush.shutdown()).await;
    http_result
}
