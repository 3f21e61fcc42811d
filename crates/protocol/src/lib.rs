//! Haze's binary client protocol over TCP, shared by the node, the client and the CLI.
//!
//! A connection carries length-prefixed frames. Each request frame has a request id chosen by
//! the client; the response frame carries the same id, so a connection can have many requests
//! in flight and responses may come back in any order. The first exchange is a versioned
//! handshake. `docs/protocol.md` is the full reference.
//!
//! # Layout
//!
//! * `frame` — framing: reading and writing frames with a size limit.
//! * `message` — [`Request`] and [`Response`]: what a client and a node say.
//! * `codec` — their encoding in a frame body, and [`DecodeError`] for a malformed one.
//! * `error_code` — [`ErrorCode`]: stable numbers for errors that cross the wire.
//! * `transport` — [`Listener`] and [`Dial`]: the seam between TCP and a simulated network.
//! * `channel` — [`Channel`]: requests to one address over a pipelined connection, opened
//!   lazily and again when it breaks, with timeouts and the retry rules of idempotent requests.

mod channel;
mod codec;
mod error_code;
mod frame;
mod message;
mod transport;

pub use channel::{CallError, Channel, ChannelConfig};
pub use codec::{DecodeError, Malformed, key_list_id};
pub use error_code::ErrorCode;
pub use frame::{
    FRAME_HEADER_BYTES, FrameError, MAX_FRAME_BYTES, flush_frames, read_frame, write_frame,
    write_frame_with,
};
pub use message::{
    HELLO_MAGIC, MAX_TOKEN_BYTES, PROTOCOL_VERSION, Request, RequestId, Response, Role, TypedOp,
    WireError,
};
pub use transport::{BoxFuture, BoxStream, Dial, Listener, Stream, TcpDial};
