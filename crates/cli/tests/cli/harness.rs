//! The `haze` binary cargo built for these tests, run as processes through
//! `haze_testkit::process`: `HAZE.serve(…)`, `HAZE.controller(…)`, `HAZE.cluster(…)`, and the
//! commands below.

use std::path::Path;
use std::process::Command;
use std::sync::LazyLock;

use haze_testkit::process::{Haze, Output};
pub use haze_testkit::process::{Process, pause};

/// The `haze` binary cargo built for these tests.
pub static HAZE: LazyLock<Haze> = LazyLock::new(|| Haze::new(env!("CARGO_BIN_EXE_haze")));

/// A command of the `haze` binary, with no arguments yet.
pub fn haze() -> Command {
    HAZE.command()
}

/// `haze serve` on free loopback ports with its data in `data`.
pub fn serve_command(data: &Path) -> Command {
    HAZE.serve_command(data)
}

/// Runs `haze ARGS --addr ADDR`.
pub fn run(server: &Process, args: &[&str]) -> Output {
    HAZE.run(server, args)
}

/// Runs a command that must succeed and returns its stdout.
pub fn ok(server: &Process, args: &[&str]) -> String {
    HAZE.ok(server, args)
}

/// Runs `haze cluster ARGS --controller ADDR`, which must succeed, and returns its stdout.
pub fn cluster_ok(controller: &str, args: &[&str]) -> String {
    HAZE.cluster_ok(controller, args)
}

/// `haze cluster status --json`, parsed.
pub fn cluster_status(controller: &str) -> serde_json::Value {
    HAZE.cluster_status(controller)
}
