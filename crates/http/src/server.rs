//! Serving an axum router on a TCP listener, over TLS or not, with the defences every listener
//! of Haze has:
//!
//! * a cap on connections, and a smaller one per client address, so one client cannot hold
//!   them all (a connection over its address's cap is closed at once);
//! * a bounded TLS handshake;
//! * an absolute deadline for a request's headers (hyper's `header_read_timeout`): a client
//!   that sends its headers one byte at a time (slowloris) is cut off when the deadline passes,
//!   however steadily it trickles;
//! * an idle timeout: a connection on which nothing moved for that long is closed;
//! * on shutdown, open connections finish their request in flight and close, within a grace.
//!
//! Each request carries the [`Peer`] it came from in its extensions: the client's address and,
//! over TLS, the identity its certificate names.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use haze_tls::Identity;
use haze_tls::rustls::ServerConfig;
use haze_tls::tokio_rustls::TlsAcceptor;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower_service::Service as _;

use crate::guard::IdleGuard;

/// How long connections may still finish what they do once the server stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Who sent a request (in its extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// The identity its TLS certificate names, if it presented one (verified by then).
    pub identity: Option<Identity>,
}

/// How a listener serves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// TLS, or plaintext.
    pub tls: Option<Arc<ServerConfig>>,
    /// The most connections at once; further ones wait to be accepted.
    pub max_connections: usize,
    /// The most connections at once from one address; further ones are closed at once.
    pub max_per_address: usize,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// How long a request's headers may take to arrive, from the first byte or the connection.
    pub header_timeout: Duration,
    /// How long a connection may stay with nothing read or written.
    pub idle_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            tls: None,
            max_connections: 1024,
            max_per_address: 64,
            handshake_timeout: Duration::from_secs(5),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// Counts connections per client address, so one address cannot hold every connection a
/// server allows; a slot is given back when dropped. Shared by every listener that caps
/// connections per address (this crate's, the node's binary protocol).
#[derive(Debug, Default)]
pub struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in its address's count, given back when dropped.
#[derive(Debug)]
pub struct AddressSlot {
    counts: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    /// A slot for one more connection from `ip`, unless it holds `cap` (at least 1) already.
    pub fn take(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<AddressSlot> {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(ip).or_default();
        if *count >= cap.max(1) {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, then lets open connections finish their
/// request in flight (within a grace) and returns.
///
/// # Errors
///
/// Never today: accept errors (out of descriptors) are logged and retried after a pause.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    options: ServeOptions,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let per_address = Arc::new(PerAddress::default());
    let acceptor = options.tls.clone().map(TlsAcceptor::from);
    let mut connections = JoinSet::new();
    loop {
        let slot = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (stream, addr) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let Some(address_slot) = per_address.take(addr.ip(), options.max_per_address) else {
            tracing::warn!(%addr, "connection closed: too many connections from this address");
            continue; // dropping the stream closes it
        };
        let (router, acceptor, options, stop) = (
            router.clone(),
            acceptor.clone(),
            options.clone(),
            shutdown.clone(),
        );
        connections.spawn(async move {
            let _slots = (slot, address_slot);
            let _ = stream.set_nodelay(true);
            match acceptor {
                Some(acceptor) => {
                    match haze_tls::accept(&acceptor, stream, options.handshake_timeout).await {
                        Ok((tls, identity)) => {
                            let peer = Peer { addr, identity };
                            connection(tls, peer, router, &options, stop).await;
                        }
                        Err(e) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                    }
                }
                None => {
                    let peer = Peer {
                        addr,
                        identity: None,
                    };
                    connection(stream, peer, router, &options, stop).await;
                }
            }
        });
    }
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE * 2, drained)
        .await
        .is_err()
    {
        connections.abort_all();
    }
    Ok(())
}

/// Serves HTTP/1 on one connection until it closes, idles out, misses its header deadline, or
/// the server stops (then after the request in flight, within a grace).
async fn connection<S>(
    stream: S,
    peer: Peer,
    router: axum::Router,
    options: &ServeOptions,
    stop: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(IdleGuard::new(stream, options.idle_timeout));
    let service =
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(peer.clone());
            // A router is always ready, and never fails (its error type is `Infallible`).
            let mut router = router.clone();
            router.call(request.map(axum::body::Body::new))
        });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout);
    // With upgrades: a WebSocket (`/v1/ws`) takes the connection over once answered; the
    // idle guard stays under it, so a socket that says nothing for the idle timeout still ends.
    let conn = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
        }
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
        }
    }
}
