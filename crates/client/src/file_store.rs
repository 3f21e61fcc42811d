//! The replica file: haze-device's [`Store`] over one file, its companion `FILE.saves` and its
//! lock `FILE.lock`.
//!
//! The format (unchanged since the replica had its own): `HAZEREP1`, the save count and the
//! actor id (8 bytes each, big-endian), the number of keys, each key and its encoded state
//! (length-prefixed), and an xxh3 checksum of all that (8 bytes). The file is rewritten whole,
//! atomically, at every save; the companion holds the save count alone, written after the file.
//! The format has no place for the last sync's time: a replica reopened from a file has none.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use haze_crdt::encode::{Reader, writer};
use haze_crdt::{ActorId, Value};
use haze_device::{Loaded, Meta, Save, Saved, Store};
use xxhash_rust::xxh3::xxh3_64;

use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"HAZEREP1";

/// A replica's file, locked for as long as this lives.
#[derive(Debug)]
pub(crate) struct FileStore {
    path: PathBuf,
    /// Held for the replica's life: two processes editing one file would share an actor id.
    _lock: std::fs::File,
}

pub(crate) fn file_error(path: &Path, reason: impl std::fmt::Display) -> Error {
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

/// Returns the bytes of a replica file.
pub(crate) fn encode(saves: u64, actor: ActorId, values: &BTreeMap<Vec<u8>, Value>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(64 + values.len() * 64);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&saves.to_be_bytes());
    bytes.extend_from_slice(&actor.get().to_be_bytes());
    writer::len(&mut bytes, values.len());
    for (key, value) in values {
        writer::bytes(&mut bytes, key);
        writer::bytes(&mut bytes, &value.encode());
    }
    let checksum = xxh3_64(&bytes);
    bytes.extend_from_slice(&checksum.to_be_bytes());
    bytes
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

impl FileStore {
    /// Locks the replica kept in `path` (the file need not exist yet).
    ///
    /// # Errors
    ///
    /// [`Error::Replica`] if another process holds the lock, or it cannot be taken.
    pub(crate) fn lock(path: &Path) -> Result<FileStore> {
        Ok(FileStore {
            _lock: lock_file(path)?,
            path: path.to_path_buf(),
        })
    }

    /// Returns the replica's file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Store for FileStore {
    /// The reason, for [`Error::Replica`] (the path is added by the replica).
    type Error = String;

    fn load(&mut self) -> std::result::Result<Loaded, String> {
        let witnessed_saves = match std::fs::read(saves_path(&self.path)) {
            Ok(bytes) => bytes.try_into().map(u64::from_be_bytes).unwrap_or(0),
            Err(_) => 0,
        };
        let saved = match std::fs::read(&self.path) {
            Ok(bytes) => {
                let contents = decode(&bytes)?;
                Some(Saved {
                    meta: Some(Meta {
                        actor: contents.actor,
                        saves: contents.saves,
                        last_sync: None,
                    }),
                    values: contents.values,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.to_string()),
        };
        Ok(Loaded {
            saved,
            witnessed_saves,
        })
    }

    fn save(&mut self, save: &Save<'_>) -> std::result::Result<(), String> {
        let bytes = encode(save.meta.saves, save.meta.actor, save.all);
        write_atomically(&self.path, &bytes).map_err(|e| e.to_string())?;
        // After the file: a crash in between leaves the file ahead of its companion, which is safe.
        write_atomically(&saves_path(&self.path), &save.meta.saves.to_be_bytes())
            .map_err(|e| e.to_string())
    }
}
