//! A channel to one node: requests pipelined over one connection, opened on first use and
//! again whenever it broke, with timeouts and the retry rules of idempotent requests.
//!
//! * `connection` — one multiplexed connection: a writer task, a reader task, and the requests
//!   in flight by id.
//! * `error` — [`CallError`].

mod connection;
mod error;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use connection::Connection;
pub use error::CallError;

use crate::{Dial, Request, Response, Role, TcpDial};

type Result<T, E = CallError> = std::result::Result<T, E>;

/// How a [`Channel`] connects and waits.
#[derive(Clone)]
pub struct ChannelConfig {
    /// How connections are opened: tokio's TCP by default; a simulation passes its own.
    pub dial: Arc<dyn Dial>,
    /// How long to wait for a connection and its handshake (default 5 s).
    pub connect_timeout: Duration,
    /// How long to wait for each response (default 10 s).
    pub request_timeout: Duration,
    /// The largest frame accepted from the node (default 16 × [`MAX_FRAME_BYTES`]: responses
    /// to batches carry merged states, so allow more than a node accepts).
    ///
    /// [`MAX_FRAME_BYTES`]: crate::MAX_FRAME_BYTES
    pub max_frame_bytes: usize,
    /// After an attempt to connect that found no node (refused, or no answer in time),
    /// requests fail at once (with that attempt's error) for this long instead of trying
    /// again (default 0: every request tries). Nodes set it for their connections to each
    /// other, so a node that stopped answering costs one timeout, not one per request.
    pub reconnect_backoff: Duration,
    /// Who the channel says it is in its hello (default [`Role::Client`]).
    pub role: Role,
    /// The bearer token the hello carries: what the caller may read and write (default none,
    /// for a cluster without tokens, or a node dialling a peer, which its certificate names).
    pub token: Option<String>,
}

impl std::fmt::Debug for ChannelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelConfig")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("role", &self.role)
            .field("reconnect_backoff", &self.reconnect_backoff)
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .finish_non_exhaustive()
    }
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            dial: Arc::new(TcpDial),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_frame_bytes: 16 * crate::MAX_FRAME_BYTES,
            reconnect_backoff: Duration::ZERO,
            role: Role::Client,
            token: None,
        }
    }
}

/// The line for opening a connection, and the last attempt that found no node.
#[derive(Debug, Default)]
struct Slot {
    failed: Option<(tokio::time::Instant, CallError)>,
}

/// A channel to the node at one address. Cheap to clone: clones share the connection, and
/// requests from any number of tasks are pipelined over it (their responses may come back in
/// any order). The connection is opened by the first request, and again by the first request
/// after it broke or let a response time out.
#[derive(Debug, Clone)]
pub struct Channel {
    addr: Arc<str>,
    config: ChannelConfig,
    /// The line for opening a connection.
    slot: Arc<tokio::sync::Mutex<Slot>>,
    /// The open connection, for requests that need not wait in line.
    live: Arc<std::sync::Mutex<Option<Arc<Connection>>>>,
    /// The latest table epoch any node told this channel (or its siblings) of (see
    /// [`Response::Epoch`]).
    epochs: Arc<AtomicU64>,
}

impl Channel {
    /// Returns a channel to the node at `addr` (`host:port`) that connects on its first
    /// request, for a caller that keeps channels to nodes that may be down.
    pub fn lazy(addr: &str, config: ChannelConfig) -> Channel {
        Channel {
            addr: addr.into(),
            config,
            slot: Arc::default(),
            live: Arc::default(),
            epochs: Arc::default(),
        }
    }

    /// Connects to the node at `addr` and completes the handshake.
    ///
    /// # Errors
    ///
    /// [`CallError::Connect`] if the node cannot be reached in time, [`CallError::Refused`] if
    /// it refuses the handshake, [`CallError::Protocol`] if it answers something else.
    pub async fn connect(addr: &str, config: ChannelConfig) -> Result<Channel> {
        let channel = Channel::lazy(addr, config);
        channel.connection().await?;
        Ok(channel)
    }

    /// Returns a lazy channel to the node at `addr` that shares this channel's epoch notices
    /// (a router's channel to each primary, whose notices its table is refreshed by).
    pub fn sibling(&self, addr: &str, config: ChannelConfig) -> Channel {
        Channel {
            epochs: self.epochs.clone(),
            ..Channel::lazy(addr, config)
        }
    }

    /// Returns the address this channel connects to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Returns how this channel connects and waits.
    pub fn config(&self) -> &ChannelConfig {
        &self.config
    }

    /// Returns the latest table epoch a node told this channel or its siblings of (an
    /// [`Response::Epoch`] notice; 0 if none), so a router can tell that its table is stale.
    pub fn epoch_heard(&self) -> u64 {
        self.epochs.load(Ordering::Relaxed)
    }

    /// Sends `request` and returns the node's response as it came, errors included
    /// ([`Response::Error`]). A request that was never sent (the connection closed first) is
    /// sent once more over a new connection; an `idempotent` request is also sent once more if
    /// the connection was lost before its response came.
    ///
    /// # Errors
    ///
    /// [`CallError`]: the node could not be reached, did not answer in time, or the connection
    /// broke. When an idempotent request's connection was lost and its second try cannot even
    /// be sent, the error is the first try's [`CallError::ConnectionLost`]: it may have been
    /// applied.
    pub async fn send(&self, request: Request, idempotent: bool) -> Result<Response> {
        let timeout = self.config.request_timeout;
        let conn = self.connection().await?;
        match conn.call(&request, timeout).await {
            // The connection closed before the request left: any request may go again.
            Err(CallError::Connect { .. }) => {
                self.connection().await?.call(&request, timeout).await
            }
            // The first try may have been applied: if the second cannot even be sent, the
            // outcome is still unknown, and the caller must hear that, not "cannot connect".
            Err(lost @ CallError::ConnectionLost(_)) if idempotent => {
                let again = match self.connection().await {
                    Ok(conn) => conn.call(&request, timeout).await,
                    Err(e) => Err(e),
                };
                match again {
                    // The second try was never sent (no connection, or its handshake was
                    // refused, whatever the reason): only the first's fate counts.
                    Err(CallError::Connect { .. } | CallError::Refused(_)) => Err(lost),
                    other => other,
                }
            }
            other => other,
        }
    }

    fn live_connection(&self) -> Option<Arc<Connection>> {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|c| !c.is_closed())
            .cloned()
    }

    /// Returns the live connection, opening a new one if there is none or it broke.
    async fn connection(&self) -> Result<Arc<Connection>> {
        // The common case, without waiting in line: the connection is up.
        if let Some(conn) = self.live_connection() {
            return Ok(conn);
        }
        let arrived = tokio::time::Instant::now();
        let mut slot = self.slot.lock().await;
        // Someone ahead in line may have opened it.
        if let Some(conn) = self.live_connection() {
            return Ok(conn);
        }
        // An attempt that failed while this caller waited in line answers for it too (callers
        // queued behind an attempt that waited out its timeout must not each wait out their
        // own); so does any failure within the backoff.
        if let Some((at, e)) = &slot.failed
            && (*at >= arrived || at.elapsed() < self.config.reconnect_backoff)
        {
            return Err(e.clone());
        }
        let opened = Connection::open(
            &*self.config.dial,
            &self.addr,
            self.config.connect_timeout,
            self.config.max_frame_bytes,
            self.config.role,
            self.config.token.clone(),
            self.epochs.clone(),
        )
        .await;
        match opened {
            Ok(conn) => {
                let conn = Arc::new(conn);
                slot.failed = None;
                *self.live.lock().unwrap_or_else(PoisonError::into_inner) = Some(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                // Only an unreachable node: one that answered (and refused the handshake, say
                // because it has not joined the cluster yet) may accept the next attempt.
                if matches!(e, CallError::Connect { .. }) {
                    slot.failed = Some((tokio::time::Instant::now(), e.clone()));
                }
                Err(e)
            }
        }
    }
}
