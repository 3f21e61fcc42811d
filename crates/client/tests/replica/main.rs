//! Local replicas and sync against a node in this process.

#![allow(unreachable_pub)]

mod harness;
mod properties;
mod stories;
