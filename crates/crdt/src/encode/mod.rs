//! The one binary encoding of [`Value`]: on disk, on the wire, in digests.
//!
//! ```text
//! value    = version:u8(=1) body
//! body     = kind:u8 state            (kind = ValueKind tag)
//! ```
//!
//! Integers are LEB128 varints (minimal; signed ones zigzag), lengths and counts are varints
//! checked against the bytes that remain before anything is allocated, and every collection is
//! written in its canonical order. The decoder accepts exactly the canonical encoding of a valid
//! state: `encode(decode(b)) == b` whenever `decode(b)` succeeds, so equal states always have
//! equal bytes and digests. `docs/storage-format.md` in the repository gives each type's layout.

mod reader;
mod value_codec;
pub mod writer;

pub use reader::Reader;
pub use value_codec::{read_scalar, write_scalar};

use crate::Value;
use crate::error::DecodeError;

/// The format version this build writes (and the only one it reads so far).
pub const FORMAT_VERSION: u8 = 1;

/// How many levels of maps a value may nest ([`Value::depth`]). Deeper values are refused by the
/// decoders (so a hostile input cannot exhaust the stack) and by
/// [`ValueMap::update`](crate::ValueMap::update) (so every value that can be built decodes). 16
/// levels also keep the JSON view within `serde_json`'s default recursion limit.
pub const MAX_DEPTH: usize = 16;

impl Value {
    /// Encodes the value (version byte first).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoding of the value to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(FORMAT_VERSION);
        value_codec::write_value(out, self);
    }

    /// Decodes a value from exactly `bytes`.
    ///
    /// Never panics, and allocates at most a small multiple of `bytes.len()`, whatever the input.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] saying what is wrong and where: an unknown version or type, truncated
    /// input, a length larger than the input, a non-canonical or invalid state, trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
        let mut reader = reader::Reader::new(bytes);
        let version = reader.u8()?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let value = value_codec::read_value(&mut reader, 0)?;
        match reader.remaining() {
            0 => Ok(value),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }
}
