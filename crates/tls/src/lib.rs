//! Haze's TLS: what every listener and dialer needs to speak TLS against a cluster CA, and
//! what `haze certs` needs to make one.
//!
//! * [`load`]: PEM certificate chains, private keys and CA bundles from files, each failure a
//!   [`TlsError`] that names the file and what is wrong with it (never a panic, whatever the
//!   file holds; never a read past [`load::MAX_PEM_BYTES`]).
//! * [`server_config`] and [`client_config`]: rustls configurations with the ring provider,
//!   with client certificates not asked for, optional (verified if presented) or required.
//! * [`Identity`]: who a certificate of the cluster CA names, a node or a client, read from
//!   its `haze://node/NAME` or `haze://client/NAME` URI subject alternative name.
//! * [`accept`] and [`TlsDial`]: the handshakes over the transport seam of `haze-protocol`,
//!   the server's bounded by a timeout and returning the verified client's identity.
//! * `generate` (the cargo feature of the same name): a cluster CA and the certificates it
//!   issues, written to files with private keys readable by their owner only.
//!
//! # Dependencies, and why each
//!
//! * `rustls` (features `ring`, `std`, `tls12`; no defaults): a memory-safe TLS stack with no C
//!   library to link but ring's small, audited primitives. The default `aws-lc-rs` provider is
//!   off (a C and assembly build with cmake; the issue rules it out), and so is `logging` (the
//!   `log` crate, which Haze does not use). `tls12` stays on so HTTP clients that predate
//!   TLS 1.3 still connect; rustls offers only forward-secret AEAD suites either way.
//!   Its certificate verification is `rustls-webpki`'s, which rustls brings. What ring lacks
//!   (and rustls 0.23.48 deprecates its provider for): post-quantum hybrid key exchange,
//!   `X25519MLKEM768`, which only the aws-lc-rs provider has; key exchange is X25519 or ECDHE.
//! * `tokio-rustls` (no defaults): the rustls state machine as tokio streams, which is what the
//!   transport seam carries. Its defaults would turn aws-lc-rs back on.
//! * `rustls-native-certs`: the system's trust store for clients given no CA, read from the
//!   files the system keeps (`SSL_CERT_FILE`/`SSL_CERT_DIR` first). Its only other dependency
//!   on Linux is `openssl-probe`, a few lines of Rust that know where distributions put those
//!   files: it neither links nor runs OpenSSL. `webpki-roots` would compile in a snapshot of
//!   Mozilla's roots that goes stale with the binary; `rustls-platform-verifier` calls into
//!   the platform's verifier and brings more than this needs on Linux, where it reads the same
//!   files through this same crate.
//! * `x509-parser` (no defaults): reads the subject alternative names of a verified
//!   certificate (webpki checks them for a server name but does not list them). It is the
//!   parser rcgen itself uses to read an existing CA, so `generate` adds no second one; it is
//!   maintained by the Rusticata project, written with `nom`, and returns errors on malformed
//!   input rather than panicking.
//! * `rcgen` (feature `generate` only; features `ring`, `pem`, `x509-parser`): writes
//!   certificates and ECDSA P-256 keys with the same ring primitives; `pem` writes the files
//!   (the small `pem` and `base64` crates), `x509-parser` lets it sign with a CA read back
//!   from `ca.pem`. `time` converts the caller's clock into its validity dates.
//!
//! # Randomness and time
//!
//! The handshakes and key generation draw randomness from the operating system through ring,
//! as cryptography must: an injected generator would be a way to make weak keys. Time is the
//! caller's where Haze decides it (the validity of the certificates `generate` writes); rustls
//! checks certificates' validity against the system clock.

mod config;
mod error;
#[cfg(feature = "generate")]
pub mod generate;
mod identity;
pub mod load;
mod transport;

pub use config::{ClientAuth, client_config, provider, server_config};
pub use error::TlsError;
pub use identity::{Identity, IdentityKind, MAX_NAME_LEN};
pub use transport::{TlsDial, accept, server_name};

/// The TLS crates this one is built on, at the versions it uses, so that callers name the
/// same types (`rustls::ServerConfig`, `tokio_rustls::TlsAcceptor`, ...).
pub use {rustls, tokio_rustls};
