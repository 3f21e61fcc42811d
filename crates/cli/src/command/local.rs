//! `haze local --replica FILE ...`: the data commands applied offline to a replica file, and its
//! sync with a node.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use haze_client::{Replica, Scalar, Value};
use haze_crdt::{LwwRegister, OrSet, PnCounter};

use super::data::{
    Addr, CounterCommand, GetArgs, MergeArgs, RegisterCommand, SetCommand, amount, typed,
    with_client,
};
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
            let report = with_client(&addr, async |client| Ok(replica.sync(&client).await?))?;
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
            with_client(&addr, async |client| {
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
