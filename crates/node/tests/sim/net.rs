//! The transport seam, filled with turmoil's simulated TCP, and a clock that reads simulated
//! time.

use haze_crdt::PhysicalClock;
use haze_protocol::{BoxFuture, BoxStream, Dial, Listener};

/// turmoil's listener as a node's [`Listener`].
pub struct SimListener(pub turmoil::net::TcpListener);

impl Listener for SimListener {
    fn accept(&mut self) -> BoxFuture<'_, std::io::Result<(BoxStream, String)>> {
        Box::pin(async move {
            let (stream, peer) = self.0.accept().await?;
            Ok((Box::new(stream) as BoxStream, peer.to_string()))
        })
    }

    fn local_addr(&self) -> std::io::Result<String> {
        self.0.local_addr().map(|a| a.to_string())
    }
}

/// Opens turmoil TCP connections (host names resolve through the simulation's DNS).
#[derive(Debug, Clone, Copy)]
pub struct SimDial;

impl Dial for SimDial {
    fn dial(&self, addr: String) -> BoxFuture<'_, std::io::Result<BoxStream>> {
        Box::pin(async move {
            let stream = turmoil::net::TcpStream::connect(addr.as_str()).await?;
            Ok(Box::new(stream) as BoxStream)
        })
    }
}

/// Simulated wall time, for the nodes' hybrid logical clocks.
#[derive(Debug, Clone, Copy)]
pub struct SimClock;

impl PhysicalClock for SimClock {
    fn now_millis(&self) -> u64 {
        let since_epoch = turmoil::since_epoch().unwrap_or_default();
        u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
    }
}
