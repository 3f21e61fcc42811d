//! The one write path of a node: every write, whatever front end or peer it came from, is
//! submitted here.
//!
//! [`Writes`] checks the key, asks its hooks whether the write may be taken
//! ([`WriteHooks::admit`]), applies it (on the writer thread with group commit, or inline on
//! the calling task in a simulation, where no other thread may run), and after the commit tells
//! every hook ([`WriteHooks::committed`]) before the caller hears the outcome. The cluster layer
//! hooks in there: a partition streaming from this node forwards what is committed to it (no
//! acknowledged write is lost while a partition streams), and a partition being handed back
//! refuses writes. A new front end gets both for free.

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, PoisonError, RwLock};

use haze_crdt::Value;
use haze_protocol::TypedOp;
use haze_storage::{Mutation, Priority, Store, Write, WriteError, WriterHandle};
use tokio::sync::oneshot;

use super::ops::{CountedOp, OpContext};
use crate::error::RequestError;

/// A write, as [`Writes`] takes it.
#[derive(Debug, Clone)]
pub enum WriteRequest {
    /// Merge a full state.
    Merge(Value),
    /// Apply a typed operation with the node's actor id.
    Op(TypedOp),
}

/// What the layers above the local replica do around each write.
pub trait WriteHooks: Send + Sync {
    /// Whether `key` may be written now; an error refuses the write before it is queued.
    fn admit(&self, key: &[u8]) -> Result<(), RequestError> {
        let _ = key;
        Ok(())
    }

    /// Called after every commit of a write to `key`, with the merged value, before the writer
    /// answers (on the writer's thread, or the caller's task when writes are inline): it must
    /// not block.
    fn committed(&self, key: &[u8], value: &Value);
}

/// Where a write's outcome goes.
pub type Reply = Box<dyn FnOnce(Result<Value, RequestError>) + Send>;

/// Where a write's outcome goes when its caller needs only whether it was applied.
pub(crate) type AppliedReply = Box<dyn FnOnce(Result<(), RequestError>) + Send>;

/// How a write is answered.
enum Answer {
    Value(Reply),
    Applied(AppliedReply),
}

impl Answer {
    fn refuse(self, e: RequestError) {
        match self {
            Answer::Value(reply) => reply(Err(e)),
            Answer::Applied(reply) => reply(Err(e)),
        }
    }
}

/// The node's write handle: the only way to write to its store.
pub struct Writes {
    store: Arc<dyn Store>,
    writer: WriterHandle,
    ops: OpContext,
    max_key_bytes: usize,
    /// Apply on the caller's task (a simulation) rather than the writer thread.
    inline: bool,
    /// Replaced whole when a hook is added (rarely: at start), so that a write takes them with
    /// one reference count.
    hooks: RwLock<Arc<[Arc<dyn WriteHooks>]>>,
}

impl std::fmt::Debug for Writes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writes")
            .field("inline", &self.inline)
            .finish_non_exhaustive()
    }
}

impl Writes {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        writer: WriterHandle,
        ops: OpContext,
        inline: bool,
    ) -> Writes {
        Writes {
            max_key_bytes: store.config().max_key_bytes,
            store,
            writer,
            ops,
            inline,
            hooks: RwLock::new(Arc::new([])),
        }
    }

    /// Adds hooks called around every write from now on.
    pub fn hook(&self, hooks: Arc<dyn WriteHooks>) {
        let mut current = self.hooks.write().unwrap_or_else(PoisonError::into_inner);
        let mut all = current.to_vec();
        all.push(hooks);
        *current = all.into();
    }

    fn hooks(&self) -> Arc<[Arc<dyn WriteHooks>]> {
        self.hooks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn clock(&self) -> &dyn haze_crdt::PhysicalClock {
        &*self.ops.clock
    }

    pub(crate) fn writer(&self) -> &WriterHandle {
        &self.writer
    }

    /// Refuses a key over the limit.
    pub(crate) fn check_key(&self, key: &[u8]) -> Result<(), RequestError> {
        if key.len() > self.max_key_bytes {
            return Err(WriteError::KeyTooLarge {
                size: key.len(),
                limit: self.max_key_bytes,
            }
            .into());
        }
        Ok(())
    }

    /// Queues a write (in the writer's queue of `priority`) and returns at once; `reply` gets
    /// the merged value once it is durable, after every hook heard of the commit.
    pub fn submit(&self, key: Vec<u8>, write: WriteRequest, priority: Priority, reply: Reply) {
        self.submit_as(key, write, priority, false, reply);
    }

    /// As [`submit`](Self::submit); with `durable`, the outcome comes only after an fsync that
    /// covers the write, whatever the node's durability mode.
    fn submit_as(
        &self,
        key: Vec<u8>,
        write: WriteRequest,
        priority: Priority,
        durable: bool,
        reply: Reply,
    ) {
        let mutation = self.mutation(write);
        self.submit_mutation(key, mutation, priority, durable, Answer::Value(reply));
    }

    /// Queues a [`CountedOp`] as [`submit`](Self::submit) queues a typed operation, for a
    /// caller that needs only whether it was applied: once it is (before `reply` runs),
    /// `changed` holds what it counted. The writer need not copy the key's value for it.
    pub(crate) fn submit_counted(
        &self,
        key: Vec<u8>,
        op: CountedOp,
        changed: Arc<AtomicI64>,
        reply: AppliedReply,
    ) {
        let mutation = self.ops.counted(op, changed);
        self.submit_foreground_applied(key, mutation, reply);
    }

    /// Queues a write as [`submit`](Self::submit) does (foreground, not forced durable), for a
    /// caller that needs only whether it was applied (a protocol `Apply`): the writer need not
    /// copy the key's value for it.
    pub(crate) fn submit_applied(&self, key: Vec<u8>, write: WriteRequest, reply: AppliedReply) {
        let mutation = self.mutation(write);
        self.submit_foreground_applied(key, mutation, reply);
    }

    fn submit_foreground_applied(&self, key: Vec<u8>, mutation: Mutation, reply: AppliedReply) {
        let answer = Answer::Applied(reply);
        self.submit_mutation(key, mutation, Priority::Foreground, false, answer);
    }

    fn mutation(&self, write: WriteRequest) -> Mutation {
        match write {
            WriteRequest::Merge(value) => Mutation::Merge(value),
            WriteRequest::Op(op) => self.ops.mutation(op),
        }
    }

    fn submit_mutation(
        &self,
        key: Vec<u8>,
        mutation: Mutation,
        priority: Priority,
        durable: bool,
        reply: Answer,
    ) {
        let hooks = self.hooks();
        if let Err(e) = self
            .check_key(&key)
            .and_then(|()| hooks.iter().try_for_each(|h| h.admit(&key)))
        {
            return reply.refuse(e);
        }
        // Whether a hook cares about the key is decided after the commit (a partition may
        // start streaming meanwhile), so the key is kept: a clone costs little beside a commit.
        // A write the writer superseded brings no value: the write of the same commit that
        // holds the key's newest value tells the hooks, before this one is answered.
        let noted = key.clone();
        let tell = move |value: &Value| {
            for hook in hooks.iter() {
                hook.committed(&noted, value);
            }
        };
        if self.inline {
            let outcome = self.apply_inline(key, mutation, durable);
            if let Ok(value) = &outcome {
                tell(value);
            }
            return match reply {
                Answer::Value(reply) => reply(outcome.map_err(RequestError::from)),
                Answer::Applied(reply) => reply(outcome.map(drop).map_err(RequestError::from)),
            };
        }
        match reply {
            Answer::Value(reply) => {
                let done: haze_storage::Reply = Box::new(move |outcome| {
                    if let Ok(value) = &outcome {
                        tell(value);
                    }
                    reply(outcome.map_err(RequestError::from));
                });
                let queued = match durable {
                    true => self.writer.submit_durable(priority, key, mutation, done),
                    false => self.writer.submit_with(priority, key, mutation, done),
                };
                if let Err((done, e)) = queued {
                    done(Err(WriteError::NotQueued(e)));
                }
            }
            Answer::Applied(reply) => {
                // The value goes back to the writer, which may keep it decoded for the key's
                // next commit.
                let done: haze_storage::AppliedReply = Box::new(move |outcome| match outcome {
                    Ok(value) => {
                        if let Some(value) = &value {
                            tell(value);
                        }
                        reply(Ok(()));
                        value
                    }
                    Err(e) => {
                        reply(Err(RequestError::from(e)));
                        None
                    }
                });
                if let Err((done, e)) = self.writer.submit_applied(priority, key, mutation, done) {
                    done(Err(WriteError::NotQueued(e)));
                }
            }
        }
    }

    /// Applies a write and returns the merged value once it is durable.
    ///
    /// # Errors
    ///
    /// [`RequestError`]: type mismatch, too large, refused, overloaded, unavailable.
    pub async fn write(
        &self,
        key: Vec<u8>,
        write: WriteRequest,
        priority: Priority,
    ) -> Result<Value, RequestError> {
        let (tx, rx) = oneshot::channel();
        self.submit(
            key,
            write,
            priority,
            Box::new(move |outcome| {
                let _ = tx.send(outcome);
            }),
        );
        rx.await
            .unwrap_or_else(|_| Err(RequestError::Unavailable("the writer stopped".into())))
    }

    /// Merges several keys: all are queued before any is awaited, so the writer commits them
    /// together. One outcome per item, in order.
    pub async fn merge_batch(
        &self,
        items: Vec<(Vec<u8>, Value)>,
        priority: Priority,
    ) -> Vec<Result<Value, RequestError>> {
        self.merge_batch_as(items, priority, false).await
    }

    /// As [`merge_batch`](Self::merge_batch), for other nodes' copies, which they count toward
    /// a quorum: each is acknowledged only once an fsync covers it, even on a `periodic` node
    /// (docs/cluster.md, "Durability of copies").
    pub async fn merge_copies(
        &self,
        items: Vec<(Vec<u8>, Value)>,
        priority: Priority,
    ) -> Vec<Result<Value, RequestError>> {
        self.merge_batch_as(items, priority, true).await
    }

    async fn merge_batch_as(
        &self,
        items: Vec<(Vec<u8>, Value)>,
        priority: Priority,
        durable: bool,
    ) -> Vec<Result<Value, RequestError>> {
        let pending: Vec<_> = items
            .into_iter()
            .map(|(key, value)| {
                let (tx, rx) = oneshot::channel();
                let reply: Reply = Box::new(move |outcome| {
                    let _ = tx.send(outcome);
                });
                self.submit_as(key, WriteRequest::Merge(value), priority, durable, reply);
                rx
            })
            .collect();
        let mut results = Vec::with_capacity(pending.len());
        for rx in pending {
            results.push(
                rx.await.unwrap_or_else(|_| {
                    Err(RequestError::Unavailable("the writer stopped".into()))
                }),
            );
        }
        results
    }

    /// Applies one write on the calling thread (inline writes).
    fn apply_inline(
        &self,
        key: Vec<u8>,
        mutation: Mutation,
        durable: bool,
    ) -> Result<Value, WriteError> {
        let mut batch = [Write::new(key, mutation)];
        self.store.apply(&mut batch)?;
        if (durable || self.store.config().durability == haze_storage::Durability::Sync)
            && !planted!(AckBeforeDurable)
        {
            self.store.sync()?;
        }
        let [write] = batch;
        write.outcome.unwrap_or_else(|| {
            Err(WriteError::Store(haze_storage::Error::Io(
                "the store left a write unapplied".into(),
            )))
        })
    }
}
