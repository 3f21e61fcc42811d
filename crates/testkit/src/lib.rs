//! Haze's shared test harnesses: one way for every crate's tests to start a node, a cluster, a
//! controller or a `haze` process, and the store doubles that make a commit fail or wait.
//!
//! Only ever a dev-dependency (`publish = false`). Before it, the node's, the CLI's and the
//! client's tests each started nodes in their own way, and two crates copied the store doubles;
//! see README.md for what moved here from where.
//!
//! | module | what | feature |
//! | --- | --- | --- |
//! | [`store`] | [`FailingStore`] (every commit fails), [`Gated`] (holds, fails the n-th commit, counts syncs), [`Faulty`] (a disk that fails on cue: ENOSPC or EIO from a write or an fsync, and what a crash would keep) | always |
//! | `node` | `TestNode`: a node in this process on loopback (protocol and HTTP ports); `start_nodes`: several, for a cluster | `node` |
//! | `controller` | `TestController`: the real controller's API on loopback; `poll_controller`: one poll of the loop a node follows it with | `node` |
//! | [`tmpfs`] | [`Tmpfs`]: a small filesystem of its own (mounted as root; skipped with a message elsewhere, never in CI) for a test that fills a disk | always |
//! | `process` | `Haze` (the binary at a path), `Process` (a running `haze serve` / `haze controller`: its log, panic detection, kill, SIGTERM), a cluster of processes, `haze` commands | `process` |
//! | `proxy` | `Proxy`: a fault-injecting TCP proxy (pass, delay, refuse and cut mid-stream with a seeded RNG, blackhole), switched at run time, counting what it did; on a thread of its own after a setup step (`Proxy::spawn_thread`: in another network namespace) | `proxy` |
//!
//! The workspace dependency has no default features: a crate's tests name the features they
//! use, so haze-storage's tests (on `store` alone) build nothing that depends on haze-storage.
//!
//! Not here on purpose: the simulation's turmoil adapters (`crates/node/tests/sim/`) and
//! `Control`, the controller's state machine driven by direct calls, which the simulation shares
//! (`crates/node/tests/common/control.rs`).

#[cfg(feature = "node")]
pub mod controller;
#[cfg(feature = "node")]
pub mod node;
#[cfg(feature = "process")]
pub mod process;
#[cfg(feature = "proxy")]
pub mod proxy;
pub mod store;
pub mod tmpfs;

#[cfg(feature = "node")]
pub use controller::{TestController, poll_controller};
#[cfg(feature = "node")]
pub use node::{TestNode, start_nodes};
#[cfg(feature = "process")]
pub use process::{Haze, Output, Process, pause};
#[cfg(feature = "proxy")]
pub use proxy::{Mode, Proxy, ProxyHandle, ProxyThread, Stats};
pub use store::{FailingStore, Fault, Faulty, Gated};
pub use tmpfs::Tmpfs;
