//! `haze serve`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use haze_node::cluster::{AckPolicy, Registration};
use haze_node::{Node, NodeConfig};
use haze_storage::{DiskStore, Durability, StoreConfig};
use tokio_util::sync::CancellationToken;

use crate::clock::{SystemClock, fresh_actor};
use crate::command::secure::{ServerTlsArgs, protected_mode, resolve};

/// How writes are made durable.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum DurabilityMode {
    /// Acknowledge after the fsync that covers the write (writes arriving together share one).
    Sync,
    /// Acknowledge once applied; fsync every --sync-interval-ms.
    Periodic,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Where the node keeps its data.
    #[arg(long, default_value = "./haze-data")]
    data: PathBuf,
    /// The address of the binary protocol.
    #[arg(long, default_value = "127.0.0.1:7700")]
    listen: String,
    /// The address of the HTTP/JSON API and /metrics.
    #[arg(long, default_value = "127.0.0.1:7780")]
    http: String,
    /// Also serve the Redis protocol (RESP2 and RESP3) at this address (docs/resp.md); off by
    /// default.
    #[arg(long, value_name = "ADDR")]
    resp: Option<String>,
    /// When writes are acknowledged.
    #[arg(long, value_enum, default_value = "sync")]
    durability: DurabilityMode,
    /// The fsync interval of --durability periodic, in milliseconds.
    #[arg(long, default_value_t = 100)]
    sync_interval_ms: u64,
    /// The largest key, in bytes.
    #[arg(long, default_value_t = 1024)]
    max_key_bytes: usize,
    /// The largest value (encoded, after merging), in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    max_value_bytes: usize,
    /// The most client connections at once.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// The most client connections at once from one address (on each port): one client
    /// cannot hold every slot.
    #[arg(long, default_value_t = 256)]
    max_connections_per_address: usize,
    /// Seconds a connection may wait without a complete request before it is closed.
    #[arg(long, default_value_t = 300)]
    idle_timeout_secs: u64,
    /// MiB of recent writes kept in memory before they are flushed to the B-tree.
    #[arg(long, default_value_t = 32)]
    flush_mib: usize,
    /// Threads serving connections (default: one per core but one, at least one). The storage
    /// writer has a thread of its own, and the core left is its.
    #[arg(long)]
    threads: Option<usize>,
    /// Register with the cluster controller at this address (the node then appears as
    /// standby in `haze cluster status`).
    #[arg(long)]
    controller: Option<String>,
    /// The address other nodes and clients reach this node at (default: the --listen address
    /// as bound).
    #[arg(long)]
    advertise: Option<String>,
    /// In a cluster: how many replicas must hold a write before it is acknowledged (`primary`:
    /// the coordinating replica alone; `quorum`: a majority; `all`: every replica).
    #[arg(long, value_enum, default_value = "quorum")]
    ack: AckArg,
    /// In a cluster: milliseconds to wait for another node before trying the next replica.
    #[arg(long, default_value_t = 2000)]
    forward_timeout_ms: u64,
    /// In a cluster: milliseconds between anti-entropy rounds (comparing this node's replicas
    /// with the other nodes' and exchanging what differs).
    #[arg(long, default_value_t = 10_000)]
    anti_entropy_ms: u64,
    /// In a cluster: how many replicas of a key a read merges before it answers (`majority`,
    /// or 1 to the replication factor; `1`: the first replica that answers, fastest, but one
    /// that missed writes may answer alone). See docs/cluster.md.
    #[arg(long, default_value = "majority")]
    read_quorum: haze_node::ReadQuorum,
    /// A web origin (`https://app.example`, `http://localhost:5173`) whose pages may call the
    /// HTTP API from a browser (CORS); repeat for several. None by default.
    #[arg(long = "cors-origin", value_name = "ORIGIN", value_parser = parse_origin)]
    cors_origins: Vec<String>,
    /// MiB per second the background scrub reads to verify every stored value against its
    /// checksum (a corrupt one is quarantined and repaired from a replica); 0: no scrub.
    #[arg(long, default_value_t = 4)]
    scrub_mib_per_sec: u64,
    #[command(flatten)]
    pub(crate) tls: ServerTlsArgs,
    /// Answer `/health` and `/metrics` without a token when tokens are required (with TLS and
    /// --controller); by default they need one, like every other request.
    #[arg(long)]
    open_metrics: bool,
    /// Seconds a register's stamp may be ahead of this node's clock: a write or merge stamped
    /// further ahead is refused (`clock_skew`), so one bad clock cannot drag every node's
    /// clock into the future.
    #[arg(long = "max-clock-skew", value_name = "SECS", default_value_t = 60)]
    max_clock_skew_secs: u64,
    /// Serve the files of this folder from the HTTP port, for `GET` of paths outside the API
    /// (`/v1/...`): a web app and the API it calls then share one origin. Off by default.
    #[arg(long, value_name = "DIR")]
    web: Option<std::path::PathBuf>,
    /// Serve the HTTP port without TLS though the node has it, on a loopback address only
    /// (`haze dev --web`: a browser trusts no CA of its own). Tokens are still required.
    #[arg(long, hide = true)]
    http_plaintext: bool,
}

/// Checks a web origin: a scheme (`http` or `https`), a host and an optional port, nothing
/// after (browsers send exactly that in `Origin`).
fn parse_origin(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or_else(|| format!("{text:?} is not an origin: it starts with https:// or http://"))?;
    let ok = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if ok {
        Ok(text.to_string())
    } else {
        Err(format!(
            "{text:?} is not an origin: a scheme, a host and an optional port, with no path"
        ))
    }
}

/// `--ack`: how many replicas must hold a write.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum AckArg {
    /// The replica that coordinates the write.
    Primary,
    /// A majority of the key's replicas.
    Quorum,
    /// Every replica of the key.
    All,
}

impl From<AckArg> for AckPolicy {
    fn from(a: AckArg) -> Self {
        match a {
            AckArg::Primary => AckPolicy::Primary,
            AckArg::Quorum => AckPolicy::Quorum,
            AckArg::All => AckPolicy::All,
        }
    }
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(args.threads.unwrap_or_else(default_threads).max(1));
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(args))
}

/// The connection threads when `--threads` is not given: a core each but one, which the
/// storage writer's thread takes under writes (every write is applied there). On two cores,
/// shared with a load generator, one connection thread served pipeline-1 gets at 0.89-0.93x
/// Redis where tokio's default of two served 0.74x, with a quarter less user time per get (no
/// other worker to wake, to steal from or to hand a woken task to; docs/PERFORMANCE.md).
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

/// Logs to standard error, at `RUST_LOG`'s level (default `info`).
pub(crate) fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(|| LossyStderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let shutdown = cancel_on_signal();
    let running = start_node(&args, shutdown, true).await?;
    running.serving.await.context("the node's task failed")??;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// How a node joins its cluster.
pub(crate) struct Joining {
    /// The controller's address.
    pub(crate) controller: String,
    /// This node's address, as others reach it.
    pub(crate) advertise: String,
    /// The node's data directory (it remembers its cluster there).
    pub(crate) data: PathBuf,
    /// TLS to the controller, with the node's certificate (its identity there).
    pub(crate) tls: Option<Arc<haze_tls::rustls::ClientConfig>>,
}

/// A node started by [`start_node`].
pub(crate) struct RunningNode {
    /// The binary protocol's address, as bound.
    pub(crate) addr: std::net::SocketAddr,
    /// The HTTP API's address, as bound.
    pub(crate) http: std::net::SocketAddr,
    /// The Redis protocol's address, as bound, if served.
    pub(crate) resp: Option<std::net::SocketAddr>,
    /// The node.
    pub(crate) node: Arc<Node>,
    /// Serves until the shutdown token is cancelled, then syncs and ends.
    pub(crate) serving: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Opens the node's storage, binds its listeners, registers it with the controller (if one is
/// given and `join_now`; else its caller calls [`join`]) and serves it in a task until
/// `shutdown`.
pub(crate) async fn start_node(
    args: &ServeArgs,
    shutdown: CancellationToken,
    join_now: bool,
) -> anyhow::Result<RunningNode> {
    let durability = match args.durability {
        DurabilityMode::Sync => Durability::Sync,
        DurabilityMode::Periodic => Durability::Periodic {
            interval_ms: args.sync_interval_ms,
        },
    };
    let store_config = StoreConfig {
        durability,
        max_key_bytes: args.max_key_bytes,
        max_value_bytes: args.max_value_bytes,
        flush_bytes: args.flush_mib.max(1) * 1024 * 1024,
    };
    let tls = args.tls.load()?;
    // Tokens come from the controller, and are worth asking for only over TLS.
    let require_tokens = tls.is_some() && args.controller.is_some();
    let security = haze_node::Security {
        tls: tls.as_ref().map(|t| t.server.clone()),
        peer_tls: tls.as_ref().map(|t| t.client.clone()),
        require_tokens,
        open_metrics: !require_tokens || args.open_metrics,
        max_clock_skew: Duration::from_secs(args.max_clock_skew_secs),
        ..haze_node::Security::default()
    };
    let config = NodeConfig {
        security,
        store: store_config,
        max_connections: args.max_connections,
        max_connections_per_address: args.max_connections_per_address,
        idle_timeout: Duration::from_secs(args.idle_timeout_secs),
        ack: args.ack.into(),
        read_quorum: args.read_quorum,
        // A node that lost its disk stays out of read quorums across restarts until its
        // refill has reached every node it shares partitions with.
        refill_marker: Some(args.data.join("refilling")),
        cors_origins: args.cors_origins.clone(),
        web_root: args.web.clone(),
        http_plaintext: args.http_plaintext,
        forward_timeout: Duration::from_millis(args.forward_timeout_ms.max(1)),
        anti_entropy_interval: Duration::from_millis(args.anti_entropy_ms.max(10)),
        ..NodeConfig::default()
    };
    let store = DiskStore::open(&args.data, store_config).map_err(|e| {
        let full = e.is_disk_full();
        let e = anyhow::Error::new(e).context(format!(
            "opening the data directory {}",
            args.data.display()
        ));
        if full {
            // The log holds every acknowledged write; replaying it into redb needs room.
            e.context(
                "the disk is full: nothing is lost (the log is kept until it is in haze.redb), \
                 but replaying the log needs about its size again in free space; free some or \
                 grow the volume, then start the node again",
            )
        } else {
            e
        }
    })?;
    let actor = fresh_actor().context("reading /dev/urandom for the node's actor id")?;
    let mut binds = resolve(&args.listen).await?;
    binds.extend(resolve(&args.http).await?);
    if let Some(resp) = &args.resp {
        binds.extend(resolve(resp).await?);
    }
    protected_mode(
        "a node",
        &binds,
        require_tokens,
        args.tls.insecure,
        "Give --tls-cert, --tls-key and --tls-ca (made by `haze certs`) and --controller \
         (clients' tokens come from it)",
    )?;
    if let Some(web) = &args.web
        && !web.is_dir()
    {
        anyhow::bail!("--web {}: not a folder", web.display());
    }
    if args.http_plaintext {
        let http_binds = resolve(&args.http).await?;
        if let Some(open) = http_binds.iter().find(|a| !a.ip().is_loopback()) {
            anyhow::bail!(
                "--http-plaintext serves tokens without TLS: only on a loopback address, not {open}"
            );
        }
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let http_listener = tokio::net::TcpListener::bind(&args.http)
        .await
        .with_context(|| format!("listening on {}", args.http))?;
    let resp_listener = match &args.resp {
        Some(resp) => Some(
            tokio::net::TcpListener::bind(resp)
                .await
                .with_context(|| format!("listening on {resp} (--resp)"))?,
        ),
        None => None,
    };
    let resp = resp_listener.as_ref().map(|l| l.local_addr()).transpose()?;
    let (addr, http) = (listener.local_addr()?, http_listener.local_addr()?);
    // Decided before the node starts: a node that cannot register should not start at all.
    let advertise = match &args.advertise {
        Some(a) => a.clone(),
        None if args.controller.is_some() && addr.ip().is_unspecified() => anyhow::bail!(
            "--listen {} is not an address others can reach: give --advertise HOST:PORT",
            args.listen
        ),
        None => addr.to_string(),
    };
    let node = Node::start(config, Arc::new(store), actor, Arc::new(SystemClock))
        .context("starting the node")?;
    tracing::info!(
        listen = %addr,
        %http,
        resp = %resp.map_or_else(|| "off".to_string(), |a| a.to_string()),
        data = %args.data.display(),
        ?durability,
        %actor,
        tls = security_summary(require_tokens, args.tls.tls_cert.is_some()),
        "haze node ready"
    );
    if let Some(controller) = args.controller.clone().filter(|_| join_now) {
        let joining = Joining {
            controller,
            advertise,
            data: args.data.clone(),
            tls: tls.map(|t| t.client),
        };
        join(joining, &node);
    }
    if args.scrub_mib_per_sec > 0 {
        node.start_scrub(args.scrub_mib_per_sec.saturating_mul(1024 * 1024));
    }
    let serving_node = node.clone();
    let serving = tokio::spawn(async move {
        haze_node::serve_with_resp(
            serving_node,
            listener,
            http_listener,
            resp_listener,
            shutdown,
        )
        .await
        .context("serving HTTP")
    });
    Ok(RunningNode {
        addr,
        http,
        resp,
        node,
        serving,
    })
}

/// How the node is protected, for its first log line.
fn security_summary(tokens: bool, tls: bool) -> &'static str {
    match (tls, tokens) {
        (true, true) => "on, clients need tokens",
        (true, false) => "on, no tokens (no --controller to take them from)",
        (false, _) => "off",
    }
}

/// Makes `node` a member of its cluster until it stops: it follows the controller (registers,
/// keeps its view of the table current, reports its progress) and runs anti-entropy, both as
/// the node's own background tasks.
pub(crate) fn join(joining: Joining, node: &Arc<Node>) {
    let plane = crate::command::join::HttpControlPlane::new(
        &joining.controller,
        &joining.data,
        joining.tls,
    );
    node.cluster().join(
        Arc::new(plane),
        Registration {
            advertise: joining.advertise,
        },
    );
    node.cluster().start_anti_entropy();
}

/// Returns a token that Ctrl-C or SIGTERM cancels.
pub(crate) fn cancel_on_signal() -> CancellationToken {
    let shutdown = CancellationToken::new();
    let signals = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signals.cancel(); // first: nothing below may stop the shutdown
        tracing::info!("shutting down: finishing in-flight requests and syncing");
    });
    shutdown
}

pub(crate) async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Standard error that never fails: a log line that cannot be written (the reader of a pipe
/// went away) is dropped. tracing-subscriber reports a failed write by printing to standard
/// error, which panics when that is the broken pipe, and the panic killed the task that handles
/// SIGTERM: the node then ignored SIGTERM.
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}
