//! A device's local replica: CRDT values kept in one file, edited offline.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use haze_crdt::encode::{Reader, writer};
use haze_crdt::{
    ActorId, Error as CrdtError, Hlc, LwwRegister, OrSet, PhysicalClock, PnCounter, Scalar,
    TypedValue, Value,
};
use xxhash_rust::xxh3::xxh3_64;

use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"HAZEREP1";

/// A local replica of some keys, kept in one file: what a phone or a laptop holds.
///
/// Edits apply to the local copy at once, online or not, with the replica's own actor id, and
/// are saved before they return. [`sync`](Replica::sync) later exchanges full states with the
/// store. The replica only ever merges: no edit or sync moves a value down its lattice.
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
    /// Held for the replica's life: two processes editing one file would share an actor id.
    _lock: std::fs::File,
    path: PathBuf,
    actor: ActorId,
    saves: u64,
    values: BTreeMap<Vec<u8>, Value>,
    hlc: Hlc,
    clock: Arc<dyn PhysicalClock + Send + Sync>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("path", &self.path)
            .field("actor", &self.actor)
            .field("keys", &self.values.len())
            .finish_non_exhaustive()
    }
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Replica {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn saves_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".saves");
    PathBuf::from(p)
}

/// The contents of a replica file.
struct Contents {
    saves: u64,
    actor: ActorId,
    values: BTreeMap<Vec<u8>, Value>,
}

fn decode(bytes: &[u8]) -> std::result::Result<Contents, String> {
    let body_len = bytes.len().checked_sub(8).ok_or("too short")?;
    let (body, checksum) = bytes.split_at(body_len);
    if xxh3_64(body).to_be_bytes() != checksum {
        return Err("checksum mismatch: the file is damaged".into());
    }
    let rest = body.strip_prefix(MAGIC).ok_or("not a Haze replica file")?;
    let (saves, rest) = rest.split_first_chunk::<8>().ok_or("too short")?;
    let (actor, rest) = rest.split_first_chunk::<8>().ok_or("too short")?;
    let mut r = Reader::new(rest);
    let n = r.count(2).map_err(|e| e.to_string())?;
    let mut values = BTreeMap::new();
    for _ in 0..n {
        let key = r.bytes().map_err(|e| e.to_string())?.to_vec();
        let value =
            Value::decode(r.bytes().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        values.insert(key, value);
    }
    if r.remaining() != 0 {
        return Err("trailing bytes".into());
    }
    Ok(Contents {
        saves: u64::from_be_bytes(*saves),
        actor: ActorId::new(u64::from_be_bytes(*actor)),
        values,
    })
}

/// Takes an exclusive lock on `FILE.lock`, so only one process at a time edits a replica.
fn lock_file(path: &Path) -> Result<std::fs::File> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(PathBuf::from(name))
        .map_err(|e| file_error(path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(file_error(path, "the replica is open in another process"))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(file_error(path, e)),
    }
}

/// Writes `bytes` to `path` atomically: a temporary file, fsync, rename, fsync of the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
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
        let lock = lock_file(path)?;
        let known_saves = match std::fs::read(saves_path(path)) {
            Ok(bytes) => bytes.try_into().map(u64::from_be_bytes).unwrap_or(0),
            Err(_) => 0,
        };
        let mut replica = match std::fs::read(path) {
            Ok(bytes) => {
                let contents = decode(&bytes).map_err(|reason| file_error(path, reason))?;
                // Fewer saves than the companion file recorded: an older copy came back.
                let actor = if contents.saves < known_saves {
                    fresh_actor
                } else {
                    contents.actor
                };
                Replica {
                    _lock: lock,
                    path: path.to_path_buf(),
                    actor,
                    saves: contents.saves.max(known_saves),
                    values: contents.values,
                    hlc: Hlc::new(),
                    clock,
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Replica {
                _lock: lock,
                path: path.to_path_buf(),
                actor: fresh_actor,
                saves: known_saves,
                values: BTreeMap::new(),
                hlc: Hlc::new(),
                clock,
            },
            Err(e) => return Err(file_error(path, e)),
        };
        replica.save()?;
        Ok(replica)
    }

    /// Returns the replica's actor id.
    pub fn actor(&self) -> ActorId {
        self.actor
    }

    /// Returns the file the replica lives in.
    pub fn path(&self) -> &Path {
        &self.path
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
        let saved = self.write_file(self.saves + 1);
        if saved.is_ok() {
            self.saves += 1;
        }
        saved
    }

    fn write_file(&self, saves: u64) -> Result<()> {
        let mut bytes = Vec::with_capacity(64 + self.values.len() * 64);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&saves.to_be_bytes());
        bytes.extend_from_slice(&self.actor.get().to_be_bytes());
        writer::len(&mut bytes, self.values.len());
        for (key, value) in &self.values {
            writer::bytes(&mut bytes, key);
            writer::bytes(&mut bytes, &value.encode());
        }
        let checksum = xxh3_64(&bytes);
        bytes.extend_from_slice(&checksum.to_be_bytes());
        write_atomically(&self.path, &bytes).map_err(|e| file_error(&self.path, e))?;
        // After the file: a crash in between leaves the file ahead of its companion, which is safe.
        write_atomically(&saves_path(&self.path), &saves.to_be_bytes())
            .map_err(|e| file_error(&self.path, e))
    }

    /// Applies `f` to the typed value of `key` (empty if absent) and saves.
    fn edit<T: TypedValue + Default + Clone + haze_crdt::Crdt, R>(
        &mut self,
        key: impl AsRef<[u8]>,
        f: impl FnOnce(
            &mut T,
            ActorId,
            &mut Hlc,
            &dyn PhysicalClock,
        ) -> std::result::Result<R, CrdtError>,
    ) -> Result<(R, T)> {
        let key = key.as_ref();
        let mut typed: T = match self.values.get(key) {
            None => T::default(),
            Some(v) => crate::client::typed(v.clone())?,
        };
        // A state merged from elsewhere may claim this actor is out of dots: refuse, never panic.
        if typed.causal_counter(self.actor) > haze_crdt::Dot::MAX_COUNTER - (1 << 32) {
            return Err(Error::Conversion(CrdtError::CounterOverflow));
        }
        let r = f(&mut typed, self.actor, &mut self.hlc, &*self.clock)?;
        let previous = self.values.insert(key.to_vec(), typed.clone().into_value());
        if let Err(e) = self.save() {
            // Undo the edit: it must not reach the store with a dot the file does not record,
            // or a later edit would reuse that dot after a restart.
            match previous {
                Some(v) => self.values.insert(key.to_vec(), v),
                None => self.values.remove(key),
            };
            return Err(e);
        }
        Ok((r, typed))
    }

    /// Adds `delta` to the counter under `key` and returns the counter.
    ///
    /// # Errors
    ///
    /// [`Error::WrongType`]; [`Error::Conversion`] on a counter overflow; [`Error::Replica`].
    pub fn counter_add(&mut self, key: impl AsRef<[u8]>, delta: i64) -> Result<PnCounter> {
        Ok(self
            .edit(key, |c: &mut PnCounter, actor, _, _| c.add(actor, delta))?
            .1)
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
        let edit = |s: &mut OrSet<Scalar>, actor, _: &mut Hlc, _: &dyn PhysicalClock| {
            s.extend(members.into_iter().map(|m| (actor, m)));
            Ok(())
        };
        Ok(self.edit(key, edit)?.1)
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
        let edit = |s: &mut OrSet<Scalar>, _, _: &mut Hlc, _: &dyn PhysicalClock| {
            for member in members {
                s.remove(&member);
            }
            Ok(())
        };
        Ok(self.edit(key, edit)?.1)
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
        let value = value.into();
        let edit =
            |r: &mut LwwRegister<Scalar>, actor, hlc: &mut Hlc, clock: &dyn PhysicalClock| {
                r.set(actor, value, hlc, clock);
                Ok(())
            };
        Ok(self.edit(key, edit)?.1)
    }

    /// Merges a full state into `key` (from another replica, a file, the store) and saves.
    /// Returns whether the local state changed.
    ///
    /// # Errors
    ///
    /// [`Error::TypeMismatch`] if `key` holds another type (nothing changes); [`Error::Replica`].
    pub fn merge(&mut self, key: impl AsRef<[u8]>, value: Value) -> Result<bool> {
        let changed = self.merge_unsaved(key.as_ref(), value)?;
        if changed {
            self.save()?;
        }
        Ok(changed)
    }

    /// Merges without saving; returns whether the local state changed.
    pub(crate) fn merge_unsaved(&mut self, key: &[u8], value: Value) -> Result<bool> {
        match self.values.get_mut(key) {
            None => {
                self.values.insert(key.to_vec(), value);
                Ok(true)
            }
            Some(local) => {
                let before = local.clone();
                local
                    .merge(value)
                    .map_err(|e| Error::TypeMismatch(e.to_string()))?;
                Ok(*local != before)
            }
        }
    }
}
