//! The data commands: each connects to a node, does one thing, prints plain results.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use haze_client::{Client, ClientConfig, Scalar, Value};
use haze_crdt::{LwwRegister, OrSet, PnCounter, TypedValue};
use haze_protocol::Role;

/// Where the node is.
#[derive(Debug, Clone, Args)]
pub(crate) struct Addr {
    /// The node's binary protocol address [default: 127.0.0.1:7700; for `haze local`, the
    /// node the replica last synced with].
    #[arg(long, global = true)]
    pub(crate) addr: Option<String>,
    /// Use only the contacted node's own copy, without routing to the key's replicas
    /// (diagnostics: compare replicas). A write made this way reaches the key's other replicas
    /// through anti-entropy only if the contacted node is one of them.
    #[arg(long, global = true)]
    pub(crate) local: bool,
    /// Read the key from every replica, merge the answers and repair the replicas whose copy
    /// differed.
    #[arg(long, global = true, conflicts_with = "local")]
    pub(crate) merged: bool,
    #[command(flatten)]
    pub(crate) credentials: crate::command::profile::Credentials,
}

/// Reads `key`, from every replica merged if `merged`.
pub(crate) async fn read(
    client: &Client,
    key: &str,
    merged: bool,
) -> haze_client::Result<Option<Value>> {
    if merged {
        client.get_merged(key).await
    } else {
        client.get(key).await
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum CounterCommand {
    /// Add BY (default 1) to the counter; print its new value.
    Incr {
        key: String,
        by: Option<u64>,
        #[command(flatten)]
        addr: Addr,
    },
    /// Subtract BY (default 1) from the counter; print its new value.
    Decr {
        key: String,
        by: Option<u64>,
        #[command(flatten)]
        addr: Addr,
    },
    /// Print the counter's value (0 if it was never written).
    Get {
        key: String,
        #[command(flatten)]
        addr: Addr,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SetCommand {
    /// Add members to the set.
    Add {
        key: String,
        #[arg(required = true)]
        members: Vec<String>,
        #[command(flatten)]
        addr: Addr,
    },
    /// Remove members from the set.
    Remove {
        key: String,
        #[arg(required = true)]
        members: Vec<String>,
        #[command(flatten)]
        addr: Addr,
    },
    /// Print the members, one per line, sorted.
    Members {
        key: String,
        #[command(flatten)]
        addr: Addr,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RegisterCommand {
    /// Write the register.
    Set {
        key: String,
        value: String,
        #[command(flatten)]
        addr: Addr,
    },
    /// Print the register's value.
    Get {
        key: String,
        #[command(flatten)]
        addr: Addr,
    },
}

#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    pub(crate) key: String,
    #[command(flatten)]
    addr: Addr,
}

#[derive(Debug, Args)]
pub(crate) struct MergeArgs {
    pub(crate) key: String,
    /// A JSON file holding the state to merge.
    #[arg(long)]
    pub(crate) file: PathBuf,
    #[command(flatten)]
    addr: Addr,
}

/// Runs `f` with a client connected to `addr`, on a small runtime.
pub(crate) fn with_client<T>(
    addr: &Addr,
    f: impl AsyncFnOnce(Client) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let node = addr.addr.as_deref().unwrap_or(DEFAULT_ADDR);
    let resolved = addr.credentials.resolve(node)?;
    let role = if addr.local {
        Role::Local
    } else {
        Role::Client
    };
    with_resolved_client(node, role, resolved, f)
}

/// The node a command connects to when `--addr` is not given.
pub(crate) const DEFAULT_ADDR: &str = "127.0.0.1:7700";

/// Runs `f` with a client of `role` connected to `node` with `resolved` credentials.
pub(crate) fn with_resolved_client<T>(
    node: &str,
    role: Role,
    resolved: crate::command::profile::Resolved,
    f: impl AsyncFnOnce(Client) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut config = ClientConfig {
        role,
        token: resolved.token,
        ..ClientConfig::default()
    };
    if let Some(tls) = resolved.tls {
        config.dial = std::sync::Arc::new(haze_tls::TlsDial::new(config.dial, tls));
    }
    runtime.block_on(async {
        let client = Client::connect_with(node, config).await?;
        f(client).await
    })
}

pub(crate) fn typed<T: TypedValue>(key: &str, value: Value) -> anyhow::Result<T> {
    if value.kind() != T::KIND {
        bail!("key {key:?} holds a {}, not a {}", value.kind(), T::KIND);
    }
    Ok(T::try_from_value(value)?)
}

pub(crate) fn amount(by: Option<u64>) -> anyhow::Result<i64> {
    let by = by.unwrap_or(1);
    i64::try_from(by).with_context(|| format!("{by} is larger than {}", i64::MAX))
}

fn plain(s: &Scalar) -> String {
    s.to_string()
}

pub(crate) fn run_counter(cmd: CounterCommand) -> anyhow::Result<()> {
    match cmd {
        CounterCommand::Incr { key, by, addr } => {
            let delta = amount(by)?;
            let counter = with_client(&addr, async |c| Ok(c.counter_add(&key, delta).await?))?;
            println!("{}", counter.value());
        }
        CounterCommand::Decr { key, by, addr } => {
            let delta = -amount(by)?;
            let counter = with_client(&addr, async |c| Ok(c.counter_add(&key, delta).await?))?;
            println!("{}", counter.value());
        }
        CounterCommand::Get { key, addr } => {
            let value = with_client(&addr, async |c| Ok(read(&c, &key, addr.merged).await?))?;
            let counter: PnCounter = value
                .map(|v| typed(&key, v))
                .transpose()?
                .unwrap_or_default();
            println!("{}", counter.value());
        }
    }
    Ok(())
}

pub(crate) fn run_set(cmd: SetCommand) -> anyhow::Result<()> {
    match cmd {
        SetCommand::Add { key, members, addr } => {
            let members = members.into_iter().map(Scalar::String);
            with_client(&addr, async |c| Ok(c.set_add(&key, members).await?))?;
        }
        SetCommand::Remove { key, members, addr } => {
            let members = members.into_iter().map(Scalar::String);
            with_client(&addr, async |c| Ok(c.set_remove(&key, members).await?))?;
        }
        SetCommand::Members { key, addr } => {
            let value = with_client(&addr, async |c| Ok(read(&c, &key, addr.merged).await?))?;
            let set: OrSet<Scalar> = value
                .map(|v| typed(&key, v))
                .transpose()?
                .unwrap_or_default();
            for member in set.iter() {
                println!("{}", plain(member));
            }
        }
    }
    Ok(())
}

pub(crate) fn run_register(cmd: RegisterCommand) -> anyhow::Result<()> {
    match cmd {
        RegisterCommand::Set { key, value, addr } => {
            with_client(&addr, async |c| {
                Ok(c.register_set(&key, Scalar::String(value)).await?)
            })?;
        }
        RegisterCommand::Get { key, addr } => {
            let value = with_client(&addr, async |c| Ok(read(&c, &key, addr.merged).await?))?;
            let register: LwwRegister<Scalar> = match value {
                Some(v) => typed(&key, v)?,
                None => bail!("no value under key {key:?}"),
            };
            match register.get() {
                Some(v) => println!("{}", plain(v)),
                None => bail!("the register under key {key:?} was never written"),
            }
        }
    }
    Ok(())
}

pub(crate) fn run_get(args: GetArgs) -> anyhow::Result<()> {
    let key = args.key;
    match with_client(&args.addr, async |c| {
        Ok(read(&c, &key, args.addr.merged).await?)
    })? {
        Some(value) => println!("{}", serde_json::to_string_pretty(&value)?),
        None => bail!("no value under key {key:?}"),
    }
    Ok(())
}

pub(crate) fn run_merge(args: MergeArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", args.file.display()))?;
    let key = args.key;
    let merged = with_client(&args.addr, async |c| Ok(c.merge(&key, value).await?))?;
    println!("{}", serde_json::to_string_pretty(&merged)?);
    Ok(())
}
