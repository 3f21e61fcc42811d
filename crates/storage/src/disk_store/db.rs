//! redb's database behind a handle that can reopen it.
//!
//! After one I/O error, redb answers every later call on that `Database`, reads included, with
//! `PreviousIo`; its documented recovery is to close the database and open it again. A flush
//! that meets a full disk is such an error: without a reopen, a node whose disk filled during
//! a flush could neither read from redb nor flush again until restarted. The flusher reopens
//! the database through this handle when a flush fails for room, and the writer tries the
//! flush again later (`write`, `ready`).
//!
//! Invariant: only the writer's side reopens (the flusher thread, whose failure the writer has
//! not yet seen, or the writer itself), so two reopens never race. Readers take a clone of the
//! `Arc` for the length of one transaction; redb keeps the file locked until every transaction
//! of the old database ended, so a reopen waits (bounded) for them.
//!
//! Point reads, and the writer's commits, share one snapshot of the values table
//! ([`Db::values`]) instead of each opening a read transaction and the table: that cost about
//! 2,900 instructions per read, more than the B-tree lookup itself. The snapshot is forgotten
//! ([`Db::forget_values`]) whenever redb changes in a way readers must see: when a flush ends
//! (under the recent tables' write lock, as the frozen table goes: a reader that misses the
//! recent tables takes the snapshot under their read lock, so it never pairs tables without
//! the frozen one with a snapshot from before the flush), after each of the flusher's commits
//! (not needed for what readers see, the frozen table covers them, but a snapshot held keeps
//! redb from reusing the pages later commits free, and the file would grow by a whole flush),
//! after a delete, and before a reopen.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use redb::{Database, DatabaseError, ReadOnlyTable, ReadableDatabase};

use super::layout::VALUES;
use crate::error::engine;
use crate::{Error, Result};

/// How long a reopen waits for the old database's transactions to end.
const REOPEN_PATIENCE: Duration = Duration::from_secs(5);

/// The store's redb database, reopened after an I/O error.
#[derive(Debug)]
pub(crate) struct Db {
    path: PathBuf,
    /// `None` only while a reopen failed (reads then fail with the reason, and the writer's next
    /// flush tries the reopen again).
    current: RwLock<Option<Arc<Database>>>,
    /// The values table as of a recent read transaction, shared by point reads.
    values: RwLock<Option<Arc<Values>>>,
    /// Moves on each time the snapshot is let go: a snapshot opened before is not kept (it may
    /// be older than what readers must see, or of a database being reopened).
    generation: AtomicU64,
}

/// redb's values table, read only.
pub(crate) type Values = ReadOnlyTable<&'static [u8], &'static [u8]>;

impl Db {
    pub(crate) fn new(path: PathBuf, db: Database) -> Db {
        Db {
            path,
            current: RwLock::new(Some(Arc::new(db))),
            values: RwLock::new(None),
            generation: AtomicU64::new(0),
        }
    }

    /// The shared snapshot of the values table, opened now if there is none.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get), or redb's if the table cannot be opened.
    pub(crate) fn values(&self) -> Result<Arc<Values>> {
        const CONTEXT: &str = "reading a value";
        if let Some(values) = &*self.values.read().unwrap_or_else(PoisonError::into_inner) {
            return Ok(values.clone());
        }
        // Opened without holding the slot (a reopen may wait for the database meanwhile), and
        // kept only if nothing let the snapshot go since: see `generation`.
        let generation = self.generation.load(Ordering::Acquire);
        let txn = self.get()?.begin_read().map_err(engine(CONTEXT))?;
        let values = Arc::new(txn.open_table(VALUES).map_err(engine(CONTEXT))?);
        let mut slot = self.values.write().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() && self.generation.load(Ordering::Acquire) == generation {
            *slot = Some(values.clone());
        }
        Ok(values)
    }

    /// Forgets the shared snapshot: the next read takes one of redb as it is then, and a
    /// snapshot being opened now is used once, not kept.
    pub(crate) fn forget_values(&self) {
        let mut slot = self.values.write().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::AcqRel);
        drop(slot.take());
    }

    /// The database now.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the last reopen failed.
    pub(crate) fn get(&self) -> Result<Arc<Database>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                Error::Io(crate::IoError::new(
                    "reading haze.redb, which could not be reopened after a full disk (the next flush tries again)",
                    std::io::Error::other("haze.redb is closed"),
                ))
            })
    }

    /// Whether the database is open (a failed reopen left it closed).
    pub(crate) fn is_open(&self) -> bool {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Closes the database and opens it again, waiting up to [`REOPEN_PATIENCE`] for the old
    /// one's transactions to end. Readers wait meanwhile.
    ///
    /// # Errors
    ///
    /// If it could not be opened again (the database stays closed: [`get`](Self::get) fails).
    #[allow(
        clippy::disallowed_methods,
        reason = "a bound on waiting for the old database's readers, not a clock of the store"
    )]
    pub(crate) fn reopen(&self) -> Result<()> {
        // The snapshot is a transaction of the old database, which must end first. Let go
        // twice: a reader may have opened one of the old database before `current` is
        // taken; kept by then, it goes with the second; opened before, it is not kept.
        self.forget_values();
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        drop(current.take());
        self.forget_values();
        let started = std::time::Instant::now();
        loop {
            match Database::create(&self.path) {
                Ok(db) => {
                    *current = Some(Arc::new(db));
                    tracing::warn!(path = %self.path.display(), "reopened haze.redb after an I/O error");
                    return Ok(());
                }
                // A transaction of the old database still holds the file.
                Err(DatabaseError::DatabaseAlreadyOpen) if started.elapsed() < REOPEN_PATIENCE => {
                    #[allow(
                        clippy::disallowed_methods,
                        reason = "the writer's side waits for readers of the old database"
                    )]
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => {
                    tracing::error!(path = %self.path.display(), error = %e, "could not reopen haze.redb");
                    return Err(engine("reopening haze.redb")(e));
                }
            }
        }
    }
}
