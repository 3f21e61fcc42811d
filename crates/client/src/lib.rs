#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! * `client` — [`Client`]: typed requests over a [`haze_protocol::Channel`] (one pipelined
//!   connection, reconnects, timeouts, retries of idempotent requests).
//! * `config` — [`ClientConfig`].
//! * `router` — direct routing: each key's request to its primary, by a cached table.
//! * `replica` — [`Replica`]: a device's values in one file, edited offline: haze-device's
//!   core over `file_store` (the file, its companion and its lock).
//! * `sync` — [`Replica::sync`]: the core's sync state machine driven over a [`Client`].
//! * `error` — [`Error`], with the node's stable error codes mapped to variants.
#![deny(missing_docs)]

mod client;
mod config;
mod error;
mod file_store;
mod replica;
mod router;
mod sync;

pub use client::Client;
pub use config::ClientConfig;
pub use error::{Error, Result};
pub use haze_crdt::{Scalar, Value};
pub use haze_device::{Edit, LastSync};
/// The operations [`Client::apply`] and [`Client::apply_ack`] take.
pub use haze_protocol::TypedOp;
pub use replica::Replica;
pub use sync::SyncReport;
