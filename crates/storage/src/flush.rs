//! The flusher: writes a frozen table of recent values to redb in a series of small commits,
//! at a measured pace, then deletes the log segments it covered.
//!
//! Why a series: one commit of a whole table (32 MiB of keys spread over the ring) rewrites
//! most of the B-tree's leaves at once: it took a core for a second or two, then the disk for
//! one long fsync, and redb's file grew to hold both versions of the tree (361 MB for 1M keys
//! where commits of a few thousand keys need 215 MB). Commits of [`CHUNK`] consecutive keys (in
//! ring order) touch disjoint leaves, so the series writes about what the single commit did,
//! in short steps with rests between them.
//!
//! Invariant: after every commit, redb's digest blob is exactly the XOR of the digests of what
//! redb holds (each insert XORs out the value it replaced and XORs in the new one). A crash
//! between two commits thus leaves a consistent redb; the log, still whole, is replayed over it
//! (merging is idempotent, and a replayed value equal to redb's changes no digest).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, ReadableTable};

use crate::disk_store::{
    DIGESTS, DIGESTS_KEY, Db, VALUES, bucket_of, bucket_sum, digests_blob, parse_digests,
};
use crate::entry::{self, Slot};
use crate::error::{engine, io, io_at};
use crate::ring_map::RingMap;
use crate::wal::{segments, sync_dir};
use crate::{DIGEST_BUCKETS, Error, Result};

/// The most entries one commit of a flush writes.
pub(crate) const CHUNK: usize = 4096;

/// After each commit, the flusher rests as long as the commit took (so it takes at most about
/// half of a core and of the disk), unless told to hurry.
const REST_PER_WORK: u32 = 1;

/// The longest rest between two commits.
const MAX_REST: Duration = Duration::from_millis(100);

/// A flush running on its own thread.
#[derive(Debug)]
pub(crate) struct Flusher {
    thread: JoinHandle<Result<()>>,
    /// Set when the flush should finish without resting: the next flush is due (writes pile
    /// up behind this one), or the writer waits for it (a close, a flush that must start).
    hurry: Arc<AtomicBool>,
    /// What to flush again if this flush finds the disk full ([`Flusher::retry`]).
    plan: FlushPlan,
}

/// What a flush writes: the frozen table, the segment it ends before, the digests after.
#[derive(Debug, Clone)]
pub(crate) struct FlushPlan {
    /// Segments older than this one are deleted once the values are in redb.
    pub(crate) seq: u64,
    pub(crate) values: Arc<RingMap<Vec<u8>>>,
    /// The digests redb will hold after (checked in debug builds).
    pub(crate) expected: Vec<u64>,
}

impl Flusher {
    /// Starts writing the plan's values to `db`, then deleting the log segments of `dir` older
    /// than its `seq`. If redb meets a full disk, the flush ends with [`Error::NoSpace`] after
    /// reopening the database (see the `db` module): the values stay in the frozen table and
    /// the log, and [`plan`](Self::plan) says what to flush again.
    pub(crate) fn start(db: Arc<Db>, dir: PathBuf, plan: FlushPlan) -> Result<Self> {
        let hurry = Arc::new(AtomicBool::new(false));
        let told = hurry.clone();
        let job = plan.clone();
        let thread = std::thread::Builder::new()
            .name("haze-flusher".into())
            .spawn(move || {
                // After each commit, readers' shared snapshot is let go, so that redb can
                // reuse the pages the next commits free (see `disk_store::db`).
                let committed = || db.forget_values();
                let written = db
                    .get()
                    .and_then(|handle| write_to_redb(&handle, &job.values, &told, &committed));
                let (digests, recomputed) = match written {
                    Ok(done) => done,
                    Err(e) if e.is_disk_full() => {
                        // redb refuses every later call until reopened; the writer tries the
                        // flush again later (a reopen that fails leaves reads failing until
                        // the next try reopens it).
                        let _ = db.reopen();
                        return Err(e.into_no_space());
                    }
                    Err(e) => return Err(e),
                };
                // A bucket computed again (a damaged entry replaced) counts damaged entries as
                // absent, which the store's own digest may not have known yet.
                debug_assert!(
                    (0..DIGEST_BUCKETS)
                        .all(|b| recomputed.contains(&b) || digests[b] == job.expected[b]),
                    "redb's digests differ from those of the store's contents"
                );
                delete_segments_before(&dir, job.seq)
            })
            .map_err(io("starting the flusher thread"))?;
        Ok(Flusher {
            thread,
            hurry,
            plan,
        })
    }

    /// What this flush writes (to start it again after it found the disk full).
    pub(crate) fn plan(&self) -> &FlushPlan {
        &self.plan
    }

    /// Tells the flush to finish without resting (and wakes it if it rests).
    pub(crate) fn hurry(&self) {
        self.hurry.store(true, Ordering::Relaxed);
        self.thread.thread().unpark();
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the flush (hurrying it) and returns its outcome.
    pub(crate) fn join(self) -> Result<()> {
        self.hurry();
        self.thread
            .join()
            .map_err(|_| Error::Io("the flusher thread panicked".into()))?
    }
}

/// Writes `values` (store key → entry) to redb in commits of up to [`CHUNK`] entries, each
/// durable and each with the digests of what redb then holds, resting between them unless
/// `hurry` is set. Returns the digests after the last commit, and the buckets whose digest was
/// computed again from their contents (an entry written over a damaged one, whose share of the
/// digest cannot be trusted). Writes the digests once even when `values` is empty. Calls
/// `committed` after each commit.
fn write_to_redb(
    db: &Database,
    values: &RingMap<Vec<u8>>,
    hurry: &AtomicBool,
    committed: &dyn Fn(),
) -> Result<(Vec<u64>, BTreeSet<usize>)> {
    let mut recomputed = BTreeSet::new();
    const CONTEXT: &str = "flushing recent values to redb";
    let mut entries = values.iter().peekable();
    let mut digests: Option<Vec<u64>> = None;
    loop {
        #[allow(
            clippy::disallowed_methods,
            reason = "the flusher thread paces itself by the time its commits take; simulations use the memory store"
        )]
        let started = Instant::now();
        let txn = db.begin_write().map_err(engine(CONTEXT))?;
        {
            let mut digests_table = txn.open_table(DIGESTS).map_err(engine(CONTEXT))?;
            let mut current = match digests.take() {
                Some(current) => current,
                None => match digests_table.get(DIGESTS_KEY).map_err(engine(CONTEXT))? {
                    Some(blob) => parse_digests(blob.value())?,
                    None => vec![0; DIGEST_BUCKETS],
                },
            };
            let mut table = txn.open_table(VALUES).map_err(engine(CONTEXT))?;
            let mut dirty = BTreeSet::new();
            for (skey, value) in entries.by_ref().take(CHUNK) {
                let key = &skey[8..];
                let bucket = bucket_of(skey);
                if let Some(old) = table
                    .insert(skey.as_slice(), value.as_slice())
                    .map_err(engine(CONTEXT))?
                {
                    match entry::parse(key, old.value()) {
                        Slot::Damaged(_) => {
                            dirty.insert(bucket);
                        }
                        sound => current[bucket] ^= sound.contribution(),
                    }
                }
                match entry::parse(key, value) {
                    // Damaged in memory: counted as absent (a read will quarantine it).
                    Slot::Damaged(_) => {
                        dirty.insert(bucket);
                    }
                    sound => current[bucket] ^= sound.contribution(),
                }
            }
            for bucket in dirty {
                current[bucket] = bucket_sum(&table, bucket).map_err(engine(CONTEXT))?;
                recomputed.insert(bucket);
            }
            digests_table
                .insert(DIGESTS_KEY, digests_blob(&current).as_slice())
                .map_err(engine(CONTEXT))?;
            digests = Some(current);
        }
        txn.commit().map_err(engine(CONTEXT))?;
        committed();
        if entries.peek().is_none() {
            return Ok((digests.expect("set by the commit"), recomputed));
        }
        if !hurry.load(Ordering::Relaxed) {
            // `hurry` unparks: the rest ends early (a spurious wake-up only shortens it).
            std::thread::park_timeout((started.elapsed() * REST_PER_WORK).min(MAX_REST));
        }
    }
}

/// Deletes the log segments older than `seq`: redb holds their values durably now.
fn delete_segments_before(dir: &Path, seq: u64) -> Result<()> {
    for (old, path) in segments(dir)? {
        if old < seq {
            std::fs::remove_file(&path)
                .map_err(io_at("deleting the flushed log segment", &path))?;
        }
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use haze_crdt::{ActorId, GCounter, Value};
    use redb::ReadableDatabase;

    use super::*;
    use crate::key::RingKey;
    use crate::{DiskStore, Mutation, Store, StoreConfig, Write};

    fn counter(actor: u64, n: u64) -> Value {
        let mut c = GCounter::new();
        c.increment(ActorId::new(actor), n).unwrap();
        Value::from(c)
    }

    fn write(store: &DiskStore, keys: std::ops::Range<u64>, actor: u64) {
        let mut batch: Vec<Write> = keys
            .map(|i| {
                let key = format!("key-{i}").into_bytes();
                Write::new(key, Mutation::Merge(counter(actor, i + 1)))
            })
            .collect();
        store.apply(&mut batch).unwrap();
    }

    /// The digests of everything in redb's values table, computed from scratch.
    fn recomputed(db: &Database) -> Vec<u64> {
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(VALUES).unwrap();
        let mut digests = vec![0; DIGEST_BUCKETS];
        for entry in table.iter().unwrap() {
            let (skey, value) = entry.unwrap();
            let skey = skey.value();
            digests[bucket_of(skey)] ^= entry::parse(&skey[8..], value.value()).contribution();
        }
        digests
    }

    #[test]
    fn every_commit_of_a_series_leaves_redbs_digests_exact() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("haze.redb")).unwrap();
        let hurry = AtomicBool::new(false);
        let table = |range: std::ops::Range<u64>, tag: u8| -> RingMap<Vec<u8>> {
            range
                .map(|i| {
                    let key = format!("key-{i}").into_bytes();
                    let value = vec![tag; 1 + (i % 7) as usize];
                    (RingKey::of(&key), entry::value_entry(&key, &value).0)
                })
                .collect()
        };
        // Three chunks of new keys, then three chunks that replace half of them and add more.
        let (first, _) =
            write_to_redb(&db, &table(0..3 * CHUNK as u64, 1), &hurry, &|| {}).unwrap();
        assert_eq!(first, recomputed(&db));
        let range = 3 * CHUNK as u64 / 2..9 * CHUNK as u64 / 2;
        let (second, _) = write_to_redb(&db, &table(range, 2), &hurry, &|| {}).unwrap();
        assert_eq!(second, recomputed(&db));
        assert_ne!(first, second);
        let txn = db.begin_read().unwrap();
        let stored = txn.open_table(DIGESTS).unwrap();
        let blob = stored.get(DIGESTS_KEY).unwrap().unwrap();
        assert_eq!(parse_digests(blob.value()).unwrap(), second);
    }

    #[test]
    fn a_flush_cut_short_between_commits_recovers_every_value_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let count = 3 * CHUNK as u64;
        // Half the keys flushed by a clean close; then every key written again: all in the log.
        {
            let store = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
            write(&store, 0..count / 2, 1);
        }
        let store = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
        write(&store, 0..count, 2);
        let expected: Vec<(u64, Option<Value>)> = (0..count)
            .map(|i| (i, store.get(format!("key-{i}").as_bytes()).unwrap()))
            .collect();
        let digests = store.bucket_digests().unwrap();
        let recent = store.recent_values();
        // What a crash after the flusher's first commit leaves: the log, and redb holding the
        // first chunk of the recent values (the copy is taken while the store is open).
        let image = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, image.path().join(path.file_name().unwrap())).unwrap();
        }
        drop(store);
        {
            let db = Database::create(image.path().join("haze.redb")).unwrap();
            let first: RingMap<Vec<u8>> = recent.into_iter().take(CHUNK).collect();
            write_to_redb(&db, &first, &AtomicBool::new(true), &|| {}).unwrap();
        }
        let recovered = DiskStore::open(image.path(), StoreConfig::default()).unwrap();
        for (i, value) in expected {
            assert_eq!(recovered.get(format!("key-{i}").as_bytes()).unwrap(), value);
        }
        assert_eq!(recovered.bucket_digests().unwrap(), digests);
    }
}
