//! Why a request over a [`Channel`](crate::Channel) got no answer.

use std::time::Duration;

use crate::{ErrorCode, WireError};

/// Why a request sent over a [`Channel`](crate::Channel) got no answer from the node. (The
/// node's own answers, errors included, are not `CallError`s: they come back as
/// [`Response`](crate::Response)s.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The node could not be reached, or the connection closed before the request was sent:
    /// the request was not applied.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The address tried.
        addr: String,
        /// Why.
        reason: String,
    },
    /// No response within the request timeout. The request may or may not have been applied.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The connection broke before the response came. The request may or may not have been
    /// applied.
    #[error("the connection was lost: {0}")]
    ConnectionLost(String),
    /// The node answered the handshake with this error (another protocol version, another
    /// cluster, too many connections...): the request was not sent.
    #[error("the handshake was refused: {0}")]
    Refused(WireError),
    /// The node sent something this build does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl CallError {
    /// Returns whether the request may have been applied although it failed (so a
    /// non-idempotent request must not be blindly retried): a timeout, a lost connection, or
    /// a handshake refused as overloaded or unavailable (the request was not sent, but the
    /// node may be failing: it counts as indeterminate, as `haze_client` counts an unavailable
    /// node).
    pub fn is_indeterminate(&self) -> bool {
        match self {
            CallError::Timeout(_) | CallError::ConnectionLost(_) => true,
            CallError::Refused(e) => refused_as_unavailable(e.code),
            CallError::Connect { .. } | CallError::Protocol(_) => false,
        }
    }
}

/// Whether a handshake refused with `code` says the node cannot serve now (try later, or
/// elsewhere).
pub(super) fn refused_as_unavailable(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::Overloaded | ErrorCode::Unavailable | ErrorCode::NotReplica
    )
}
