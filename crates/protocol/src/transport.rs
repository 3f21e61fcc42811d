//! The transport seam: how nodes accept connections and clients open them.
//!
//! Production uses tokio's TCP ([`tokio::net::TcpListener`] implements [`Listener`], and
//! [`TcpDial`] implements [`Dial`]); a simulation passes its own (turmoil's TCP, say), so the
//! same node and client code runs under a seeded, simulated network (CONVENTIONS.md, 5).

use std::future::Future;
use std::io;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

/// A connected byte stream.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// A stream of any transport.
pub type BoxStream = Box<dyn Stream>;

/// A boxed future: trait methods that return one stay object-safe (`Arc<dyn Dial>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Accepts incoming connections.
pub trait Listener: Send + 'static {
    /// Waits for the next connection; returns it and the peer's address.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, String)>>;

    /// Returns the address this listener is bound to.
    ///
    /// # Errors
    ///
    /// The transport's error.
    fn local_addr(&self) -> io::Result<String>;
}

/// Opens outgoing connections.
pub trait Dial: Send + Sync + 'static {
    /// Connects to `addr`.
    fn dial(&self, addr: String) -> BoxFuture<'_, io::Result<BoxStream>>;
}

impl Listener for tokio::net::TcpListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, String)>> {
        Box::pin(async move {
            let (stream, peer) = tokio::net::TcpListener::accept(self).await?;
            // Requests and responses are small and latency-bound: never wait to coalesce.
            let _ = stream.set_nodelay(true);
            Ok((Box::new(stream) as BoxStream, peer.to_string()))
        })
    }

    fn local_addr(&self) -> io::Result<String> {
        tokio::net::TcpListener::local_addr(self).map(|a| a.to_string())
    }
}

/// Dials with tokio's TCP.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpDial;

impl Dial for TcpDial {
    fn dial(&self, addr: String) -> BoxFuture<'_, io::Result<BoxStream>> {
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            let _ = stream.set_nodelay(true);
            Ok(Box::new(stream) as BoxStream)
        })
    }
}
