//! The replica: values by key, the actor id they are edited with, saved through a [`Store`].

use std::collections::{BTreeMap, BTreeSet};

use haze_crdt::{ActorId, Hlc, LwwRegister, OrSet, PnCounter, Scalar, TypedValue, Value};

use crate::edit::Edit;
use crate::store::{LastSync, Loaded, Meta, Save, Saved, Store};
use crate::sync::Session;
use crate::{Error, Result};

/// A device's replica of some keys: what a phone, a laptop or a browser tab holds.
///
/// Edits apply at once, online or not, with the replica's own actor id, and are saved before
/// they return (an edit whose save fails is undone). A sync ([`Session`]) exchanges full states
/// with the store. Nothing here moves a value down its lattice: edits inflate, and everything a
/// sync does is a merge, so a sync interrupted anywhere leaves every local edit in place.
///
/// The replica reads no clock and draws no random bits: [`open`](Self::open) takes the fresh
/// actor id it may need, and edits of last-writer-wins registers take the caller's time.
#[derive(Debug)]
pub struct Replica<S> {
    store: S,
    meta: Meta,
    values: BTreeMap<Vec<u8>, Value>,
    /// Keys whose state changed since the last successful save (merged by a sync: edits save
    /// at once).
    unsaved: BTreeSet<Vec<u8>>,
    hlc: Hlc,
}

fn store_error(e: impl std::fmt::Display) -> Error {
    Error::Store(e.to_string())
}

impl<S: Store> Replica<S> {
    /// Opens the replica kept in `store` and saves it once (recording its actor id and save).
    ///
    /// `fresh_actor` (64 random bits) becomes its actor id if the state cannot be proven the
    /// newest this replica ever wrote (Riak's "kv679": reusing an actor id after losing state
    /// hands out dots others have seen, perhaps seen removed, and new edits vanish):
    ///
    /// * **created**: the store holds no state (new, or lost);
    /// * **restored**: the state has fewer saves than the store witnessed (an older copy);
    /// * **recovered**: the store found values without metadata it can vouch for.
    ///
    /// Otherwise the saved actor id is kept.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if the store cannot be read (a damaged state is never replaced) or the
    /// first save fails.
    pub fn open(mut store: S, fresh_actor: ActorId) -> Result<Replica<S>> {
        let Loaded {
            saved,
            witnessed_saves,
        } = store.load().map_err(store_error)?;
        let fresh = Meta {
            actor: fresh_actor,
            saves: witnessed_saves,
            last_sync: None,
        };
        let (meta, values) = match saved {
            None => (fresh, BTreeMap::new()),
            Some(Saved { meta: None, values }) => (fresh, values),
            Some(Saved {
                meta: Some(meta),
                values,
            }) => {
                if meta.saves < witnessed_saves {
                    // An older copy came back: its actor may have made edits after it.
                    let last_sync = meta.last_sync;
                    (Meta { last_sync, ..fresh }, values)
                } else {
                    (meta, values)
                }
            }
        };
        let mut replica = Replica {
            store,
            meta,
            values,
            unsaved: BTreeSet::new(),
            hlc: Hlc::new(),
        };
        replica.save()?;
        Ok(replica)
    }

    /// Returns the replica's actor id.
    pub fn actor(&self) -> ActorId {
        self.meta.actor
    }

    /// Returns the replica's metadata: actor id, saves, last complete sync.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Returns when the replica last completed a sync of every key it held.
    pub fn last_sync(&self) -> Option<LastSync> {
        self.meta.last_sync
    }

    /// Returns the store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Returns the store, mutably (a test making it fail, say).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Closes the replica and returns its store. States merged by a sync since the last save
    /// are not saved: call [`save`](Self::save) first to keep them (edits are always saved).
    pub fn into_store(self) -> S {
        self.store
    }

    /// Iterates over the keys held, in order.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.values.keys().map(Vec::as_slice)
    }

    /// Returns the number of keys held.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Returns whether the replica holds no key.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Returns the local state of `key`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<&Value> {
        self.values.get(key.as_ref())
    }

    /// Returns the local state of `key` as the typed CRDT `T`.
    ///
    /// # Errors
    ///
    /// [`Error::WrongType`] if the key holds another type; [`Error::Crdt`] if a leaf has
    /// another scalar type than `T` holds.
    pub fn get_typed<T: TypedValue>(&self, key: impl AsRef<[u8]>) -> Result<Option<T>> {
        self.get(key).cloned().map(typed).transpose()
    }

    /// Returns whether some merged state is not saved yet.
    pub fn has_unsaved(&self) -> bool {
        !self.unsaved.is_empty()
    }

    /// Saves the metadata and every unsaved state (always one save, even with none).
    ///
    /// # Errors
    ///
    /// [`Error::Store`]; the unsaved states stay unsaved (in memory).
    pub fn save(&mut self) -> Result<()> {
        let meta = Meta {
            saves: self.meta.saves + 1,
            ..self.meta.clone()
        };
        let changed = (self.unsaved.iter())
            .filter_map(|k| Some((k.as_slice(), self.values.get(k)?)))
            .collect();
        let save = Save {
            meta: &meta,
            changed,
            all: &self.values,
        };
        self.store.save(&save).map_err(store_error)?;
        self.meta = meta;
        self.unsaved.clear();
        Ok(())
    }

    /// Applies `edit` to `key` (created empty if absent) with this replica's actor id, saves,
    /// and returns the new state. `now` is the caller's time in milliseconds since the Unix
    /// epoch: it feeds the hybrid logical clock that stamps last-writer-wins writes (a write
    /// made after seeing another always wins, whatever the clocks say).
    ///
    /// # Errors
    ///
    /// [`Error::WrongType`] if `key` holds another type; [`Error::Crdt`] if the edit is
    /// refused (a counter overflow, the actor out of dots, maps nested too deep);
    /// [`Error::Store`] if the save failed. On any error the replica is unchanged.
    pub fn apply(&mut self, key: impl AsRef<[u8]>, edit: Edit, now: u64) -> Result<&Value> {
        let key = key.as_ref();
        let current = self.values.get(key).cloned();
        let value = edit.apply_to(current, self.meta.actor, &mut self.hlc, now)?;
        let previous = self.values.insert(key.to_vec(), value);
        let was_unsaved = !self.unsaved.insert(key.to_vec());
        if let Err(e) = self.save() {
            // Undo: the edit must not reach the store with a dot the store does not record, or
            // a later edit would reuse that dot after a restart.
            match previous {
                Some(v) => self.values.insert(key.to_vec(), v),
                None => self.values.remove(key),
            };
            if !was_unsaved {
                self.unsaved.remove(key);
            }
            return Err(e);
        }
        Ok(&self.values[key])
    }

    fn apply_typed<T: TypedValue>(&mut self, key: &[u8], edit: Edit, now: u64) -> Result<T> {
        typed(self.apply(key, edit, now)?.clone())
    }

    /// Adds `delta` to the counter under `key` and returns it.
    ///
    /// # Errors
    ///
    /// As [`apply`](Self::apply).
    pub fn counter_add(&mut self, key: impl AsRef<[u8]>, delta: i64) -> Result<PnCounter> {
        self.apply_typed(key.as_ref(), Edit::CounterAdd(delta), 0)
    }

    /// Adds members to the set under `key` and returns it.
    ///
    /// # Errors
    ///
    /// As [`apply`](Self::apply).
    pub fn set_add(
        &mut self,
        key: impl AsRef<[u8]>,
        members: impl IntoIterator<Item = Scalar>,
    ) -> Result<OrSet<Scalar>> {
        let edit = Edit::SetAdd(members.into_iter().collect());
        self.apply_typed(key.as_ref(), edit, 0)
    }

    /// Removes members (the additions this replica has seen) from the set under `key`.
    ///
    /// # Errors
    ///
    /// As [`apply`](Self::apply).
    pub fn set_remove(
        &mut self,
        key: impl AsRef<[u8]>,
        members: impl IntoIterator<Item = Scalar>,
    ) -> Result<OrSet<Scalar>> {
        let edit = Edit::SetRemove(members.into_iter().collect());
        self.apply_typed(key.as_ref(), edit, 0)
    }

    /// Writes the last-writer-wins register under `key` at the caller's time `now`.
    ///
    /// # Errors
    ///
    /// As [`apply`](Self::apply).
    pub fn register_set(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl Into<Scalar>,
        now: u64,
    ) -> Result<LwwRegister<Scalar>> {
        self.apply_typed(key.as_ref(), Edit::RegisterSet(value.into()), now)
    }

    /// Merges a full state into `key` (from another replica, a file, the store) and saves if it
    /// changed anything. Returns whether the local state changed.
    ///
    /// # Errors
    ///
    /// [`Error::TypeMismatch`] if `key` holds another type (nothing changes); [`Error::Store`]
    /// if the save failed (the merge stays, unsaved: it holds no edit of this replica's).
    pub fn merge(&mut self, key: impl AsRef<[u8]>, value: Value) -> Result<bool> {
        let changed = self.merge_unsaved(key.as_ref(), value)?;
        if changed {
            self.save()?;
        }
        Ok(changed)
    }

    /// Merges without saving (the key is saved by the next save); returns whether the local
    /// state changed.
    pub(crate) fn merge_unsaved(&mut self, key: &[u8], value: Value) -> Result<bool> {
        let changed = match self.values.get_mut(key) {
            None => {
                self.values.insert(key.to_vec(), value);
                true
            }
            Some(local) => {
                let before = local.clone();
                local.merge(value).map_err(|e| match e {
                    haze_crdt::Error::TypeMismatch { stored, given } => {
                        Error::TypeMismatch { stored, given }
                    }
                    other => Error::Crdt(other),
                })?;
                *local != before
            }
        };
        if changed {
            self.unsaved.insert(key.to_vec());
        }
        Ok(changed)
    }

    /// Ends a sync: records it if it covered every key (`last`), and saves what it merged.
    pub(crate) fn finish_sync(&mut self, last: Option<LastSync>) -> Result<()> {
        if last.is_some() {
            self.meta.last_sync = last;
        }
        self.save()
    }

    /// Starts a sync of every key held; `now` (the caller's time) becomes its
    /// [`LastSync::at`] once it completes. Drive it with [`Session::start`] and
    /// [`Session::receive`].
    pub fn sync(&self, now: u64) -> Session {
        Session::new(self.values.keys().cloned().collect(), Some(now))
    }

    /// Starts a sync of `keys` (those of them this replica holds, in the order given).
    pub fn sync_keys(&self, keys: &[Vec<u8>]) -> Session {
        let held = keys.iter().filter(|k| self.values.contains_key(*k));
        Session::new(held.cloned().collect(), None)
    }
}

/// Converts a value to the typed CRDT `T`, refusing another type.
pub(crate) fn typed<T: TypedValue>(value: Value) -> Result<T> {
    if value.kind() != T::KIND {
        return Err(Error::WrongType {
            expected: T::KIND,
            found: value.kind(),
        });
    }
    Ok(T::try_from_value(value)?)
}
