//! The encoding of responses.

use haze_crdt::encode::{Reader, writer};

use super::{
    DecodeError, Decoded, Malformed, decode_body, kind, read_digest, read_error, read_presence,
    read_u16, read_u64, read_value, write_digest, write_error, write_option_value, write_value,
};
use crate::{RequestId, Response};

impl Response {
    /// Appends the frame body of this response to request `id` to `out`.
    pub fn encode(&self, id: RequestId, out: &mut Vec<u8>) {
        out.extend_from_slice(&id.to_be_bytes());
        match self {
            Response::Hello { version } => {
                out.push(kind::HELLO_OK);
                out.extend_from_slice(&version.to_be_bytes());
            }
            Response::Value(value) => {
                out.push(kind::VALUE);
                write_option_value(out, value.as_ref());
            }
            Response::Stored(None) => out.extend_from_slice(&[kind::VALUE, 0]),
            Response::Stored(Some(encoded)) => {
                out.extend_from_slice(&[kind::VALUE, 1]);
                writer::bytes(out, encoded);
            }
            Response::Batch(results) => {
                out.push(kind::BATCH);
                writer::len(out, results.len());
                for result in results {
                    match result {
                        Ok(value) => {
                            out.push(0);
                            write_value(out, value);
                        }
                        Err(e) => {
                            out.push(1);
                            write_error(out, e);
                        }
                    }
                }
            }
            Response::Digest(digest) => {
                out.push(kind::DIGEST_OK);
                write_digest(out, *digest);
            }
            Response::Pong => out.push(kind::PONG),
            Response::UnknownList => out.push(kind::UNKNOWN_LIST),
            Response::Digests(digests) => {
                out.push(kind::DIGESTS);
                writer::len(out, digests.len());
                for digest in digests {
                    write_digest(out, *digest);
                }
            }
            Response::Buckets(digests) => {
                out.push(kind::BUCKETS_OK);
                writer::len(out, digests.len());
                for digest in digests {
                    out.extend_from_slice(&digest.to_be_bytes());
                }
            }
            Response::Table(json) => {
                out.push(kind::TABLE_OK);
                match json {
                    None => out.push(0),
                    Some(json) => {
                        out.push(1);
                        writer::bytes(out, json);
                    }
                }
            }
            Response::Acks(results) => {
                out.push(kind::ACKS);
                writer::len(out, results.len());
                for result in results {
                    match result {
                        Ok(()) => out.push(0),
                        Err(e) => {
                            out.push(1);
                            write_error(out, e);
                        }
                    }
                }
            }
            Response::Epoch(epoch) => {
                out.push(kind::EPOCH);
                out.extend_from_slice(&epoch.to_be_bytes());
            }
            Response::KeyDigests { keys, more } => {
                out.push(kind::KEY_DIGESTS);
                writer::len(out, keys.len());
                for (key, digest) in keys {
                    writer::bytes(out, key);
                    out.extend_from_slice(&digest.to_be_bytes());
                }
                out.push(u8::from(*more));
            }
            Response::Error(e) => {
                out.push(kind::ERROR);
                write_error(out, e);
            }
        }
    }

    /// Decodes a response frame body.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] for any malformed body.
    pub fn decode(body: &[u8]) -> Result<(RequestId, Response), DecodeError> {
        decode_body(body, decode_response)
    }
}

fn decode_response(r: &mut Reader<'_>) -> Decoded<Response> {
    Ok(match r.u8()? {
        kind::HELLO_OK => Response::Hello {
            version: read_u16(r)?,
        },
        kind::VALUE => Response::Value(if read_presence(r)? {
            Some(read_value(r)?)
        } else {
            None
        }),
        kind::BATCH => {
            let n = r.count(2)?;
            let mut results = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                results.push(if read_presence(r)? {
                    Err(read_error(r)?)
                } else {
                    Ok(read_value(r)?)
                });
            }
            Response::Batch(results)
        }
        kind::DIGEST_OK => Response::Digest(read_digest(r)?),
        kind::PONG => Response::Pong,
        kind::UNKNOWN_LIST => Response::UnknownList,
        kind::DIGESTS => {
            let n = r.count(1)?;
            let mut digests = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                digests.push(read_digest(r)?);
            }
            Response::Digests(digests)
        }
        kind::BUCKETS_OK => {
            let n = r.count(8)?;
            let mut digests = Vec::with_capacity(n.min(4096));
            for _ in 0..n {
                digests.push(read_u64(r)?);
            }
            Response::Buckets(digests)
        }
        kind::TABLE_OK => Response::Table(if read_presence(r)? {
            Some(r.bytes()?.to_vec())
        } else {
            None
        }),
        kind::EPOCH => Response::Epoch(read_u64(r)?),
        kind::ACKS => {
            let n = r.count(1)?;
            let mut results = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                results.push(if read_presence(r)? {
                    Err(read_error(r)?)
                } else {
                    Ok(())
                });
            }
            Response::Acks(results)
        }
        kind::KEY_DIGESTS => {
            let n = r.count(9)?;
            let mut keys = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                keys.push((r.bytes()?.to_vec(), read_u64(r)?));
            }
            Response::KeyDigests {
                keys,
                more: read_presence(r)?,
            }
        }
        kind::ERROR => Response::Error(read_error(r)?),
        other => return Err(Malformed::UnknownResponseKind(other)),
    })
}
