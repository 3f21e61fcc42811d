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
//! * `change` — planning and committing membership changes; `outcome` — how each ended
//!   ([`Outcome`]): what was asked, done or not, and why.
//! * `tracker` — what nodes reported ([`Tracker`]), in memory; `limits` — [`MoveLimits`].
//! * `progress` — advancing each partition's move: one round over the moves (a step per move
//!   state), then publishing a table and completing the change.
//! * `persist` — [`Controller`]: the state kept in a file.
//! * `api` — the bodies of the HTTP/JSON API; `status` summarizes the state in one;
//!   `server` serves it; `client` calls it.
//! * `tokens` — client tokens: their model and the [`TokenTable`](tokens::TokenTable) nodes
//!   check them against (pure); `bootstrap` — the first admin token of a controller that
//!   requires tokens.
//! * `error` — [`Error`] and the causes it keeps.

pub mod api;
mod bootstrap;
mod change;
mod client;
mod error;
mod limits;
mod metrics;
mod outcome;
mod persist;
mod progress;
mod server;
mod state;
mod status;
pub mod tokens;
mod tracker;

pub use bootstrap::{ADMIN_TOKEN_FILE, Bootstrap};

pub use change::{Change, Plan, PlannedMove};
pub use client::{AnswerError, ClientError, ControllerClient};
pub use error::{Error, Inconsistency, Result, StateError};
pub use limits::MoveLimits;
pub use outcome::Outcome;
pub use persist::Controller;
pub use server::{ServeOptions, WallClock, router, serve, serve_with};
pub use state::{ClusterId, ControllerState, MAX_MEMBERS, Member, MemberState};
pub use tracker::{NodeSeen, Tracker};
