//! Reading the primitives of the encoding from untrusted bytes.

use crate::error::DecodeError;

/// A cursor over untrusted input, for the encoding of values and the frames that carry them. Every read is bounds-checked and returns an error, never
/// panics; every length is checked against what remains before it is used.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Returns a reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// Returns the offset of the next byte (for error messages).
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// Returns how many bytes are left.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn end(&self) -> DecodeError {
        DecodeError::UnexpectedEnd {
            offset: self.bytes.len(),
        }
    }

    /// Reads one byte.
    ///
    /// # Errors
    ///
    /// [`DecodeError::UnexpectedEnd`] at the end of the input.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.bytes.get(self.pos).ok_or_else(|| self.end())?;
        self.pos += 1;
        Ok(b)
    }

    /// Reads a minimal LEB128 varint of at most 10 bytes that fits in a `u64`.
    ///
    /// # Errors
    ///
    /// [`DecodeError::BadVarint`] or [`DecodeError::UnexpectedEnd`].
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let bad = DecodeError::BadVarint { offset: start };
        let mut value = 0u64;
        for i in 0..10 {
            let byte = self.u8()?;
            let payload = u64::from(byte & 0x7f);
            if i == 9 && byte > 1 {
                return Err(bad);
            }
            value |= payload << (7 * i);
            if byte & 0x80 == 0 {
                // A final zero byte after others means the number had a shorter encoding.
                if i > 0 && byte == 0 {
                    return Err(bad);
                }
                return Ok(value);
            }
        }
        Err(bad)
    }

    /// Reads a zigzag-encoded signed varint.
    ///
    /// # Errors
    ///
    /// As [`varint`](Self::varint).
    pub fn signed(&mut self) -> Result<i64, DecodeError> {
        let n = self.varint()?;
        Ok(((n >> 1) as i64) ^ -((n & 1) as i64))
    }

    /// Reads a count of items that each take at least `min_item_bytes` bytes, and refuses one
    /// that the remaining input could not hold, so that no allocation is sized by a lie.
    ///
    /// # Errors
    ///
    /// [`DecodeError::LengthTooLarge`], or as [`varint`](Self::varint).
    pub fn count(&mut self, min_item_bytes: usize) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let claimed = self.varint()?;
        let remaining = self.remaining();
        let max = (remaining / min_item_bytes.max(1)) as u64;
        if claimed > max {
            return Err(DecodeError::LengthTooLarge {
                claimed,
                remaining,
                offset,
            });
        }
        Ok(claimed as usize)
    }

    /// Reads a length-prefixed byte string.
    ///
    /// # Errors
    ///
    /// As [`count`](Self::count).
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.count(1)?;
        let slice = &self.bytes[self.pos..self.pos + len];
        self.pos += len;
        Ok(slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::writer;

    #[test]
    fn varints_round_trip_at_the_edges() {
        for n in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            writer::varint(&mut buf, n);
            let mut r = Reader::new(&buf);
            assert_eq!(r.varint(), Ok(n));
            assert_eq!(r.remaining(), 0);
        }
        for n in [0, -1, 1, i64::MIN, i64::MAX] {
            let mut buf = Vec::new();
            writer::signed(&mut buf, n);
            assert_eq!(Reader::new(&buf).signed(), Ok(n));
        }
    }

    #[test]
    fn non_minimal_and_overlong_varints_are_refused() {
        assert!(Reader::new(&[0x80, 0x00]).varint().is_err());
        assert!(Reader::new(&[0xff; 11]).varint().is_err());
        let mut too_big = vec![0xff; 9];
        too_big.push(0x02);
        assert!(Reader::new(&too_big).varint().is_err());
        assert!(Reader::new(&[0x80]).varint().is_err());
    }

    #[test]
    fn a_count_larger_than_the_input_is_refused_before_allocating() {
        let mut buf = Vec::new();
        writer::varint(&mut buf, 1 << 40);
        buf.extend_from_slice(&[0; 8]);
        assert!(matches!(
            Reader::new(&buf).count(1),
            Err(DecodeError::LengthTooLarge { claimed, .. }) if claimed == 1 << 40
        ));
    }
}
