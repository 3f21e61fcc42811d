#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! * `client` — [`Client`]: typed requests, retries of idempotent ones, reconnects.
//! * `connection` — one multiplexed connection: a writer task, a reader task, the requests in
//!   flight by id.
//! * `replica` — [`Replica`]: a device's values in one file, edited offline.
//! * `sync` — [`Replica::sync`]: digests first, full states only where they differ.
//! * `error` — [`Error`], with the node's stable error codes mapped to variants.
#![deny(missing_docs)]

mod client;
mod connection;
mod error;
mod replica;
mod router;
mod sync;

pub use client::{Client, ClientConfig};
pub use error::{Error, Result};
pub use haze_crdt::{Scalar, Value};
pub use replica::Replica;
pub use sync::SyncReport;
