//! Why a frame body is not a valid message.

use crate::RequestId;

/// A frame body that is not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed message: {reason}")]
pub struct DecodeError {
    /// The request id, when the body was long enough to hold one (so the error can be answered).
    pub request_id: Option<RequestId>,
    /// What is wrong, for humans (the text of [`kind`](Self::kind)).
    pub reason: String,
    /// What is wrong, for code.
    pub kind: Malformed,
}

impl DecodeError {
    /// Returns the error for a body of request `request_id` (if it had one) that is `kind`.
    pub(crate) fn new(request_id: Option<RequestId>, kind: Malformed) -> Self {
        DecodeError {
            request_id,
            reason: kind.to_string(),
            kind,
        }
    }
}

/// What is wrong with a malformed message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// The body is shorter than a request id.
    #[error("a body starts with an 8-byte request id")]
    NoRequestId,
    /// A field is truncated or badly encoded (a length, a varint, a scalar, a value).
    #[error(transparent)]
    Encoding(#[from] haze_crdt::DecodeError),
    /// Bytes are left after a complete message.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
    /// A request kind this build does not know.
    #[error("unknown request kind {0:#04x}")]
    UnknownRequestKind(u8),
    /// A response kind this build does not know.
    #[error("unknown response kind {0:#04x}")]
    UnknownResponseKind(u8),
    /// A hello that does not start with [`HELLO_MAGIC`](crate::HELLO_MAGIC).
    #[error("not a Haze client (bad hello magic)")]
    BadHelloMagic,
    /// A hello's role byte names no role.
    #[error("unknown role {0}")]
    UnknownRole(u8),
    /// A hello's token is longer than any token.
    #[error("a token of {0} bytes (at most 256)")]
    TokenTooLong(usize),
    /// A hello's token is not text.
    #[error("a token that is not UTF-8")]
    TokenNotUtf8,
    /// An `Op`'s operation byte names no operation.
    #[error("unknown operation {0}")]
    UnknownOperation(u8),
    /// A presence byte (of an optional field) that is neither 0 nor 1.
    #[error("a presence byte is 0 or 1, not {0}")]
    BadPresence(u8),
    /// A compressed key list's key shares a longer prefix than the previous key has.
    #[error("a key shares more than the previous key has")]
    SharedPrefixTooLong,
    /// A compressed key list expands past its bound.
    #[error("a key list expands past {} MiB", super::key_list::MAX_EXPANDED_KEY_BYTES >> 20)]
    KeyListTooLarge,
}
