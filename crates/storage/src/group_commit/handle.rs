//! Submitting writes to the writer thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};

use super::{Answer, AppliedReply, CommitStats, Message, Priority, Queued, Reply};
use crate::Mutation;

/// Submits writes to the writer thread. Cheap to clone; one per connection is fine.
#[derive(Clone)]
pub struct WriterHandle {
    pub(super) sender: SyncSender<Message>,
    pub(super) background: SyncSender<Queued>,
    /// Set by whoever queues a background write and sends [`Message::Wake`]; cleared by the
    /// writer before it looks at the background queue. Invariant: while background writes
    /// wait, either the writer is awake or a `Wake` is on its way. (A stale `Wake` costs the
    /// writer one empty pass.)
    pub(super) wake_sent: Arc<AtomicBool>,
    pub(super) stats: Arc<CommitStats>,
    pub(super) failed: Arc<AtomicBool>,
    pub(super) disk_full: Arc<AtomicBool>,
}

impl std::fmt::Debug for WriterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterHandle")
            .field("failed", &self.failed)
            .field("disk_full", &self.disk_full)
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
        self.queue(priority, key, mutation, Answer::Value(reply), false)
            .map_err(|(answer, why)| (answer.into_value(), why))
    }

    /// Queues a write whose caller needs only whether it was applied, not the merged value:
    /// the writer then moves a hot key's value from one write of a commit to the next instead
    /// of copying it for each ([`AppliedReply`]).
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit).
    pub fn submit_applied(
        &self,
        priority: Priority,
        key: Vec<u8>,
        mutation: Mutation,
        reply: AppliedReply,
    ) -> Result<(), (AppliedReply, SubmitError)> {
        self.queue(priority, key, mutation, Answer::Applied(reply), false)
            .map_err(|(answer, why)| match answer {
                Answer::Applied(reply) => (reply, why),
                Answer::Value(_) => unreachable!("queued as an applied-only write"),
            })
    }

    /// Queues a write that is acknowledged only after an fsync covering it, whatever the
    /// store's durability mode: a `periodic` store syncs before answering a commit that holds
    /// one. For a replica's copy of another node's write, which that node counts toward its
    /// quorum: a quorum of copies that sit in page caches is lost together by a power cut.
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit).
    pub fn submit_durable(
        &self,
        priority: Priority,
        key: Vec<u8>,
        mutation: Mutation,
        reply: Reply,
    ) -> Result<(), (Reply, SubmitError)> {
        self.queue(priority, key, mutation, Answer::Value(reply), true)
            .map_err(|(answer, why)| (answer.into_value(), why))
    }

    fn queue(
        &self,
        priority: Priority,
        key: Vec<u8>,
        mutation: Mutation,
        reply: Answer,
        durable: bool,
    ) -> Result<(), (Answer, SubmitError)> {
        let queued = Queued {
            key,
            mutation,
            reply,
            durable,
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

    /// Returns whether the last commit found the disk full ([`Error::NoSpace`]): writes are
    /// refused, reads go on, and the writer takes writes again once a commit finds room (for
    /// `/health`).
    ///
    /// [`Error::NoSpace`]: crate::Error::NoSpace
    pub fn disk_full(&self) -> bool {
        self.disk_full.load(Ordering::Relaxed)
    }
}

impl Answer {
    /// The reply of a write queued with [`Answer::Value`].
    fn into_value(self) -> Reply {
        match self {
            Answer::Value(reply) => reply,
            Answer::Applied(_) => unreachable!("queued with a value reply"),
        }
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
