//! The writer thread's loop: it takes every write queued while it was busy (and a share of the
//! background queue), applies them as one commit, and answers each.
//!
//! Failures, as a state machine (docs/storage-format.md, "A full or failing disk"):
//!
//! ```text
//!  healthy ──commit fails with Error::NoSpace──▶ full (the batch refused; nothing applied)
//!     ▲                                            │ the next commit tries again
//!     └──────────────a commit succeeds─────────────┘
//!  healthy | full ──any other failure of a commit, or of a periodic fsync──▶ failed (final:
//!                   every later write is answered with Error::Stopped, never applied)
//! ```

// Timing here only feeds metrics; simulations use a `Store` directly, without this thread.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvError, TryRecvError};
use std::time::Instant;

use super::syncer::{Failure, Syncer, sync_store};
use super::{
    Answer, BACKGROUND_ALONE, BACKGROUND_PER_COMMIT, CommitStats, MAX_BATCH, Message, Queued,
};
use crate::{Durability, Error, Store, Write, WriteError};

/// The writer thread's state.
pub(super) struct Writer {
    pub(super) store: Arc<dyn Store>,
    pub(super) receiver: Receiver<Message>,
    pub(super) background: Receiver<Queued>,
    /// See [`WriterHandle`](super::WriterHandle)'s field of the name.
    pub(super) wake_sent: Arc<AtomicBool>,
    pub(super) stats: Arc<CommitStats>,
    /// The first failure (of a commit, or of the syncer's fsync): once set, every later write
    /// is answered with it, unacknowledged.
    pub(super) failure: Arc<Failure>,
    /// Set while the last commit found the disk full; cleared by the next that succeeds.
    pub(super) disk_full: Arc<AtomicBool>,
    /// The periodic fsync's thread, in `periodic` mode.
    pub(super) syncer: Option<Syncer>,
}

impl Writer {
    /// Runs until stopped: by [`Message::Stop`], or once every handle is gone.
    pub(super) fn run(mut self) {
        let mut stopping = false;
        // A background write taken out of its queue past a commit's share: the queue is not
        // empty, so the writer must not sleep.
        let mut held: Option<Queued> = None;
        while !stopping || held.is_some() {
            let first = if held.is_some() {
                self.receiver.try_recv().map_err(|e| match e {
                    TryRecvError::Empty => None,
                    TryRecvError::Disconnected => Some(RecvError),
                })
            } else {
                self.receiver.recv().map_err(Some)
            };
            self.stats.wakeups.fetch_add(1, Ordering::Relaxed);
            let mut batch = Vec::new();
            match first {
                Ok(Message::Write(queued)) => batch.push(queued),
                Ok(Message::Wake) | Err(None) => {}
                Ok(Message::Stop) | Err(Some(RecvError)) => stopping = true,
            }
            while batch.len() < MAX_BATCH {
                match self.receiver.try_recv() {
                    Ok(Message::Write(queued)) => batch.push(queued),
                    Ok(Message::Wake) => {}
                    Ok(Message::Stop) => stopping = true,
                    Err(_) => break,
                }
            }
            held = self.take_background(&mut batch, held.take());
            if !batch.is_empty() {
                self.commit(batch);
                if let Some(syncer) = &self.syncer {
                    syncer.mark_dirty();
                }
            }
        }
        // Stopping, the sync comes once both queues are drained (not after every share).
        if let Some(syncer) = self.syncer.take()
            && syncer.stop()
        {
            sync_store(&*self.store, &self.stats, &self.failure);
        }
    }

    /// Adds this commit's share of background writes to `batch` (`held` first); returns one
    /// more if the queue holds more than the share.
    fn take_background(&self, batch: &mut Vec<Queued>, held: Option<Queued>) -> Option<Queued> {
        // Cleared first, as a read-modify-write: a write queued after this is either taken
        // below or followed by a `Wake` (see `WriterHandle::wake_sent`).
        self.wake_sent.swap(false, Ordering::SeqCst);
        let share = if batch.is_empty() {
            BACKGROUND_ALONE
        } else {
            BACKGROUND_PER_COMMIT
        };
        let mut taken = 0;
        if let Some(queued) = held {
            batch.push(queued);
            taken += 1;
        }
        while taken < share {
            match self.background.try_recv() {
                Ok(queued) => {
                    batch.push(queued);
                    taken += 1;
                }
                Err(_) => return None,
            }
        }
        self.background.try_recv().ok()
    }

    fn commit(&mut self, batch: Vec<Queued>) {
        let durable = batch.iter().any(|q| q.durable);
        let (mut writes, answers): (Vec<Write>, Vec<Answer>) = batch
            .into_iter()
            .map(|q| {
                let write = match q.reply {
                    Answer::Value(_) => Write::new(q.key, q.mutation),
                    Answer::Applied(_) => Write::applied_only(q.key, q.mutation),
                };
                (write, q.reply)
            })
            .unzip();
        if let Some(failure) = self.failure.get() {
            for answer in answers {
                answer.refuse(WriteError::Store(Error::stopped(&failure)));
            }
            return;
        }
        let started = Instant::now();
        let mut result = self.store.apply(&mut writes);
        // A `sync` store has synced in `apply`; a `periodic` one syncs now if a write of the
        // batch may only be acknowledged once durable (an fsync covers the whole commit).
        if result.is_ok() && durable && self.store.config().durability != Durability::Sync {
            result = self.store.sync();
            if result.is_ok() {
                self.stats.durable_syncs.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.stats.record(writes.len(), started.elapsed());
        match result {
            Ok(()) => {
                self.disk_full.store(false, Ordering::Relaxed);
                // Superseded writes are answered last: the write holding their key's newest
                // value is answered (and whoever watches commits told of it) before them.
                let mut superseded = Vec::new();
                for (write, answer) in writes.into_iter().zip(answers) {
                    if write.superseded {
                        superseded.push(answer);
                        continue;
                    }
                    // `_else`: the error (and its allocation) is made only when needed, not
                    // for every write.
                    let outcome = write.outcome.unwrap_or_else(|| {
                        Err(WriteError::Store(Error::Io("write not applied".into())))
                    });
                    match answer {
                        Answer::Value(reply) => reply(outcome),
                        Answer::Applied(reply) => {
                            if let Some(value) = reply(outcome.map(Some))
                                && write.give_back
                            {
                                self.store.keep(&write.key, value);
                            }
                        }
                    }
                }
                for answer in superseded {
                    match answer {
                        Answer::Applied(reply) => drop(reply(Ok(None))),
                        // A store supersedes only writes that want no value.
                        Answer::Value(reply) => reply(Err(WriteError::Store(Error::Io(
                            "the store gave a write's value to another write".into(),
                        )))),
                    }
                }
            }
            Err(e) if e.is_retryable() => {
                // The disk is full: nothing of the batch was applied (the store rewound its
                // log), so it is refused and the writer goes on; the next commit tries again.
                self.stats.no_space.fetch_add(1, Ordering::Relaxed);
                self.disk_full.store(true, Ordering::Relaxed);
                for answer in answers {
                    answer.refuse(WriteError::Store(e.clone()));
                }
            }
            Err(e) => {
                // The commit (or its fsync) failed: nothing of the batch may be acknowledged,
                // and after an fsync failure the kernel may have dropped dirty pages, so no later
                // write can be trusted either (PostgreSQL's "fsyncgate"). Stop acknowledging.
                self.fail(e.clone());
                for answer in answers {
                    answer.refuse(WriteError::Store(e.clone()));
                }
            }
        }
    }

    fn fail(&mut self, e: Error) {
        self.failure.set(e);
    }
}
