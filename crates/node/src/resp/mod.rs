//! The Redis-protocol front end (`haze serve --resp ADDR`, docs/resp.md): RESP2 and RESP3,
//! pipelined, on the node's connection caps, timeouts, TLS and tokens (`AUTH`), routed in a
//! cluster like every other front end.
//!
//! A connection reads what the client sent, runs every whole command in it in order and
//! answers them in one write. Writes of a pipeline on a single node are submitted to the
//! writer one after another without waiting (they share commits, as the binary protocol's
//! do); a command that reads first waits for the writes before it, so a pipeline reads its
//! own writes.

mod codec;
mod commands;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use self::codec::{ProtocolError, Reply, parse};
use self::commands::{Finish, Outcome, Session};
use crate::node::Node;

/// The most bytes of commands a connection may send ahead of its answers.
const MAX_PENDING_BYTES: usize = 4 * 1024 * 1024;

/// The commands whose writes a pipeline submits without waiting (`SADD`, `SREM` and `HSET`
/// count what they change with `Session`'s record of the unsettled writes before them).
fn pipelines(name: &[u8]) -> bool {
    [
        &b"set"[..],
        b"incr",
        b"incrby",
        b"decr",
        b"decrby",
        b"sadd",
        b"srem",
        b"hset",
    ]
    .iter()
    .any(|n| name.eq_ignore_ascii_case(n))
}

/// Serves RESP on `listener` until `shutdown`, then lets open connections finish what they
/// read.
pub(crate) async fn serve(node: Arc<Node>, listener: TcpListener, shutdown: CancellationToken) {
    let started = tokio::time::Instant::now();
    let config = node.config();
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let per_address = Arc::new(haze_http::PerAddress::default());
    let per_address_cap = config.max_connections_per_address.max(1);
    let acceptor = config
        .security
        .tls
        .clone()
        .map(haze_tls::tokio_rustls::TlsAcceptor::from);
    let handshake = config.security.handshake_timeout;
    let mut connections = JoinSet::new();
    let stop = crate::connection::Stop::new();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        while connections.try_join_next().is_some() {}
        let (mut stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "RESP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let metrics = node.metrics();
        let (Some(address_slot), Ok(slot)) = (
            per_address.take(peer.ip(), per_address_cap),
            slots.clone().try_acquire_owned(),
        ) else {
            metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, "RESP connection refused: too many connections");
            connections.spawn(async move {
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    stream.write_all(b"-ERR max number of clients reached\r\n"),
                )
                .await;
            });
            continue;
        };
        let (node, stop, acceptor) = (node.clone(), stop.clone(), acceptor.clone());
        connections.spawn(async move {
            let (stream, identity): (haze_protocol::BoxStream, _) = match acceptor {
                None => (Box::new(stream), None),
                Some(acceptor) => match haze_tls::accept(&acceptor, stream, handshake).await {
                    Ok((tls, identity)) => (Box::new(tls), identity),
                    Err(e) => {
                        tracing::info!(%peer, error = %e, "RESP TLS handshake failed");
                        return;
                    }
                },
            };
            let metrics = node.metrics();
            metrics.connections_total.fetch_add(1, Ordering::Relaxed);
            metrics.connections_open.fetch_add(1, Ordering::Relaxed);
            let session = Session::new(node.clone(), identity, started);
            connection(&node, stream, session, stop.watch()).await;
            node.metrics()
                .connections_open
                .fetch_sub(1, Ordering::Relaxed);
            drop((slot, address_slot));
        });
    }
    stop.trip();
    while connections.join_next().await.is_some() {}
}

/// An answer in the making, in the order of the commands.
enum Slot {
    Ready(Reply),
    Write(
        tokio::sync::oneshot::Receiver<
            Result<Option<haze_crdt::Value>, crate::error::RequestError>,
        >,
        Finish,
    ),
}

async fn settle(slots: &mut VecDeque<Slot>) {
    for slot in slots.iter_mut() {
        if let Slot::Write(rx, finish) = slot {
            let outcome = rx.await.unwrap_or_else(|_| {
                Err(crate::error::RequestError::Unavailable(
                    "the writer stopped".into(),
                ))
            });
            *slot = Slot::Ready(finish.clone().reply(outcome));
        }
    }
}

/// Serves one connection until the client leaves, sends something that is not RESP, stays
/// idle past the node's idle timeout, or the node shuts down.
async fn connection(
    node: &Arc<Node>,
    mut stream: haze_protocol::BoxStream,
    mut session: Session,
    mut cancelled: crate::connection::Watch,
) {
    let limits = &node.config().store;
    let max_bulk = limits.max_value_bytes.max(limits.max_key_bytes) + 1024;
    let idle = node.config().idle_timeout;
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut slots: VecDeque<Slot> = VecDeque::new();
    let mut idle_timer = crate::connection::IdleTimer::new(idle);
    loop {
        let mut start = 0;
        let mut close = false;
        loop {
            match parse(&buf[start..], max_bulk) {
                Ok(Some((args, used))) => {
                    start += used;
                    // An empty line or `*0`: Redis answers nothing, so neither does Haze.
                    if args.is_empty() {
                        continue;
                    }
                    if !args.first().is_some_and(|n| pipelines(n)) {
                        settle(&mut slots).await;
                        session.settled();
                    }
                    match session.execute(args).await {
                        Outcome::Now(reply) => slots.push_back(Slot::Ready(reply)),
                        Outcome::Write(rx, finish) => slots.push_back(Slot::Write(rx, finish)),
                        Outcome::Close(reply) => {
                            slots.push_back(Slot::Ready(reply));
                            close = true;
                            break;
                        }
                    }
                }
                Ok(None) => break,
                Err(ProtocolError(why)) => {
                    node.metrics()
                        .protocol_errors
                        .fetch_add(1, Ordering::Relaxed);
                    slots.push_back(Slot::Ready(Reply::err(format!("Protocol error: {why}"))));
                    close = true;
                    break;
                }
            }
        }
        buf.drain(..start);
        if buf.len() > MAX_PENDING_BYTES + max_bulk {
            slots.push_back(Slot::Ready(Reply::err(
                "Protocol error: a command larger than the node accepts",
            )));
            close = true;
        }
        settle(&mut slots).await;
        session.settled();
        for slot in slots.drain(..) {
            if let Slot::Ready(reply) = slot {
                reply.encode(session.version, &mut out);
            }
        }
        if !out.is_empty() {
            // A client that never reads its replies is cut off after the idle timeout: its
            // unread replies hold no more than this batch (nothing more is read meanwhile).
            let write = stream.write_all(&out);
            tokio::pin!(write);
            let written = match crate::connection::ready_now(&mut write).await {
                Some(written) => Ok(written),
                None => tokio::time::timeout(idle, write).await,
            };
            match written {
                Ok(Ok(())) => out.clear(),
                Ok(Err(_)) => return,
                Err(_) => {
                    node.metrics().timeouts.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        if close {
            let _ = stream.shutdown().await;
            return;
        }
        let waiting_since = tokio::time::Instant::now();
        let read = tokio::select! {
            biased;
            () = &mut cancelled => return,
            read = stream.read_buf(&mut buf) => read,
            () = idle_timer.passed(waiting_since) => {
                node.metrics().timeouts.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
