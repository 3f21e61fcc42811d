//! Typed edits: what a device does to its values, for every CRDT type the library has.

use haze_crdt::{ActorId, Dot, Field, Hlc, Join, PhysicalClock, Scalar, Value, ValueKind};

use crate::{Error, Result};

/// One edit of a key's value, applied by [`Replica::apply`](crate::Replica::apply) with the
/// replica's actor id (and, for last-writer-wins registers, its hybrid logical clock fed by
/// the caller's time). Each edit works on one [`ValueKind`]: a key that holds another refuses it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Edit {
    /// Adds to a [`PnCounter`](haze_crdt::PnCounter) (negative subtracts).
    CounterAdd(i64),
    /// Adds to a grow-only [`GCounter`](haze_crdt::GCounter).
    GCounterAdd(u64),
    /// Adds members to an add-wins [`OrSet`](haze_crdt::OrSet).
    SetAdd(Vec<Scalar>),
    /// Removes members of an `OrSet`: the additions this replica has seen (add wins).
    SetRemove(Vec<Scalar>),
    /// Removes every member of an `OrSet` this replica has seen.
    SetClear,
    /// Writes a last-writer-wins [`LwwRegister`](haze_crdt::LwwRegister).
    RegisterSet(Scalar),
    /// Writes a multi-value [`MvRegister`](haze_crdt::MvRegister) (concurrent writes are all
    /// kept until a write that has seen them).
    MvRegisterSet(Scalar),
    /// Enables an [`EnableWinsFlag`](haze_crdt::EnableWinsFlag).
    FlagEnable,
    /// Disables an `EnableWinsFlag` (the enables seen here; a concurrent enable wins).
    FlagDisable,
    /// Raises a [`Max`](haze_crdt::Max) register to at least this value.
    MaxSet(Scalar),
    /// Lowers a [`Min`](haze_crdt::Min) register to at most this value.
    MinSet(Scalar),
    /// Applies `edit` to the field `key` of a map ([`ValueMap`](haze_crdt::ValueMap)): the
    /// field of the type the edit works on (a map's fields are named by key *and* type), created
    /// empty if absent. Nests: a map edit of a field is itself a map edit.
    MapUpdate {
        /// The field's key.
        key: Scalar,
        /// The edit of the field's value.
        edit: Box<Edit>,
    },
    /// Removes a field of a map (the updates of it seen here; a concurrent update wins).
    MapRemove(Field),
}

impl Edit {
    /// Returns the edit of the field `key` of a map.
    pub fn map_update(key: impl Into<Scalar>, edit: Edit) -> Edit {
        Edit::MapUpdate {
            key: key.into(),
            edit: Box::new(edit),
        }
    }

    /// Returns the type of value this edit works on.
    pub fn kind(&self) -> ValueKind {
        match self {
            Edit::CounterAdd(_) => ValueKind::PnCounter,
            Edit::GCounterAdd(_) => ValueKind::GCounter,
            Edit::SetAdd(_) | Edit::SetRemove(_) | Edit::SetClear => ValueKind::OrSet,
            Edit::RegisterSet(_) => ValueKind::LwwRegister,
            Edit::MvRegisterSet(_) => ValueKind::MvRegister,
            Edit::FlagEnable | Edit::FlagDisable => ValueKind::Flag,
            Edit::MaxSet(_) => ValueKind::Max,
            Edit::MinSet(_) => ValueKind::Min,
            Edit::MapUpdate { .. } | Edit::MapRemove(_) => ValueKind::OrMap,
        }
    }

    /// The most dots the edit mints for its actor, at every level of nesting together.
    fn dots(&self) -> u64 {
        match self {
            Edit::SetAdd(members) => members.len() as u64,
            Edit::MvRegisterSet(_) | Edit::FlagEnable => 1,
            Edit::MapUpdate { edit, .. } => 1 + edit.dots(),
            _ => 0,
        }
    }
}

/// Physical time as the caller read it: the core has no clock of its own.
struct At(u64);

impl PhysicalClock for At {
    fn now_millis(&self) -> u64 {
        self.0
    }
}

/// The greatest causal counter of `actor` anywhere in `value`, nested maps' fields included.
fn deepest_counter(value: &Value, actor: ActorId) -> u64 {
    let own = Join::causal_counter(value, actor);
    match value {
        Value::OrMap(map) => (map.entries())
            .flat_map(|(_, values)| values.iter())
            .map(|(_, v)| deepest_counter(v, actor))
            .fold(own, u64::max),
        _ => own,
    }
}

/// Refuses an edit that could mint a dot past what decodes: a state merged from elsewhere may
/// claim this actor has made nearly 2^63 updates (a panic in the CRDT otherwise). The margin of
/// 2^32 is the one haze-client's replica always kept.
pub(crate) fn check_room(value: &Value, actor: ActorId, edit: &Edit) -> Result<()> {
    let needed = deepest_counter(value, actor).saturating_add(edit.dots());
    if needed > Dot::MAX_COUNTER - (1 << 32) {
        return Err(Error::Crdt(haze_crdt::Error::CounterOverflow));
    }
    Ok(())
}

/// Applies `edit` to `value`, which has the edit's kind (the caller checked). On an error
/// `value` may be half changed: the caller works on a copy.
pub(crate) fn apply(
    value: &mut Value,
    edit: Edit,
    actor: ActorId,
    hlc: &mut Hlc,
    now: u64,
) -> Result<()> {
    match (value, edit) {
        (Value::PnCounter(c), Edit::CounterAdd(delta)) => c.add(actor, delta)?,
        (Value::GCounter(c), Edit::GCounterAdd(by)) => c.increment(actor, by)?,
        (Value::OrSet(s), Edit::SetAdd(members)) => {
            s.extend(members.into_iter().map(|m| (actor, m)));
        }
        (Value::OrSet(s), Edit::SetRemove(members)) => {
            for member in &members {
                s.remove(member);
            }
        }
        (Value::OrSet(s), Edit::SetClear) => s.clear(),
        (Value::LwwRegister(r), Edit::RegisterSet(v)) => {
            r.set(actor, v, hlc, &At(now));
        }
        (Value::MvRegister(r), Edit::MvRegisterSet(v)) => {
            r.set(actor, v);
        }
        (Value::Flag(f), Edit::FlagEnable) => {
            f.enable(actor);
        }
        (Value::Flag(f), Edit::FlagDisable) => f.disable(),
        (Value::Max(m), Edit::MaxSet(v)) => m.set(v),
        (Value::Min(m), Edit::MinSet(v)) => m.set(v),
        (Value::OrMap(map), Edit::MapUpdate { key, edit }) => {
            let field = Field::new(key, edit.kind());
            map.update(actor, field, |v| apply(v, *edit, actor, hlc, now))?;
        }
        (Value::OrMap(map), Edit::MapRemove(field)) => {
            map.remove(&field);
        }
        (value, edit) => {
            return Err(Error::WrongType {
                expected: edit.kind(),
                found: value.kind(),
            });
        }
    }
    Ok(())
}
