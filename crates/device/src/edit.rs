//! Typed edits: what a device does to its values, for every CRDT type the library has.

use haze_crdt::{ActorId, Dot, Field, Hlc, Join, PhysicalClock, Scalar, Value, ValueKind};

use crate::{Error, Result};

/// One edit of a key's value, applied by [`Replica::apply`](crate::Replica::apply) with the
/// replica's actor id (and, for last-writer-wins registers, its hybrid logical clock fed by
/// the caller's time). Each edit works on one [`ValueKind`]: a key that holds another refuses it.
///
/// As JSON (serde): `{"counter_add": 5}`, `{"set_add": [{"string": "milk"}]}`, `"flag_enable"`,
/// `{"map_update": {"key": {"string": "done"}, "edit": "flag_enable"}}`: scalars as in the
/// values' JSON.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
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

impl Edit {
    /// Applies the edit to `current` (`None`: the key holds nothing yet) as `actor`, with its
    /// hybrid logical clock `hlc` fed by the caller's time `now` (milliseconds), and returns
    /// the new value: what a replica of any kind — a device, a node — does with an edit.
    ///
    /// # Errors
    ///
    /// [`Error::WrongType`] if `current` holds another type (or a map field's edit meets another
    /// type); [`Error::Crdt`] if the CRDT refuses (a counter overflow, an actor out of dots, maps
    /// nested too deep). Nothing is changed: `current` is consumed either way.
    pub fn apply_to(
        self,
        current: Option<Value>,
        actor: ActorId,
        hlc: &mut Hlc,
        now: u64,
    ) -> Result<Value> {
        let kind = self.kind();
        let mut value = match current {
            None => Value::bottom(kind),
            Some(v) if v.kind() != kind => {
                return Err(Error::WrongType {
                    expected: kind,
                    found: v.kind(),
                });
            }
            Some(v) => v,
        };
        check_room(&value, actor, &self)?;
        apply(&mut value, self, actor, hlc, now)?;
        Ok(value)
    }
}

/// The most maps an edit may nest into, in its encoding (a value nests at most as deep).
pub const MAX_EDIT_DEPTH: usize = 16;

/// Tags of the edits in their encoding. Part of the protocol: never renumber one.
mod tag {
    pub(super) const COUNTER_ADD: u8 = 1;
    pub(super) const G_COUNTER_ADD: u8 = 2;
    pub(super) const SET_ADD: u8 = 3;
    pub(super) const SET_REMOVE: u8 = 4;
    pub(super) const SET_CLEAR: u8 = 5;
    pub(super) const REGISTER_SET: u8 = 6;
    pub(super) const MV_REGISTER_SET: u8 = 7;
    pub(super) const FLAG_ENABLE: u8 = 8;
    pub(super) const FLAG_DISABLE: u8 = 9;
    pub(super) const MAX_SET: u8 = 10;
    pub(super) const MIN_SET: u8 = 11;
    pub(super) const MAP_UPDATE: u8 = 12;
    pub(super) const MAP_REMOVE: u8 = 13;
}

impl Edit {
    /// Appends the edit's encoding to `out`: a tag byte, then its arguments in the value
    /// encoding's primitives (scalars, varints); a map update nests the field's edit.
    pub fn encode(&self, out: &mut Vec<u8>) {
        use haze_crdt::encode::{write_scalar, writer};
        let scalars = |out: &mut Vec<u8>, items: &[Scalar]| {
            writer::len(out, items.len());
            for s in items {
                write_scalar(out, s);
            }
        };
        match self {
            Edit::CounterAdd(d) => {
                out.push(tag::COUNTER_ADD);
                writer::signed(out, *d);
            }
            Edit::GCounterAdd(n) => {
                out.push(tag::G_COUNTER_ADD);
                writer::varint(out, *n);
            }
            Edit::SetAdd(items) => {
                out.push(tag::SET_ADD);
                scalars(out, items);
            }
            Edit::SetRemove(items) => {
                out.push(tag::SET_REMOVE);
                scalars(out, items);
            }
            Edit::SetClear => out.push(tag::SET_CLEAR),
            Edit::RegisterSet(s) => {
                out.push(tag::REGISTER_SET);
                write_scalar(out, s);
            }
            Edit::MvRegisterSet(s) => {
                out.push(tag::MV_REGISTER_SET);
                write_scalar(out, s);
            }
            Edit::FlagEnable => out.push(tag::FLAG_ENABLE),
            Edit::FlagDisable => out.push(tag::FLAG_DISABLE),
            Edit::MaxSet(s) => {
                out.push(tag::MAX_SET);
                write_scalar(out, s);
            }
            Edit::MinSet(s) => {
                out.push(tag::MIN_SET);
                write_scalar(out, s);
            }
            Edit::MapUpdate { key, edit } => {
                out.push(tag::MAP_UPDATE);
                write_scalar(out, key);
                edit.encode(out);
            }
            Edit::MapRemove(field) => {
                out.push(tag::MAP_REMOVE);
                write_scalar(out, &field.key);
                out.push(field.kind.tag());
            }
        }
    }

    /// Reads an edit written by [`encode`](Self::encode).
    ///
    /// # Errors
    ///
    /// A [`DecodeError`](haze_crdt::DecodeError) for bytes that are not an edit: an unknown
    /// tag or kind, maps nested deeper than [`MAX_EDIT_DEPTH`], a length past the input.
    pub fn decode(
        r: &mut haze_crdt::encode::Reader<'_>,
    ) -> std::result::Result<Edit, haze_crdt::DecodeError> {
        Edit::decode_at(r, 0)
    }

    fn decode_at(
        r: &mut haze_crdt::encode::Reader<'_>,
        depth: usize,
    ) -> std::result::Result<Edit, haze_crdt::DecodeError> {
        use haze_crdt::DecodeError;
        use haze_crdt::encode::read_scalar;
        let scalars = |r: &mut haze_crdt::encode::Reader<'_>| {
            let n = r.count(2)?;
            let mut items = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                items.push(read_scalar(r)?);
            }
            Ok::<_, DecodeError>(items)
        };
        Ok(match r.u8()? {
            tag::COUNTER_ADD => Edit::CounterAdd(r.signed()?),
            tag::G_COUNTER_ADD => Edit::GCounterAdd(r.varint()?),
            tag::SET_ADD => Edit::SetAdd(scalars(r)?),
            tag::SET_REMOVE => Edit::SetRemove(scalars(r)?),
            tag::SET_CLEAR => Edit::SetClear,
            tag::REGISTER_SET => Edit::RegisterSet(read_scalar(r)?),
            tag::MV_REGISTER_SET => Edit::MvRegisterSet(read_scalar(r)?),
            tag::FLAG_ENABLE => Edit::FlagEnable,
            tag::FLAG_DISABLE => Edit::FlagDisable,
            tag::MAX_SET => Edit::MaxSet(read_scalar(r)?),
            tag::MIN_SET => Edit::MinSet(read_scalar(r)?),
            tag::MAP_UPDATE => {
                if depth >= MAX_EDIT_DEPTH {
                    return Err(DecodeError::TooDeep(MAX_EDIT_DEPTH));
                }
                let key = read_scalar(r)?;
                let edit = Edit::decode_at(r, depth + 1)?;
                Edit::MapUpdate {
                    key,
                    edit: Box::new(edit),
                }
            }
            tag::MAP_REMOVE => {
                let key = read_scalar(r)?;
                let kind = r.u8()?;
                let kind = ValueKind::from_tag(kind).ok_or(DecodeError::InvalidState(
                    "an unknown value type in an edit",
                ))?;
                Edit::MapRemove(Field::new(key, kind))
            }
            _ => return Err(DecodeError::InvalidState("an unknown edit")),
        })
    }
}

#[cfg(test)]
mod codec_tests {
    use super::*;

    #[test]
    fn every_edit_round_trips_and_nesting_is_bounded() {
        let edits = vec![
            Edit::CounterAdd(-7),
            Edit::GCounterAdd(9),
            Edit::SetAdd(vec![Scalar::from("a"), Scalar::Int(2)]),
            Edit::SetRemove(vec![Scalar::from("a")]),
            Edit::SetClear,
            Edit::RegisterSet(Scalar::from("r")),
            Edit::MvRegisterSet(Scalar::UInt(3)),
            Edit::FlagEnable,
            Edit::FlagDisable,
            Edit::MaxSet(Scalar::Int(5)),
            Edit::MinSet(Scalar::Int(-5)),
            Edit::map_update("todo", Edit::map_update("done", Edit::FlagEnable)),
            Edit::MapRemove(Field::new("name", ValueKind::LwwRegister)),
        ];
        for edit in edits {
            let mut out = Vec::new();
            edit.encode(&mut out);
            let mut r = haze_crdt::encode::Reader::new(&out);
            assert_eq!(Edit::decode(&mut r).unwrap(), edit);
            assert_eq!(r.remaining(), 0);
        }
        let mut deep = Edit::FlagEnable;
        for _ in 0..=MAX_EDIT_DEPTH {
            deep = Edit::map_update("k", deep);
        }
        let mut out = Vec::new();
        deep.encode(&mut out);
        assert!(Edit::decode(&mut haze_crdt::encode::Reader::new(&out)).is_err());
        for junk in [&[0u8][..], &[99], &[13, 1, 0, 77], &[3, 0xff]] {
            assert!(Edit::decode(&mut haze_crdt::encode::Reader::new(junk)).is_err());
        }
    }
}
