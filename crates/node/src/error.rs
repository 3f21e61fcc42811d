//! What a request can fail with, and how each failure crosses the wire.

use haze_protocol::{ErrorCode, WireError};
use haze_storage::{SubmitError, WriteError};

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The write was refused by the store's rules (type, size, the value's own checks).
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The write queue is full.
    #[error("the node is overloaded: {0}")]
    Overloaded(String),
    /// The store cannot serve (it failed, or is shutting down).
    #[error("the node cannot serve: {0}")]
    Unavailable(String),
    /// The request is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A node-to-node write for a key this node does not hold (stale tables); nothing applied.
    #[error("not a replica: {0}")]
    NotReplica(String),
    /// The caller did not prove who it is (no token, or one the cluster does not accept; a
    /// peer without a node's certificate).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The caller's token does not allow this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A register stamped further ahead of this node's clock than `--max-clock-skew` allows.
    #[error(
        "a register stamped {ahead_ms} ms ahead of this node's clock (at most {max_ms} ms \
         allowed): the writer's clock is wrong; nothing was written"
    )]
    ClockSkew {
        /// How far ahead the stamp is.
        ahead_ms: u64,
        /// How far ahead a stamp may be.
        max_ms: u64,
    },
    /// Another node of the cluster answered with this error.
    #[error("{0}")]
    Remote(WireError),
}

impl From<SubmitError> for RequestError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Full => RequestError::Overloaded(e.to_string()),
            SubmitError::Stopped => RequestError::Unavailable(e.to_string()),
        }
    }
}

impl From<haze_storage::Error> for RequestError {
    /// The store's error and its causes, on one line: a client hears why ("no space left on
    /// device"), not only what failed.
    fn from(e: haze_storage::Error) -> Self {
        if e.corrupt_key().is_some() {
            // A corrupt value: the store is fine; this key's copy is not (`corrupt`).
            return RequestError::Write(WriteError::Store(e));
        }
        let mut message = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            let text = c.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            cause = c.source();
        }
        RequestError::Unavailable(message)
    }
}

impl RequestError {
    /// Returns the stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            RequestError::Write(WriteError::TypeMismatch { .. }) => ErrorCode::TypeMismatch,
            RequestError::Write(WriteError::ValueTooLarge { .. }) => ErrorCode::ValueTooLarge,
            RequestError::Write(WriteError::KeyTooLarge { .. }) => ErrorCode::KeyTooLarge,
            RequestError::Write(WriteError::Refused(_)) => ErrorCode::Refused,
            RequestError::Write(WriteError::NotQueued(SubmitError::Full)) => ErrorCode::Overloaded,
            RequestError::Write(WriteError::NotQueued(_)) => ErrorCode::Unavailable,
            RequestError::Write(WriteError::Store(haze_storage::Error::CorruptValue {
                ..
            })) => ErrorCode::Corrupt,
            RequestError::Write(WriteError::Store(_)) | RequestError::Unavailable(_) => {
                ErrorCode::Unavailable
            }
            RequestError::Write(_) => ErrorCode::Internal,
            RequestError::Overloaded(_) => ErrorCode::Overloaded,
            RequestError::BadRequest(_) => ErrorCode::BadRequest,
            RequestError::NotReplica(_) => ErrorCode::NotReplica,
            RequestError::Unauthorized(_) => ErrorCode::Unauthorized,
            RequestError::Forbidden(_) => ErrorCode::Forbidden,
            RequestError::ClockSkew { .. } => ErrorCode::ClockSkew,
            RequestError::Remote(e) => e.code,
        }
    }

    /// Returns the error as it crosses the wire.
    pub fn to_wire(&self) -> WireError {
        match self {
            RequestError::Remote(e) => e.clone(),
            // The code says "unauthorized" or "forbidden" already; the message says why.
            RequestError::Unauthorized(why) | RequestError::Forbidden(why) => {
                WireError::new(self.code(), why.clone())
            }
            _ => WireError::new(self.code(), self.to_string()),
        }
    }
}
