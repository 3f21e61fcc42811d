//! Opening a data directory: the format check, then the replay of the log.

use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, RwLock};

use haze_crdt::Value;
use redb::Database;

use super::layout::{check_format, stored_buckets};
use super::{DiskStore, WriterState, lock};
use crate::error::{engine, io_at};
use crate::wal::{Logged, Wal, check_segment, segment_path, segments, sync_dir};
use crate::{Error, Mutation, Result, StoreConfig, Write};

impl DiskStore {
    /// Opens (or creates) the store in directory `dir`, creating the directory if needed, and
    /// replays its log.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the directory or files cannot be opened or read, [`Error::Engine`] if
    /// redb fails otherwise; [`Error::UnsupportedFormat`] if they were written by an
    /// incompatible version (the database's format marker or a log segment's magic), then
    /// nothing in the directory changes; [`Error::Corrupt`] if they are damaged.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io_at("creating the data directory", dir))?;
        let db = Database::create(dir.join("haze.redb"))
            .map_err(engine("opening haze.redb in the data directory"))?;
        // The format first: a directory of another version is refused before its log is read,
        // cut short or given a new segment (it stays as that version left it). So is a log of
        // another version: every segment's magic is checked before any is opened to be replayed.
        check_format(&db)?;
        let old = segments(dir)?;
        for (_, path) in &old {
            check_segment(path)?;
        }
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
        *lock(&store.buckets) = stored_buckets(&store.db)?;
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
