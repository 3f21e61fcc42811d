//! `haze controller` and `haze cluster add|status`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use haze_controller::api::Status;
use haze_controller::{ClusterId, Controller, ControllerClient, MemberState};

use crate::clock::random_u64;
use crate::command::serve::{cancel_on_signal, init_logging};

#[derive(Debug, Args)]
pub(crate) struct ControllerArgs {
    /// Where the controller keeps the cluster's membership and partition table.
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
}

#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    /// The controller's address.
    #[arg(long, global = true, default_value = "127.0.0.1:7600")]
    controller: String,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Give standby nodes (by id, `n3`, or address) partitions.
    Add {
        /// Registered nodes.
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Print the members, their state and partition counts, and the table's epoch.
    Status {
        /// Print everything as JSON, the full partition table included.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run_controller(args: ControllerArgs) -> anyhow::Result<()> {
    init_logging();
    let controller = open_controller(&args.data, args.partitions, args.replicas)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        tracing::info!(
            listen = %listener.local_addr()?,
            data = %args.data.display(),
            cluster = %controller.state().cluster,
            "haze controller ready"
        );
        haze_controller::serve(controller, listener, cancel_on_signal())
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
    let client = ControllerClient::new(&args.controller);
    match args.command {
        ClusterCommand::Add { nodes } => {
            let status = runtime.block_on(client.add(&nodes))?;
            print_status(&status);
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

fn print_status(status: &Status) {
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
}
