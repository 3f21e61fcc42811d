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

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use redb::{Database, DatabaseError};

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
}

impl Db {
    pub(crate) fn new(path: PathBuf, db: Database) -> Db {
        Db {
            path,
            current: RwLock::new(Some(Arc::new(db))),
        }
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
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        drop(current.take());
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
