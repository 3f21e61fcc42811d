//! Opening a data directory: the format checks, the log read whole and judged, then its replay.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, RwLock};

use haze_crdt::Value;
use redb::Database;

use super::layout::{check_format, stored_buckets, upgrade_values};
use super::{Db, DiskStore, WriterState, lock};
use crate::error::{engine, io_at};
use crate::scrub::Integrity;
use crate::wal::{
    Logged, Scanned, Wal, check_segment, read_segment, scan, segment_path, segments, sync_dir,
};
use crate::{Error, Mutation, Result, StoreConfig, Write};

/// The incomplete last record of the log that an open cut off: what a crash in the middle of an
/// append leaves (never acknowledged in `sync` mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment.
    pub file: PathBuf,
    /// Where the cut was made.
    pub offset: u64,
    /// How many bytes were cut.
    pub bytes: u64,
    /// How many records they began (0 for bytes never written: zeros).
    pub records: u64,
}

impl DiskStore {
    /// Opens (or creates) the store in directory `dir`, creating the directory if needed, and
    /// replays its log.
    ///
    /// The whole log is read before anything changes. The incomplete last record of the last
    /// segment (a torn write) is cut off, with a warning; damage anywhere else refuses the
    /// open and changes nothing: an acknowledged write may follow it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the directory or files cannot be opened or read, [`Error::Engine`] if
    /// redb fails otherwise; [`Error::UnsupportedFormat`] if they were written by an
    /// incompatible version (the database's format marker or a log segment's magic), then
    /// nothing in the directory changes; [`Error::LogDamaged`] for a damaged log (nothing
    /// changes either: `haze repair`); [`Error::Corrupt`] for a segment that is no log.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io_at("creating the data directory", dir))?;
        let db = Database::create(dir.join("haze.redb"))
            .map_err(engine("opening haze.redb in the data directory"))?;
        // The format first: a directory of another version is refused before its log is read,
        // cut short or given a new segment (it stays as that version left it). So is a log of
        // another version: every segment's magic is checked before any is read whole.
        let format = check_format(&db)?;
        let old = segments(dir)?;
        for (_, path) in &old {
            check_segment(path)?;
        }
        let mut log = Vec::with_capacity(old.len());
        for (_, path) in &old {
            let bytes = read_segment(path)?;
            log.push((path.clone(), scan(&bytes, path)?));
        }
        let torn_tail = judge(&log)?;
        if let Some(torn) = &torn_tail {
            cut(torn)?;
        }
        if format < super::layout::FORMAT_VERSION {
            let upgraded = upgrade_values(&db)?;
            tracing::info!(
                values = upgraded,
                "upgraded haze.redb to format {}: every value now carries its checksum",
                super::layout::FORMAT_VERSION
            );
        }
        let next_record = log
            .iter()
            .filter_map(|(_, s)| s.last_seq())
            .max()
            .map_or(1, |last| last + 1);
        let replay: Vec<Logged> = log
            .into_iter()
            .flat_map(|(_, s)| s.records.into_iter().map(|r| r.logged))
            .collect();
        let seq = old.last().map_or(1, |(seq, _)| seq + 1);
        let wal = Wal::create(&segment_path(dir, seq), next_record)?;
        sync_dir(dir)?;
        let store = DiskStore {
            db: Arc::new(Db::new(dir.join("haze.redb"), db)),
            dir: dir.to_path_buf(),
            recent: RwLock::default(),
            writer: Mutex::new(WriterState {
                wal,
                seq,
                flusher: None,
                opened: false,
                failed: None,
                retry: None,
            }),
            hot: Mutex::default(),
            buckets: Mutex::new(Vec::new()),
            deletes_waiting: AtomicUsize::new(0),
            config,
            integrity: Integrity::default(),
            torn_tail,
        };
        let db = store.db.get()?;
        *lock(&store.buckets) = stored_buckets(&db)?;
        drop(db);
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
}

/// Judges the damage found in the log's segments (oldest first): returns the torn tail to cut
/// (the incomplete last record of the last segment), if any.
///
/// # Errors
///
/// [`Error::LogDamaged`] for the first damage anywhere else, naming the file, the offset and
/// how many intact records follow it.
fn judge(log: &[(PathBuf, Scanned)]) -> Result<Option<TornTail>> {
    let last = log.len().checked_sub(1);
    for (i, (path, segment)) in log.iter().enumerate() {
        // The first damage decides: a torn tail is the last range of the last segment.
        if let Some(damage) = segment.damage.first() {
            if Some(i) == last && damage.torn {
                return Ok(Some(TornTail {
                    file: path.clone(),
                    offset: damage.offset,
                    bytes: damage.end - damage.offset,
                    records: u64::from(!damage.unwritten),
                }));
            }
            let later: u64 = log[i + 1..]
                .iter()
                .map(|(_, s)| s.records.len() as u64)
                .sum();
            return Err(Error::LogDamaged {
                file: path.clone(),
                offset: damage.offset,
                records_after: segment.records_after(damage.offset) + later,
                reason: damage.reason.to_string(),
            });
        }
    }
    Ok(None)
}

/// Cuts the torn tail off its segment, durably, and says so.
fn cut(torn: &TornTail) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(&torn.file)
        .and_then(|f| {
            f.set_len(torn.offset)?;
            f.sync_all()
        })
        .map_err(io_at(
            "cutting the torn tail of the log segment",
            &torn.file,
        ))?;
    tracing::warn!(
        file = %torn.file.display(),
        offset = torn.offset,
        bytes = torn.bytes,
        records = torn.records,
        "cut a torn tail off the write-ahead log: the incomplete last record of its last \
         segment, what a crash in the middle of an append leaves (never acknowledged in sync mode)"
    );
    Ok(())
}
