//! The `Value` enum.

use super::{Scalar, ValueKind, ValueMap};
use crate::clock::HlcTimestamp;
use crate::{
    Crdt, EnableWinsFlag, Error, GCounter, LwwRegister, Max, Min, MvRegister, OrSet, PnCounter,
    Result,
};

/// A self-describing CRDT state: a type tag plus the state over [`Scalar`] leaves. This is what
/// a Haze node stores, merges and sends; it never sees application types.
///
/// Convert typed CRDTs with [`TypedValue`](crate::TypedValue) (or `From`/`TryFrom`); encode with
/// [`Value::encode`] (the one binary form, on disk and on the wire); view as JSON with serde.
///
/// # Examples
///
/// ```
/// use haze_crdt::{ActorId, Error, OrSet, PnCounter, Value, ValueKind};
///
/// let mut list = OrSet::new();
/// list.insert(ActorId::new(1), "milk".to_string());
/// let mut stored = Value::from(list);
///
/// let mut other = OrSet::new();
/// other.insert(ActorId::new(2), "eggs".to_string());
/// stored.merge(Value::from(other))?;
///
/// let back = OrSet::<String>::try_from(stored.clone())?;
/// assert_eq!(back.len(), 2);
///
/// // Merging another type is refused, and the stored value is untouched.
/// let err = stored.merge(Value::from(PnCounter::new())).unwrap_err();
/// assert_eq!(err, Error::TypeMismatch { stored: ValueKind::OrSet, given: ValueKind::PnCounter });
/// assert_eq!(Value::decode(&stored.encode())?, stored);
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// A grow-only counter.
    GCounter(GCounter),
    /// A positive-negative counter.
    PnCounter(PnCounter),
    /// A last-writer-wins register.
    LwwRegister(LwwRegister<Scalar>),
    /// A multi-value register.
    MvRegister(MvRegister<Scalar>),
    /// An add-wins observed-remove set.
    OrSet(OrSet<Scalar>),
    /// An observed-remove map of nested values. A field is named by its key *and* its type, as in
    /// Riak's maps, so fields of different types never collide.
    OrMap(ValueMap),
    /// An enable-wins flag.
    Flag(EnableWinsFlag),
    /// A max register.
    Max(Max<Scalar>),
    /// A min register.
    Min(Min<Scalar>),
}

/// The name of a field of a [`Value::OrMap`]: a key and the type of its value.
///
/// Two replicas that put different types under one key create two fields rather than a
/// conflict; [`ValueMap`] and the decoders guarantee that the value of a field has the field's
/// type.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Field {
    /// The key.
    pub key: Scalar,
    /// The type of the value under this key.
    #[serde(rename = "type")]
    pub kind: ValueKind,
}

impl Field {
    /// Returns the field named `key` holding values of type `kind`.
    pub fn new(key: impl Into<Scalar>, kind: ValueKind) -> Self {
        Field {
            key: key.into(),
            kind,
        }
    }
}

impl Value {
    /// Returns the type of this value.
    pub const fn kind(&self) -> ValueKind {
        match self {
            Value::GCounter(_) => ValueKind::GCounter,
            Value::PnCounter(_) => ValueKind::PnCounter,
            Value::LwwRegister(_) => ValueKind::LwwRegister,
            Value::MvRegister(_) => ValueKind::MvRegister,
            Value::OrSet(_) => ValueKind::OrSet,
            Value::OrMap(_) => ValueKind::OrMap,
            Value::Flag(_) => ValueKind::Flag,
            Value::Max(_) => ValueKind::Max,
            Value::Min(_) => ValueKind::Min,
        }
    }

    /// Returns the latest time any last-writer-wins register in this value (nested in maps
    /// too) was stamped with, if it holds one: what a node compares with its own clock, since a
    /// stamp far in the future would win every later write.
    pub fn newest_stamp(&self) -> Option<HlcTimestamp> {
        match self {
            Value::LwwRegister(r) => r.stamp().map(|s| s.time),
            Value::OrMap(map) => map
                .entries()
                .flat_map(|(_, values)| values.iter())
                .filter_map(|(_, v)| v.newest_stamp())
                .max(),
            _ => None,
        }
    }

    /// Returns the empty state (the bottom of the lattice) of type `kind`.
    pub fn bottom(kind: ValueKind) -> Value {
        match kind {
            ValueKind::GCounter => Value::GCounter(GCounter::new()),
            ValueKind::PnCounter => Value::PnCounter(PnCounter::new()),
            ValueKind::LwwRegister => Value::LwwRegister(LwwRegister::new()),
            ValueKind::MvRegister => Value::MvRegister(MvRegister::new()),
            ValueKind::OrSet => Value::OrSet(OrSet::new()),
            ValueKind::OrMap => Value::OrMap(ValueMap::new()),
            ValueKind::Flag => Value::Flag(EnableWinsFlag::new()),
            ValueKind::Max => Value::Max(Max::new()),
            ValueKind::Min => Value::Min(Min::new()),
        }
    }

    /// Merges `other` into this value.
    ///
    /// # Errors
    ///
    /// [`Error::TypeMismatch`] if `other` has another type; `self` is left untouched.
    pub fn merge(&mut self, other: Value) -> Result<()> {
        if self.kind() != other.kind() {
            return Err(Error::TypeMismatch {
                stored: self.kind(),
                given: other.kind(),
            });
        }
        join(self, other);
        Ok(())
    }

    /// Returns how many levels of maps this value nests: 0 for a value that is not a map, 1 for
    /// a map of other values, 2 for a map of maps, and so on. At most
    /// [`MAX_DEPTH`](crate::encode::MAX_DEPTH) for any value that decodes.
    pub fn depth(&self) -> usize {
        match self {
            Value::OrMap(map) => 1 + map.iter().map(|(_, v)| v.depth()).max().unwrap_or(0),
            _ => 0,
        }
    }
}

/// Merges two values: values of one type merge with that type's merge; of two different types,
/// the greater [`ValueKind`] wins. That second rule never applies to the fields of a well-formed
/// map (a field's type is part of its name, and the decoders check it); it only makes the merge
/// of nested values total. `Value` deliberately does not implement [`Crdt`]: its public merge is
/// [`Value::merge`], which refuses a type mismatch instead.
pub(crate) fn join(mine: &mut Value, theirs: Value) {
    match (mine, theirs) {
        (Value::GCounter(a), Value::GCounter(b)) => a.merge_from(b),
        (Value::PnCounter(a), Value::PnCounter(b)) => a.merge_from(b),
        (Value::LwwRegister(a), Value::LwwRegister(b)) => a.merge_from(b),
        (Value::MvRegister(a), Value::MvRegister(b)) => a.merge_from(b),
        (Value::OrSet(a), Value::OrSet(b)) => a.merge_from(b),
        (Value::OrMap(a), Value::OrMap(b)) => a.merge_from(b),
        (Value::Flag(a), Value::Flag(b)) => a.merge_from(b),
        (Value::Max(a), Value::Max(b)) => a.merge_from(b),
        (Value::Min(a), Value::Min(b)) => a.merge_from(b),
        (mine, theirs) => {
            if theirs.kind() > mine.kind() {
                *mine = theirs;
            }
        }
    }
}
