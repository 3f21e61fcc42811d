//! Maps of nested CRDTs.

mod entry;
mod or_map;

pub use or_map::OrMap;

use crate::{ActorId, Crdt, Value};

/// How the values nested in an [`OrMap`] merge: every [`Crdt`], and [`Value`].
///
/// `Value` is not a `Crdt` on purpose (its public merge, [`Value::merge`], refuses values of
/// another type), but the fields of a `Value` map merge totally, because a field's type is part
/// of its name.
pub trait Join: Clone + PartialEq {
    /// Merges `other` into `self`.
    fn join(&mut self, other: Self);

    /// As [`Crdt::causal_counter`].
    fn causal_counter(&self, actor: ActorId) -> u64;

    /// As [`Crdt::advance_causal_counter`].
    fn advance_causal_counter(&mut self, actor: ActorId, counter: u64);
}

impl<T: Crdt + Clone + PartialEq> Join for T {
    fn join(&mut self, other: Self) {
        self.merge_from(other);
    }

    fn causal_counter(&self, actor: ActorId) -> u64 {
        Crdt::causal_counter(self, actor)
    }

    fn advance_causal_counter(&mut self, actor: ActorId, counter: u64) {
        Crdt::advance_causal_counter(self, actor, counter);
    }
}

impl Join for Value {
    fn join(&mut self, other: Self) {
        crate::value::join(self, other);
    }

    fn causal_counter(&self, actor: ActorId) -> u64 {
        match self {
            Value::MvRegister(r) => Crdt::causal_counter(r, actor),
            Value::OrSet(s) => Crdt::causal_counter(s, actor),
            Value::OrMap(m) => Crdt::causal_counter(m, actor),
            Value::Flag(f) => Crdt::causal_counter(f, actor),
            Value::GCounter(_)
            | Value::PnCounter(_)
            | Value::LwwRegister(_)
            | Value::Max(_)
            | Value::Min(_) => 0,
        }
    }

    fn advance_causal_counter(&mut self, actor: ActorId, counter: u64) {
        match self {
            Value::MvRegister(r) => Crdt::advance_causal_counter(r, actor, counter),
            Value::OrSet(s) => Crdt::advance_causal_counter(s, actor, counter),
            Value::OrMap(m) => Crdt::advance_causal_counter(m, actor, counter),
            Value::Flag(f) => Crdt::advance_causal_counter(f, actor, counter),
            Value::GCounter(_)
            | Value::PnCounter(_)
            | Value::LwwRegister(_)
            | Value::Max(_)
            | Value::Min(_) => {}
        }
    }
}
