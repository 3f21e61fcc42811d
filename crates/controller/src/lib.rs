//! Haze's controller: the authority on a cluster's membership and partition table.
//!
//! This crate is the controller's state and its rules, kept durably in one file, its HTTP/JSON
//! API (docs/cluster.md) and a client of that API for nodes and `haze cluster`.
//!
//! * Nodes *register* with their address and get a stable [`NodeId`](haze_ring::NodeId); they
//!   start as standby.
//! * *Adding* standby nodes gives them partitions, *removing* active nodes takes them away: a
//!   change is planned (which partitions move where), committed, then carried out partition by
//!   partition while the cluster serves ([`ControllerState::advance`], docs/repartitioning.md).
//! * Every change is written to the state file (atomically: a temporary file, fsync, rename)
//!   before it is reported done; a controller that restarts reads it back.
//!
//! # Layout
//!
//! * `state` — [`ControllerState`]: members, the table, the rules.
//! * `change` — planning and committing membership changes.
//! * `progress` — nodes' reports ([`Tracker`]) and advancing each partition's move.
//! * `persist` — [`Controller`]: the state kept in a file.
//! * `api` — the bodies of the HTTP/JSON API; `server` serves it; `client` calls it.

pub mod api;
mod change;
mod client;
mod error;
mod metrics;
mod persist;
mod progress;
mod server;
mod state;

pub use change::{Change, Plan, PlannedMove};
pub use client::{ClientError, ControllerClient};
pub use error::{Error, Result};
pub use persist::Controller;
pub use progress::{MoveLimits, NodeSeen, Tracker};
pub use server::{router, serve};
pub use state::{ClusterId, ControllerState, MAX_MEMBERS, Member, MemberState};
