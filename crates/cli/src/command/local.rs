//! `haze local --replica FILE ...`: the data commands applied offline to a replica file, and its
//! sync with a node.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use haze_client::{Replica, Scalar, Value};
use haze_crdt::{LwwRegister, OrSet, PnCounter};

use haze_protocol::Role;

use super::data::{
    Addr, CounterCommand, DEFAULT_ADDR, GetArgs, MergeArgs, RegisterCommand, SetCommand, amount,
    typed, with_resolved_client,
};
use super::profile::{read, write_at};
use super::types::MapCommand;
use crate::clock::{SystemClock, fresh_actor};

#[derive(Debug, Args)]
pub(crate) struct LocalArgs {
    /// The replica file (created if missing).
    #[arg(long)]
    replica: PathBuf,
    #[command(subcommand)]
    command: LocalCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum LocalCommand {
    /// Counters, offline.
    #[command(subcommand)]
    Counter(CounterCommand),
    /// Sets, offline.
    #[command(subcommand)]
    Set(SetCommand),
    /// Registers, offline.
    #[command(subcommand)]
    Register(RegisterCommand),
    /// Maps, offline (fields that are registers or counters).
    #[command(subcommand)]
    Map(MapCommand),
    /// Print a key's local state as JSON.
    Get(GetArgs),
    /// Merge a state (JSON) into the replica.
    Merge(MergeArgs),
    /// Synchronise every key of the replica with a node; print what moved.
    Sync(#[command(flatten)] Addr),
    /// Fetch keys this replica has never seen, by name, from a node.
    Fetch {
        #[arg(required = true)]
        keys: Vec<String>,
        #[command(flatten)]
        addr: Addr,
    },
}

/// Where the node a replica syncs with, and the credentials it syncs with, are kept: beside
/// the replica file, `FILE.remote.json` (mode 0600: it holds the token), a profile for that
/// node's address (docs/security.md, "Devices").
fn remote_path(replica: &Path) -> PathBuf {
    let mut name = replica.as_os_str().to_owned();
    name.push(".remote.json");
    PathBuf::from(name)
}

/// Runs `f` with a client of the node `addr` names, or else of the node the replica last synced
/// with, using the credentials given (flags, environment, a named profile) or else those kept
/// with the replica. Once `f` succeeds, keeps the node and the credentials used with the
/// replica if they changed, so the next `sync` needs neither.
fn with_remote<T>(
    replica: &Path,
    addr: &Addr,
    f: impl AsyncFnOnce(haze_client::Client) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let path = remote_path(replica);
    let kept = match path.try_exists() {
        Ok(true) => Some(read(&path)?),
        Ok(false) => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let node = addr
        .addr
        .clone()
        .or_else(|| kept.as_ref()?.addresses.first().cloned())
        .unwrap_or_else(|| DEFAULT_ADDR.to_string());
    let (resolved, used) = addr.credentials.resolve_with(&node, kept.clone())?;
    let role = if addr.local {
        Role::Local
    } else {
        Role::Client
    };
    let result = with_resolved_client(&node, role, resolved, f)?;
    if kept.as_ref() != Some(&used) {
        write_at(&path, &used)?;
        eprintln!(
            "kept the node ({node}) and its credentials with the replica, in {}",
            path.display()
        );
    }
    Ok(result)
}

fn open(path: &std::path::Path) -> anyhow::Result<Replica> {
    let actor = fresh_actor().context("reading /dev/urandom for a new actor id")?;
    Ok(Replica::open(path, actor, Arc::new(SystemClock))?)
}

fn local_typed<T: haze_crdt::TypedValue + Default>(
    replica: &Replica,
    key: &str,
) -> anyhow::Result<T> {
    Ok(replica
        .get(key)
        .cloned()
        .map(|v| typed(key, v))
        .transpose()?
        .unwrap_or_default())
}

pub(crate) fn run(args: LocalArgs) -> anyhow::Result<()> {
    let mut replica = open(&args.replica)?;
    match args.command {
        LocalCommand::Counter(cmd) => match cmd {
            CounterCommand::Incr { key, by, .. } => {
                println!("{}", replica.counter_add(&key, amount(by)?)?.value())
            }
            CounterCommand::Decr { key, by, .. } => {
                println!("{}", replica.counter_add(&key, -amount(by)?)?.value())
            }
            CounterCommand::Get { key, .. } => {
                println!("{}", local_typed::<PnCounter>(&replica, &key)?.value())
            }
        },
        LocalCommand::Set(cmd) => match cmd {
            SetCommand::Add { key, members, .. } => {
                replica.set_add(&key, members.into_iter().map(Scalar::String))?;
            }
            SetCommand::Remove { key, members, .. } => {
                replica.set_remove(&key, members.into_iter().map(Scalar::String))?;
            }
            SetCommand::Members { key, .. } => {
                for member in local_typed::<OrSet<Scalar>>(&replica, &key)?.iter() {
                    println!("{member}");
                }
            }
        },
        LocalCommand::Register(cmd) => match cmd {
            RegisterCommand::Set { key, value, .. } => {
                replica.register_set(&key, Scalar::String(value))?;
            }
            RegisterCommand::Get { key, .. } => {
                match local_typed::<LwwRegister<Scalar>>(&replica, &key)?.get() {
                    Some(v) => println!("{v}"),
                    None => bail!("no value under key {key:?}"),
                }
            }
        },
        LocalCommand::Map(cmd) => {
            let replica = std::cell::RefCell::new(&mut replica);
            super::types::map_command(
                cmd,
                &mut |key, edit| Ok(replica.borrow_mut().apply(key, edit)?),
                &mut |key| match replica.borrow().get(key) {
                    Some(Value::OrMap(map)) => Ok(Some(Value::OrMap(map.clone()))),
                    Some(other) => bail!("key {key:?} holds a {}, not a map", other.kind()),
                    None => Ok(None),
                },
            )?;
        }
        LocalCommand::Get(args) => match replica.get(&args.key) {
            Some(value) => println!("{}", serde_json::to_string_pretty(value)?),
            None => bail!("no value under key {:?}", args.key),
        },
        LocalCommand::Merge(args) => {
            let text = std::fs::read_to_string(&args.file)
                .with_context(|| format!("reading {}", args.file.display()))?;
            let value: Value = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", args.file.display()))?;
            replica.merge(&args.key, value)?;
            let merged = replica.get(&args.key).expect("just merged");
            println!("{}", serde_json::to_string_pretty(merged)?);
        }
        LocalCommand::Sync(addr) => {
            let report = with_remote(&args.replica, &addr, async |client| {
                Ok(replica.sync(&client).await?)
            })?;
            println!(
                "synced {} keys: {} sent, {} updated ({} bytes sent, {} received)",
                report.checked,
                report.sent,
                report.updated,
                report.bytes_sent,
                report.bytes_received
            );
        }
        LocalCommand::Fetch { keys, addr } => {
            with_remote(&args.replica, &addr, async |client| {
                for key in &keys {
                    if replica.fetch(&client, key).await?.is_none() {
                        println!("{key}: not in the store");
                    }
                }
                Ok(())
            })?;
        }
    }
    Ok(())
}
