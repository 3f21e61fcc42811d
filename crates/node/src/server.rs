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

use crate::connection::serve_connection;
use crate::node::Node;

/// Accepts connections until `shutdown`, then waits for the open ones to finish their in-flight
/// requests.
pub(crate) async fn accept_loop(
    node: Arc<Node>,
    mut listener: impl Listener,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(node.config().max_connections));
    let security = node.config().security.clone();
    let acceptor = security
        .tls
        .clone()
        .map(haze_tls::tokio_rustls::TlsAcceptor::from);
    let mut connections = JoinSet::new();
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
        let (mut stream, peer) = match accepted {
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
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, "connection refused: too many connections");
            connections.spawn(async move {
                let error = WireError::new(ErrorCode::Overloaded, "too many connections");
                let mut body = Vec::new();
                Response::Error(error).encode(0, &mut body);
                let mut frame = Vec::new();
                write_frame(&mut frame, &body);
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), stream.write_all(&frame)).await;
            });
            continue;
        };
        metrics.connections_total.fetch_add(1, Ordering::Relaxed);
        metrics.connections_open.fetch_add(1, Ordering::Relaxed);
        let (node, shutdown, acceptor) = (node.clone(), shutdown.clone(), acceptor.clone());
        let handshake = security.handshake_timeout;
        connections.spawn(async move {
            // The TLS handshake runs in the connection's task: a slow one holds up no other.
            match acceptor {
                None => serve_connection(node.clone(), stream, None, shutdown).await,
                Some(acceptor) => match haze_tls::accept(&acceptor, stream, handshake).await {
                    Ok((tls, identity)) => {
                        let tls: haze_protocol::BoxStream = Box::new(tls);
                        serve_connection(node.clone(), tls, identity, shutdown).await;
                    }
                    Err(e) => {
                        node.metrics()
                            .protocol_errors
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::info!(%peer, error = %e, "TLS handshake failed");
                    }
                },
            }
            node.metrics()
                .connections_open
                .fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
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
