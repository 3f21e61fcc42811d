//! The periodic fsync of a `periodic` store, on a thread of its own.
//!
//! Why not on the writer thread: an fdatasync of the log takes a millisecond or two under load
//! (the 100 ms of writes since the last one go to the disk), and every commit waited behind it
//! — a stall every interval that clients saw as a slower 99th percentile. Redis's `everysec`
//! fsyncs its append-only file on a background thread for the same reason. The writer marks
//! the store dirty after each commit; this thread syncs a dirty store once per interval, while
//! the writer goes on committing (the store's `sync` holds no lock a commit needs while it
//! waits for the disk). An fsync covers at least every record appended before it began, so the
//! promise of `periodic` mode is unchanged: a crash loses at most about one interval of
//! acknowledged writes.
//!
//! A failed fsync stops the writer as before ([`Failure`]): after it, nothing more is
//! acknowledged, because the kernel may have dropped the pages it could not write.

// Timing here only paces the fsyncs; simulations use a `Store` directly, without this thread.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::CommitStats;
use crate::error::io;
use crate::{Error, Store};

/// The writer's first failure, shared by the writer, the syncer and the handles.
#[derive(Debug, Default)]
pub(super) struct Failure {
    /// Set once `first` holds the failure: the handles' quick check (`has_failed`).
    pub(super) flag: Arc<AtomicBool>,
    first: Mutex<Option<Error>>,
}

impl Failure {
    /// The first failure, if any.
    pub(super) fn get(&self) -> Option<Error> {
        if !self.flag.load(Ordering::Acquire) {
            return None;
        }
        self.first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records `e` unless a failure was recorded before.
    pub(super) fn set(&self, e: Error) {
        self.first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(e);
        self.flag.store(true, Ordering::Release);
    }
}

/// Syncs `store` unless the writer has failed; a failure stops the writer.
pub(super) fn sync_store(store: &dyn Store, stats: &CommitStats, failure: &Failure) {
    if failure.get().is_some() {
        return;
    }
    match store.sync() {
        Ok(()) => {
            stats.syncs.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => failure.set(e),
    }
}

/// The syncer thread of a `periodic` store.
#[derive(Debug)]
pub(super) struct Syncer {
    /// Taken by [`stop`](Self::stop).
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Set by the writer after each commit; cleared by whoever syncs.
    dirty: AtomicBool,
    stop: AtomicBool,
}

impl Syncer {
    /// Starts syncing `store` every `every` while it is dirty.
    pub(super) fn start(
        store: Arc<dyn Store>,
        every: Duration,
        stats: Arc<CommitStats>,
        failure: Arc<Failure>,
    ) -> crate::Result<Syncer> {
        let shared = Arc::new(Shared::default());
        let seen = shared.clone();
        let thread = std::thread::Builder::new()
            .name("haze-syncer".into())
            .spawn(move || {
                let mut due = Instant::now() + every;
                while !seen.stop.load(Ordering::Acquire) {
                    let now = Instant::now();
                    if now < due {
                        // `stop` unparks; a spurious wake-up only loops.
                        std::thread::park_timeout(due - now);
                        continue;
                    }
                    // Counted from now, not from `due`: a slow fsync is not followed by a
                    // burst of them.
                    due = now + every;
                    if seen.dirty.swap(false, Ordering::AcqRel) {
                        sync_store(&*store, &stats, &failure);
                    }
                }
            })
            .map_err(io("starting the syncer thread"))?;
        Ok(Syncer {
            thread: Some(thread),
            shared,
        })
    }

    /// Says that a commit was made since the last sync.
    pub(super) fn mark_dirty(&self) {
        self.shared.dirty.store(true, Ordering::Release);
    }

    /// Stops the thread (without a last sync) and returns whether commits were made since the
    /// last sync it made.
    pub(super) fn stop(mut self) -> bool {
        if let Some(thread) = self.thread.take() {
            self.shared.stop.store(true, Ordering::Release);
            thread.thread().unpark();
            let _ = thread.join();
        }
        self.shared.dirty.swap(false, Ordering::AcqRel)
    }
}

impl Drop for Syncer {
    /// A syncer dropped without [`stop`](Self::stop) (its writer thread never started) ends
    /// too, instead of syncing forever.
    fn drop(&mut self) {
        if let Some(thread) = &self.thread {
            self.shared.stop.store(true, Ordering::Release);
            thread.thread().unpark();
        }
    }
}
