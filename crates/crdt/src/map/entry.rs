//! One key of an `OrMap`: the values written by the updates that keep it alive.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use super::Join;
use crate::clock::{Dot, VersionVector};

/// The `(dot, value)` pairs of a key's live updates, sorted by dot, strictly, never empty.
///
/// Keeping one value per update, rather than one merged value per key, is what makes removal
/// exact: a merge keeps exactly the updates that survive, and the read value is the merge of
/// those, whatever order states arrive in.
///
/// With several values (concurrent updates), their merge is computed on the first read and
/// cached; it is never computed eagerly, so a decoded value costs memory in proportion to its
/// encoding, however its concurrent values nest.
#[derive(Debug, Clone)]
pub(super) struct Entry<V> {
    values: Vec<(Dot, V)>,
    /// The merge of `values`, once read, when there are at least two.
    merged: OnceLock<V>,
}

/// The cache is derived from `values`, so equality and hashing ignore it.
impl<V: PartialEq> PartialEq for Entry<V> {
    fn eq(&self, other: &Self) -> bool {
        self.values == other.values
    }
}

impl<V: Eq> Eq for Entry<V> {}

impl<V: Hash> Hash for Entry<V> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.values.hash(state);
    }
}

/// An entry of no values: never in a map, only in a slot while an update holds its value
/// (`OrMap::try_update_or_insert_with`), which puts an entry back whatever its outcome.
impl<V> Default for Entry<V> {
    fn default() -> Self {
        Entry {
            values: Vec::new(),
            merged: OnceLock::new(),
        }
    }
}

/// What an update took out of an entry besides its read value, to put it back if the update
/// fails.
#[derive(Debug)]
pub(super) enum Rest<V> {
    /// The entry held one value, written by this update.
    One(Dot),
    /// The entry held several values (the read value was their merge).
    Many(Vec<(Dot, V)>),
}

impl<V: Join> Entry<V> {
    pub(super) fn single(dot: Dot, value: V) -> Self {
        Entry {
            values: vec![(dot, value)],
            merged: OnceLock::new(),
        }
    }

    /// Builds an entry from pairs sorted by dot, strictly; `None` if there are none.
    fn from_sorted_opt(values: Vec<(Dot, V)>) -> Option<Self> {
        debug_assert!(values.windows(2).all(|w| w[0].0 < w[1].0));
        (!values.is_empty()).then(|| Entry {
            values,
            merged: OnceLock::new(),
        })
    }

    /// Builds an entry from checked, non-empty pairs sorted by dot.
    pub(super) fn from_sorted(values: Vec<(Dot, V)>) -> Self {
        Self::from_sorted_opt(values).expect("decoded entries are not empty")
    }

    fn merge_of(values: &[(Dot, V)]) -> V {
        let mut iter = values.iter().map(|(_, v)| v.clone());
        let first = iter.next().expect("an entry is not empty");
        iter.fold(first, |mut acc, v| {
            acc.join(v);
            acc
        })
    }

    /// Returns the value a read sees: the one value, or the merge of several.
    pub(super) fn value(&self) -> &V {
        match self.values.as_slice() {
            [(_, only)] => only,
            values => self.merged.get_or_init(|| Self::merge_of(values)),
        }
    }

    pub(super) fn dotted_values(&self) -> &[(Dot, V)] {
        &self.values
    }

    pub(super) fn into_dotted_values(self) -> Vec<(Dot, V)> {
        self.values
    }

    /// Splits the entry into its read value and what is needed to restore it.
    pub(super) fn into_value(mut self) -> (V, Rest<V>) {
        if self.values.len() == 1 {
            let (dot, value) = self.values.pop().expect("len is 1");
            return (value, Rest::One(dot));
        }
        let merged = self
            .merged
            .take()
            .unwrap_or_else(|| Self::merge_of(&self.values));
        (merged, Rest::Many(self.values))
    }

    /// Undoes [`into_value`](Self::into_value).
    pub(super) fn restore(value: V, rest: Rest<V>) -> Self {
        match rest {
            Rest::One(dot) => Entry::single(dot, value),
            Rest::Many(values) => Entry {
                values,
                merged: OnceLock::from(value),
            },
        }
    }

    /// Returns the updates that `seen` has not seen: what survives when this key is absent from
    /// a replica whose causal context is `seen`.
    pub(super) fn unseen_by(self, seen: &VersionVector) -> Option<Self> {
        if self.values.iter().all(|(dot, _)| !seen.contains(*dot)) {
            return Some(self);
        }
        let kept = self
            .values
            .into_iter()
            .filter(|(dot, _)| !seen.contains(*dot))
            .collect();
        Self::from_sorted_opt(kept)
    }

    /// Merges the updates of one key held by two replicas: an update both hold survives (with
    /// the join of both copies of its value, equal for honest input); an update only one holds
    /// survives unless the other has seen it, which means the other removed it.
    pub(super) fn join(
        mine: Self,
        mine_seen: &VersionVector,
        theirs: Self,
        theirs_seen: &VersionVector,
    ) -> Option<Self> {
        let mut kept = Vec::with_capacity(mine.values.len() + theirs.values.len());
        let mut a = mine.values.into_iter().peekable();
        let mut b = theirs.values.into_iter().peekable();
        loop {
            let order = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => x.0.cmp(&y.0),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => break,
            };
            match order {
                Ordering::Equal => {
                    let (dot, mut x) = a.next().expect("peeked");
                    let (_, y) = b.next().expect("peeked");
                    if x != y {
                        x.join(y);
                    }
                    kept.push((dot, x));
                }
                Ordering::Less => {
                    let (dot, x) = a.next().expect("peeked");
                    if !theirs_seen.contains(dot) {
                        kept.push((dot, x));
                    }
                }
                Ordering::Greater => {
                    let (dot, y) = b.next().expect("peeked");
                    if !mine_seen.contains(dot) {
                        kept.push((dot, y));
                    }
                }
            }
        }
        Self::from_sorted_opt(kept)
    }
}
