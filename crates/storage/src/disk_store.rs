//! The durable store, on redb.

use std::path::Path;

use haze_crdt::Value;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::apply::merged_value;
use crate::key::{digest_bucket, key_digest, ring_hash, store_key};
use crate::{DIGEST_BUCKETS, Durability, Error, Result, Store, StoreConfig, Write};

/// Ring-ordered key (hash, then key bytes) → encoded `Value`.
const VALUES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("values");
/// Digest bucket → XOR of the digests of its keys.
const DIGESTS: TableDefinition<u32, u64> = TableDefinition::new("digests");
/// Format markers.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The layout of the tables above. Bump it (and add an upgrade) for any change.
const FORMAT_VERSION: u64 = 1;

/// A [`Store`] in one redb file (`haze.redb` in the data directory).
///
/// redb gives single-writer transactions with MVCC readers, so reads never wait for writes, and
/// one commit per batch makes group commit one fsync per batch. See `docs/storage-format.md` for
/// why redb.
pub struct DiskStore {
    db: Database,
    config: StoreConfig,
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
        let store = DiskStore { db, config };
        store.check_format()?;
        Ok(store)
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
        let mut txn = self.db.begin_write().map_err(io)?;
        let durability = match self.config.durability {
            Durability::Sync => redb::Durability::Immediate,
            Durability::Periodic { .. } => redb::Durability::None,
        };
        txn.set_durability(durability).map_err(io)?;
        {
            let mut values = txn.open_table(VALUES).map_err(io)?;
            let mut digests = txn.open_table(DIGESTS).map_err(io)?;
            for write in batch.iter_mut() {
                let Some(mutation) = write.mutation.take() else {
                    continue;
                };
                let skey = store_key(&write.key);
                let old: Option<Vec<u8>> = values
                    .get(skey.as_slice())
                    .map_err(io)?
                    .map(|v| v.value().to_vec());
                let current = old.as_deref().map(decode).transpose()?;
                let outcome = merged_value(&self.config, &write.key, current, mutation);
                if let Ok((_, encoded)) = &outcome {
                    let bucket = digest_bucket(ring_hash(&write.key)) as u32;
                    let mut digest = digests.get(bucket).map_err(io)?.map_or(0, |d| d.value());
                    if let Some(old) = &old {
                        digest ^= key_digest(&write.key, old);
                    }
                    digest ^= key_digest(&write.key, encoded);
                    digests.insert(bucket, digest).map_err(io)?;
                    values
                        .insert(skey.as_slice(), encoded.as_slice())
                        .map_err(io)?;
                }
                write.outcome = Some(outcome.map(|(value, _)| value));
            }
        }
        txn.commit().map_err(io)
    }

    fn sync(&self) -> Result<()> {
        // An empty durable commit makes every earlier non-durable commit durable.
        let txn = self.db.begin_write().map_err(io)?;
        txn.commit().map_err(io)
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
        let mut out = vec![0; DIGEST_BUCKETS];
        for entry in table.iter().map_err(io)? {
            let (bucket, digest) = entry.map_err(io)?;
            if let Some(slot) = out.get_mut(bucket.value() as usize) {
                *slot = digest.value();
            }
        }
        Ok(out)
    }

    fn config(&self) -> &StoreConfig {
        &self.config
    }
}
