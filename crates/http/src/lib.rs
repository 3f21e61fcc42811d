//! Haze's HTTP plumbing, shared by the node's HTTP API and the controller:
//!
//! * `server` — [`serve`]: an axum router on a TCP listener, over TLS or not, behind the
//!   defences every listener has (connection caps, a per-address cap, a bounded handshake, an
//!   absolute deadline for a request's headers, an idle timeout); each request knows its
//!   [`Peer`] (address, and the identity its certificate names).
//! * `client` — [`HttpClient`]: HTTP/1 requests over TLS or not, with a deadline and a bounded
//!   answer (the controller's client).
//!
//! Why these dependencies: hyper's own HTTP/1 connections (axum is built on them) give the
//! header deadline and per-connection TLS that `axum::serve` lacks, and a client without a
//! connection pool, which the controller's few long-lived requests do not need.

mod client;
mod guard;
mod server;

pub use client::{Answer, HttpClient, HttpError};
pub use server::{AddressSlot, Peer, PerAddress, ServeOptions, serve};
