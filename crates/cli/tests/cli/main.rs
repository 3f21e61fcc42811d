//! The `haze` binary as a user runs it: real processes on loopback.

#![allow(unreachable_pub)]
#![allow(clippy::print_stdout)] // the crash and fault tests print what they tried and what held

mod cluster;
mod crash;
mod harness;
mod hosts;
mod http_sync;
mod integrity;
mod local;
mod net_faults;
mod netns;
mod outcomes;
mod outside;
mod quorum_reads;
mod repartition;
mod replication;
mod resp;
mod security;
mod state_files;
mod tour;
mod types;
