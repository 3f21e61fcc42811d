//! Haze's controller: the authority on a cluster's membership and partition table.
//!
//! This crate is the controller's state and its rules, kept durably in one file, its HTTP/JSON
//! API (docs/cluster.md) and a client of that API for nodes and `haze cluster`.
//!
//! * Nodes *register* with their address and get a stable [`NodeId`](haze_ring::NodeId); they
//!   start as standby.
//! * *Adding* standby nodes gives them partitions: on a cluster without a table, at once. A
//!   change that would move data between nodes is refused until live repartitioning exists.
//! * Every change is written to the state file (atomically: a temporary file, fsync, rename)
//!   before it is reported done; a controller that restarts reads it back.
//!
//! # Layout
//!
//! * `state` — [`ControllerState`]: members, the table, the rules.
//! * `persist` — [`Controller`]: the state kept in a file.
//! * `api` — the bodies of the HTTP/JSON API; `server` serves it; `client` calls it.

pub mod api;
mod client;
mod error;
mod persist;
mod server;
mod state;

pub use client::{ClientError, ControllerClient};
pub use error::{Error, Result};
pub use persist::Controller;
pub use server::{router, serve};
pub use state::{ClusterId, ControllerState, MAX_MEMBERS, Member, MemberState};
