//! Maps of nested CRDTs.

mod entry;
mod or_map;

pub use or_map::OrMap;

use crate::{Crdt, Value};

/// How the values nested in an [`OrMap`] merge: every [`Crdt`], and [`Value`].
///
/// `Value` is not a `Crdt` on purpose (its public merge, [`Value::merge`], refuses values of
/// another type), but the fields of a `Value` map merge totally, because a field's type is part
/// of its name.
pub trait Join: Clone + PartialEq {
    /// Merges `other` into `self`.
    fn join(&mut self, other: Self);
}

impl<T: Crdt + Clone + PartialEq> Join for T {
    fn join(&mut self, other: Self) {
        self.merge_from(other);
    }
}

impl Join for Value {
    fn join(&mut self, other: Self) {
        crate::value::join(self, other);
    }
}
