//! `haze controller` and `haze cluster plan|commit|add|remove|status`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use haze_controller::api::{PlanRequest, Status};
use haze_controller::{ClusterId, Controller, MemberState, MoveLimits};

use crate::clock::random_u64;
use crate::command::serve::{cancel_on_signal, init_logging};

#[derive(Debug, Args)]
pub(crate) struct ControllerArgs {
    /// Where the controller keeps the cluster's membership, partition table and the changes
    /// under way.
    #[arg(long, default_value = "./haze-controller")]
    data: PathBuf,
    /// The address of its HTTP/JSON API.
    #[arg(long, default_value = "127.0.0.1:7600")]
    listen: String,
    /// Partitions of the ring, for a new cluster: a power of two up to 4096, fixed for life.
    #[arg(long, default_value_t = 256)]
    partitions: u32,
    /// Replicas of each partition, for a new cluster (clamped to the number of nodes).
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    tls: crate::command::secure::ServerTlsArgs,
    /// Require an admin token for changes to the cluster and its tokens even without TLS (on
    /// loopback, for tests and trials; with TLS it is always required). The first admin token
    /// is written to DATA/admin.token.
    #[arg(long)]
    auth: bool,
}

/// How fast data moves when nodes join or leave.
#[derive(Debug, Args, Clone)]
pub(crate) struct LimitArgs {
    /// Partitions streaming at once, cluster-wide (the rate limit holds whatever the number).
    #[arg(long, default_value_t = 16)]
    pub(crate) move_partitions: usize,
    /// Partitions streaming at once to one node (a new node receives every stream of its
    /// addition, beside its share of clients' writes).
    #[arg(long, default_value_t = 2)]
    pub(crate) move_partitions_per_node: usize,
    /// The most bytes per second each node streams to others, all its streams together: a
    /// number with an optional unit (`512KiB`, `64MiB`, `1GiB`); 0 for no limit.
    #[arg(long, default_value = "64MiB", value_parser = parse_rate)]
    pub(crate) move_rate: u64,
    /// Seconds a moved partition waits for every node to use the new table before its old
    /// replicas delete it anyway.
    #[arg(long, default_value_t = 30)]
    pub(crate) move_grace_secs: u64,
    /// Seconds of silence after which a node is taken for down (at least 1): streams from it
    /// are re-planned from another replica, streams to it go to another node.
    #[arg(long, default_value_t = 10)]
    pub(crate) dead_after_secs: u64,
    /// Seconds in one state after which a move is reported stuck.
    #[arg(long, default_value_t = 300)]
    pub(crate) stuck_after_secs: u64,
}

/// Parses a byte rate: digits and an optional unit (B, KiB, MiB, GiB; also KB, MB, GB as the
/// same binary multiples).
fn parse_rate(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a rate like 64MiB, 512KiB or 0"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown unit {other:?}: use B, KiB, MiB or GiB")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

impl LimitArgs {
    pub(crate) fn limits(&self) -> MoveLimits {
        MoveLimits {
            partitions: self.move_partitions.max(1),
            per_node: self.move_partitions_per_node.max(1),
            rate: self.move_rate,
            grace_ms: self.move_grace_secs.saturating_mul(1000),
            dead_after_ms: self.dead_after_secs.saturating_mul(1000).max(1000),
            stuck_after_ms: self.stuck_after_secs.saturating_mul(1000),
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    /// The controller's address.
    #[arg(long, global = true, default_value = "127.0.0.1:7600")]
    controller: String,
    #[command(flatten)]
    credentials: crate::command::profile::Credentials,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Give standby nodes (by id, `n3`, or address) partitions: plan and commit in one step.
    Add {
        /// Registered nodes.
        #[arg(required = true)]
        nodes: Vec<String>,
        /// Show progress until this change (and any queued after it) is done.
        #[arg(long)]
        wait: bool,
    },
    /// Move the partitions of active nodes to the others, then release them (a node that is
    /// down has its partitions copied from the other replicas).
    Remove {
        /// Active nodes.
        #[arg(required = true)]
        nodes: Vec<String>,
        /// Show progress until this change (and any queued after it) is done.
        #[arg(long)]
        wait: bool,
    },
    /// Show what adding or removing nodes would move, and keep it for `commit`.
    Plan {
        /// `add` or `remove`.
        action: PlanAction,
        /// Registered nodes.
        #[arg(required = true)]
        nodes: Vec<String>,
        /// Print the plan as JSON, every partition included.
        #[arg(long)]
        json: bool,
    },
    /// Carry out the change last planned (after the change under way, if any).
    Commit {
        /// Show progress until this change (and any queued after it) is done.
        #[arg(long)]
        wait: bool,
    },
    /// Print the members, their state and partition counts, the table's epoch, and the changes
    /// under way and queued.
    Status {
        /// Print everything as JSON, the full partition table included.
        #[arg(long)]
        json: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::parse_rate;

    #[test]
    fn rates_take_binary_units() {
        assert_eq!(parse_rate("0"), Ok(0));
        assert_eq!(parse_rate("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_rate("64MiB"), Ok(64 << 20));
        assert_eq!(parse_rate("2gb"), Ok(2 << 30));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("3 parsecs").is_err());
        assert!(parse_rate("99999999999GiB").is_err());
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum PlanAction {
    Add,
    Remove,
}

pub(crate) fn run_controller(args: ControllerArgs) -> anyhow::Result<()> {
    init_logging();
    let controller = open_controller(&args.data, args.partitions, args.replicas)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let tls = args.tls.load()?;
        let auth = args.auth || tls.is_some();
        crate::command::secure::protected_mode(
            "the controller",
            &crate::command::secure::resolve(&args.listen).await?,
            tls.is_some(),
            args.tls.insecure,
            "Give --tls-cert, --tls-key and --tls-ca (made by `haze certs`): admin tokens are \
             then required",
        )?;
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let mut options = haze_controller::ServeOptions::new(args.limits.limits()).with_auth(auth);
        if let Some(tls) = tls {
            options = options.with_tls(tls.server);
        }
        tracing::info!(
            listen = %listener.local_addr()?,
            data = %args.data.display(),
            cluster = %controller.state().cluster,
            tls = args.tls.tls_cert.is_some(),
            admin_tokens = auth,
            "haze controller ready"
        );
        haze_controller::serve_with(controller, options, listener, cancel_on_signal())
            .await
            .context("serving the controller")?;
        tracing::info!("stopped cleanly");
        Ok(())
    })
}

/// Opens the controller kept in `dir`, or creates a cluster there (with a random id).
pub(crate) fn open_controller(
    dir: &Path,
    partitions: u32,
    replicas: usize,
) -> anyhow::Result<Controller> {
    let cluster = ClusterId(random_u64().context("reading /dev/urandom for the cluster id")?);
    let controller = Controller::open(dir, cluster, partitions, replicas)
        .context("opening the controller's state")?;
    let state = controller.state();
    if (state.partitions, state.replicas) != (partitions, replicas) {
        tracing::warn!(
            partitions = state.partitions,
            replicas = state.replicas,
            "the cluster exists already: its partitions and replicas are those it was created with"
        );
    }
    Ok(controller)
}

pub(crate) fn run_cluster(args: ClusterArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let client = args.credentials.controller(&args.controller)?;
    match args.command {
        ClusterCommand::Add { nodes, wait } => {
            let status = runtime.block_on(client.add(&nodes))?;
            print_status(&status);
            if wait {
                runtime.block_on(super::progress::wait(&client, &status))?;
            }
        }
        ClusterCommand::Remove { nodes, wait } => {
            let status = runtime.block_on(client.remove(&nodes))?;
            print_status(&status);
            if wait {
                runtime.block_on(super::progress::wait(&client, &status))?;
            }
        }
        ClusterCommand::Plan {
            action,
            nodes,
            json,
        } => {
            let request = match action {
                PlanAction::Add => PlanRequest {
                    add: nodes,
                    remove: Vec::new(),
                },
                PlanAction::Remove => PlanRequest {
                    add: Vec::new(),
                    remove: nodes,
                },
            };
            let plan = runtime.block_on(client.plan(&request))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                super::progress::print_plan(&plan);
            }
        }
        ClusterCommand::Commit { wait } => {
            let status = runtime.block_on(client.commit())?;
            print_status(&status);
            if wait {
                runtime.block_on(super::progress::wait(&client, &status))?;
            }
        }
        ClusterCommand::Status { json } => {
            let status = runtime.block_on(client.status())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
        }
    }
    Ok(())
}

pub(crate) fn print_status(status: &Status) {
    let epoch = status
        .epoch
        .map_or_else(|| "none (no node added yet)".to_string(), |e| e.to_string());
    println!(
        "cluster {}: {} partitions, {} replicas, epoch {epoch}",
        status.cluster, status.partitions, status.replicas
    );
    println!(
        "{:<6} {:<24} {:<8} {:>10} {:>9}  seen",
        "node", "address", "state", "partitions", "primaries"
    );
    for m in &status.members {
        let state = match m.state {
            MemberState::Standby => "standby",
            MemberState::Active => "active",
            MemberState::Leaving => "leaving",
        };
        let seen = m.seen.map_or_else(
            || "-".to_string(),
            |s| {
                let epoch = s
                    .epoch
                    .map_or_else(|| "no table".to_string(), |e| format!("epoch {e}"));
                format!("{:.1} s ago, {epoch}", s.ago_ms as f64 / 1000.0)
            },
        );
        println!(
            "{:<6} {:<24} {state:<8} {:>10} {:>9}  {seen}",
            m.id.to_string(),
            m.addr,
            m.partitions,
            m.primaries
        );
    }
    super::progress::print_change(status);
}
