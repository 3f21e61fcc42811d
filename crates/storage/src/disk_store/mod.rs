//! The durable store: a write-ahead log and in-memory tables of recent writes, flushed to redb
//! in the background.
//!
//! * `db` — redb's database behind a handle that reopens it after an I/O error (a full disk).
//! * `layout` — redb's tables, the format marker, the stored bucket digests.
//! * `open` — opening a directory: the format check, then the log's replay.
//! * `read` — reads: the recent tables first, then redb; every entry served is verified.
//! * `quarantine` — what happens to a value found damaged, and the scrub.
//! * `write` — the writer's commits, and starting and finishing flushes.
//! * `delete` — deleting the keys of digest buckets (a partition that moved away).

mod db;
mod delete;
mod hot;
mod layout;
mod open;
mod quarantine;
mod read;
mod staging;
mod write;

use crate::ring_map::RingMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use haze_crdt::Value;

pub(crate) use self::db::Db;
pub(crate) use self::layout::{
    DIGESTS, DIGESTS_KEY, VALUES, bucket_of, bucket_sum, digests_blob, parse_digests,
};
pub use self::open::TornTail;
use crate::flush::Flusher;
use crate::key::{RingKey, decode_page};
use crate::scrub::Integrity;
use crate::wal::Wal;
use crate::{
    Error, IntegrityStats, KeyPage, Result, ScrubCursor, ScrubStep, Store, StoreConfig, ValuePage,
    Write,
};

/// A [`Store`] in a data directory: a write-ahead log (`wal-<seq>.log` segments, see the `wal`
/// module), in-memory tables of the values written since the last flush, and redb
/// (`haze.redb`).
///
/// A group of writes is durable once its record in the log is (one append, one fdatasync); its
/// values then join the active in-memory table, where reads find them first. When that table
/// (or the log) grows past a threshold, the writer starts a new log segment and freezes the
/// table, and a flusher thread writes the frozen values to redb in a paced series of small,
/// durable, sorted commits (the `flush` module says why), then deletes the older segments; the
/// writer goes on meanwhile. redb thus writes each B-tree page about once per flush rather than
/// once per group, and its MVCC readers never wait. On open,
/// the log is replayed (merged). `docs/storage-format.md` says why redb, and why the log.
///
/// Every stored value carries its checksum (`crate::entry`), verified by every read that serves
/// or sends it; a damaged one is quarantined (`quarantine`). A commit that meets a full disk is
/// refused without effect and the store goes on ([`Error::NoSpace`]); any other failure of a
/// commit, or of an fsync, stops it.
pub struct DiskStore {
    db: Arc<Db>,
    dir: PathBuf,
    /// The values written since the last completed flush; the log holds each durably.
    recent: RwLock<Tables>,
    /// The writer's state: only `apply`, `sync` and flushes take it.
    writer: Mutex<WriterState>,
    /// Decoded values of hot keys, kept between commits (taken after `writer`).
    hot: Mutex<hot::HotValues>,
    /// The bucket digests of everything acknowledged (redb and the recent writes together).
    buckets: Mutex<Vec<u64>>,
    /// Deletes waiting for the flush under way to end: no other flush starts meanwhile (unless
    /// writes must wait for one), so a delete is not starved by flushes that follow each other.
    deletes_waiting: AtomicUsize,
    config: StoreConfig,
    /// Corrupt values found, reads refused, repairs, scrubbing.
    integrity: Integrity,
    /// The torn tail the open cut off, if any.
    torn_tail: Option<TornTail>,
}

/// The recent writes: the table taking writes, and the frozen one being flushed, if any.
#[derive(Debug, Default)]
struct Tables {
    active: Recent,
    frozen: Option<Arc<RingMap<Vec<u8>>>>,
}

#[derive(Debug, Default)]
struct Recent {
    /// Ring-ordered key → entry (`crate::entry`: a value with its checksum, or a quarantine
    /// marker), as redb will store it.
    values: RingMap<Vec<u8>>,
    bytes: usize,
}

impl Tables {
    /// Returns the newest recent encoding of a ring-ordered key.
    fn newest(&self, skey: &RingKey) -> Option<&Vec<u8>> {
        self.active
            .values
            .get(skey)
            .or_else(|| self.frozen.as_ref()?.get(skey))
    }
}

#[derive(Debug)]
struct WriterState {
    wal: Wal,
    /// The sequence number of the current log segment.
    seq: u64,
    /// The flush in progress; it ends by deleting the segments before `seq`.
    flusher: Option<Flusher>,
    /// Set once the store opened (its log replayed): only then may closing it flush.
    opened: bool,
    /// The first failure of a flush: the store then refuses writes, and closing it leaves the
    /// log alone for the next open to replay.
    failed: Option<Error>,
    /// A flush that found the disk full, to start again once `RETRY_AFTER` has passed: its
    /// values stay in the frozen table (readers see them) and in the log. Writes are refused
    /// with [`Error::NoSpace`] until it starts again.
    retry: Option<(crate::flush::FlushPlan, std::time::Instant, Error)>,
}

impl std::fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStore")
            .field("dir", &self.dir)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Drop for DiskStore {
    /// A clean close flushes, so the next open has no log to replay. A store that failed, or
    /// never finished opening, leaves its log as it is: only a replay may consume it.
    fn drop(&mut self) {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if writer.opened && writer.failed.is_none() {
            let _ = self.flush_now(&mut writer);
        } else if let Some(flusher) = writer.flusher.take() {
            let _ = flusher.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock is our bug; the data behind each lock stays consistent
    // because every update replaces whole entries.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl DiskStore {
    /// Returns the torn tail the open cut off the log, if it found one.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn_tail.as_ref()
    }
}

impl Store for DiskStore {
    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        match self.verified(key)? {
            Some((_, entry)) => Value::decode(entry.encoded()).map(Some).map_err(|e| {
                Integrity::add(&self.integrity.corrupt_reads, 1);
                Error::CorruptValue {
                    key: key.to_vec(),
                    detail: format!("it passes its checksum but does not decode: {e}"),
                }
            }),
            None => Ok(None),
        }
    }

    fn get_encoded(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        // The checksum was verified, and the bytes are this store's own encoding of a value:
        // not decoded (`get` reports a value that passes its checksum but does not decode,
        // which only a bug of the encoder makes; here whoever decodes it refuses it).
        Ok(self.verified(key)?.map(|(_, entry)| entry.into_encoded()))
    }

    fn apply(&self, batch: &mut [Write]) -> Result<()> {
        self.apply_logged(batch)
    }

    fn keep(&self, key: &[u8], value: Value) {
        lock(&self.hot).keep(key, value);
    }

    fn sync(&self) -> Result<()> {
        let segment = {
            let writer = lock(&self.writer);
            if let Some(failure) = &writer.failed {
                // A later fsync that succeeds would prove nothing about what an earlier one
                // lost.
                return Err(Error::stopped(failure));
            }
            writer.wal.sync_later()
        };
        // Without the writer's lock: commits go on while the disk works (the periodic fsync
        // runs on its own thread). A segment replaced meanwhile was synced when it was (see
        // `start_flush`), and this one holds every record appended before this call.
        let synced = segment.sync();
        if let Err(e) = &synced {
            lock(&self.writer).failed.get_or_insert_with(|| e.clone());
        }
        synced
    }

    fn digest(&self, key: &[u8]) -> Result<Option<u64>> {
        // A value's checksum is its digest.
        Ok(self.verified(key)?.map(|(checksum, _)| checksum))
    }

    fn bucket_digests(&self) -> Result<Vec<u64>> {
        Ok(lock(&self.buckets).clone())
    }

    fn bucket_keys(&self, bucket: usize, after: Option<&[u8]>, limit: usize) -> Result<KeyPage> {
        self.bucket_page(bucket, after, limit, |checksum, _| checksum)
    }

    fn bucket_values(
        &self,
        bucket: usize,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ValuePage> {
        decode_page(self.bucket_page(bucket, after, limit, |_, encoded| encoded.to_vec())?)
    }

    fn scrub(&self, from: &ScrubCursor, budget_bytes: u64) -> Result<ScrubStep> {
        self.scrub_from(from, budget_bytes)
    }

    fn integrity(&self) -> IntegrityStats {
        self.integrity.stats()
    }

    fn key_count(&self) -> Result<u64> {
        self.count_keys()
    }

    fn delete_buckets(&self, buckets: std::ops::Range<usize>) -> Result<u64> {
        self.delete(buckets)
    }

    fn config(&self) -> &StoreConfig {
        &self.config
    }
}

#[cfg(test)]
mod tests;
