//! A CA in a temporary directory, its certificates, and one handshake between a server and a
//! client over an in-memory pipe.

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use haze_protocol::{BoxFuture, BoxStream, Dial};
use haze_tls::rustls::pki_types::ServerName;
use haze_tls::rustls::{ClientConfig, ServerConfig};
use haze_tls::tokio_rustls::TlsAcceptor;
use haze_tls::{ClientAuth, Identity, IdentityKind, TlsDial, TlsError, generate};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// The wall clock: rustls checks certificates' validity against it, so the tests date their
/// certificates by it too.
#[allow(clippy::disallowed_methods)]
pub(crate) fn now() -> SystemTime {
    SystemTime::now()
}

pub(crate) const DAY: Duration = Duration::from_secs(86_400);

/// A certificate's file and its key's.
pub(crate) type Pair = (PathBuf, PathBuf);

/// A cluster CA in a temporary directory.
pub(crate) struct Pki {
    pub(crate) dir: tempfile::TempDir,
}

impl Pki {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        generate::init_ca(dir.path(), now()).expect("a CA in a new directory");
        Self { dir }
    }

    pub(crate) fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    pub(crate) fn ca(&self) -> PathBuf {
        self.path(generate::CA_CERT)
    }

    /// A node's certificate for localhost and the loopback addresses, valid from now.
    pub(crate) fn node(&self, name: &str) -> Pair {
        let sans = ["localhost", "127.0.0.1", "::1"].map(String::from);
        self.issue(IdentityKind::Node, name, &sans, 365, now())
    }

    /// A client's certificate, valid from now.
    pub(crate) fn client(&self, name: &str) -> Pair {
        self.issue(IdentityKind::Client, name, &[], 365, now())
    }

    pub(crate) fn issue(
        &self,
        kind: IdentityKind,
        name: &str,
        sans: &[String],
        days: u32,
        at: SystemTime,
    ) -> Pair {
        let written = generate::issue(self.dir.path(), kind, name, sans, days, at)
            .expect("a certificate from the CA");
        (written.cert, written.key)
    }

    pub(crate) fn server(&self, (cert, key): &Pair, auth: ClientAuth) -> Arc<ServerConfig> {
        haze_tls::server_config(cert, key, Some(&self.ca()), auth).expect("a server config")
    }

    pub(crate) fn client_config(&self, identity: Option<&Pair>) -> Arc<ClientConfig> {
        let identity = identity.map(|(cert, key)| (cert.as_path(), key.as_path()));
        haze_tls::client_config(Some(&self.ca()), identity).expect("a client config")
    }
}

/// Hands out one end of an in-memory pipe, once.
struct PipeDial(Mutex<Option<DuplexStream>>);

impl Dial for PipeDial {
    fn dial(&self, _addr: String) -> BoxFuture<'_, io::Result<BoxStream>> {
        let end = self.0.lock().expect("not poisoned").take();
        Box::pin(async move {
            end.map(|end| Box::new(end) as BoxStream)
                .ok_or_else(|| io::Error::other("dialed twice"))
        })
    }
}

/// Both sides of one connection.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The server's handshake: the client's identity.
    pub(crate) server: Result<Option<Identity>, TlsError>,
    /// The client's handshake and its first read.
    pub(crate) client: io::Result<()>,
}

/// Dials `addr` through a `TlsDial` over a pipe to a server with `server`'s configuration;
/// after its handshake the server writes a greeting that the client reads (under TLS 1.3, the
/// first read is where a client learns that the server refused its certificate).
pub(crate) async fn connect(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    addr: &str,
    server_name: Option<&str>,
) -> Outcome {
    let (near, far) = tokio::io::duplex(64 * 1024);
    let mut dial = TlsDial::new(Arc::new(PipeDial(Mutex::new(Some(near)))), client);
    if let Some(name) = server_name {
        let name = ServerName::try_from(name.to_string()).expect("a server name");
        dial = dial.with_server_name(name);
    }
    let acceptor = TlsAcceptor::from(server);
    let server_side = async {
        let (mut stream, identity) =
            haze_tls::accept(&acceptor, far, Duration::from_secs(10)).await?;
        stream
            .write_all(b"hello")
            .await
            .map_err(TlsError::Handshake)?;
        stream.flush().await.map_err(TlsError::Handshake)?;
        Ok(identity)
    };
    let client_side = async {
        let mut stream = dial.dial(addr.to_string()).await?;
        let mut greeting = [0u8; 5];
        stream.read_exact(&mut greeting).await?;
        assert_eq!(&greeting, b"hello");
        Ok(())
    };
    let (server, client) = tokio::join!(server_side, client_side);
    Outcome { server, client }
}
