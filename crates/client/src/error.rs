//! The client's errors.

use haze_crdt::ValueKind;
use haze_protocol::{CallError, ErrorCode, WireError};

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node could not be reached.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The address tried.
        addr: String,
        /// Why.
        reason: String,
    },
    /// No response within the request timeout. A write may or may not have been applied.
    #[error("no response within {0:?}")]
    Timeout(std::time::Duration),
    /// The connection broke before the response came. A write may or may not have been applied.
    #[error("the connection was lost: {0}")]
    ConnectionLost(String),
    /// The stored value has another type than the one given.
    #[error("type mismatch: {0}")]
    TypeMismatch(String),
    /// The key or the (merged) value exceeds the node's limits.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The node is overloaded or cannot serve writes; retry later or elsewhere. A write refused
    /// this way because the node's storage failed may have been applied (see
    /// [`Error::is_indeterminate`]).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The node does not know who the client is: no token, or one it does not accept (unknown,
    /// revoked, expired). Nothing was done.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The client's token does not allow this (a key outside its prefixes, a write with a
    /// read-only token, an administrative request). Nothing was done.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The node's stored copy of the key failed its checksum: it is not served, and is
    /// repaired from another replica (read again, or from another node). Nothing was done.
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// The node refused the request as malformed, or the operation as invalid.
    #[error("refused: {0}")]
    Refused(String),
    /// The node sent something this client does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A value came back with another type than the one asked for.
    #[error("the value is a {found}, not a {expected}")]
    WrongType {
        /// The type asked for.
        expected: ValueKind,
        /// The type stored.
        found: ValueKind,
    },
    /// The local replica's file could not be read or written, or is damaged.
    #[error("replica file {path}: {reason}")]
    Replica {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A value could not be converted to the typed CRDT asked for.
    #[error("conversion failed: {0}")]
    Conversion(#[from] haze_crdt::Error),
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        let message = e.message;
        match e.code {
            ErrorCode::TypeMismatch => Error::TypeMismatch(message),
            ErrorCode::ValueTooLarge | ErrorCode::KeyTooLarge => Error::TooLarge(message),
            ErrorCode::Overloaded | ErrorCode::Unavailable | ErrorCode::NotReplica => {
                Error::Unavailable(message)
            }
            ErrorCode::BadRequest | ErrorCode::Refused => Error::Refused(message),
            ErrorCode::WrongCluster => Error::Refused(format!("wrong cluster: {message}")),
            ErrorCode::Unauthorized => Error::Unauthorized(message),
            ErrorCode::Forbidden => Error::Forbidden(message),
            ErrorCode::ClockSkew => Error::Refused(format!("clock skew: {message}")),
            ErrorCode::Corrupt => Error::Corrupt(message),
            ErrorCode::UnsupportedVersion => Error::Protocol(message),
            _ => Error::Protocol(format!("{}: {message}", e.code)),
        }
    }
}

impl From<CallError> for Error {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Connect { addr, reason } => Error::Connect { addr, reason },
            CallError::Timeout(timeout) => Error::Timeout(timeout),
            CallError::ConnectionLost(reason) => Error::ConnectionLost(reason),
            // A refused handshake reads as the node's refusal of a request would.
            CallError::Refused(e) => Error::from(e),
            CallError::Protocol(message) => Error::Protocol(message),
            // A kind of failure added to the channel later: something this build did not expect.
            other => Error::Protocol(other.to_string()),
        }
    }
}

impl Error {
    /// Returns whether the request may have been applied although it failed (so a
    /// non-idempotent operation must not be blindly retried): a timeout, a lost connection, or
    /// a node whose storage failed while committing (`Unavailable`).
    pub fn is_indeterminate(&self) -> bool {
        matches!(
            self,
            Error::Timeout(_) | Error::ConnectionLost(_) | Error::Unavailable(_)
        )
    }
}

/// The client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Every way a channel can fail, with every code a handshake can be refused with.
    fn call_errors() -> Vec<CallError> {
        let mut errors = vec![
            CallError::Connect {
                addr: "a:1".into(),
                reason: "refused".into(),
            },
            CallError::Timeout(Duration::from_secs(2)),
            CallError::ConnectionLost("reset".into()),
            CallError::Protocol("garbage".into()),
        ];
        errors.extend(
            (0..=12).map(|n| CallError::Refused(WireError::new(ErrorCode::from_u16(n), "no"))),
        );
        errors
    }

    #[test]
    fn a_channel_error_maps_to_the_client_error_it_always_was() {
        let mapped = |e: CallError| Error::from(e);
        assert_eq!(
            mapped(CallError::Connect {
                addr: "a:1".into(),
                reason: "refused".into()
            }),
            Error::Connect {
                addr: "a:1".into(),
                reason: "refused".into()
            }
        );
        let timeout = Duration::from_secs(2);
        assert_eq!(mapped(CallError::Timeout(timeout)), Error::Timeout(timeout));
        assert_eq!(
            mapped(CallError::ConnectionLost("reset".into())),
            Error::ConnectionLost("reset".into())
        );
        assert_eq!(
            mapped(CallError::Protocol("garbage".into())),
            Error::Protocol("garbage".into())
        );
        let refused = |code| mapped(CallError::Refused(WireError::new(code, "no")));
        assert_eq!(
            refused(ErrorCode::WrongCluster),
            Error::Refused("wrong cluster: no".into())
        );
        assert_eq!(refused(ErrorCode::BadRequest), Error::Refused("no".into()));
        assert_eq!(
            refused(ErrorCode::Overloaded),
            Error::Unavailable("no".into())
        );
        assert_eq!(
            refused(ErrorCode::UnsupportedVersion),
            Error::Protocol("no".into())
        );
    }

    #[test]
    fn a_channel_error_is_indeterminate_exactly_when_its_client_error_is() {
        for e in call_errors() {
            assert_eq!(
                e.is_indeterminate(),
                Error::from(e.clone()).is_indeterminate(),
                "{e:?}"
            );
        }
    }
}
