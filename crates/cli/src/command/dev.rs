//! `haze dev`: a controller and a few nodes in one process, formed into a cluster.

use anyhow::Context;
use clap::{Args, Parser};
use haze_controller::ControllerClient;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

use crate::command::cluster::open_controller;
use crate::command::serve::{
    AckArg, Joining, RunningNode, ServeArgs, init_logging, join, start_node, wait_for_signal,
};

#[derive(Debug, Args)]
pub(crate) struct DevArgs {
    /// How many nodes (1 to 16).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=16))]
    nodes: u16,
    /// The folder that holds the controller's and every node's data.
    #[arg(long, default_value = "./haze-dev")]
    data: PathBuf,
    /// The controller listens on BASE-100, node i on BASE+i and its HTTP API on BASE+80+i; 0
    /// picks free ports.
    #[arg(long, default_value_t = 7700, value_parser = clap::value_parser!(u16).range(0..=65000))]
    base_port: u16,
    /// Replicas of each partition, for a new cluster.
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Partitions of the ring, for a new cluster: a power of two up to 4096.
    #[arg(long, default_value_t = 256)]
    partitions: u32,
    #[command(flatten)]
    limits: crate::command::cluster::LimitArgs,
    /// How many replicas must hold a write before it is acknowledged (as `haze serve --ack`).
    #[arg(long, value_enum, default_value = "quorum")]
    ack: AckArg,
}

/// `haze serve`'s arguments, parsed the way the command line would be, so `haze dev`'s nodes get
/// exactly `haze serve`'s defaults.
#[derive(Debug, Parser)]
struct ServeLine {
    #[command(flatten)]
    args: ServeArgs,
}

fn port(base: u16, offset: i32) -> String {
    if base == 0 {
        "127.0.0.1:0".to_string()
    } else {
        format!("127.0.0.1:{}", i32::from(base) + offset)
    }
}

pub(crate) fn run(args: DevArgs) -> anyhow::Result<()> {
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(dev(args))
}

async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let controller = open_controller(
        &args.data.join("controller"),
        args.partitions,
        args.replicas,
    )?;
    let listen = port(args.base_port, -100);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let controller_addr = listener.local_addr()?.to_string();
    let controller_task = tokio::spawn(haze_controller::serve(
        controller,
        args.limits.limits(),
        listener,
        shutdown.clone(),
    ));

    let mut nodes: Vec<RunningNode> = Vec::new();
    for i in 1..=i32::from(args.nodes) {
        let data = args.data.join(format!("node{i}"));
        let line = ServeLine::try_parse_from([
            "serve",
            "--data",
            data.to_str()
                .context("the data folder's path is not UTF-8")?,
            "--listen",
            &port(args.base_port, i),
            "--http",
            &port(args.base_port, 80 + i),
            "--ack",
            clap::ValueEnum::to_possible_value(&args.ack)
                .context("every --ack value has a name")?
                .get_name(),
        ])?;
        nodes.push(start_node(&line.args, shutdown.clone()).await?);
    }

    // Register the nodes in order (so node i is n<i> in a new cluster), then give them
    // partitions; a second `haze dev` on the same folder finds them active already.
    let client = ControllerClient::new(&controller_addr);
    let mut ids = Vec::new();
    for node in &nodes {
        ids.push(client.register(&node.addr.to_string()).await?.node);
    }
    // Registered in order: now each node may join (its own registration finds its id).
    for (i, node) in nodes.iter().enumerate() {
        let joining = Joining {
            controller: controller_addr.clone(),
            advertise: node.addr.to_string(),
            data: args.data.join(format!("node{}", i + 1)),
        };
        join(joining, &node.node);
    }
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.to_string()).collect();
    let status = client.status().await?;
    let standby: Vec<String> = status
        .members
        .iter()
        .filter(|m| addrs.contains(&m.addr) && m.state == haze_controller::MemberState::Standby)
        .map(|m| m.addr.clone())
        .collect();
    let status = if standby.is_empty() {
        status
    } else {
        client.add(&standby).await.context(
            "forming the cluster (a folder of an earlier `haze dev` keeps its node count)",
        )?
    };

    // Ready when every node has the table (they poll the controller).
    for _ in 0..100 {
        if nodes.iter().all(|n| n.node.view().is_some()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    if let Some(i) = nodes.iter().position(|n| n.node.view().is_none()) {
        anyhow::bail!(
            "node {} did not receive the partition table within 10 s",
            i + 1
        );
    }

    #[allow(clippy::print_stdout)]
    {
        println!(
            "haze dev: a {}-node cluster in {} (Ctrl-C stops it)",
            nodes.len(),
            args.data.display()
        );
        println!(
            "controller {controller_addr} (cluster {}, epoch {})",
            status.cluster,
            status.epoch.unwrap_or(0)
        );
        for (node, id) in nodes.iter().zip(&ids) {
            println!("{id} {} http {}", node.addr, node.http);
        }
        println!(
            "grow: haze serve --controller {controller_addr} --data {} --listen 127.0.0.1:PORT \
             --http 127.0.0.1:HTTP_PORT, then haze cluster add 127.0.0.1:PORT --wait \
             --controller {controller_addr}",
            args.data.join(format!("node{}", nodes.len() + 1)).display(),
        );
        println!(
            "try: haze counter incr visits --addr {}   |   haze cluster status --controller {controller_addr}",
            nodes[0].addr
        );
    }

    wait_for_signal().await;
    shutdown.cancel();
    for node in nodes {
        node.serving.await.context("a node's task failed")??;
    }
    controller_task
        .await
        .context("the controller's task failed")?
        .context("serving the controller")?;
    tracing::info!("stopped cleanly");
    Ok(())
}
