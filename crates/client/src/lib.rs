#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! * `client` — [`Client`]: typed requests, retries of idempotent ones, reconnects.
//! * `connection` — one multiplexed connection: a writer task, a reader task, the requests in
//!   flight by id.
//! * `error` — [`Error`], with the node's stable error codes mapped to variants.
#![deny(missing_docs)]

mod client;
mod connection;
mod error;

pub use client::{Client, ClientConfig};
pub use error::{Error, Result};
pub use haze_crdt::{Scalar, Value};
