//! The map of a `Value`: an `OrMap` of typed fields whose invariants it keeps.

use std::collections::BTreeMap;

use super::{Field, Value};
use crate::clock::{ActorId, Dot, VersionVector};
use crate::encode::MAX_DEPTH;
use crate::map::Join;
use crate::{Crdt, Error, OrMap};

/// The state of a [`Value::OrMap`]: an [`OrMap`] from [`Field`]s (a key and a type) to nested
/// values, which keeps two invariants that the encoding relies on:
///
/// * every value of a field has the field's type, so fields of different types under one key
///   coexist instead of conflicting;
/// * maps nest at most [`MAX_DEPTH`] levels, so every value this type can build also decodes.
///
/// # Examples
///
/// ```
/// use haze_crdt::{ActorId, Error, Field, Value, ValueKind, ValueMap};
///
/// let phone = ActorId::new(1);
/// let mut profile = ValueMap::new();
/// profile.update(phone, Field::new("visits", ValueKind::PnCounter), |v| match v {
///     Value::PnCounter(c) => c.increment(phone, 1),
///     _ => unreachable!("a field's value has the field's type"),
/// })?;
/// // Replacing a field's value by one of another type is refused.
/// let err = profile.update(phone, Field::new("visits", ValueKind::PnCounter), |v| {
///     *v = Value::bottom(ValueKind::OrSet);
///     Ok::<(), Error>(())
/// });
/// assert!(matches!(err, Err(Error::TypeMismatch { .. })));
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ValueMap {
    map: OrMap<Field, Value>,
}

impl ValueMap {
    /// Returns an empty map.
    pub const fn new() -> Self {
        ValueMap { map: OrMap::new() }
    }

    /// Builds a map from checked parts: every value of a field has the field's type, and nesting
    /// is within [`MAX_DEPTH`].
    pub(crate) fn from_parts(
        seen: VersionVector,
        entries: BTreeMap<Field, Vec<(Dot, Value)>>,
    ) -> Self {
        ValueMap {
            map: OrMap::from_parts(seen, entries),
        }
    }

    /// Consumes the map, returning its causal context and each field's dotted values.
    pub(crate) fn into_parts(self) -> (VersionVector, BTreeMap<Field, Vec<(Dot, Value)>>) {
        self.map.into_parts()
    }

    /// Updates the value of `field` on behalf of `actor` with `f`, starting from the empty value
    /// of the field's type if the field is absent.
    ///
    /// # Errors
    ///
    /// What `f` returns; [`Error::TypeMismatch`] if `f` left a value of another type;
    /// [`Error::TooDeep`] if the result would nest maps deeper than [`MAX_DEPTH`]. On any error
    /// the map is unchanged.
    pub fn update<R, E: From<Error>>(
        &mut self,
        actor: ActorId,
        field: Field,
        f: impl FnOnce(&mut Value) -> Result<R, E>,
    ) -> Result<R, E> {
        // Work on a copy so that a refused result leaves the map exactly as it was; the map
        // is searched once, for the field's slot.
        let seen = self.map.seen().get(actor);
        let kind = field.kind;
        self.map.try_replace_with(
            actor,
            field,
            || Value::bottom(kind),
            |current| {
                let mut candidate = current.clone();
                candidate.advance_causal_counter(actor, seen);
                let r = f(&mut candidate)?;
                if candidate.kind() != kind {
                    return Err(Error::TypeMismatch {
                        stored: kind,
                        given: candidate.kind(),
                    }
                    .into());
                }
                if candidate.depth() >= MAX_DEPTH {
                    return Err(Error::TooDeep(MAX_DEPTH).into());
                }
                Ok((candidate, r))
            },
        )
    }

    /// Removes `field` (the updates of it seen here) and returns whether it was present.
    pub fn remove(&mut self, field: &Field) -> bool {
        self.map.remove(field)
    }

    /// Returns the value of `field`.
    pub fn get(&self, field: &Field) -> Option<&Value> {
        self.map.get(field)
    }

    /// Iterates over the fields and their values in field order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Field, &Value)> {
        self.map.iter()
    }

    /// Iterates over the fields with the dots and values of the updates that keep them alive.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = (&Field, &[(Dot, Value)])> {
        self.map.entries()
    }

    /// Returns the causal context: every update this replica has seen.
    pub fn seen(&self) -> &VersionVector {
        self.map.seen()
    }

    /// Returns the number of fields.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Returns whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Returns the underlying observed-remove map, read-only.
    pub fn as_or_map(&self) -> &OrMap<Field, Value> {
        &self.map
    }
}

impl Crdt for ValueMap {
    fn merge_from(&mut self, other: Self) {
        self.map.merge_from(other.map);
    }

    fn causal_counter(&self, actor: ActorId) -> u64 {
        Crdt::causal_counter(&self.map, actor)
    }

    fn advance_causal_counter(&mut self, actor: ActorId, counter: u64) {
        Crdt::advance_causal_counter(&mut self.map, actor, counter);
    }
}
