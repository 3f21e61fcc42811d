//! The one error of this crate.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// What went wrong loading TLS material, building a configuration, shaking hands or writing
/// certificates. Every variant about a file names it; none quotes a file's contents (a key
/// file's bytes must never reach a log).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read (missing, unreadable, a directory, ...).
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file was read but does not hold what it should (not PEM, no certificate, a key of
    /// an unsupported kind, a certificate that does not parse, too large, ...).
    #[error("{path}: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it, in words.
        problem: String,
    },
    /// A certificate and a private key that each loaded but do not make a usable pair (the
    /// key is not the certificate's, say).
    #[error("{cert} with key {key}: {source}")]
    Pair {
        /// The certificate chain's file.
        cert: PathBuf,
        /// The key's file.
        key: PathBuf,
        /// What rustls found wrong.
        source: rustls::Error,
    },
    /// Client certificates were asked for but no CA to verify them against was given.
    #[error("verifying client certificates needs the CA that issues them")]
    NoClientCa,
    /// The system's trust store could not be read or holds no usable certificate.
    #[error("the system's trusted certificates: {0}")]
    SystemRoots(String),
    /// rustls refused a configuration (no protocol version in common with the provider, ...).
    #[error("TLS configuration: {0}")]
    Config(String),
    /// An address has no host part that can name a server (`:7000`, `[::1`).
    #[error("{0:?} has no host to verify the server's certificate against")]
    ServerName(String),
    /// The handshake failed: the peer's certificate is of another CA, expired or missing
    /// where one is required, the peer does not speak TLS, or the connection broke.
    #[error("TLS handshake failed: {0}{hint}", hint = crate::transport::hint(.0))]
    Handshake(io::Error),
    /// The handshake did not finish in time.
    #[error("TLS handshake did not finish within {0:?}")]
    HandshakeTimeout(Duration),
    /// A node or client name that cannot name an identity (see [`crate::Identity`]).
    #[error(
        "{0:?} is not a valid name: 1 to 64 ASCII letters, digits, '-', '_' or '.', \
         starting with a letter or digit"
    )]
    InvalidName(String),
    /// A name given for a certificate's subject alternative names is neither an IP address
    /// nor a DNS name.
    #[error("{0:?} is neither an IP address nor a valid DNS name")]
    InvalidSubjectName(String),
    /// A validity in days out of range.
    #[error("{0} days is not a validity: give 1 to 36500")]
    InvalidDays(u32),
    /// A file that generating would write exists already: nothing was written.
    #[error("{0} exists: refusing to overwrite it (remove it first to replace it)")]
    Exists(PathBuf),
    /// Writing a generated file (or creating its directory) failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// rcgen could not generate a key or sign a certificate.
    #[cfg(feature = "generate")]
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}
