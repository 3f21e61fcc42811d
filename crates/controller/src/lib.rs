//! Haze's controller: the authority on a cluster's membership and partition table.
//!
//! This crate is the controller's state and its rules, kept durably in one file; serving it
//! over the network (registration, `haze cluster add|status`) is the next step of the cluster
//! work (docs/ARCHITECTURE.md, "Next: the cluster").
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

mod error;
mod persist;
mod state;

pub use error::{Error, Result};
pub use persist::Controller;
pub use state::{ClusterId, ControllerState, Member, MemberState};
