//! The crate's error type.

use crate::value::ValueKind;

/// Everything that can go wrong in this crate, named for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two values of different types were merged, or a value was converted to the wrong type.
    /// The stored value is left untouched.
    #[error("type mismatch: the stored value is a {stored}, the given value is a {given}")]
    TypeMismatch {
        /// The type of the value already stored (or expected).
        stored: ValueKind,
        /// The type of the value given.
        given: ValueKind,
    },
    /// A scalar leaf had a different type than the typed CRDT expects (say a string where an
    /// integer was expected).
    #[error("scalar mismatch: expected {expected}, found {found}")]
    ScalarMismatch {
        /// The scalar type the caller expected.
        expected: &'static str,
        /// The scalar type that was found.
        found: &'static str,
    },
    /// An update would nest maps deeper than [`MAX_DEPTH`](crate::encode::MAX_DEPTH) levels.
    /// Nothing was changed.
    #[error("values may nest at most {0} levels of maps")]
    TooDeep(usize),
    /// A counter would pass `u64::MAX` for one actor. Nothing was changed.
    #[error("counter overflow: the count of one actor would exceed {}", u64::MAX)]
    CounterOverflow,
    /// Bytes or JSON that do not describe a valid state.
    #[error("invalid encoding: {0}")]
    Decode(#[from] DecodeError),
}

/// Why a byte string (or a JSON document) is not a valid encoded [`Value`](crate::Value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended in the middle of a value.
    #[error("unexpected end of input at byte {offset}")]
    UnexpectedEnd {
        /// Where the input ended.
        offset: usize,
    },
    /// The format version byte names a version this build does not know.
    #[error("unsupported encoding version {0} (this build reads version 1)")]
    UnsupportedVersion(u8),
    /// A type tag that names no value type.
    #[error("unknown value type tag {tag} at byte {offset}")]
    UnknownKind {
        /// The tag byte.
        tag: u8,
        /// Where it was found.
        offset: usize,
    },
    /// A scalar tag that names no scalar type.
    #[error("unknown scalar tag {tag} at byte {offset}")]
    UnknownScalar {
        /// The tag.
        tag: u8,
        /// Where it was found.
        offset: usize,
    },
    /// A variable-length integer longer than 10 bytes, above `u64::MAX`, or not minimal.
    #[error("malformed integer at byte {offset}")]
    BadVarint {
        /// Where the integer started.
        offset: usize,
    },
    /// A length or count larger than the bytes that remain could hold.
    #[error("length {claimed} at byte {offset} exceeds the {remaining} bytes that remain")]
    LengthTooLarge {
        /// The length the input claimed.
        claimed: u64,
        /// Bytes remaining after the length field.
        remaining: usize,
        /// Where the length field was.
        offset: usize,
    },
    /// Maps nested deeper than [`MAX_DEPTH`](crate::encode::MAX_DEPTH).
    #[error("values nested deeper than {0} levels of maps")]
    TooDeep(usize),
    /// A string leaf that is not UTF-8.
    #[error("invalid UTF-8 in a string at byte {offset}")]
    InvalidUtf8 {
        /// Where the string started.
        offset: usize,
    },
    /// Bytes left over after a complete value.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// A well-formed encoding of a state that is not canonical or breaks an invariant of its type
    /// (unsorted or duplicate entries, a zero count, a dot outside the causal context...).
    #[error("invalid state: {0}")]
    InvalidState(&'static str),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
