//! The device core on the host: every typed edit, the actor id rules, the sync state machine,
//! and replicas that edit offline and sync in random orders, cut at random steps.

#![allow(unreachable_pub)]

mod actors;
mod edits;
mod model;
mod properties;
mod script;
mod server;
mod sync;
