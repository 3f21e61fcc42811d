//! The writer thread: group commit.

// Timing here only paces the periodic fsync and feeds metrics; simulations use a `Store`
// directly, without this thread.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use haze_crdt::Value;

use crate::{Durability, Error, Mutation, Store, Write, WriteError};

/// Called once with the outcome of a write: after the commit (and, in `sync` mode, the fsync)
/// that made it durable, or with the reason it was refused.
pub type Reply = Box<dyn FnOnce(Result<Value, WriteError>) + Send>;

enum Message {
    Write(Queued),
    /// Background writes are waiting (see [`WriterHandle::submit_with`]).
    Wake,
    Stop,
}

/// A write waiting for the writer.
struct Queued {
    key: Vec<u8>,
    mutation: Mutation,
    reply: Reply,
}

/// Which of the writer's two queues a write waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    /// Clients' writes and what a client waits for (a coordinator's copies to the other
    /// replicas, read repairs), and anti-entropy: every one waiting joins the next commit.
    #[default]
    Foreground,
    /// Work nobody waits for (a move's stream): a commit takes at most
    /// [`BACKGROUND_PER_COMMIT`] of them after its foreground writes ([`BACKGROUND_ALONE`]
    /// when there are none), so a client's write waits behind at most one commit of them,
    /// never behind the thousands a stream keeps queued. Merges commute, so the order in which
    /// the two queues are applied changes no outcome.
    Background,
}

/// Counters of the writer thread, for `/metrics`.
#[derive(Debug, Default)]
pub struct CommitStats {
    /// Commits made (one per group of writes).
    pub commits: AtomicU64,
    /// Writes applied (acknowledged or refused by their own rules).
    pub writes: AtomicU64,
    /// Total time spent committing (applying and, in `sync` mode, fsyncing), in microseconds.
    pub commit_micros: AtomicU64,
    /// Commits that took at most 0.1, 0.5, 1, 5, 10, 50 ms, and the rest.
    pub commit_micros_buckets: [AtomicU64; 7],
    /// Commits of at most 1, 2, 4, 16, 64, 256, 1024 writes, and more: how well writes group.
    pub commit_size_buckets: [AtomicU64; 8],
    /// Periodic fsyncs (in `periodic` mode).
    pub syncs: AtomicU64,
    /// Passes of the writer's loop: it woke up (for a write, a `Wake`, a stop, or a periodic
    /// fsync), or went on without sleeping because background writes were left.
    pub wakeups: AtomicU64,
}

/// The upper bounds of [`CommitStats::commit_size_buckets`], in writes.
pub const COMMIT_SIZE_BOUNDS: [u64; 7] = [1, 2, 4, 16, 64, 256, 1024];

/// The upper bounds of [`CommitStats::commit_micros_buckets`], in microseconds.
pub const COMMIT_BUCKET_BOUNDS_MICROS: [u64; 6] = [100, 500, 1_000, 5_000, 10_000, 50_000];

impl CommitStats {
    fn record(&self, writes: usize, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(writes as u64, Ordering::Relaxed);
        self.commit_micros.fetch_add(micros, Ordering::Relaxed);
        let bucket = COMMIT_BUCKET_BOUNDS_MICROS
            .iter()
            .position(|&b| micros <= b)
            .unwrap_or(6);
        self.commit_micros_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let size = COMMIT_SIZE_BOUNDS
            .iter()
            .position(|&b| writes as u64 <= b)
            .unwrap_or(7);
        self.commit_size_buckets[size].fetch_add(1, Ordering::Relaxed);
    }
}

/// Submits writes to the writer thread. Cheap to clone; one per connection is fine.
#[derive(Clone)]
pub struct WriterHandle {
    sender: SyncSender<Message>,
    background: SyncSender<Queued>,
    /// Set by whoever queues a background write and sends [`Message::Wake`]; cleared by the
    /// writer before it looks at the background queue. Invariant: while background writes
    /// wait, either the writer is awake or a `Wake` is on its way. (A stale `Wake` costs the
    /// writer one empty pass.)
    wake_sent: Arc<AtomicBool>,
    stats: Arc<CommitStats>,
    failed: Arc<AtomicBool>,
}

impl std::fmt::Debug for WriterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterHandle")
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl WriterHandle {
    /// Queues a write of `mutation` to `key` in the foreground queue; `reply` is called with
    /// its outcome.
    ///
    /// # Errors
    ///
    /// Gives `reply` back, with the reason, when the queue is full (the caller should answer
    /// "overloaded") or the writer has stopped.
    pub fn submit(
        &self,
        key: Vec<u8>,
        mutation: Mutation,
        reply: Reply,
    ) -> Result<(), (Reply, SubmitError)> {
        self.submit_with(Priority::Foreground, key, mutation, reply)
    }

    /// Queues a write in the queue of `priority`.
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit).
    pub fn submit_with(
        &self,
        priority: Priority,
        key: Vec<u8>,
        mutation: Mutation,
        reply: Reply,
    ) -> Result<(), (Reply, SubmitError)> {
        let queued = Queued {
            key,
            mutation,
            reply,
        };
        let (refused, why) = match priority {
            Priority::Foreground => match self.sender.try_send(Message::Write(queued)) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(Message::Write(q))) => (q, SubmitError::Full),
                Err(TrySendError::Disconnected(Message::Write(q))) => (q, SubmitError::Stopped),
                Err(_) => unreachable!("only writes are sent through handles"),
            },
            Priority::Background => match self.background.try_send(queued) {
                Ok(()) => {
                    // A full foreground queue needs no wake: the writer is busy and looks at
                    // the background queue after each commit (and then clears `wake_sent`).
                    if !self.wake_sent.swap(true, Ordering::SeqCst) {
                        let _ = self.sender.try_send(Message::Wake);
                    }
                    return Ok(());
                }
                Err(TrySendError::Full(q)) => (q, SubmitError::Full),
                Err(TrySendError::Disconnected(q)) => (q, SubmitError::Stopped),
            },
        };
        Err((refused.reply, why))
    }

    /// Returns the writer's counters.
    pub fn stats(&self) -> &CommitStats {
        &self.stats
    }

    /// Returns whether the store failed (an fsync or write error): nothing more is acknowledged.
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}

/// Why a write could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The queue is full: the node is overloaded.
    #[error("the write queue is full")]
    Full,
    /// The writer has stopped.
    #[error("the writer has stopped")]
    Stopped,
}

/// The writer thread: it owns all writes to a [`Store`], applies the writes that arrive together
/// as one batch (one commit, one fsync in `sync` mode), and acknowledges them after.
#[derive(Debug)]
pub struct GroupCommitter {
    handle: WriterHandle,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The most writes applied in one commit.
const MAX_BATCH: usize = 1024;
/// The most writes waiting in the queue before `submit` says the node is overloaded.
const QUEUE_CAPACITY: usize = 64 * 1024;
/// The most background writes waiting before `submit_with` says the node is overloaded.
const BACKGROUND_CAPACITY: usize = 64 * 1024;
/// The most background writes of a commit that also holds foreground writes (a few hundred
/// microseconds of merges).
pub const BACKGROUND_PER_COMMIT: usize = 128;
/// The most background writes of a commit without foreground writes: nobody waits then, and
/// fewer, larger commits cost less (in `sync` mode each commit is an fdatasync). A client's
/// write that arrives during such a commit waits for it (a millisecond or two).
pub const BACKGROUND_ALONE: usize = 512;

impl GroupCommitter {
    /// Starts the writer thread for `store`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the thread cannot be spawned.
    pub fn start(store: Arc<dyn Store>) -> crate::Result<Self> {
        let (sender, receiver) = mpsc::sync_channel(QUEUE_CAPACITY);
        let (background, background_receiver) = mpsc::sync_channel(BACKGROUND_CAPACITY);
        let wake_sent = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(CommitStats::default());
        let failed = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            store,
            receiver,
            background: background_receiver,
            wake_sent: wake_sent.clone(),
            stats: stats.clone(),
            failed: failed.clone(),
            failure: None,
        };
        let thread = std::thread::Builder::new()
            .name("haze-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| Error::Io(e.to_string()))?;
        Ok(GroupCommitter {
            handle: WriterHandle {
                sender,
                background,
                wake_sent,
                stats,
                failed,
            },
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Returns a handle to submit writes.
    pub fn handle(&self) -> WriterHandle {
        self.handle.clone()
    }

    /// Applies the writes already queued, makes everything durable, and stops the thread.
    pub fn shutdown(&self) {
        // The queue may be full; a blocking send waits for room, which the writer makes.
        let _ = self.handle.sender.send(Message::Stop);
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for GroupCommitter {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Writer {
    store: Arc<dyn Store>,
    receiver: Receiver<Message>,
    background: Receiver<Queued>,
    wake_sent: Arc<AtomicBool>,
    stats: Arc<CommitStats>,
    failed: Arc<AtomicBool>,
    /// The first failure: once set, every later write is answered with it, unacknowledged.
    failure: Option<Error>,
}

impl Writer {
    fn run(mut self) {
        let interval = match self.store.config().durability {
            Durability::Sync => None,
            Durability::Periodic { interval_ms } => Some(Duration::from_millis(interval_ms.max(1))),
        };
        let mut last_sync = Instant::now();
        let mut dirty = false;
        let mut stopping = false;
        // A background write taken out of its queue past a commit's share: the queue is not
        // empty, so the writer must not sleep.
        let mut held: Option<Queued> = None;
        while !stopping || held.is_some() {
            let first = if held.is_some() {
                self.receiver.try_recv().map_err(|e| match e {
                    TryRecvError::Empty => RecvTimeoutError::Timeout,
                    TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                })
            } else {
                match interval {
                    None => self
                        .receiver
                        .recv()
                        .map_err(|_| RecvTimeoutError::Disconnected),
                    Some(every) => self
                        .receiver
                        .recv_timeout(every.saturating_sub(last_sync.elapsed())),
                }
            };
            self.stats.wakeups.fetch_add(1, Ordering::Relaxed);
            let mut batch = Vec::new();
            match first {
                Ok(Message::Write(queued)) => batch.push(queued),
                Ok(Message::Wake) | Err(RecvTimeoutError::Timeout) => {}
                Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => stopping = true,
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
                dirty = true;
            }
            // Stopping, the sync comes once both queues are drained (not after every share).
            let drained = stopping && held.is_none();
            if let Some(every) = interval
                && (drained || last_sync.elapsed() >= every)
            {
                // Restart the interval even when there was nothing to sync: otherwise an idle
                // writer would wait zero time, again and again (a busy loop).
                if dirty {
                    self.sync();
                }
                last_sync = Instant::now();
                dirty = false;
            }
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
        let (mut writes, replies): (Vec<Write>, Vec<Reply>) = batch
            .into_iter()
            .map(|q| (Write::new(q.key, q.mutation), q.reply))
            .unzip();
        if let Some(failure) = &self.failure {
            for reply in replies {
                reply(Err(WriteError::Store(Error::Stopped(failure.to_string()))));
            }
            return;
        }
        let started = Instant::now();
        let result = self.store.apply(&mut writes);
        self.stats.record(writes.len(), started.elapsed());
        match result {
            Ok(()) => {
                for (write, reply) in writes.into_iter().zip(replies) {
                    let outcome = write.outcome.unwrap_or(Err(WriteError::Store(Error::Io(
                        "write not applied".into(),
                    ))));
                    reply(outcome);
                }
            }
            Err(e) => {
                // The commit (or its fsync) failed: nothing of the batch may be acknowledged,
                // and after an fsync failure the kernel may have dropped dirty pages, so no later
                // write can be trusted either (PostgreSQL's "fsyncgate"). Stop acknowledging.
                self.fail(e.clone());
                for reply in replies {
                    reply(Err(WriteError::Store(e.clone())));
                }
            }
        }
    }

    fn sync(&mut self) {
        if self.failure.is_some() {
            return;
        }
        match self.store.sync() {
            Ok(()) => {
                self.stats.syncs.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => self.fail(e),
        }
    }

    fn fail(&mut self, e: Error) {
        self.failed.store(true, Ordering::Relaxed);
        self.failure = Some(e);
    }
}
