//! The binary encoding of requests and responses inside a frame body.
//!
//! ```text
//! body = request_id:u64 (big-endian) kind:u8 payload
//! ```
//!
//! Payload fields use the value encoding's primitives (`haze_crdt::encode`): varint lengths,
//! byte strings, scalars, and values as length-prefixed encoded `Value`s. Decoding is bounded:
//! every count is checked against the bytes that remain before anything is allocated for it.
//!
//! * `request` / `response` — `encode` and `decode` of each message.
//! * `key_list` — the prefix-compressed key lists of `DigestList`, and [`key_list_id`].
//! * `error` — [`DecodeError`] and [`Malformed`].

mod error;
mod key_list;
mod request;
mod response;

use haze_crdt::encode::{Reader, writer};
use haze_crdt::{Scalar, Value};

pub use error::{DecodeError, Malformed};
pub use key_list::key_list_id;

use crate::{ErrorCode, RequestId, WireError};

/// A decoded field, or what is wrong with it.
type Decoded<T> = Result<T, Malformed>;

/// The kind bytes of messages, and the tags inside them. Never renumber or reuse one.
mod kind {
    pub(super) const HELLO: u8 = 0x01;
    pub(super) const GET: u8 = 0x02;
    pub(super) const MERGE: u8 = 0x03;
    pub(super) const MERGE_BATCH: u8 = 0x04;
    pub(super) const DIGEST: u8 = 0x05;
    pub(super) const OP: u8 = 0x06;
    pub(super) const PING: u8 = 0x07;
    pub(super) const DIGEST_BATCH: u8 = 0x08;
    pub(super) const DIGEST_LIST: u8 = 0x09;
    pub(super) const GET_MERGED: u8 = 0x0a;
    pub(super) const COPY: u8 = 0x0b;
    pub(super) const BUCKETS: u8 = 0x0c;
    pub(super) const BUCKET_KEYS: u8 = 0x0d;
    pub(super) const TABLE: u8 = 0x0e;
    pub(super) const BACKFILL: u8 = 0x0f;
    pub(super) const WATCH: u8 = 0x10;
    pub(super) const NOTIFY: u8 = 0x11;
    pub(super) const APPLY: u8 = 0x12;

    pub(super) const HELLO_OK: u8 = 0x81;
    pub(super) const VALUE: u8 = 0x82;
    pub(super) const BATCH: u8 = 0x83;
    pub(super) const DIGEST_OK: u8 = 0x84;
    pub(super) const PONG: u8 = 0x85;
    pub(super) const DIGESTS: u8 = 0x86;
    pub(super) const UNKNOWN_LIST: u8 = 0x87;
    pub(super) const BUCKETS_OK: u8 = 0x88;
    pub(super) const KEY_DIGESTS: u8 = 0x89;
    pub(super) const TABLE_OK: u8 = 0x8a;
    pub(super) const EPOCH: u8 = 0x8b;
    pub(super) const ACKS: u8 = 0x8c;

    pub(super) const ROLE_CLIENT: u8 = 0;
    pub(super) const ROLE_LOCAL: u8 = 1;
    pub(super) const ROLE_PEER: u8 = 2;
    pub(super) const ERROR: u8 = 0xff;

    pub(super) const OP_COUNTER_ADD: u8 = 1;
    pub(super) const OP_SET_ADD: u8 = 2;
    pub(super) const OP_SET_REMOVE: u8 = 3;
    pub(super) const OP_REGISTER_SET: u8 = 4;
    pub(super) const OP_EDIT: u8 = 5;
}

/// Decodes a whole body with `decode_message`: the request id, the message, and nothing after.
fn decode_body<T>(
    body: &[u8],
    decode_message: impl FnOnce(&mut Reader<'_>) -> Decoded<T>,
) -> Result<(RequestId, T), DecodeError> {
    let Some((id, rest)) = body.split_first_chunk::<8>() else {
        return Err(DecodeError::new(None, Malformed::NoRequestId));
    };
    let id = u64::from_be_bytes(*id);
    let mut r = Reader::new(rest);
    let message = decode_message(&mut r).map_err(|e| DecodeError::new(Some(id), e))?;
    match r.remaining() {
        0 => Ok((id, message)),
        n => Err(DecodeError::new(Some(id), Malformed::TrailingBytes(n))),
    }
}

fn write_items(out: &mut Vec<u8>, items: &[(Vec<u8>, Value)]) {
    writer::len(out, items.len());
    for (key, value) in items {
        writer::bytes(out, key);
        write_value(out, value);
    }
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    let start = out.len();
    out.push(0); // placeholder for a one-byte length, the common case
    value.encode_into(out);
    let len = out.len() - start - 1;
    if len < 0x80 {
        out[start] = len as u8;
    } else {
        let encoded: Vec<u8> = out.split_off(start + 1);
        out.truncate(start);
        writer::bytes(out, &encoded);
    }
}

fn write_option_value(out: &mut Vec<u8>, value: Option<&Value>) {
    match value {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            write_value(out, v);
        }
    }
}

fn write_digest(out: &mut Vec<u8>, digest: Option<u64>) {
    match digest {
        None => out.push(0),
        Some(d) => {
            out.push(1);
            out.extend_from_slice(&d.to_be_bytes());
        }
    }
}

fn write_error(out: &mut Vec<u8>, e: &WireError) {
    out.extend_from_slice(&e.code.to_u16().to_be_bytes());
    writer::bytes(out, e.message.as_bytes());
}

fn write_scalars(out: &mut Vec<u8>, items: &[Scalar]) {
    writer::len(out, items.len());
    for s in items {
        haze_crdt::encode::write_scalar(out, s);
    }
}

fn read_value(r: &mut Reader<'_>) -> Decoded<Value> {
    Ok(Value::decode(r.bytes()?)?)
}

fn read_scalars(r: &mut Reader<'_>) -> Decoded<Vec<Scalar>> {
    let n = r.count(2)?;
    let mut items = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        items.push(haze_crdt::encode::read_scalar(r)?);
    }
    Ok(items)
}

fn read_u16(r: &mut Reader<'_>) -> Decoded<u16> {
    Ok(u16::from_be_bytes([r.u8()?, r.u8()?]))
}

fn read_u32(r: &mut Reader<'_>) -> Decoded<u32> {
    Ok(u32::from_be_bytes([r.u8()?, r.u8()?, r.u8()?, r.u8()?]))
}

fn read_u64(r: &mut Reader<'_>) -> Decoded<u64> {
    let mut bytes = [0u8; 8];
    for b in &mut bytes {
        *b = r.u8()?;
    }
    Ok(u64::from_be_bytes(bytes))
}

fn read_items(r: &mut Reader<'_>) -> Decoded<Vec<(Vec<u8>, Value)>> {
    let n = r.count(4)?;
    let mut items = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        items.push((r.bytes()?.to_vec(), read_value(r)?));
    }
    Ok(items)
}

fn read_presence(r: &mut Reader<'_>) -> Decoded<bool> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(Malformed::BadPresence(other)),
    }
}

fn read_digest(r: &mut Reader<'_>) -> Decoded<Option<u64>> {
    if !read_presence(r)? {
        return Ok(None);
    }
    Ok(Some(read_u64(r)?))
}

fn read_error(r: &mut Reader<'_>) -> Decoded<WireError> {
    let code = ErrorCode::from_u16(read_u16(r)?);
    let message = String::from_utf8_lossy(r.bytes()?).into_owned();
    Ok(WireError { code, message })
}
