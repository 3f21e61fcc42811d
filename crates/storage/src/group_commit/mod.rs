//! The writer thread: group commit.
//!
//! * `handle` — [`WriterHandle`], which queues writes, and why one could not be queued.
//! * `stats` — the writer's counters.
//! * `syncer` — the periodic fsync's thread (`periodic` mode), and the writer's failure.
//! * `writer` — the thread's loop: batches, commits, replies.

mod handle;
mod stats;
mod syncer;
mod writer;

use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use haze_crdt::Value;

pub use self::handle::{SubmitError, WriterHandle};
pub use self::stats::{COMMIT_BUCKET_BOUNDS_MICROS, COMMIT_SIZE_BOUNDS, CommitStats};
use self::syncer::{Failure, Syncer};
use self::writer::Writer;
use crate::error::io;
use crate::{Durability, Mutation, Store, WriteError};

/// Called once with the outcome of a write: after the commit (and, in `sync` mode, the fsync)
/// that made it durable, or with the reason it was refused.
pub type Reply = Box<dyn FnOnce(Result<Value, WriteError>) + Send>;

/// Called once with whether a write that wants no value was applied
/// ([`Write::applied_only`](crate::Write::applied_only)): `Ok(Some(value))` when its outcome
/// holds its key's newest value of the commit (the value whoever watches commits needs),
/// `Ok(None)` when a later write of the same commit holds it and is answered first. It returns
/// the value once done with it, which the store may keep decoded for the key's next commit
/// ([`Store::keep`]).
pub type AppliedReply = Box<dyn FnOnce(Result<Option<Value>, WriteError>) -> Option<Value> + Send>;

/// How a queued write is answered.
pub enum Answer {
    /// With the merged value, or the refusal.
    Value(Reply),
    /// With whether it was applied: the writer need not copy a hot key's value for each of its
    /// writes.
    Applied(AppliedReply),
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Answer::Value(_) => "Answer::Value(..)",
            Answer::Applied(_) => "Answer::Applied(..)",
        })
    }
}

impl Answer {
    /// Answers with a refusal.
    fn refuse(self, e: WriteError) {
        match self {
            Answer::Value(reply) => reply(Err(e)),
            Answer::Applied(reply) => drop(reply(Err(e))),
        }
    }
}

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
    reply: Answer,
    /// Acknowledged only after an fsync that covers it, whatever the store's durability mode
    /// (see [`WriterHandle::submit_durable`]).
    durable: bool,
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
    /// Starts the writer thread for `store` (and, in `periodic` mode, its syncer thread).
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) if the thread cannot be spawned.
    pub fn start(store: Arc<dyn Store>) -> crate::Result<Self> {
        let (sender, receiver) = mpsc::sync_channel(QUEUE_CAPACITY);
        let (background, background_receiver) = mpsc::sync_channel(BACKGROUND_CAPACITY);
        let wake_sent = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(CommitStats::default());
        let failure = Arc::new(Failure::default());
        let failed = failure.flag.clone();
        let disk_full = Arc::new(AtomicBool::new(false));
        let syncer = match store.config().durability {
            Durability::Sync => None,
            Durability::Periodic { interval_ms } => Some(Syncer::start(
                store.clone(),
                std::time::Duration::from_millis(interval_ms.max(1)),
                stats.clone(),
                failure.clone(),
            )?),
        };
        let writer = Writer {
            store,
            receiver,
            background: background_receiver,
            wake_sent: wake_sent.clone(),
            stats: stats.clone(),
            failure,
            disk_full: disk_full.clone(),
            syncer,
        };
        let thread = std::thread::Builder::new()
            .name("haze-writer".into())
            .spawn(move || writer.run())
            .map_err(io("starting the writer thread"))?;
        Ok(GroupCommitter {
            handle: WriterHandle {
                sender,
                background,
                wake_sent,
                stats,
                failed,
                disk_full,
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
