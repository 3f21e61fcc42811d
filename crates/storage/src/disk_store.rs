//! The durable store: a write-ahead log and in-memory tables of recent writes, flushed to redb
//! in the background.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use haze_crdt::Value;
use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable, TableDefinition};

use crate::apply::merged_value;
use crate::flush::Flusher;
use crate::key::{
    Page, bucket_bounds, buckets_range, decode, decode_page, digest_bucket, key_digest, key_page,
    ring_hash, store_key,
};
use crate::wal::{Logged, Wal, segment_path, segments, sync_dir};
use crate::{
    DIGEST_BUCKETS, Durability, Error, KeyPage, Mutation, Result, Store, StoreConfig, ValuePage,
    Write, WriteError,
};

/// Ring-ordered key (hash, then key bytes) → encoded `Value`.
pub(crate) const VALUES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("values");
/// `"buckets"` → the digest of every bucket (XOR of the digests of its keys in `VALUES`), as 4096
/// big-endian `u64`s, written by every commit that changes `VALUES`.
pub(crate) const DIGESTS: TableDefinition<&str, &[u8]> = TableDefinition::new("digests");
pub(crate) const DIGESTS_KEY: &str = "buckets";
/// Format markers.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The layout of the tables above. Bump it (and add an upgrade) for any change.
const FORMAT_VERSION: u64 = 1;

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
pub struct DiskStore {
    db: Arc<Database>,
    dir: PathBuf,
    /// The values written since the last completed flush; the log holds each durably.
    recent: RwLock<Tables>,
    /// The writer's state: only `apply`, `sync` and flushes take it.
    writer: Mutex<WriterState>,
    /// The bucket digests of everything acknowledged (redb and the recent writes together).
    buckets: Mutex<Vec<u64>>,
    /// Deletes waiting for the flush under way to end: no other flush starts meanwhile (unless
    /// writes must wait for one), so a delete is not starved by flushes that follow each other.
    deletes_waiting: AtomicUsize,
    config: StoreConfig,
}

/// The recent writes: the table taking writes, and the frozen one being flushed, if any.
#[derive(Debug, Default)]
struct Tables {
    active: Recent,
    frozen: Option<Arc<BTreeMap<Vec<u8>, Vec<u8>>>>,
}

#[derive(Debug, Default)]
struct Recent {
    /// Ring-ordered key → encoded value.
    values: BTreeMap<Vec<u8>, Vec<u8>>,
    bytes: usize,
}

impl Tables {
    /// Returns the newest recent encoding of a ring-ordered key.
    fn newest(&self, skey: &[u8]) -> Option<&Vec<u8>> {
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

pub(crate) fn io(e: impl std::fmt::Display) -> Error {
    Error::Io(e.to_string())
}

/// The bucket digests as stored in redb.
pub(crate) fn digests_blob(digests: &[u64]) -> Vec<u8> {
    digests.iter().flat_map(|d| d.to_be_bytes()).collect()
}

/// The bucket digests stored in redb.
pub(crate) fn parse_digests(blob: &[u8]) -> Result<Vec<u64>> {
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock is our bug; the data behind each lock stays consistent
    // because every update replaces whole entries.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Checks that `db` holds this build's layout (`meta.format`), marking a new database with it.
///
/// # Errors
///
/// [`Error::UnsupportedFormat`] for another version (nothing is written then).
fn check_format(db: &Database) -> Result<()> {
    let txn = db.begin_write().map_err(io)?;
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
        // The format first: a directory of another version is refused before its log is read,
        // cut short or given a new segment (it stays as that version left it).
        check_format(&db)?;
        let old = segments(dir)?;
        let mut replay = Vec::new();
        for (_, path) in &old {
            replay.extend(Wal::open(path)?.1);
        }
        let seq = old.last().map_or(1, |(seq, _)| seq + 1);
        let (wal, _) = Wal::open(&segment_path(dir, seq))?;
        sync_dir(dir)?;
        let store = DiskStore {
            db: Arc::new(db),
            dir: dir.to_path_buf(),
            recent: RwLock::default(),
            writer: Mutex::new(WriterState {
                wal,
                seq,
                flusher: None,
                opened: false,
                failed: None,
            }),
            buckets: Mutex::new(Vec::new()),
            deletes_waiting: AtomicUsize::new(0),
            config,
        };
        *lock(&store.buckets) = store.stored_buckets()?;
        store.replay(replay)?;
        lock(&store.writer).opened = true;
        Ok(store)
    }

    /// Replays the log's records in order: merges the values (which redb may hold already:
    /// merging is idempotent) and carries out the deletes (again, perhaps: deleting is too),
    /// then flushes, which deletes the replayed segments.
    fn replay(&self, records: Vec<Logged>) -> Result<()> {
        let mut writer = lock(&self.writer);
        // Values in the log were accepted under the limits of their time: replay them all.
        let unlimited = StoreConfig {
            max_key_bytes: usize::MAX,
            max_value_bytes: usize::MAX,
            ..self.config
        };
        let mut batch = Vec::new();
        for record in records {
            match record {
                Logged::Merge(entries) => {
                    for (key, value) in entries {
                        let value = Value::decode(&value)
                            .map_err(|e| Error::Corrupt(format!("a logged value: {e}")))?;
                        batch.push(Write::new(key, Mutation::Merge(value)));
                    }
                }
                Logged::Delete(buckets) => {
                    self.replay_batch(&mut writer, &mut batch, &unlimited)?;
                    self.delete_range(buckets)?;
                }
            }
        }
        self.replay_batch(&mut writer, &mut batch, &unlimited)?;
        self.flush_now(&mut writer)
    }

    /// Applies the replayed writes in `batch` (without logging them again) and empties it.
    fn replay_batch(
        &self,
        writer: &mut WriterState,
        batch: &mut Vec<Write>,
        config: &StoreConfig,
    ) -> Result<()> {
        self.commit(&mut writer.wal, batch, config, false)?;
        if let Some(Err(e)) = batch
            .iter_mut()
            .find_map(|w| w.outcome.take().filter(Result::is_err))
        {
            return Err(Error::Corrupt(format!("replaying the log: {e}")));
        }
        batch.clear();
        Ok(())
    }

    /// Deletes every key of `buckets` from redb and the active table, and zeroes their digests.
    /// The caller holds the writer, and no flush runs (a frozen table's keys would reach redb
    /// after the delete). The log holds the delete (or, at open, replays it): redb's commit
    /// needs no fsync of its own, the next flush's commits make it durable, and until then a
    /// crash replays the delete.
    fn delete_range(&self, buckets: std::ops::Range<usize>) -> Result<u64> {
        let Some((start, end)) = buckets_range(&buckets) else {
            return Ok(0);
        };
        let buckets = buckets.start..buckets.end.min(DIGEST_BUCKETS);
        let in_table: std::collections::BTreeSet<Vec<u8>> = self
            .recent
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .active
            .values
            .range((start.clone(), end.clone()))
            .map(|(k, _)| k.clone())
            .collect();
        let mut deleted = in_table.len() as u64;
        let mut txn = self.db.begin_write().map_err(io)?;
        // No fsync while clients' writes wait for the writer (see above).
        txn.set_durability(redb::Durability::None).map_err(io)?;
        {
            let mut table = txn.open_table(VALUES).map_err(io)?;
            let range = (
                start.as_ref().map(Vec::as_slice),
                end.as_ref().map(Vec::as_slice),
            );
            table
                .retain_in::<&[u8], _>(range, |key, _| {
                    deleted += u64::from(!in_table.contains(key));
                    false
                })
                .map_err(io)?;
            // redb's digests stay those of what redb holds.
            let mut digests_table = txn.open_table(DIGESTS).map_err(io)?;
            let mut stored = match digests_table.get(DIGESTS_KEY).map_err(io)? {
                Some(blob) => parse_digests(blob.value())?,
                None => vec![0; DIGEST_BUCKETS],
            };
            for bucket in buckets.clone() {
                stored[bucket] = 0;
            }
            digests_table
                .insert(DIGESTS_KEY, digests_blob(&stored).as_slice())
                .map_err(io)?;
        }
        txn.commit().map_err(io)?;
        {
            let mut tables = self.recent.write().unwrap_or_else(PoisonError::into_inner);
            let active = &mut tables.active;
            for key in &in_table {
                if let Some(value) = active.values.remove(key) {
                    active.bytes -= key.len() + value.len();
                }
            }
        }
        let mut digests = lock(&self.buckets);
        for bucket in buckets {
            digests[bucket] = 0;
        }
        Ok(deleted)
    }

    /// Waits for the flush in progress, if any, then forgets its frozen table.
    fn finish_flush(&self, writer: &mut WriterState) -> Result<()> {
        if let Some(flusher) = writer.flusher.take() {
            flusher.join()?;
            self.recent
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .frozen = None;
        }
        Ok(())
    }

    /// Starts a flush: a new log segment takes the next writes, the active table is frozen, and
    /// a thread writes it to redb durably, then deletes the older segments. Waits first for a
    /// flush still in progress (backpressure when writes outrun flushes).
    fn start_flush(&self, writer: &mut WriterState) -> Result<()> {
        self.finish_flush(writer)?;
        // In `periodic` mode the old segment may hold unsynced records: sync them before a
        // newer segment exists, so recovery never finds a gap.
        writer.wal.sync()?;
        let seq = writer.seq + 1;
        let (wal, _) = Wal::open(&segment_path(&self.dir, seq))?;
        sync_dir(&self.dir)?;
        writer.wal = wal;
        writer.seq = seq;
        let frozen = {
            let mut tables = self.recent.write().unwrap_or_else(PoisonError::into_inner);
            let frozen = Arc::new(std::mem::take(&mut tables.active).values);
            tables.frozen = Some(frozen.clone());
            frozen
        };
        // The digests of exactly redb plus the frozen table (the writer is held: nothing newer):
        // what redb's own digests will be after the flush.
        let buckets = lock(&self.buckets).clone();
        let flusher = Flusher::start(self.db.clone(), self.dir.clone(), seq, frozen, buckets)?;
        writer.flusher = Some(flusher);
        Ok(())
    }

    /// Checks that the store still takes writes, and forgets a finished flush (a failed one
    /// stops the store).
    fn ready(&self, writer: &mut WriterState) -> Result<()> {
        if let Some(failure) = &writer.failed {
            return Err(Error::Stopped(failure.to_string()));
        }
        if writer.flusher.as_ref().is_some_and(Flusher::is_finished)
            && let Err(e) = self.finish_flush(writer)
        {
            writer.failed = Some(e.clone());
            return Err(e);
        }
        Ok(())
    }

    /// Waits until no flush runs, taking the writer's lock only to look. It does not hurry the
    /// flush: a cleanup can wait, clients' requests should not wait for a flusher taking a
    /// whole core.
    fn wait_for_flusher(&self) {
        while lock(&self.writer)
            .flusher
            .as_ref()
            .is_some_and(|f| !f.is_finished())
        {
            #[allow(
                clippy::disallowed_methods,
                reason = "a store's own thread waits for its flusher thread"
            )]
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// Flushes everything now, on this thread (at open and close).
    fn flush_now(&self, writer: &mut WriterState) -> Result<()> {
        self.start_flush(writer)?;
        self.finish_flush(writer)
    }

    /// Applies `batch`: merges each write against the newest value (this batch's, then the
    /// recent tables', then redb's), logs the results (and fdatasyncs in `sync` mode) when
    /// `log`, then publishes them to readers.
    fn commit(
        &self,
        wal: &mut Wal,
        batch: &mut [Write],
        config: &StoreConfig,
        log: bool,
    ) -> Result<()> {
        // Each key's newest value in this batch. Its final values are what the log records (one
        // entry per key: replaying them gives what replaying every step would, merges being
        // idempotent) and what joins the active table.
        let mut staged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut next = lock(&self.buckets).clone();
        {
            let tables = self.recent.read().unwrap_or_else(PoisonError::into_inner);
            // Opened at the first key that no recent table holds, then reused.
            let mut stored: Option<ReadOnlyTable<&'static [u8], &'static [u8]>> = None;
            for write in batch.iter_mut() {
                let Some(mutation) = write.mutation.take() else {
                    continue;
                };
                let skey = store_key(&write.key);
                let recent = staged.get(&skey).or_else(|| tables.newest(&skey));
                let from_redb = match recent {
                    Some(_) => None,
                    None => {
                        if stored.is_none() {
                            stored = Some(
                                self.db
                                    .begin_read()
                                    .map_err(io)?
                                    .open_table(VALUES)
                                    .map_err(io)?,
                            );
                        }
                        let table = stored.as_ref().expect("just set");
                        table
                            .get(skey.as_slice())
                            .map_err(io)?
                            .map(|v| v.value().to_vec())
                    }
                };
                let old: Option<&[u8]> = recent.map(Vec::as_slice).or(from_redb.as_deref());
                let old_digest = old.map(|old| key_digest(&write.key, old));
                // A stored value that does not decode fails its own write, not the store.
                let outcome = match old.map(decode).transpose() {
                    Ok(current) => merged_value(config, &write.key, current, mutation),
                    Err(e) => Err(WriteError::Store(e)),
                };
                write.outcome = Some(outcome.map(|(value, encoded)| {
                    let bucket = digest_bucket(ring_hash(&write.key));
                    if let Some(old) = old_digest {
                        next[bucket] ^= old;
                    }
                    next[bucket] ^= key_digest(&write.key, &encoded);
                    staged.insert(skey, encoded);
                    value
                }));
            }
        }
        if log && !staged.is_empty() {
            // Durable (in sync mode) before anyone can read it.
            let entries: Vec<(&[u8], &[u8])> = staged
                .iter()
                .map(|(skey, encoded)| (&skey[8..], encoded.as_slice()))
                .collect();
            wal.append(&entries, matches!(config.durability, Durability::Sync))?;
        }
        let mut tables = self.recent.write().unwrap_or_else(PoisonError::into_inner);
        let active = &mut tables.active;
        for (key, value) in staged {
            let (key_len, value_len) = (key.len(), value.len());
            match active.values.insert(key, value) {
                Some(previous) => active.bytes = active.bytes - previous.len() + value_len,
                None => active.bytes += key_len + value_len,
            }
        }
        drop(tables);
        *lock(&self.buckets) = next;
        Ok(())
    }

    /// The bucket digests as of the last flush.
    fn stored_buckets(&self) -> Result<Vec<u64>> {
        let txn = self.db.begin_read().map_err(io)?;
        let table = txn.open_table(DIGESTS).map_err(io)?;
        match table.get(DIGESTS_KEY).map_err(io)? {
            Some(blob) => parse_digests(blob.value()),
            None => Ok(vec![0; DIGEST_BUCKETS]),
        }
    }

    /// Up to `limit` entries of `bucket` after `after`, each as its user key and `item` of its
    /// store key and encoded value, and whether more follow.
    fn bucket_page<T>(
        &self,
        bucket: usize,
        after: Option<&[u8]>,
        limit: usize,
        item: impl Fn(&[u8], &[u8]) -> T,
    ) -> Result<Page<T>> {
        let Some(bounds) = bucket_bounds(bucket, after) else {
            return Ok((Vec::new(), false));
        };
        let take = limit.saturating_add(1);
        // Newest first: the active table, the frozen one, then redb. A reader of redb that
        // starts after a flush committed may also see values still in the tables: same bytes.
        let (active, frozen) = {
            let tables = self.recent.read().unwrap_or_else(PoisonError::into_inner);
            let page = |t: &BTreeMap<Vec<u8>, Vec<u8>>| -> Vec<(Vec<u8>, T)> {
                t.range(bounds.clone())
                    .take(take)
                    .map(|(k, v)| (k.clone(), item(k, v)))
                    .collect()
            };
            (
                page(&tables.active.values),
                tables.frozen.as_deref().map(page).unwrap_or_default(),
            )
        };
        let txn = self.db.begin_read().map_err(io)?;
        let table = txn.open_table(VALUES).map_err(io)?;
        let (start, end) = (
            bounds.0.as_ref().map(Vec::as_slice),
            bounds.1.as_ref().map(Vec::as_slice),
        );
        let mut stored = Vec::new();
        for entry in table.range::<&[u8]>((start, end)).map_err(io)?.take(take) {
            let (k, v) = entry.map_err(io)?;
            stored.push((k.value().to_vec(), item(k.value(), v.value())));
        }
        Ok(key_page([active, frozen, stored], limit))
    }

    /// The active table's entries (store key → encoded value), for tests of the flusher.
    #[cfg(test)]
    pub(crate) fn recent_values(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let tables = self.recent.read().unwrap_or_else(PoisonError::into_inner);
        tables.active.values.clone()
    }

    /// Returns the newest encoding of `key`: a recent write's, else redb's.
    fn encoded(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let skey = store_key(key);
        if let Some(v) = self
            .recent
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .newest(&skey)
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
        let mut writer = lock(&self.writer);
        self.ready(&mut writer)?;
        self.commit(&mut writer.wal, batch, &self.config, true)?;
        let active_bytes = self
            .recent
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .active
            .bytes;
        let flush_bytes = self.config.flush_bytes;
        let due = active_bytes > flush_bytes || writer.wal.len() > 4 * flush_bytes as u64;
        // While a flush runs, the writer goes on and lets the active table grow, up to four
        // times the threshold; only past that does it wait (backpressure when writes outrun
        // redb), instead of stalling every time a flush is due.
        let busy = writer.flusher.as_ref().is_some_and(|f| !f.is_finished());
        let must = active_bytes > 4 * flush_bytes || writer.wal.len() > 8 * flush_bytes as u64;
        if due
            && busy
            && let Some(flusher) = &writer.flusher
        {
            // The next flush is due before this one ended: it paces itself no longer.
            flusher.hurry();
        }
        let delete_waits = self.deletes_waiting.load(Ordering::SeqCst) > 0;
        if due
            && (must || (!busy && !delete_waits))
            && let Err(e) = self.start_flush(&mut writer)
        {
            // This batch is durable (its log record is synced) and visible: acknowledge it.
            // The store refuses the next one.
            writer.failed = Some(e);
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        lock(&self.writer).wal.sync()
    }

    fn digest(&self, key: &[u8]) -> Result<Option<u64>> {
        Ok(self.encoded(key)?.map(|v| key_digest(key, &v)))
    }

    fn bucket_digests(&self) -> Result<Vec<u64>> {
        Ok(lock(&self.buckets).clone())
    }

    fn bucket_keys(&self, bucket: usize, after: Option<&[u8]>, limit: usize) -> Result<KeyPage> {
        self.bucket_page(bucket, after, limit, |skey, encoded| {
            key_digest(&skey[8..], encoded)
        })
    }

    fn bucket_values(
        &self,
        bucket: usize,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ValuePage> {
        decode_page(self.bucket_page(bucket, after, limit, |_, encoded| encoded.to_vec())?)
    }

    fn delete_buckets(&self, buckets: std::ops::Range<usize>) -> Result<u64> {
        if buckets_range(&buckets).is_none() {
            return Ok(0);
        }
        // A flush under way may be writing keys of the range to redb: the delete comes after
        // it. Wait for it without holding up writes.
        self.deletes_waiting.fetch_add(1, Ordering::SeqCst);
        self.wait_for_flusher();
        let mut writer = lock(&self.writer);
        self.deletes_waiting.fetch_sub(1, Ordering::SeqCst);
        self.ready(&mut writer)?;
        // The writer may have started another since: finish it (rare; writes wait meanwhile).
        // Then the delete is logged before it is done: from the moment the record is durable,
        // a replay puts the range's logged writes back and then deletes them again, so no
        // flush is needed first (it used to be: every moved partition cost a flush).
        let deleted = self
            .finish_flush(&mut writer)
            .and_then(|()| writer.wal.append_delete(buckets.clone()))
            .and_then(|()| self.delete_range(buckets));
        if let Err(e) = &deleted {
            // The log and redb may disagree until a replay: take no more writes.
            writer.failed = Some(e.clone());
        }
        deleted
    }

    fn config(&self) -> &StoreConfig {
        &self.config
    }
}
