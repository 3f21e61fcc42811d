//! rustls configurations for Haze's servers and clients, with the ring provider only.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ServerConfig};

use crate::TlsError;
use crate::load::{load_certs, load_key, load_roots, system_roots};

/// Whether a server asks its clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No client certificate is asked for (clients authenticate otherwise, with tokens).
    #[default]
    None,
    /// A client may present a certificate; if it does, it must chain to the CA or the
    /// handshake fails. Clients without one are let in: the binary port serves both nodes
    /// (certificates) and clients (tokens).
    Optional,
    /// Every client must present a certificate that chains to the CA.
    Required,
}

/// The crypto provider every configuration of this crate uses: rustls's ring provider with
/// its default (safe) cipher suites, AES-128-GCM preferred, and key exchange groups (X25519,
/// P-256, P-384).
#[must_use]
// rustls 0.23.48 deprecates the ring provider because it has no post-quantum key exchange
// (X25519MLKEM768 is aws-lc-rs's); the issue rules aws-lc out, so ring it is, knowingly.
#[allow(deprecated)]
pub fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    // AES-128-GCM first (ring's default puts AES-256 first): 10 AES rounds instead of 14 per
    // block, with the same GCM, on both ends of every connection; still a suite every TLS 1.3
    // peer must support. The other suites stay, in their order, for peers that prefer them.
    provider
        .cipher_suites
        .sort_by_key(|suite| suite.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(provider)
}

/// A server's configuration: its certificate chain (PEM, the leaf first) and key, and how it
/// verifies client certificates: against the CA bundle `client_ca` unless `auth` is
/// [`ClientAuth::None`] (then `client_ca` is not read). TLS 1.3 and 1.2; no ALPN.
///
/// # Errors
///
/// Any file's [`TlsError`] (see [`crate::load`]); [`TlsError::Pair`] if the key is not the
/// certificate's; [`TlsError::NoClientCa`] if client certificates are asked for without a CA.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
    auth: ClientAuth,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = load_certs(cert)?;
    let key_der = load_key(key)?;
    let provider = provider();
    let verifier = match (auth, client_ca) {
        (ClientAuth::None, _) => WebPkiClientVerifier::no_client_auth(),
        (_, None) => return Err(TlsError::NoClientCa),
        (auth, Some(ca)) => {
            let roots = Arc::new(load_roots(ca)?);
            let builder = WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(&provider));
            let builder = if auth == ClientAuth::Optional {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            builder.build().map_err(|e| TlsError::Invalid {
                path: ca.to_path_buf(),
                problem: e.to_string(),
            })?
        }
    };
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key_der)
        .map_err(|source| TlsError::Pair {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            source,
        })?;
    Ok(Arc::new(config))
}

/// A client's configuration: servers are verified against the CA bundle `ca`, or the
/// system's trusted roots if `None`; `identity` is the client's own certificate chain and
/// key (a node dialing a peer, a client with a certificate), as paths to PEM files.
///
/// The server's certificate must name the host it is reached by (a DNS name or an IP address
/// subject alternative name): [`crate::TlsDial`] takes it from the address it dials.
///
/// # Errors
///
/// Any file's [`TlsError`]; [`TlsError::SystemRoots`] if `ca` is `None` and the system has no
/// usable roots; [`TlsError::Pair`] if the key is not the certificate's.
pub fn client_config(
    ca: Option<&Path>,
    identity: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = match ca {
        Some(ca) => load_roots(ca)?,
        None => system_roots()?,
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = load_certs(cert)?;
            let key_der = load_key(key)?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|source| TlsError::Pair {
                    cert: cert.to_path_buf(),
                    key: key.to_path_buf(),
                    source,
                })?
        }
    };
    Ok(Arc::new(config))
}
