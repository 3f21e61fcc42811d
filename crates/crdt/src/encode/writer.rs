//! Writing the primitives of the encoding (for frames that embed values, too).

/// Appends `n` as a minimal LEB128 varint.
pub fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends `n` zigzag-encoded, so small negative numbers stay short.
pub fn signed(out: &mut Vec<u8>, n: i64) {
    varint(out, ((n << 1) ^ (n >> 63)) as u64);
}

/// Appends a length-prefixed byte string.
pub fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Appends a length or count (as a varint).
pub fn len(out: &mut Vec<u8>, n: usize) {
    varint(out, n as u64);
}
