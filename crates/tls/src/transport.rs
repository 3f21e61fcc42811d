//! Handshakes over the transport seam: a server's accept, bounded by a timeout, and a dialer
//! that wraps any other.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use haze_protocol::{BoxFuture, BoxStream, Dial};
use rustls::pki_types::ServerName;
use rustls::{CertificateError, ClientConfig, InvalidMessage};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{TlsAcceptor, TlsConnector, server};

use crate::{Identity, TlsError};

/// Runs the server's handshake on an accepted `stream`, for at most `timeout`, and returns
/// the TLS stream and the [`Identity`] named by the client's certificate, if it presented one
/// (rustls has verified it against the CA by then: [`crate::ClientAuth`]). A verified
/// certificate that names no Haze identity gives `None`, as no certificate does.
///
/// # Errors
///
/// [`TlsError::HandshakeTimeout`] after `timeout`; [`TlsError::Handshake`] if the client does
/// not speak TLS, presents a certificate of another CA, an expired one, none where one is
/// required, or the connection breaks.
pub async fn accept<S>(
    acceptor: &TlsAcceptor,
    stream: S,
    timeout: Duration,
) -> Result<(server::TlsStream<S>, Option<Identity>), TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let stream = tokio::time::timeout(timeout, acceptor.accept(stream))
        .await
        .map_err(|_| TlsError::HandshakeTimeout(timeout))?
        .map_err(TlsError::Handshake)?;
    let identity = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(<[_]>::first)
        .and_then(|leaf| Identity::from_certificate(leaf));
    Ok((stream, identity))
}

/// The name a server reached at `addr` (`host:port`, `[v6]:port` or a bare host) must have
/// in its certificate: an IP address for an IP, else a DNS name.
///
/// # Errors
///
/// [`TlsError::ServerName`] if the address has no host that is an IP address or a DNS name.
pub fn server_name(addr: &str) -> Result<ServerName<'static>, TlsError> {
    if let Ok(socket) = addr.parse::<SocketAddr>() {
        return Ok(ServerName::IpAddress(socket.ip().into()));
    }
    let host = match addr.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map(|(host, _)| host),
        None => match addr.rsplit_once(':') {
            Some((host, _)) if !host.contains(':') => Some(host),
            Some(_) => None,
            None => Some(addr),
        },
    };
    host.filter(|host| !host.is_empty())
        .and_then(|host| ServerName::try_from(host.to_string()).ok())
        .ok_or_else(|| TlsError::ServerName(addr.to_string()))
}

/// Dials through another [`Dial`] (TCP, a simulation's network) and runs the client's
/// handshake on the connection, verifying the server's certificate against the name of the
/// host dialed ([`server_name`]) or the one given with [`TlsDial::with_server_name`].
///
/// The dial's deadline is its caller's (`ChannelConfig::connect_timeout` covers the
/// handshake). With TLS 1.3 a server that refuses the client's certificate does so after the
/// client's handshake has finished: the client sees the server's alert on its first read.
#[derive(Clone)]
pub struct TlsDial {
    inner: Arc<dyn Dial>,
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl TlsDial {
    /// TLS over `inner`'s connections with `config` ([`crate::client_config`]).
    #[must_use]
    pub fn new(inner: Arc<dyn Dial>, config: Arc<ClientConfig>) -> Self {
        Self {
            inner,
            connector: TlsConnector::from(config),
            server_name: None,
        }
    }

    /// Verifies every server against `name` instead of the host of the address dialed (a
    /// server reached through a proxy or by an address its certificate does not name).
    #[must_use]
    pub fn with_server_name(mut self, name: ServerName<'static>) -> Self {
        self.server_name = Some(name);
        self
    }
}

impl fmt::Debug for TlsDial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsDial")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl Dial for TlsDial {
    fn dial(&self, addr: String) -> BoxFuture<'_, io::Result<BoxStream>> {
        Box::pin(async move {
            let name = match &self.server_name {
                Some(name) => name.clone(),
                None => server_name(&addr)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            };
            let stream = self.inner.dial(addr.clone()).await?;
            match self.connector.connect(name, stream).await {
                Ok(tls) => Ok(Box::new(tls) as BoxStream),
                Err(source) => Err(io::Error::new(source.kind(), DialFailed { addr, source })),
            }
        })
    }
}

/// A client handshake that failed, with the address dialed.
#[derive(Debug)]
struct DialFailed {
    addr: String,
    source: io::Error,
}

impl fmt::Display for DialFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TLS handshake with {} failed: {}{}",
            self.addr,
            self.source,
            hint(&self.source)
        )
    }
}

impl StdError for DialFailed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

/// A few words on the likely cause of a failed handshake, for the errors people read first.
pub(crate) fn hint(e: &io::Error) -> &'static str {
    let Some(e) = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
        return "";
    };
    match e {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => {
                " (the certificate is not issued by a trusted CA: another cluster's?)"
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                " (the certificate has expired: issue a new one)"
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                " (the certificate is not valid yet: is a clock wrong?)"
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                " (the server's certificate does not name the host dialed)"
            }
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                " (the certificate is not for this use: a client's certificate on a server?)"
            }
            _ => "",
        },
        rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType) => {
            " (the peer does not speak TLS)"
        }
        rustls::Error::NoCertificatesPresented => {
            " (a client certificate of the cluster CA is required)"
        }
        _ => "",
    }
}
