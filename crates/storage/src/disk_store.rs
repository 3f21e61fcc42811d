//! The durable store, on redb.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use haze_crdt::Value;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::apply::merged_value;
use crate::key::{digest_bucket, key_digest, ring_hash, store_key};
use crate::wal::Wal;
use crate::{DIGEST_BUCKETS, Durability, Error, Mutation, Result, Store, StoreConfig, Write};

/// Ring-ordered key (hash, then key bytes) → encoded `Value`.
const VALUES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("values");
/// `"buckets"` → the digest of every bucket (XOR of its keys' digests), as 4096 big-endian
/// `u64`s. One value rewritten per commit costs less than one B-tree update per write.
const DIGESTS: TableDefinition<&str, &[u8]> = TableDefinition::new("digests");
const DIGESTS_KEY: &str = "buckets";
/// Format markers.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The layout of the tables above. Bump it (and add an upgrade) for any change.
const FORMAT_VERSION: u64 = 1;

/// When the write-ahead log passes this size, the store checkpoints: one durable redb commit,
/// then the log is emptied.
const CHECKPOINT_WAL_BYTES: u64 = 64 * 1024 * 1024;

/// A [`Store`] in a data directory: the values in a redb file (`haze.redb`) and a write-ahead log
/// (`wal.log`, see the `wal` module).
///
/// redb gives single-writer transactions with MVCC readers, so reads never wait for writes. Its
/// commits are made without syncing; a group of writes is durable once its record in the log is
/// (one append and one fdatasync per group). On open, the log is replayed (merged) into redb.
/// `docs/storage-format.md` says why redb, and why the log.
pub struct DiskStore {
    db: Database,
    wal: Mutex<Wal>,
    /// The bucket digests of the last commit (the writer's copy; readers read redb's).
    buckets: Mutex<Vec<u64>>,
    config: StoreConfig,
}

impl Drop for DiskStore {
    /// A clean close checkpoints, so the next open has no log to replay.
    fn drop(&mut self) {
        let _ = self.checkpoint();
    }
}

impl std::fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStore")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn io(e: impl std::fmt::Display) -> Error {
    Error::Io(e.to_string())
}

fn decode(bytes: &[u8]) -> Result<Value> {
    Value::decode(bytes).map_err(|e| Error::Corrupt(e.to_string()))
}

impl DiskStore {
    /// Opens (or creates) the store in directory `dir`, creating the directory if needed.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the directory or file cannot be opened; [`Error::UnsupportedFormat`] if it
    /// was written by an incompatible version.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io)?;
        let db = Database::create(dir.join("haze.redb")).map_err(io)?;
        let (wal, replay) = Wal::open(&dir.join("wal.log"))?;
        let store = DiskStore {
            db,
            wal: Mutex::new(wal),
            buckets: Mutex::new(Vec::new()),
            config,
        };
        store.check_format()?;
        *store.buckets.lock().unwrap_or_else(PoisonError::into_inner) = store.bucket_digests()?;
        store.replay(replay)?;
        Ok(store)
    }

    fn wal(&self) -> MutexGuard<'_, Wal> {
        // Only the writer appends; a poisoned lock means a panic mid-append, after which the
        // log's own checksums decide what was written.
        self.wal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Merges the log's entries into redb (they may be there already: merging is idempotent),
    /// then checkpoints.
    fn replay(&self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        // Values in the log were accepted under the limits of their time: replay them all.
        let unlimited = StoreConfig {
            max_key_bytes: usize::MAX,
            max_value_bytes: usize::MAX,
            ..self.config
        };
        let mut batch = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let value = Value::decode(&value)
                .map_err(|e| Error::Corrupt(format!("a logged value: {e}")))?;
            batch.push(Write::new(key, Mutation::Merge(value)));
        }
        self.commit_batch(&mut batch, &unlimited, false)?;
        if let Some(Err(e)) = batch
            .iter_mut()
            .find_map(|w| w.outcome.take().filter(Result::is_err))
        {
            return Err(Error::Corrupt(format!("replaying the log: {e}")));
        }
        self.checkpoint()
    }

    /// Makes every commit durable in redb, then empties the log.
    fn checkpoint(&self) -> Result<()> {
        let txn = self.db.begin_write().map_err(io)?;
        txn.commit().map_err(io)?;
        self.wal().truncate()
    }

    /// Applies `batch` in one redb transaction; logs the resulting values first when `log`.
    fn commit_batch(&self, batch: &mut [Write], config: &StoreConfig, log: bool) -> Result<()> {
        let mut txn = self.db.begin_write().map_err(io)?;
        txn.set_durability(redb::Durability::None).map_err(io)?;
        let mut logged: Vec<(usize, Vec<u8>)> = Vec::with_capacity(batch.len());
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        // Updated on a copy: if the commit fails, the writer's digests stay those of redb.
        let mut next = buckets.clone();
        {
            let mut values = txn.open_table(VALUES).map_err(io)?;
            let mut digests = txn.open_table(DIGESTS).map_err(io)?;
            for (i, write) in batch.iter_mut().enumerate() {
                let Some(mutation) = write.mutation.take() else {
                    continue;
                };
                let skey = store_key(&write.key);
                let old: Option<Vec<u8>> = values
                    .get(skey.as_slice())
                    .map_err(io)?
                    .map(|v| v.value().to_vec());
                let current = old.as_deref().map(decode).transpose()?;
                let outcome = merged_value(config, &write.key, current, mutation);
                if let Ok((_, encoded)) = &outcome {
                    let bucket = digest_bucket(ring_hash(&write.key));
                    if let Some(old) = &old {
                        next[bucket] ^= key_digest(&write.key, old);
                    }
                    next[bucket] ^= key_digest(&write.key, encoded);
                    values
                        .insert(skey.as_slice(), encoded.as_slice())
                        .map_err(io)?;
                    if log {
                        logged.push((i, encoded.clone()));
                    }
                }
                write.outcome = Some(outcome.map(|(value, _)| value));
            }
            if next != *buckets {
                let blob: Vec<u8> = next.iter().flat_map(|d| d.to_be_bytes()).collect();
                digests.insert(DIGESTS_KEY, blob.as_slice()).map_err(io)?;
            }
        }
        if !logged.is_empty() {
            // Durable (in sync mode) before redb makes it visible: nothing unlogged is read.
            let entries: Vec<(&[u8], &[u8])> = logged
                .iter()
                .map(|(i, encoded)| (batch[*i].key.as_slice(), encoded.as_slice()))
                .collect();
            self.wal()
                .append(&entries, matches!(config.durability, Durability::Sync))?;
        }
        txn.commit().map_err(io)?;
        *buckets = next;
        Ok(())
    }

    fn check_format(&self) -> Result<()> {
        let txn = self.db.begin_write().map_err(io)?;
        {
            let mut meta = txn.open_table(META).map_err(io)?;
            let found = meta.get("format").map_err(io)?.map(|v| v.value());
            match found {
                Some(FORMAT_VERSION) => {}
                Some(found) => {
                    return Err(Error::UnsupportedFormat {
                        found,
                        expected: FORMAT_VERSION,
                    });
                }
                None => {
                    meta.insert("format", FORMAT_VERSION).map_err(io)?;
                }
            }
            txn.open_table(VALUES).map_err(io)?;
            txn.open_table(DIGESTS).map_err(io)?;
        }
        txn.commit().map_err(io)
    }
}

impl Store for DiskStore {
    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        let txn = self.db.begin_read().map_err(io)?;
        let table = txn.open_table(VALUES).map_err(io)?;
        let found = table.get(store_key(key).as_slice()).map_err(io)?;
        found.map(|v| decode(v.value())).transpose()
    }

    fn apply(&self, batch: &mut [Write]) -> Result<()> {
        self.commit_batch(batch, &self.config, true)?;
        if self.wal().len() > CHECKPOINT_WAL_BYTES {
            self.checkpoint()?;
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.wal().sync()
    }

    fn digest(&self, key: &[u8]) -> Result<Option<u64>> {
        let txn = self.db.begin_read().map_err(io)?;
        let table = txn.open_table(VALUES).map_err(io)?;
        let found = table.get(store_key(key).as_slice()).map_err(io)?;
        Ok(found.map(|v| key_digest(key, v.value())))
    }

    fn bucket_digests(&self) -> Result<Vec<u64>> {
        let txn = self.db.begin_read().map_err(io)?;
        let table = txn.open_table(DIGESTS).map_err(io)?;
        let Some(blob) = table.get(DIGESTS_KEY).map_err(io)? else {
            return Ok(vec![0; DIGEST_BUCKETS]);
        };
        let blob = blob.value();
        if blob.len() != DIGEST_BUCKETS * 8 {
            return Err(Error::Corrupt(format!(
                "the digests take {} bytes, not {}",
                blob.len(),
                DIGEST_BUCKETS * 8
            )));
        }
        Ok(blob
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
            .collect())
    }

    fn config(&self) -> &StoreConfig {
        &self.config
    }
}
