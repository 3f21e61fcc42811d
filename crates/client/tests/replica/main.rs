//! Local replicas and sync against a node in this process.

#![allow(unreachable_pub)]

mod cut;
mod file_and_types;
mod harness;
mod interrupted;
mod model;
mod properties;
mod script;
mod stories;
