//! A device's local replica: haze-device's core over one file, edited offline.

use std::path::Path;
use std::sync::Arc;

use haze_crdt::{ActorId, LwwRegister, OrSet, PhysicalClock, PnCounter, Scalar, TypedValue, Value};
use haze_device::{Edit, LastSync};

use crate::file_store::{FileStore, file_error};
use crate::{Error, Result};

/// A local replica of some keys, kept in one file: what a phone or a laptop holds.
///
/// Edits apply to the local copy at once, online or not, with the replica's own actor id, and
/// are saved before they return. [`sync`](Replica::sync) later exchanges full states with the
/// store. The replica only ever merges: no edit or sync moves a value down its lattice.
///
/// It is haze-device's [`Replica`](haze_device::Replica) (the same core a browser runs) over a
/// file, with the clock given to [`open`](Self::open) read for last-writer-wins writes, and its
/// sync driven over a [`Client`](crate::Client).
///
/// # Actor ids and lost files (the "kv679" lesson)
///
/// The file holds the replica's actor id and a count of its saves; a small companion file
/// (`FILE.saves`) holds the count too. A replica that lost its file starts with a fresh actor id.
/// A file restored from an older copy has fewer saves than its companion says: it, too, takes a
/// fresh actor id, so it never reuses a dot its older self handed out after that copy was made.
/// (If both files are restored together from one backup, this cannot be told; restore replicas
/// by deleting them and syncing instead.)
pub struct Replica {
    pub(crate) core: haze_device::Replica<FileStore>,
    pub(crate) clock: Arc<dyn PhysicalClock + Send + Sync>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("path", &self.path())
            .field("actor", &self.actor())
            .field("keys", &self.len())
            .finish_non_exhaustive()
    }
}

impl Replica {
    /// Opens the replica kept in `path`, or creates it. `fresh_actor` (64 random bits) becomes
    /// its actor id if it needs a new one: a new file, or one restored from an older copy.
    /// `clock` stamps last-writer-wins writes.
    ///
    /// # Errors
    ///
    /// [`Error::Replica`] if the file cannot be read or is damaged (a damaged file is never
    /// silently replaced: delete it to start afresh, then sync).
    pub fn open(
        path: &Path,
        fresh_actor: ActorId,
        clock: Arc<dyn PhysicalClock + Send + Sync>,
    ) -> Result<Replica> {
        let store = FileStore::lock(path)?;
        let core =
            haze_device::Replica::open(store, fresh_actor).map_err(|e| device_error(path, e))?;
        Ok(Replica { core, clock })
    }

    /// Maps an error of the core to the client's.
    pub(crate) fn error(&self, e: haze_device::Error) -> Error {
        device_error(self.path(), e)
    }

    /// Returns the replica's actor id.
    pub fn actor(&self) -> ActorId {
        self.core.actor()
    }

    /// Returns the file the replica lives in.
    pub fn path(&self) -> &Path {
        self.core.store().path()
    }

    /// Returns when this replica last completed a sync of every key (since it was opened: the
    /// file does not keep it).
    pub fn last_sync(&self) -> Option<LastSync> {
        self.core.last_sync()
    }

    /// Iterates over the keys held, in order.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.core.keys()
    }

    /// Returns the number of keys held.
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// Returns whether the replica holds no key.
    pub fn is_empty(&self) -> bool {
        self.core.is_empty()
    }

    /// Returns the local state of `key`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<&Value> {
        self.core.get(key)
    }

    /// Returns the local state of `key` as the typed CRDT `T`.
    ///
    /// # Errors
    ///
    /// [`Error::WrongType`] if the key holds another type.
    pub fn get_typed<T: TypedValue>(&self, key: impl AsRef<[u8]>) -> Result<Option<T>> {
        self.get(key).cloned().map(crate::client::typed).transpose()
    }

    /// Writes the file (atomically) and its companion. Every edit calls it before returning.
    ///
    /// # Errors
    ///
    /// [`Error::Replica`] if the file cannot be written.
    pub fn save(&mut self) -> Result<()> {
        self.core.save().map_err(|e| self.error(e))
    }

    /// Applies any typed edit (every CRDT type: counters, sets, registers, maps with nested
    /// fields, flags, max/min) to `key` with this replica's actor id, saves, and returns the
    /// new state. Last-writer-wins writes are stamped with the replica's clock.
    ///
    /// # Errors
    ///
    /// [`Error::WrongType`] if `key` holds another type; [`Error::Conversion`] if the CRDT
    /// refuses it (a counter overflow, maps nested too deep); [`Error::Replica`]. On any error
    /// the replica is unchanged.
    pub fn apply(&mut self, key: impl AsRef<[u8]>, edit: Edit) -> Result<Value> {
        let now = self.clock.now_millis();
        match self.core.apply(key, edit, now) {
            Ok(value) => Ok(value.clone()),
            Err(e) => Err(self.error(e)),
        }
    }

    fn apply_typed<T: TypedValue>(&mut self, key: &[u8], edit: Edit) -> Result<T> {
        crate::client::typed(self.apply(key, edit)?)
    }

    /// Adds `delta` to the counter under `key` and returns the counter.
    ///
    /// # Errors
    ///
    /// [`Error::WrongType`]; [`Error::Conversion`] on a counter overflow; [`Error::Replica`].
    pub fn counter_add(&mut self, key: impl AsRef<[u8]>, delta: i64) -> Result<PnCounter> {
        self.apply_typed(key.as_ref(), Edit::CounterAdd(delta))
    }

    /// Adds members to the set under `key` and returns the set.
    ///
    /// # Errors
    ///
    /// [`Error::WrongType`]; [`Error::Replica`].
    pub fn set_add(
        &mut self,
        key: impl AsRef<[u8]>,
        members: impl IntoIterator<Item = Scalar>,
    ) -> Result<OrSet<Scalar>> {
        let edit = Edit::SetAdd(members.into_iter().collect());
        self.apply_typed(key.as_ref(), edit)
    }

    /// Removes members (those this replica has seen) from the set under `key`.
    ///
    /// # Errors
    ///
    /// [`Error::WrongType`]; [`Error::Replica`].
    pub fn set_remove(
        &mut self,
        key: impl AsRef<[u8]>,
        members: impl IntoIterator<Item = Scalar>,
    ) -> Result<OrSet<Scalar>> {
        let edit = Edit::SetRemove(members.into_iter().collect());
        self.apply_typed(key.as_ref(), edit)
    }

    /// Writes the last-writer-wins register under `key`.
    ///
    /// # Errors
    ///
    /// [`Error::WrongType`]; [`Error::Replica`].
    pub fn register_set(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl Into<Scalar>,
    ) -> Result<LwwRegister<Scalar>> {
        self.apply_typed(key.as_ref(), Edit::RegisterSet(value.into()))
    }

    /// Merges a full state into `key` (from another replica, a file, the store) and saves.
    /// Returns whether the local state changed.
    ///
    /// # Errors
    ///
    /// [`Error::TypeMismatch`] if `key` holds another type (nothing changes); [`Error::Replica`].
    pub fn merge(&mut self, key: impl AsRef<[u8]>, value: Value) -> Result<bool> {
        self.core.merge(key, value).map_err(|e| self.error(e))
    }
}

/// Maps an error of the core (about the replica in `path`) to the client's.
fn device_error(path: &Path, e: haze_device::Error) -> Error {
    use haze_device::Error as E;
    match e {
        E::WrongType { expected, found } => Error::WrongType { expected, found },
        E::TypeMismatch { stored, given } => {
            Error::TypeMismatch(haze_crdt::Error::TypeMismatch { stored, given }.to_string())
        }
        E::Crdt(e) => Error::Conversion(e),
        E::Store(reason) => file_error(path, reason),
        E::Protocol(message) => Error::Protocol(message),
        E::Refused(message) => Error::Refused(message),
        // A kind of failure added to the core later: something this build did not expect.
        other => Error::Protocol(other.to_string()),
    }
}
