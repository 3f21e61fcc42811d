//! `haze`: run a node, talk to one, benchmark it.

#![allow(clippy::print_stdout)] // a command-line tool prints its results

mod clock;
mod command;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: a node allocates and frees many small buffers per
/// request (keys, values, frames), and glibc's malloc and free took about 40% of a sending
/// node's CPU samples during a move (`malloc_consolidate`, `unlink_chunk`; docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Haze: a key-value store whose values are CRDTs.
#[derive(Debug, Parser)]
#[command(name = "haze", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node: the binary protocol, the HTTP API and durable storage.
    Serve(command::serve::ServeArgs),
    /// Run a cluster's controller: membership and the partition table, kept durably.
    Controller(command::cluster::ControllerArgs),
    /// Administer a cluster through its controller: add, status.
    Cluster(command::cluster::ClusterArgs),
    /// Client tokens, through the controller: create, list, revoke.
    Token(command::token::TokenArgs),
    /// A local cluster in one process: a controller and --nodes nodes, formed and ready.
    Dev(command::dev::DevArgs),
    /// Counters: incr, decr, get.
    #[command(subcommand)]
    Counter(command::data::CounterCommand),
    /// Sets: add, remove, members.
    #[command(subcommand)]
    Set(command::data::SetCommand),
    /// Last-writer-wins registers: set, get.
    #[command(subcommand)]
    Register(command::data::RegisterCommand),
    /// Maps (fields named by key and type): set, incr, remove, get.
    #[command(subcommand)]
    Map(command::types::MapCommand),
    /// Enable-wins flags: enable, disable, get.
    #[command(subcommand)]
    Flag(command::types::FlagCommand),
    /// Multi-value registers (concurrent writes all kept): set, get.
    #[command(subcommand)]
    Mvreg(command::types::MvRegCommand),
    /// Max registers (the greatest value ever offered): set, get.
    #[command(subcommand)]
    Max(command::types::ExtremumCommand),
    /// Min registers (the least value ever offered): set, get.
    #[command(subcommand)]
    Min(command::types::ExtremumCommand),
    /// Print a key's full state as JSON.
    Get(command::data::GetArgs),
    /// Merge a full state (JSON, as `haze get` prints it) into a key; print the merged state.
    Merge(command::data::MergeArgs),
    /// A local replica in a file: the data commands offline, `sync` and `fetch` with a node.
    Local(command::local::LocalArgs),
    /// Load-test a node (and Redis, side by side, with --redis).
    Bench(command::bench::BenchArgs),
    /// A cluster CA and the node and client certificates it issues: init, issue.
    Certs(command::certs::CertsArgs),
    /// Salvage a stopped node's damaged write-ahead log: keep every intact record, set the
    /// damaged files aside, report what was lost.
    Repair(command::repair::RepairArgs),
    /// Verify every value of a stopped node's data against its checksum; fail if any is corrupt.
    Scrub(command::scrub::ScrubArgs),
}

/// The exit status of a process killed by SIGPIPE, as shells report it.
const BROKEN_PIPE_STATUS: i32 = 128 + 13;

/// The standard library ignores SIGPIPE, so once whoever reads `haze`'s output has gone (`haze
/// cluster status | head -1`) the next `println!` panics with "failed printing to stdout". End
/// quietly instead, with the status a SIGPIPE would have given; every other panic is reported
/// as usual.
fn end_quietly_on_broken_pipe() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(BROKEN_PIPE_STATUS);
        }
        report(info);
    }));
}

fn main() -> std::process::ExitCode {
    end_quietly_on_broken_pipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => command::serve::run(args),
        Command::Controller(args) => command::cluster::run_controller(args),
        Command::Cluster(args) => command::cluster::run_cluster(args),
        Command::Token(args) => command::token::run(args),
        Command::Dev(args) => command::dev::run(args),
        Command::Counter(cmd) => command::data::run_counter(cmd),
        Command::Set(cmd) => command::data::run_set(cmd),
        Command::Register(cmd) => command::data::run_register(cmd),
        Command::Map(cmd) => command::types::run_map(cmd),
        Command::Flag(cmd) => command::types::run_flag(cmd),
        Command::Mvreg(cmd) => command::types::run_mvreg(cmd),
        Command::Max(cmd) => command::types::run_extremum(cmd, true),
        Command::Min(cmd) => command::types::run_extremum(cmd, false),
        Command::Get(args) => command::data::run_get(args),
        Command::Merge(args) => command::data::run_merge(args),
        Command::Local(args) => command::local::run(args),
        Command::Bench(args) => command::bench::run(args),
        Command::Certs(args) => command::certs::run(args),
        Command::Repair(args) => command::repair::run(args),
        Command::Scrub(args) => command::scrub::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            if e.downcast_ref::<command::progress::NotDone>().is_some() {
                std::process::ExitCode::from(command::progress::NotDone::STATUS)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}

/// The error and its causes on one line, each cause once: a cause an error's own message
/// already quotes (many say "what failed: why") is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cause_its_error_quotes_is_printed_once() {
        let e = anyhow::Error::new(std::io::Error::other("disk on fire"))
            .context("opening /data: disk on fire");
        assert_eq!(super::one_line(&e), "opening /data: disk on fire");
        let e = anyhow::anyhow!("connection refused").context("reaching the controller");
        assert_eq!(
            super::one_line(&e),
            "reaching the controller: connection refused"
        );
    }
}
