//! The accept loop of the binary protocol.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use haze_protocol::Listener;
use haze_protocol::{ErrorCode, Response, WireError, write_frame};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::connection::{Stop, serve_connection};
use crate::node::Node;

/// Connections that nodes of the cluster (a certificate naming a node) may hold on this node,
/// beside the clients' `max_connections`. A node keeps one connection to each peer it shares
/// partitions with, plus one per stream under way: a few hundred is room for any cluster that
/// replicates each partition on a handful of nodes.
const PEER_CONNECTIONS: usize = 512;

/// Tells a connection it is refused (`overloaded`, with `why`) and closes it, within a second.
async fn refuse(mut stream: haze_protocol::BoxStream, why: &'static str) {
    let error = WireError::new(ErrorCode::Overloaded, why);
    let mut body = Vec::new();
    Response::Error(error).encode(0, &mut body);
    let mut frame = Vec::new();
    write_frame(&mut frame, &body);
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&frame)).await;
}

/// Accepts connections until `shutdown`, then waits for the open ones to finish their in-flight
/// requests.
pub(crate) async fn accept_loop(
    node: Arc<Node>,
    mut listener: impl Listener,
    shutdown: CancellationToken,
) {
    let max = node.config().max_connections;
    let slots = Arc::new(Semaphore::new(max));
    let peer_slots = Arc::new(Semaphore::new(PEER_CONNECTIONS));
    let handshakes = Arc::new(Semaphore::new(max));
    let per_address = Arc::new(haze_http::PerAddress::default());
    let per_address_cap = node.config().max_connections_per_address.max(1);
    let security = node.config().security.clone();
    let acceptor = security
        .tls
        .clone()
        .map(haze_tls::tokio_rustls::TlsAcceptor::from);
    let mut connections = JoinSet::new();
    let stop = Stop::new();
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        // Reap finished connections so the set does not grow.
        while let Some(done) = connections.try_join_next() {
            report_panic(&node, done);
        }
        let (stream, peer) = match accepted {
            Ok(conn) => {
                backoff = Duration::from_millis(5);
                conn
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let metrics = node.metrics();
        // One address may hold only its share of the connections: a client that opens
        // connections in a loop cannot lock out the others.
        let address_slot = match peer.parse::<std::net::SocketAddr>() {
            Ok(addr) => match per_address.take(addr.ip(), per_address_cap) {
                Some(slot) => Some(slot),
                None => {
                    metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%peer, "connection refused: too many from this address");
                    connections.spawn(refuse(stream, "too many connections from your address"));
                    continue;
                }
            },
            Err(_) => None, // a simulated network's names: no addresses to count
        };
        // Handshakes in progress are bounded too (each by the handshake timeout).
        let Ok(handshaking) = handshakes.clone().try_acquire_owned() else {
            metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, "connection refused: too many handshakes under way");
            connections.spawn(refuse(stream, "too many connections"));
            continue;
        };
        let (node, stop, acceptor) = (node.clone(), stop.clone(), acceptor.clone());
        let (slots, peer_slots) = (slots.clone(), peer_slots.clone());
        let handshake = security.handshake_timeout;
        connections.spawn(async move {
            // The TLS handshake runs in the connection's task: a slow one holds up no other.
            let (stream, identity) = match acceptor {
                None => (stream, None),
                Some(acceptor) => match haze_tls::accept(&acceptor, stream, handshake).await {
                    Ok((tls, identity)) => (Box::new(tls) as haze_protocol::BoxStream, identity),
                    Err(e) => {
                        node.metrics()
                            .protocol_errors
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::info!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                },
            };
            drop(handshaking);
            // Nodes (proved by their certificate) have a budget of their own, which clients
            // cannot use up: a flood of clients never cuts the cluster apart.
            let budget = match identity {
                Some(haze_tls::Identity::Node(_)) => peer_slots,
                _ => slots,
            };
            let Ok(slot) = budget.try_acquire_owned() else {
                node.metrics()
                    .connections_refused
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%peer, "connection refused: too many connections");
                refuse(stream, "too many connections").await;
                return;
            };
            let metrics = node.metrics();
            metrics.connections_total.fetch_add(1, Ordering::Relaxed);
            metrics.connections_open.fetch_add(1, Ordering::Relaxed);
            serve_connection(node.clone(), stream, identity, stop).await;
            node.metrics()
                .connections_open
                .fetch_sub(1, Ordering::Relaxed);
            drop((slot, address_slot));
        });
    }
    stop.trip();
    while let Some(done) = connections.join_next().await {
        report_panic(&node, done);
    }
}

/// A connection's task that panicked is a bug: never discarded in silence. The connection is
/// gone (its client sees it closed); the node goes on serving the others.
fn report_panic(node: &Node, done: Result<(), tokio::task::JoinError>) {
    let Err(e) = done else { return };
    if !e.is_panic() {
        return;
    }
    node.metrics().task_panics.fetch_add(1, Ordering::Relaxed);
    let panic = e.into_panic();
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    tracing::error!(task = "connection", %message, "a task of the node panicked (a bug)");
}
