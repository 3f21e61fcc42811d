//! Who a certificate of the cluster CA names.
//!
//! The identity is one URI subject alternative name, `haze://node/NAME` or
//! `haze://client/NAME`. A SAN rather than the subject's common name: the SAN is a list of
//! typed entries that webpki and every tool treat as names, a URI cannot be mistaken for the
//! DNS names and IP addresses beside it (which say where a node is reached, not who it is),
//! and the scheme keeps Haze's entries apart from any other URI a CA might put there.
//!
//! Reading is strict, so that no certificate can be read two ways: a certificate with one
//! well-formed Haze URI names that identity; one with none, two or more, or a malformed one
//! (another kind, an empty or invalid name, anything after the name) names none.

use std::fmt;
use std::str::FromStr;

use x509_parser::extensions::GeneralName;

use crate::TlsError;

/// The longest name of an identity, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// The URI scheme of Haze identities, with its separator.
const SCHEME: &str = "haze://";

/// What a certificate of the cluster CA says its holder is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Identity {
    /// A node of the cluster (`n1`): it may connect as a peer and to the controller's node
    /// endpoints.
    Node(String),
    /// A client (`admin`, `alice`).
    Client(String),
}

/// The kind of an [`Identity`], without its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdentityKind {
    /// [`Identity::Node`].
    Node,
    /// [`Identity::Client`].
    Client,
}

impl IdentityKind {
    /// `node` or `client`, as in the URI.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Node => "node",
            Self::Client => "client",
        }
    }
}

impl fmt::Display for IdentityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IdentityKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "node" => Ok(Self::Node),
            "client" => Ok(Self::Client),
            other => Err(format!("{other:?} is not an identity kind: node or client")),
        }
    }
}

impl Identity {
    /// An identity of `kind` named `name`.
    ///
    /// # Errors
    ///
    /// [`TlsError::InvalidName`] unless `name` is 1 to [`MAX_NAME_LEN`] ASCII letters, digits,
    /// `-`, `_` or `.`, starting with a letter or digit (so it is also a safe file name).
    pub fn new(kind: IdentityKind, name: &str) -> Result<Self, TlsError> {
        if !valid_name(name) {
            return Err(TlsError::InvalidName(name.to_string()));
        }
        Ok(match kind {
            IdentityKind::Node => Self::Node(name.to_string()),
            IdentityKind::Client => Self::Client(name.to_string()),
        })
    }

    /// The identity a certificate (DER) names, if it names exactly one well-formed Haze
    /// identity. Never panics, whatever the bytes.
    ///
    /// This reads the certificate; it does not verify it. Call it on a certificate rustls has
    /// verified against the cluster CA (as [`crate::accept`] does), never on one a peer merely
    /// sent.
    #[must_use]
    pub fn from_certificate(der: &[u8]) -> Option<Self> {
        let (rest, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        if !rest.is_empty() {
            return None;
        }
        // A certificate with two SAN extensions is an error here, hence no identity.
        let san = cert.subject_alternative_name().ok()??;
        let mut found = None;
        for name in &san.value.general_names {
            let GeneralName::URI(uri) = name else {
                continue;
            };
            // Schemes are case-insensitive: `HAZE://...` counts (and, malformed, spoils).
            let is_haze = uri
                .get(..SCHEME.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(SCHEME));
            if !is_haze {
                continue;
            }
            if found.is_some() {
                return None;
            }
            found = Some(Self::from_uri(uri)?);
        }
        found
    }

    /// Parses `haze://node/NAME` or `haze://client/NAME` exactly.
    #[must_use]
    pub fn from_uri(uri: &str) -> Option<Self> {
        let (kind, name) = uri.strip_prefix(SCHEME)?.split_once('/')?;
        Self::new(kind.parse().ok()?, name).ok()
    }

    /// The URI that names this identity in a certificate: `haze://node/n1`.
    #[must_use]
    pub fn uri(&self) -> String {
        format!("{SCHEME}{}/{}", self.kind(), self.name())
    }

    /// Its kind.
    #[must_use]
    pub fn kind(&self) -> IdentityKind {
        match self {
            Self::Node(_) => IdentityKind::Node,
            Self::Client(_) => IdentityKind::Client,
        }
    }

    /// Its name: `n1`, `alice`.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::Node(name) | Self::Client(name) => name,
        }
    }
}

/// `node n1`, `client alice`.
impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.name())
    }
}

fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip_and_only_exact_ones_parse() {
        let node = Identity::new(IdentityKind::Node, "n1").expect("a valid name");
        assert_eq!(node.uri(), "haze://node/n1");
        assert_eq!(Identity::from_uri("haze://node/n1"), Some(node));
        assert_eq!(
            Identity::from_uri("haze://client/alice.b-c_d"),
            Some(Identity::Client("alice.b-c_d".to_string()))
        );
        for bad in [
            "haze://node/",
            "haze://node",
            "haze://admin/n1",
            "haze://node/n1/x",
            "haze://node/n1?x",
            "haze://node/.n1",
            "haze://node/../ca",
            "haze://Node/n1",
            "HAZE://node/n1",
            "haze:/node/n1",
            "https://node/n1",
            "haze://node/n\u{e9}",
        ] {
            assert_eq!(Identity::from_uri(bad), None, "{bad}");
        }
        let long = "a".repeat(MAX_NAME_LEN + 1);
        assert!(Identity::new(IdentityKind::Client, &long).is_err());
        assert!(Identity::new(IdentityKind::Client, &long[1..]).is_ok());
    }

    #[test]
    fn garbage_is_no_identity() {
        assert_eq!(Identity::from_certificate(b""), None);
        assert_eq!(Identity::from_certificate(&[0x30, 0x82, 0xff, 0xff]), None);
        assert_eq!(Identity::from_certificate(&[0u8; 64]), None);
    }
}
