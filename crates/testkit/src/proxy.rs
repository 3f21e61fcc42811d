//! A fault-injecting TCP proxy: listens on an address, forwards every connection to a target,
//! and can be switched at run time ([`ProxyHandle::set`]) between [`Mode`]s: pass, delay each
//! chunk, refuse a fraction of new connections and cut connections mid-stream after a random
//! number of bytes, or blackhole (accept, forward nothing). It counts what it did ([`Stats`]),
//! so a test can print the faults it injected.
//!
//! The mode is read again for every chunk, so a switch reaches the connections already open (a
//! node's long-lived connections to its peers), not only new ones. Randomness comes from one
//! seed ([`Proxy::start`]): connection `i` draws from `seed` and `i`, so a run that failed can
//! be replayed with the seed it printed (as far as the order of connections repeats).
//!
//! TLS passes through untouched: the proxy forwards bytes, and a client that dials it verifies
//! the target's certificate as long as the proxy listens on an address that certificate names.
//!
//! [`Proxy::spawn_thread`] runs a proxy on a thread of its own after a setup step, for a test
//! that must open the proxy's sockets somewhere else than its own threads do (in another
//! network namespace).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the proxy does to the bytes it forwards.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Mode {
    /// Forwards everything at once.
    #[default]
    Pass,
    /// Holds each chunk (one read, in either direction) this long before forwarding it. A
    /// connection's chunks are held one after the other, so its throughput drops too.
    Delay(Duration),
    /// Closes a fraction (`refuse`, 0.0 to 1.0) of new connections at once, and cuts every
    /// connection, new or open, after a random number of bytes (1 to `within`, drawn for each
    /// connection when it first forwards in this mode, counted from then): the chunk that
    /// crosses the limit is forwarded only up to it, then both sides are closed.
    Cut {
        /// The fraction of new connections closed as soon as they are accepted.
        refuse: f64,
        /// The most bytes a connection forwards (both directions together) before it is cut.
        within: u64,
    },
    /// Accepts connections and reads from them, but forwards nothing either way: requests are
    /// neither answered nor refused.
    Blackhole,
}

/// What a proxy did since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed at once on accepting them ([`Mode::Cut`]'s `refuse`).
    pub refused: u64,
    /// Connections cut mid-stream ([`Mode::Cut`]).
    pub cut: u64,
    /// Connections whose target could not be reached.
    pub unreachable: u64,
    /// Bytes forwarded (both directions).
    pub forwarded: u64,
    /// Chunks held back ([`Mode::Delay`]) and the bytes in them.
    pub delayed_chunks: u64,
    /// Bytes held back ([`Mode::Delay`]).
    pub delayed_bytes: u64,
    /// Bytes read and thrown away ([`Mode::Blackhole`]).
    pub blackholed_bytes: u64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} connections ({} refused, {} cut mid-stream, {} target unreachable), {} bytes \
             forwarded, {} bytes delayed in {} chunks, {} bytes blackholed",
            self.accepted,
            self.refused,
            self.cut,
            self.unreachable,
            self.forwarded,
            self.delayed_bytes,
            self.delayed_chunks,
            self.blackholed_bytes
        )
    }
}

/// The mode and the counters, shared by the accept loop, the connections and the handles.
#[derive(Debug, Default)]
struct Shared {
    mode: Mutex<Mode>,
    accepted: AtomicU64,
    refused: AtomicU64,
    cut: AtomicU64,
    unreachable: AtomicU64,
    forwarded: AtomicU64,
    delayed_chunks: AtomicU64,
    delayed_bytes: AtomicU64,
    blackholed_bytes: AtomicU64,
}

impl Shared {
    fn mode(&self) -> Mode {
        *self
            .mode
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Switches a proxy's mode and reads its counters, from any thread.
#[derive(Debug, Clone)]
pub struct ProxyHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    seed: u64,
}

impl ProxyHandle {
    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The seed its random draws come from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Switches the proxy to `mode`, for new connections and open ones alike.
    pub fn set(&self, mode: Mode) {
        *self
            .shared
            .mode
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = mode;
    }

    /// The mode it is in.
    pub fn mode(&self) -> Mode {
        self.shared.mode()
    }

    /// What it did so far.
    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            accepted: get(&s.accepted),
            refused: get(&s.refused),
            cut: get(&s.cut),
            unreachable: get(&s.unreachable),
            forwarded: get(&s.forwarded),
            delayed_chunks: get(&s.delayed_chunks),
            delayed_bytes: get(&s.delayed_bytes),
            blackholed_bytes: get(&s.blackholed_bytes),
        }
    }
}

/// A proxy serving on the tokio runtime it was started on; it stops accepting when dropped
/// (connections already open end with the runtime, or when either side closes).
#[derive(Debug)]
pub struct Proxy {
    handle: ProxyHandle,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on `listen` (`host:port`; port 0 picks one) and forwards every connection to
    /// `target`, in [`Mode::Pass`] until told otherwise, drawing its random numbers from `seed`.
    ///
    /// # Errors
    ///
    /// If `listen` cannot be bound.
    pub async fn start(listen: &str, target: &str, seed: u64) -> io::Result<Proxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let target = target.to_string();
        let accept = tokio::spawn(accept_loop(listener, target, shared.clone(), seed));
        Ok(Proxy {
            handle: ProxyHandle { shared, addr, seed },
            accept,
        })
    }

    /// A handle to switch its mode and read its counters.
    pub fn handle(&self) -> ProxyHandle {
        self.handle.clone()
    }

    /// Runs a proxy ([`Proxy::start`]) on a new thread with a runtime of its own, after
    /// running `setup` on that thread: every socket the proxy opens (its listener, its
    /// connections to the target) is opened by that thread, so a `setup` that moves the thread
    /// into another network namespace puts the proxy there. Returns once it listens.
    ///
    /// # Errors
    ///
    /// `setup`'s error, or the runtime's, or the bind's.
    pub fn spawn_thread(
        listen: &str,
        target: &str,
        seed: u64,
        setup: impl FnOnce() -> io::Result<()> + Send + 'static,
    ) -> io::Result<ProxyThread> {
        let (ready_tx, ready) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let listen = listen.to_string();
        let target = target.to_string();
        let thread = std::thread::spawn(move || {
            let run = || -> io::Result<tokio::runtime::Runtime> {
                setup()?;
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            };
            let runtime = match run() {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            runtime.block_on(async move {
                match Proxy::start(&listen, &target, seed).await {
                    Ok(proxy) => {
                        let _ = ready_tx.send(Ok(proxy.handle()));
                        // Until the ProxyThread is dropped (the sender with it).
                        let _ = stopped.await;
                        drop(proxy);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
            // Dropping the runtime ends every connection still open.
        });
        let handle = ready
            .recv()
            .map_err(|_| io::Error::other("the proxy thread ended before it listened"))??;
        Ok(ProxyThread {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl std::ops::Deref for Proxy {
    type Target = ProxyHandle;

    fn deref(&self) -> &ProxyHandle {
        &self.handle
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A proxy on a thread of its own ([`Proxy::spawn_thread`]): dropping it stops the proxy,
/// closes its connections and joins the thread.
#[derive(Debug)]
pub struct ProxyThread {
    handle: ProxyHandle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::ops::Deref for ProxyThread {
    type Target = ProxyHandle;

    fn deref(&self) -> &ProxyHandle {
        &self.handle
    }
}

impl Drop for ProxyThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, target: String, shared: Arc<Shared>, seed: u64) {
    let mut index = 0u64;
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of descriptors, most likely: try again shortly.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        index += 1;
        Shared::add(&shared.accepted, 1);
        let mut rng = Rng::new(seed, index);
        if let Mode::Cut { refuse, .. } = shared.mode()
            && rng.unit() < refuse
        {
            Shared::add(&shared.refused, 1);
            drop(client);
            continue;
        }
        tokio::spawn(connection(client, target.clone(), shared.clone(), rng));
    }
}

/// Forwards one connection until either side closes or the connection is cut.
async fn connection(mut client: TcpStream, target: String, shared: Arc<Shared>, mut rng: Rng) {
    let mut server = match TcpStream::connect(&target).await {
        Ok(server) => server,
        Err(_) => {
            Shared::add(&shared.unreachable, 1);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut up = vec![0u8; 16 * 1024];
    let mut down = vec![0u8; 16 * 1024];
    // Bytes left before the cut, drawn the first time a chunk is forwarded in `Mode::Cut`.
    let mut budget: Option<u64> = None;
    loop {
        // Reads are cancel-safe: the branch not taken loses nothing.
        let (chunk, to_server) = tokio::select! {
            n = client.read(&mut up) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => (&up[..n], true),
            },
            n = server.read(&mut down) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => (&down[..n], false),
            },
        };
        let len = chunk.len() as u64;
        let mut send = chunk;
        match shared.mode() {
            Mode::Pass => {}
            Mode::Delay(by) => {
                Shared::add(&shared.delayed_chunks, 1);
                Shared::add(&shared.delayed_bytes, len);
                tokio::time::sleep(by).await;
            }
            Mode::Cut { within, .. } => {
                let left = *budget.get_or_insert_with(|| 1 + rng.below(within.max(1)));
                if len > left {
                    // Forward up to the cut, then close both sides.
                    send = &chunk[..usize::try_from(left).unwrap_or(usize::MAX)];
                    let out = if to_server { &mut server } else { &mut client };
                    let _ = out.write_all(send).await;
                    Shared::add(&shared.forwarded, send.len() as u64);
                    Shared::add(&shared.cut, 1);
                    return;
                }
                budget = Some(left - len);
            }
            Mode::Blackhole => {
                Shared::add(&shared.blackholed_bytes, len);
                continue;
            }
        }
        let out = if to_server { &mut server } else { &mut client };
        if out.write_all(send).await.is_err() {
            return;
        }
        Shared::add(&shared.forwarded, send.len() as u64);
    }
}

/// A small seeded generator (SplitMix64): enough for fault draws, and no dependency.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    /// The generator of connection `index` of a proxy seeded with `seed`.
    fn new(seed: u64, index: u64) -> Rng {
        let mut rng = Rng(seed ^ index.wrapping_mul(0xA076_1D64_78BD_642F));
        rng.next();
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A number in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on loopback; returns its address.
    async fn echo() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    /// Sends `data` through a new connection to `addr` and reads what comes back until `len`
    /// bytes came, the connection closed, or `wait` passed.
    async fn round_trip(addr: SocketAddr, data: &[u8], wait: Duration) -> (Vec<u8>, bool) {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(data).await;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                Err(_) => return (got, false),
                Ok(Ok(0) | Err(_)) => return (got, true),
                Ok(Ok(n)) => {
                    got.extend_from_slice(&buf[..n]);
                    if got.len() >= data.len() {
                        return (got, false);
                    }
                }
            }
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn the_proxy_passes_delays_cuts_refuses_and_blackholes_and_counts_it() {
        runtime().block_on(async {
            let target = echo().await;
            let proxy = Proxy::start("127.0.0.1:0", &target, 7).await.unwrap();
            let addr = proxy.addr();
            let data: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();

            let (got, _) = round_trip(addr, &data, Duration::from_secs(5)).await;
            assert_eq!(got, data, "pass forwards everything");

            proxy.set(Mode::Delay(Duration::from_millis(150)));
            let began = tokio::time::Instant::now();
            let (got, _) = round_trip(addr, b"ping", Duration::from_secs(5)).await;
            assert_eq!(got, b"ping");
            // Held once on the way there and once on the way back.
            assert!(began.elapsed() >= Duration::from_millis(300));
            assert!(proxy.stats().delayed_chunks >= 2);

            proxy.set(Mode::Cut {
                refuse: 0.0,
                within: 100,
            });
            let (got, closed) = round_trip(addr, &data, Duration::from_secs(5)).await;
            assert!(closed && got.len() < 100, "cut after {} bytes", got.len());
            assert_eq!(proxy.stats().cut, 1);

            proxy.set(Mode::Cut {
                refuse: 1.0,
                within: 100,
            });
            let (got, closed) = round_trip(addr, b"ping", Duration::from_secs(5)).await;
            assert!(closed && got.is_empty());
            assert_eq!(proxy.stats().refused, 1);

            proxy.set(Mode::Blackhole);
            let (got, closed) = round_trip(addr, b"ping", Duration::from_millis(300)).await;
            assert!(!closed && got.is_empty(), "blackholed: no answer, no close");
            assert_eq!(proxy.stats().blackholed_bytes, 4);

            // Back to pass, an open connection forwards again.
            proxy.set(Mode::Pass);
            let (got, _) = round_trip(addr, b"pong", Duration::from_secs(5)).await;
            assert_eq!(got, b"pong");
            let stats = proxy.stats();
            assert_eq!(stats.accepted, 6);
            assert_eq!(stats.unreachable, 0);
        });
    }

    #[test]
    fn a_switch_reaches_connections_already_open() {
        runtime().block_on(async {
            let target = echo().await;
            let proxy = Proxy::start("127.0.0.1:0", &target, 1).await.unwrap();
            let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
            let mut buf = [0u8; 64];
            s.write_all(b"one").await.unwrap();
            s.read_exact(&mut buf[..3]).await.unwrap();
            proxy.set(Mode::Cut {
                refuse: 0.0,
                within: 1,
            });
            // The next byte crosses a budget of one: the connection is cut.
            let _ = s.write_all(b"two").await;
            let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
            assert!(matches!(read, Ok(Ok(0) | Err(_))), "{read:?}");
            assert_eq!(proxy.stats().cut, 1);
        });
    }

    #[test]
    fn a_proxy_on_its_own_thread_runs_setup_first_and_stops_when_dropped() {
        let runtime = runtime();
        let target = runtime.block_on(echo());
        let (ran_tx, ran) = mpsc::channel();
        let proxy = Proxy::spawn_thread("127.0.0.1:0", &target, 3, move || {
            ran_tx.send(()).unwrap();
            Ok(())
        })
        .unwrap();
        ran.try_recv().expect("setup ran before it listened");
        let addr = proxy.addr();
        let (got, _) = runtime.block_on(round_trip(addr, b"hello", Duration::from_secs(5)));
        assert_eq!(got, b"hello");
        drop(proxy);
        let refused = runtime.block_on(TcpStream::connect(addr));
        assert!(refused.is_err(), "still listening after the drop");
        let failed = Proxy::spawn_thread("127.0.0.1:0", &target, 3, || {
            Err(io::Error::other("no namespace"))
        });
        assert!(failed.is_err());
    }
}
