//! The local replica: the lower layer of a node. Its store, the writer thread and the one write
//! path ([`Writes`]), typed operations applied with the node's actor id, key lists remembered
//! for sync, and reads. It knows nothing of clusters: the cluster layer above it hooks into its
//! writes ([`WriteHooks`]) and reads through it.

mod key_lists;
mod ops;
mod writes;

use std::sync::{Arc, Mutex};

use haze_crdt::{ActorId, Hlc, PhysicalClock, Value};
use haze_protocol::Response;
use haze_storage::{GroupCommitter, Store};

use crate::error::RequestError;
use key_lists::KeyLists;
pub(crate) use ops::CountedOp;
use ops::OpContext;
pub use writes::{Reply, WriteHooks, WriteRequest, Writes};

/// How many bytes of devices' key lists a node remembers for sync.
const KEY_LIST_BYTES: usize = 32 * 1024 * 1024;

/// A node's own copy of its data.
pub struct Replica {
    store: Arc<dyn Store>,
    committer: GroupCommitter,
    writes: Writes,
    actor: ActorId,
    key_lists: Mutex<KeyLists>,
    /// Store work runs on the calling task (a simulation) rather than a blocking thread.
    inline: bool,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("actor", &self.actor)
            .field("inline", &self.inline)
            .finish_non_exhaustive()
    }
}

impl Replica {
    /// Opens the replica over `store`: starts its writer thread. `actor` is the id typed
    /// operations are applied with (fresh at every start: see `ActorId`'s docs). With `inline`,
    /// writes and store scans run on the calling task: for deterministic simulations, where no
    /// other thread may run; not for serving.
    ///
    /// # Errors
    ///
    /// If the writer thread cannot start.
    pub fn open(
        store: Arc<dyn Store>,
        actor: ActorId,
        clock: Arc<dyn PhysicalClock + Send + Sync>,
        inline: bool,
    ) -> Result<Replica, haze_storage::Error> {
        let committer = GroupCommitter::start(store.clone())?;
        let ops = OpContext {
            actor,
            hlc: Arc::new(Mutex::new(Hlc::new())),
            clock,
        };
        let writes = Writes::new(store.clone(), committer.handle(), ops, inline);
        Ok(Replica {
            store,
            committer,
            writes,
            actor,
            key_lists: Mutex::new(KeyLists::new(KEY_LIST_BYTES)),
            inline,
        })
    }

    /// Returns the write handle: every write goes through it.
    pub fn writes(&self) -> &Writes {
        &self.writes
    }

    /// The node's clock now, in milliseconds since the epoch (the one its registers are stamped
    /// with).
    pub fn now_ms(&self) -> u64 {
        self.writes.clock().now_millis()
    }

    /// Returns the actor id of this replica's typed operations.
    pub fn actor(&self) -> ActorId {
        self.actor
    }

    /// Returns the store.
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Returns the writer's counters.
    pub fn commit_stats(&self) -> &haze_storage::CommitStats {
        self.writes.writer().stats()
    }

    /// Returns whether the store failed (then writes are refused with `Unavailable`).
    pub fn has_failed(&self) -> bool {
        self.writes.writer().has_failed()
    }

    /// Returns whether the last commit found the disk full: writes are refused (`unavailable`)
    /// until a commit finds room again; reads go on.
    pub fn disk_full(&self) -> bool {
        self.writes.writer().disk_full()
    }

    /// Returns the value of `key`.
    ///
    /// # Errors
    ///
    /// [`RequestError`] if the key is too long or the store cannot read.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>, RequestError> {
        self.writes.check_key(key)?;
        // Reads are short and never wait for the writer (MVCC), so they run inline.
        Ok(self.store.get(key)?)
    }

    /// Returns the encoding of `key`'s value, for a caller that passes it on as it is
    /// ([`haze_storage::Store::get_encoded`]).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn get_encoded(&self, key: &[u8]) -> Result<Option<Vec<u8>>, RequestError> {
        self.writes.check_key(key)?;
        Ok(self.store.get_encoded(key)?)
    }

    /// Returns the digest of `key`'s value.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn digest(&self, key: &[u8]) -> Result<Option<u64>, RequestError> {
        self.writes.check_key(key)?;
        Ok(self.store.digest(key)?)
    }

    /// Refuses a key over the limit.
    pub(crate) fn check_key(&self, key: &[u8]) -> Result<(), RequestError> {
        self.writes.check_key(key)
    }

    /// Runs `f` on the store off the threads that serve connections (inline when writes are:
    /// in a simulation no other thread may run).
    ///
    /// # Errors
    ///
    /// If the blocking task panicked.
    pub(crate) async fn on_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> T + Send + 'static,
    ) -> Result<T, RequestError> {
        if self.inline {
            return Ok(f(&*self.store));
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&*store))
            .await
            .map_err(|e| RequestError::Unavailable(format!("a store task failed: {e}")))
    }

    /// Returns the digests of `keys` from the store, off the threads that serve connections.
    pub(crate) async fn digests(&self, keys: Arc<Vec<Vec<u8>>>) -> Result<Response, RequestError> {
        let max_key = self.store.config().max_key_bytes;
        self.on_store(move |store| {
            keys.iter()
                .map(|key| {
                    if key.len() > max_key {
                        return Err(RequestError::from(haze_storage::WriteError::KeyTooLarge {
                            size: key.len(),
                            limit: max_key,
                        }));
                    }
                    Ok(store.digest(key)?)
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Response::Digests)
        })
        .await?
    }

    /// Returns the keys of the list named `list`, remembering them when they come along;
    /// `Ok(None)` if the list is unknown and its keys did not come.
    ///
    /// # Errors
    ///
    /// `BadRequest` if `keys` do not hash to `list`.
    pub(crate) fn resolve_list(
        &self,
        list: u64,
        keys: Option<Vec<Vec<u8>>>,
    ) -> Result<Option<Arc<Vec<Vec<u8>>>>, RequestError> {
        let lists = || {
            self.key_lists
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let keys = match keys {
            Some(keys) => {
                if haze_protocol::key_list_id(&keys) != list {
                    return Err(RequestError::BadRequest(
                        "the list id does not match its keys".into(),
                    ));
                }
                let keys = Arc::new(keys);
                lists().insert(list, keys.clone());
                keys
            }
            None => match lists().get(list) {
                Some(keys) => keys,
                None => return Ok(None),
            },
        };
        Ok(Some(keys))
    }

    /// Stops the writer after the queued writes, making everything durable.
    pub fn shutdown(&self) {
        self.committer.shutdown();
    }
}
