//! The durable store: a write-ahead log and an in-memory table of recent writes, flushed to redb.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use haze_crdt::Value;
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition};

use crate::apply::merged_value;
use crate::key::{digest_bucket, key_digest, ring_hash, store_key};
use crate::wal::Wal;
use crate::{DIGEST_BUCKETS, Durability, Error, Mutation, Result, Store, StoreConfig, Write};

/// Ring-ordered key (hash, then key bytes) → encoded `Value`.
const VALUES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("values");
/// `"buckets"` → the digest of every bucket (XOR of its keys' digests), as 4096 big-endian
/// `u64`s, as of the last flush.
const DIGESTS: TableDefinition<&str, &[u8]> = TableDefinition::new("digests");
const DIGESTS_KEY: &str = "buckets";
/// Format markers.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The layout of the tables above. Bump it (and add an upgrade) for any change.
const FORMAT_VERSION: u64 = 1;

/// When the recent writes held in memory pass this size, they are flushed to redb.
const FLUSH_MEMTABLE_BYTES: usize = 32 * 1024 * 1024;
/// When the log passes this size, the recent writes are flushed (and the log emptied) too.
const FLUSH_WAL_BYTES: u64 = 64 * 1024 * 1024;

/// A [`Store`] in a data directory: a write-ahead log (`wal.log`, see the `wal` module), an
/// in-memory table of the values written since the last flush, and redb (`haze.redb`).
///
/// A group of writes is durable once its record in the log is (one append, one fdatasync); its
/// values then join the in-memory table, where reads find them first. When that table (or the
/// log) grows past a threshold, its values are written to redb in one durable, sorted commit,
/// and the log is emptied. redb thus sees each B-tree page once per flush rather than once per
/// group, and its MVCC readers never wait for the writer. On open, the log is replayed (merged).
/// `docs/storage-format.md` says why redb, and why the log.
pub struct DiskStore {
    db: Database,
    /// Ring-ordered key → encoded value, for every key written since the last flush. The log
    /// holds each of these durably; redb may not yet.
    recent: RwLock<Recent>,
    /// The writer's state: only `apply`, `sync` and flushes take it.
    writer: Mutex<Wal>,
    /// The bucket digests of everything acknowledged (redb and the recent writes together).
    buckets: Mutex<Vec<u64>>,
    config: StoreConfig,
}

#[derive(Debug, Default)]
struct Recent {
    values: BTreeMap<Vec<u8>, Vec<u8>>,
    bytes: usize,
}

impl std::fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStore")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Drop for DiskStore {
    /// A clean close flushes, so the next open has no log to replay.
    fn drop(&mut self) {
        let mut wal = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = self.flush(&mut wal);
    }
}

fn io(e: impl std::fmt::Display) -> Error {
    Error::Io(e.to_string())
}

fn decode(bytes: &[u8]) -> Result<Value> {
    Value::decode(bytes).map_err(|e| Error::Corrupt(e.to_string()))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock is our bug; the data behind each lock stays consistent
    // because every update replaces whole entries.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl DiskStore {
    /// Opens (or creates) the store in directory `dir`, creating the directory if needed, and
    /// replays its log.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the directory or files cannot be opened; [`Error::UnsupportedFormat`] or
    /// [`Error::Corrupt`] if they were not written by a compatible version.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io)?;
        let db = Database::create(dir.join("haze.redb")).map_err(io)?;
        let (wal, replay) = Wal::open(&dir.join("wal.log"))?;
        let store = DiskStore {
            db,
            recent: RwLock::default(),
            writer: Mutex::new(wal),
            buckets: Mutex::new(Vec::new()),
            config,
        };
        store.check_format()?;
        *lock(&store.buckets) = store.stored_buckets()?;
        store.replay(replay)?;
        Ok(store)
    }

    /// Merges the log's entries (which redb may hold already: merging is idempotent), then
    /// flushes.
    fn replay(&self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        let mut wal = lock(&self.writer);
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
        self.commit(&mut wal, &mut batch, &unlimited, false)?;
        if let Some(Err(e)) = batch
            .iter_mut()
            .find_map(|w| w.outcome.take().filter(Result::is_err))
        {
            return Err(Error::Corrupt(format!("replaying the log: {e}")));
        }
        self.flush(&mut wal)
    }

    /// Writes the recent values and the bucket digests to redb in one durable commit, then
    /// forgets them and empties the log.
    fn flush(&self, wal: &mut Wal) -> Result<()> {
        {
            let recent = self.recent.read().unwrap_or_else(PoisonError::into_inner);
            let txn = self.db.begin_write().map_err(io)?;
            {
                let mut values = txn.open_table(VALUES).map_err(io)?;
                for (key, value) in &recent.values {
                    values
                        .insert(key.as_slice(), value.as_slice())
                        .map_err(io)?;
                }
                let blob: Vec<u8> = lock(&self.buckets)
                    .iter()
                    .flat_map(|d| d.to_be_bytes())
                    .collect();
                txn.open_table(DIGESTS)
                    .map_err(io)?
                    .insert(DIGESTS_KEY, blob.as_slice())
                    .map_err(io)?;
            }
            txn.commit().map_err(io)?;
        }
        // redb now holds every recent value durably: readers find the same values there.
        *self.recent.write().unwrap_or_else(PoisonError::into_inner) = Recent::default();
        wal.truncate()
    }

    /// Applies `batch`: merges each write against the newest value (this batch's, then the
    /// recent writes', then redb's), logs the results (and fdatasyncs in `sync` mode) when
    /// `log`, then publishes them to readers.
    fn commit(
        &self,
        wal: &mut Wal,
        batch: &mut [Write],
        config: &StoreConfig,
        log: bool,
    ) -> Result<()> {
        let mut staged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut logged: Vec<(usize, Vec<u8>)> = Vec::with_capacity(batch.len());
        let mut next = lock(&self.buckets).clone();
        {
            let recent = self.recent.read().unwrap_or_else(PoisonError::into_inner);
            let mut snapshot: Option<ReadTransaction> = None;
            for (i, write) in batch.iter_mut().enumerate() {
                let Some(mutation) = write.mutation.take() else {
                    continue;
                };
                let skey = store_key(&write.key);
                let old: Option<Vec<u8>> =
                    match staged.get(&skey).or_else(|| recent.values.get(&skey)) {
                        Some(v) => Some(v.clone()),
                        None => {
                            if snapshot.is_none() {
                                snapshot = Some(self.db.begin_read().map_err(io)?);
                            }
                            let txn = snapshot.as_ref().expect("just set");
                            let table = txn.open_table(VALUES).map_err(io)?;
                            table
                                .get(skey.as_slice())
                                .map_err(io)?
                                .map(|v| v.value().to_vec())
                        }
                    };
                let current = old.as_deref().map(decode).transpose()?;
                let outcome = merged_value(config, &write.key, current, mutation);
                if let Ok((_, encoded)) = &outcome {
                    let bucket = digest_bucket(ring_hash(&write.key));
                    if let Some(old) = &old {
                        next[bucket] ^= key_digest(&write.key, old);
                    }
                    next[bucket] ^= key_digest(&write.key, encoded);
                    if log {
                        logged.push((i, encoded.clone()));
                    }
                    staged.insert(skey, encoded.clone());
                }
                write.outcome = Some(outcome.map(|(value, _)| value));
            }
        }
        if !logged.is_empty() {
            // Durable (in sync mode) before anyone can read it.
            let entries: Vec<(&[u8], &[u8])> = logged
                .iter()
                .map(|(i, encoded)| (batch[*i].key.as_slice(), encoded.as_slice()))
                .collect();
            wal.append(&entries, matches!(config.durability, Durability::Sync))?;
        }
        let mut recent = self.recent.write().unwrap_or_else(PoisonError::into_inner);
        for (key, value) in staged {
            let (key_len, value_len) = (key.len(), value.len());
            match recent.values.insert(key, value) {
                Some(previous) => recent.bytes = recent.bytes - previous.len() + value_len,
                None => recent.bytes += key_len + value_len,
            }
        }
        drop(recent);
        *lock(&self.buckets) = next;
        Ok(())
    }

    /// The bucket digests as of the last flush.
    fn stored_buckets(&self) -> Result<Vec<u64>> {
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

    /// Returns the newest encoding of `key`: a recent write's, else redb's.
    fn encoded(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let skey = store_key(key);
        if let Some(v) = self
            .recent
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values
            .get(&skey)
        {
            return Ok(Some(v.clone()));
        }
        let txn = self.db.begin_read().map_err(io)?;
        let table = txn.open_table(VALUES).map_err(io)?;
        let found = table.get(skey.as_slice()).map_err(io)?;
        Ok(found.map(|v| v.value().to_vec()))
    }
}

impl Store for DiskStore {
    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        self.encoded(key)?.as_deref().map(decode).transpose()
    }

    fn apply(&self, batch: &mut [Write]) -> Result<()> {
        let mut wal = lock(&self.writer);
        self.commit(&mut wal, batch, &self.config, true)?;
        let recent_bytes = self
            .recent
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes;
        if recent_bytes > FLUSH_MEMTABLE_BYTES || wal.len() > FLUSH_WAL_BYTES {
            self.flush(&mut wal)?;
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        lock(&self.writer).sync()
    }

    fn digest(&self, key: &[u8]) -> Result<Option<u64>> {
        Ok(self.encoded(key)?.map(|v| key_digest(key, &v)))
    }

    fn bucket_digests(&self) -> Result<Vec<u64>> {
        Ok(lock(&self.buckets).clone())
    }

    fn config(&self) -> &StoreConfig {
        &self.config
    }
}
