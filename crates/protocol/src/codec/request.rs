//! The encoding of requests.

use haze_crdt::encode::{Reader, read_scalar, write_scalar, writer};

use super::key_list::{read_keys_compressed, write_keys_compressed};
use super::{
    DecodeError, Decoded, Malformed, decode_body, kind, read_items, read_presence, read_scalars,
    read_u16, read_u32, read_u64, read_value, write_items, write_scalars, write_value,
};
use crate::{HELLO_MAGIC, MAX_TOKEN_BYTES, Request, RequestId, Role, TypedOp};

impl Request {
    /// Appends the frame body of this request, with id `id`, to `out`.
    pub fn encode(&self, id: RequestId, out: &mut Vec<u8>) {
        out.extend_from_slice(&id.to_be_bytes());
        match self {
            Request::Hello {
                version,
                role,
                token,
            } => {
                out.push(kind::HELLO);
                out.extend_from_slice(&HELLO_MAGIC);
                out.extend_from_slice(&version.to_be_bytes());
                match role {
                    Role::Client => out.push(kind::ROLE_CLIENT),
                    Role::Local => out.push(kind::ROLE_LOCAL),
                    Role::Peer { cluster } => {
                        out.push(kind::ROLE_PEER);
                        out.extend_from_slice(&cluster.to_be_bytes());
                    }
                }
                // The token last, and only when there is one: a hello without one is the hello
                // of the releases before tokens.
                if let Some(token) = token {
                    writer::bytes(out, token.as_bytes());
                }
            }
            Request::Get { key } => {
                out.push(kind::GET);
                writer::bytes(out, key);
            }
            Request::Merge { key, value } => {
                out.push(kind::MERGE);
                writer::bytes(out, key);
                write_value(out, value);
            }
            Request::MergeBatch { items } => {
                out.push(kind::MERGE_BATCH);
                write_items(out, items);
            }
            Request::Digest { key } => {
                out.push(kind::DIGEST);
                writer::bytes(out, key);
            }
            Request::Op { key, op } => {
                out.push(kind::OP);
                writer::bytes(out, key);
                write_op(out, op);
            }
            Request::Apply { key, op } => {
                out.push(kind::APPLY);
                writer::bytes(out, key);
                write_op(out, op);
            }
            Request::Ping => out.push(kind::PING),
            Request::DigestBatch { keys } => {
                out.push(kind::DIGEST_BATCH);
                writer::len(out, keys.len());
                for key in keys {
                    writer::bytes(out, key);
                }
            }
            Request::DigestList { list, keys } => {
                out.push(kind::DIGEST_LIST);
                out.extend_from_slice(&list.to_be_bytes());
                match keys {
                    None => out.push(0),
                    Some(keys) => {
                        out.push(1);
                        write_keys_compressed(out, keys);
                    }
                }
            }
            Request::GetMerged { key } => {
                out.push(kind::GET_MERGED);
                writer::bytes(out, key);
            }
            Request::Copy { items } => {
                out.push(kind::COPY);
                write_items(out, items);
            }
            Request::Backfill { items } => {
                out.push(kind::BACKFILL);
                write_items(out, items);
            }
            Request::Buckets => out.push(kind::BUCKETS),
            Request::Table => out.push(kind::TABLE),
            Request::Watch {
                node,
                lease_ms,
                keys,
                prefixes,
            } => {
                out.push(kind::WATCH);
                out.extend_from_slice(&node.to_be_bytes());
                out.extend_from_slice(&lease_ms.to_be_bytes());
                write_keys_compressed(out, keys);
                write_keys_compressed(out, prefixes);
            }
            Request::Notify { items, missed } => {
                out.push(kind::NOTIFY);
                write_items(out, items);
                out.push(u8::from(*missed));
            }
            Request::BucketKeys { bucket, after } => {
                out.push(kind::BUCKET_KEYS);
                out.extend_from_slice(&bucket.to_be_bytes());
                match after {
                    None => out.push(0),
                    Some(key) => {
                        out.push(1);
                        writer::bytes(out, key);
                    }
                }
            }
        }
    }

    /// Decodes a request frame body.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] (with the request id when there is one) for any malformed body.
    pub fn decode(body: &[u8]) -> Result<(RequestId, Request), DecodeError> {
        decode_body(body, decode_request)
    }
}

fn decode_request(r: &mut Reader<'_>) -> Decoded<Request> {
    Ok(match r.u8()? {
        kind::HELLO => {
            let magic = [r.u8()?, r.u8()?, r.u8()?, r.u8()?];
            if magic != HELLO_MAGIC {
                return Err(Malformed::BadHelloMagic);
            }
            let version = read_u16(r)?;
            // A hello without a role (from a client of the first release) is a client's.
            let role = if r.remaining() == 0 {
                Role::Client
            } else {
                match r.u8()? {
                    kind::ROLE_CLIENT => Role::Client,
                    kind::ROLE_LOCAL => Role::Local,
                    kind::ROLE_PEER => Role::Peer {
                        cluster: read_u64(r)?,
                    },
                    other => return Err(Malformed::UnknownRole(other)),
                }
            };
            let token = if r.remaining() == 0 {
                None
            } else {
                let bytes = r.bytes()?;
                if bytes.len() > MAX_TOKEN_BYTES {
                    return Err(Malformed::TokenTooLong(bytes.len()));
                }
                Some(String::from_utf8(bytes.to_vec()).map_err(|_| Malformed::TokenNotUtf8)?)
            };
            Request::Hello {
                version,
                role,
                token,
            }
        }
        kind::GET => Request::Get {
            key: r.bytes()?.to_vec(),
        },
        kind::MERGE => Request::Merge {
            key: r.bytes()?.to_vec(),
            value: read_value(r)?,
        },
        kind::MERGE_BATCH => Request::MergeBatch {
            items: read_items(r)?,
        },
        kind::GET_MERGED => Request::GetMerged {
            key: r.bytes()?.to_vec(),
        },
        kind::COPY => Request::Copy {
            items: read_items(r)?,
        },
        kind::BACKFILL => Request::Backfill {
            items: read_items(r)?,
        },
        kind::BUCKETS => Request::Buckets,
        kind::TABLE => Request::Table,
        kind::WATCH => Request::Watch {
            node: read_u64(r)?,
            lease_ms: read_u32(r)?,
            keys: read_keys_compressed(r)?,
            prefixes: read_keys_compressed(r)?,
        },
        kind::NOTIFY => Request::Notify {
            items: read_items(r)?,
            missed: read_presence(r)?,
        },
        kind::BUCKET_KEYS => {
            let bucket = read_u32(r)?;
            let after = if read_presence(r)? {
                Some(r.bytes()?.to_vec())
            } else {
                None
            };
            Request::BucketKeys { bucket, after }
        }
        kind::DIGEST => Request::Digest {
            key: r.bytes()?.to_vec(),
        },
        kind::OP => Request::Op {
            key: r.bytes()?.to_vec(),
            op: read_op(r)?,
        },
        kind::APPLY => Request::Apply {
            key: r.bytes()?.to_vec(),
            op: read_op(r)?,
        },
        kind::PING => Request::Ping,
        kind::DIGEST_BATCH => {
            let n = r.count(1)?;
            let mut keys = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                keys.push(r.bytes()?.to_vec());
            }
            Request::DigestBatch { keys }
        }
        kind::DIGEST_LIST => {
            let list = read_u64(r)?;
            let keys = if read_presence(r)? {
                Some(read_keys_compressed(r)?)
            } else {
                None
            };
            Request::DigestList { list, keys }
        }
        other => return Err(Malformed::UnknownRequestKind(other)),
    })
}

/// A typed operation's tag and arguments (of an `Op` or an `Apply`).
fn write_op(out: &mut Vec<u8>, op: &TypedOp) {
    match op {
        TypedOp::CounterAdd(delta) => {
            out.push(kind::OP_COUNTER_ADD);
            writer::signed(out, *delta);
        }
        TypedOp::SetAdd(items) => {
            out.push(kind::OP_SET_ADD);
            write_scalars(out, items);
        }
        TypedOp::SetRemove(items) => {
            out.push(kind::OP_SET_REMOVE);
            write_scalars(out, items);
        }
        TypedOp::RegisterSet(value) => {
            out.push(kind::OP_REGISTER_SET);
            write_scalar(out, value);
        }
        TypedOp::Edit(edit) => {
            out.push(kind::OP_EDIT);
            edit.encode(out);
        }
    }
}

fn read_op(r: &mut Reader<'_>) -> Decoded<TypedOp> {
    Ok(match r.u8()? {
        kind::OP_COUNTER_ADD => TypedOp::CounterAdd(r.signed()?),
        kind::OP_SET_ADD => TypedOp::SetAdd(read_scalars(r)?),
        kind::OP_SET_REMOVE => TypedOp::SetRemove(read_scalars(r)?),
        kind::OP_REGISTER_SET => TypedOp::RegisterSet(read_scalar(r)?),
        kind::OP_EDIT => TypedOp::Edit(haze_device::Edit::decode(r)?),
        other => return Err(Malformed::UnknownOperation(other)),
    })
}
