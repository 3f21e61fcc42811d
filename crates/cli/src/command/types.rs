//! The data commands of the types beyond counters, sets and registers: maps, flags, multi-value
//! registers, max and min registers. Each is a typed edit (`haze_device::Edit`, the operations
//! table every front end maps onto) or a read of the key's state.

use anyhow::bail;
use clap::Subcommand;
use haze_client::{Scalar, Value};
use haze_crdt::{Field, ValueKind};
use haze_device::Edit;
use haze_protocol::TypedOp;

use super::data::{Addr, read, with_client};

#[derive(Debug, Subcommand)]
pub(crate) enum MapCommand {
    /// Write the register field FIELD of the map (a last-writer-wins register).
    Set {
        key: String,
        field: String,
        value: String,
        #[command(flatten)]
        addr: Addr,
    },
    /// Add BY (default 1, negative subtracts) to the counter field FIELD; print its value.
    Incr {
        key: String,
        field: String,
        #[arg(allow_hyphen_values = true)]
        by: Option<i64>,
        #[command(flatten)]
        addr: Addr,
    },
    /// Remove the fields named FIELD (of every type) that this node has seen.
    Remove {
        key: String,
        field: String,
        #[command(flatten)]
        addr: Addr,
    },
    /// Print the map's fields, one `FIELD=VALUE` per line, or FIELD's value alone.
    Get {
        key: String,
        field: Option<String>,
        #[command(flatten)]
        addr: Addr,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum FlagCommand {
    /// Enable the flag (a concurrent disable loses: enable wins).
    Enable {
        key: String,
        #[command(flatten)]
        addr: Addr,
    },
    /// Disable the flag (the enables seen here).
    Disable {
        key: String,
        #[command(flatten)]
        addr: Addr,
    },
    /// Print `true` or `false` (`false` if never written).
    Get {
        key: String,
        #[command(flatten)]
        addr: Addr,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum MvRegCommand {
    /// Write the multi-value register (it replaces the values this node has seen; values
    /// written concurrently elsewhere stay beside it).
    Set {
        key: String,
        value: String,
        #[command(flatten)]
        addr: Addr,
    },
    /// Print every concurrent value, one per line.
    Get {
        key: String,
        #[command(flatten)]
        addr: Addr,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ExtremumCommand {
    /// Offer a value (an integer, or text): the register keeps the greatest (max) or least
    /// (min) ever offered.
    Set {
        key: String,
        value: String,
        #[command(flatten)]
        addr: Addr,
    },
    /// Print the value (nothing offered yet: an error).
    Get {
        key: String,
        #[command(flatten)]
        addr: Addr,
    },
}

/// A command-line value: an integer if it reads as one, else text.
fn scalar(text: String) -> Scalar {
    match text.parse::<i64>() {
        Ok(n) => Scalar::Int(n),
        Err(_) => Scalar::String(text),
    }
}

/// Applies `edit` to `key` through the node at `addr`; returns the new state.
fn edit(addr: &Addr, key: &str, edit: Edit) -> anyhow::Result<Value> {
    with_client(addr, async |c| {
        Ok(c.apply(key, TypedOp::Edit(edit)).await?)
    })
}

/// Reads `key`, which must hold `kind` if it holds anything.
fn read_kind(addr: &Addr, key: &str, kind: ValueKind) -> anyhow::Result<Option<Value>> {
    let value = with_client(addr, async |c| Ok(read(&c, key, addr.merged).await?))?;
    match value {
        Some(v) if v.kind() != kind => bail!("key {key:?} holds a {}, not a {kind}", v.kind()),
        other => Ok(other),
    }
}

/// A value as a line of text: a register's or an extremum's value, a counter's number, a set's
/// members, a flag's state; anything else as JSON.
fn shown(value: &Value) -> String {
    match value {
        Value::LwwRegister(r) => r.get().map_or_else(String::new, ToString::to_string),
        Value::PnCounter(c) => c.value().to_string(),
        Value::GCounter(c) => c.value().to_string(),
        Value::Flag(f) => f.is_enabled().to_string(),
        Value::Max(m) => m.get().map_or_else(String::new, ToString::to_string),
        Value::Min(m) => m.get().map_or_else(String::new, ToString::to_string),
        Value::OrSet(s) => s
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        Value::MvRegister(r) => r
            .values()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

impl MapCommand {
    fn addr(&self) -> &Addr {
        match self {
            MapCommand::Set { addr, .. }
            | MapCommand::Incr { addr, .. }
            | MapCommand::Remove { addr, .. }
            | MapCommand::Get { addr, .. } => addr,
        }
    }
}

pub(crate) fn run_map(cmd: MapCommand) -> anyhow::Result<()> {
    let addr = cmd.addr().clone();
    map_command(cmd, &mut |key, e| edit(&addr, key, e), &mut |key| {
        read_kind(&addr, key, ValueKind::OrMap)
    })
}

/// Runs a map command where `apply` applies an edit to a key (and returns its new value) and
/// `read` reads a key that holds a map if anything: on a node, or on a local replica
/// (`haze local map`).
pub(crate) fn map_command(
    cmd: MapCommand,
    apply: &mut dyn FnMut(&str, Edit) -> anyhow::Result<Value>,
    read: &mut dyn FnMut(&str) -> anyhow::Result<Option<Value>>,
) -> anyhow::Result<()> {
    match cmd {
        MapCommand::Set {
            key, field, value, ..
        } => {
            apply(
                &key,
                Edit::map_update(
                    Scalar::String(field),
                    Edit::RegisterSet(Scalar::String(value)),
                ),
            )?;
        }
        MapCommand::Incr { key, field, by, .. } => {
            let name = Scalar::String(field.clone());
            let value = apply(
                &key,
                Edit::map_update(name.clone(), Edit::CounterAdd(by.unwrap_or(1))),
            )?;
            if let Value::OrMap(map) = value
                && let Some(counter) = map.get(&Field::new(name, ValueKind::PnCounter))
            {
                println!("{}", shown(counter));
            }
        }
        MapCommand::Remove { key, field, .. } => {
            let Some(Value::OrMap(map)) = read(&key)? else {
                bail!("no map under key {key:?}");
            };
            let name = Scalar::String(field);
            let fields: Vec<Field> = map
                .iter()
                .map(|(f, _)| f.clone())
                .filter(|f| f.key == name)
                .collect();
            if fields.is_empty() {
                bail!("the map under key {key:?} has no field {name}");
            }
            for f in fields {
                apply(&key, Edit::MapRemove(f))?;
            }
        }
        MapCommand::Get { key, field, .. } => {
            let Some(Value::OrMap(map)) = read(&key)? else {
                bail!("no map under key {key:?}");
            };
            match field {
                None => {
                    for (f, v) in map.iter() {
                        println!("{}={}", f.key, shown(v));
                    }
                }
                Some(field) => {
                    let name = Scalar::String(field);
                    let mut found = map.iter().filter(|(f, _)| f.key == name).peekable();
                    if found.peek().is_none() {
                        bail!("the map under key {key:?} has no field {name}");
                    }
                    for (_, v) in found {
                        println!("{}", shown(v));
                    }
                }
            }
        }
    }
    Ok(())
}

pub(crate) fn run_flag(cmd: FlagCommand) -> anyhow::Result<()> {
    match cmd {
        FlagCommand::Enable { key, addr } => {
            edit(&addr, &key, Edit::FlagEnable)?;
        }
        FlagCommand::Disable { key, addr } => {
            edit(&addr, &key, Edit::FlagDisable)?;
        }
        FlagCommand::Get { key, addr } => {
            let value = read_kind(&addr, &key, ValueKind::Flag)?;
            println!(
                "{}",
                value.as_ref().map_or_else(|| "false".to_string(), shown)
            );
        }
    }
    Ok(())
}

pub(crate) fn run_mvreg(cmd: MvRegCommand) -> anyhow::Result<()> {
    match cmd {
        MvRegCommand::Set { key, value, addr } => {
            edit(&addr, &key, Edit::MvRegisterSet(Scalar::String(value)))?;
        }
        MvRegCommand::Get { key, addr } => {
            let Some(Value::MvRegister(r)) = read_kind(&addr, &key, ValueKind::MvRegister)? else {
                bail!("no value under key {key:?}");
            };
            for v in r.values() {
                println!("{v}");
            }
        }
    }
    Ok(())
}

/// `haze max` (`greatest`) or `haze min`.
pub(crate) fn run_extremum(cmd: ExtremumCommand, greatest: bool) -> anyhow::Result<()> {
    let kind = if greatest {
        ValueKind::Max
    } else {
        ValueKind::Min
    };
    match cmd {
        ExtremumCommand::Set { key, value, addr } => {
            let value = scalar(value);
            let e = if greatest {
                Edit::MaxSet(value)
            } else {
                Edit::MinSet(value)
            };
            println!("{}", shown(&edit(&addr, &key, e)?));
        }
        ExtremumCommand::Get { key, addr } => match read_kind(&addr, &key, kind)? {
            Some(v) => println!("{}", shown(&v)),
            None => bail!("no value under key {key:?}"),
        },
    }
    Ok(())
}
