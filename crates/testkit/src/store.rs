//! Stores that fail or wait on purpose, over a [`MemStore`]: what the tests of the node and of
//! the group committer put under a writer to see what it does when a commit fails or is slow.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use haze_crdt::Value;
use haze_storage::{
    Durability, Error, IoError, KeyPage, MemStore, Mutation, Result, Store, StoreConfig, ValuePage,
    Write,
};

/// A store whose commits always fail, as after a disk error; reads go to an empty
/// [`MemStore`].
#[derive(Debug)]
pub struct FailingStore(MemStore);

impl FailingStore {
    /// An empty store with `config` whose every [`apply`](Store::apply) fails with
    /// `Error::Io("injected: fsync failed")`.
    pub fn new(config: StoreConfig) -> FailingStore {
        FailingStore(MemStore::new(config))
    }
}

impl Store for FailingStore {
    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        self.0.get(key)
    }
    fn apply(&self, _: &mut [Write]) -> Result<()> {
        Err(Error::Io("injected: fsync failed".into()))
    }
    fn sync(&self) -> Result<()> {
        Ok(())
    }
    fn digest(&self, key: &[u8]) -> Result<Option<u64>> {
        self.0.digest(key)
    }
    fn bucket_digests(&self) -> Result<Vec<u64>> {
        self.0.bucket_digests()
    }
    fn bucket_keys(&self, bucket: usize, after: Option<&[u8]>, limit: usize) -> Result<KeyPage> {
        self.0.bucket_keys(bucket, after, limit)
    }
    fn bucket_values(
        &self,
        bucket: usize,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ValuePage> {
        self.0.bucket_values(bucket, after, limit)
    }
    fn delete_buckets(&self, buckets: std::ops::Range<usize>) -> Result<u64> {
        self.0.delete_buckets(buckets)
    }
    fn config(&self) -> &StoreConfig {
        self.0.config()
    }
}

/// A store that can hold its first commit until released, fail its n-th commit, hold its syncs,
/// and count syncs (and tell who waits for one).
#[derive(Debug)]
pub struct Gated {
    inner: MemStore,
    gate: Mutex<bool>,
    opened: Condvar,
    applies: AtomicUsize,
    fail_on: Option<usize>,
    syncs: Mutex<usize>,
    synced: Condvar,
    /// While set, every sync waits in the middle (begun, not finished).
    sync_gate: Mutex<bool>,
    sync_opened: Condvar,
    /// Syncs begun (held ones included).
    syncs_begun: Mutex<usize>,
    sync_began: Condvar,
}

impl Gated {
    /// An empty store with `config`. If `held`, every commit waits until
    /// [`release`](Self::release); commit number `fail_on` (counting from 1), if given, fails
    /// with `Error::Io("injected fsync failure")` and changes nothing.
    pub fn new(config: StoreConfig, held: bool, fail_on: Option<usize>) -> Arc<Self> {
        Arc::new(Gated {
            inner: MemStore::new(config),
            gate: Mutex::new(held),
            opened: Condvar::new(),
            applies: AtomicUsize::new(0),
            fail_on,
            syncs: Mutex::new(0),
            synced: Condvar::new(),
            sync_gate: Mutex::new(false),
            sync_opened: Condvar::new(),
            syncs_begun: Mutex::new(0),
            sync_began: Condvar::new(),
        })
    }

    /// Makes every later sync wait, once begun, until [`release_syncs`](Self::release_syncs):
    /// a disk that takes its time.
    pub fn hold_syncs(&self) {
        *self.sync_gate.lock().unwrap() = true;
    }

    /// Lets every held sync finish, and every later one pass.
    pub fn release_syncs(&self) {
        *self.sync_gate.lock().unwrap() = false;
        self.sync_opened.notify_all();
    }

    /// Waits until a sync has begun (and, if syncs are held, is waiting).
    ///
    /// # Panics
    ///
    /// If none began within 10 s.
    pub fn wait_for_a_sync_to_begin(&self) {
        wait_for_one(&self.syncs_begun, &self.sync_began, "no sync began");
    }

    /// Returns how many commits have begun (held ones included).
    pub fn applies(&self) -> usize {
        self.applies.load(Ordering::SeqCst)
    }

    /// Returns how many times the store has been synced.
    pub fn syncs(&self) -> usize {
        *self.syncs.lock().unwrap()
    }

    /// Waits until the store has been synced at least once.
    ///
    /// # Panics
    ///
    /// If it was not within 10 s.
    pub fn wait_for_a_sync(&self) {
        wait_for_one(&self.syncs, &self.synced, "the store was never synced");
    }

    /// Lets every held commit go on, and every later one pass.
    pub fn release(&self) {
        *self.gate.lock().unwrap() = false;
        self.opened.notify_all();
    }
}

/// Waits until `count`, signalled by `changed`, is above zero; panics with `never` after 10 s
/// (a hang guard, not a timing assertion: without the event this would wait forever).
fn wait_for_one(count: &Mutex<usize>, changed: &Condvar, never: &str) {
    let (count, waited) = changed
        .wait_timeout_while(count.lock().unwrap(), Duration::from_secs(10), |n| *n == 0)
        .unwrap();
    drop(count);
    assert!(!waited.timed_out(), "{never}");
}

impl Store for Gated {
    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        self.inner.get(key)
    }
    fn apply(&self, batch: &mut [Write]) -> Result<()> {
        let n = self.applies.fetch_add(1, Ordering::SeqCst) + 1;
        let mut held = self.gate.lock().unwrap();
        while *held {
            held = self.opened.wait(held).unwrap();
        }
        if self.fail_on == Some(n) {
            return Err(Error::Io("injected fsync failure".into()));
        }
        self.inner.apply(batch)
    }
    fn sync(&self) -> Result<()> {
        *self.syncs_begun.lock().unwrap() += 1;
        self.sync_began.notify_all();
        let mut held = self.sync_gate.lock().unwrap();
        while *held {
            held = self.sync_opened.wait(held).unwrap();
        }
        drop(held);
        *self.syncs.lock().unwrap() += 1;
        self.synced.notify_all();
        Ok(())
    }
    fn digest(&self, key: &[u8]) -> Result<Option<u64>> {
        self.inner.digest(key)
    }
    fn bucket_digests(&self) -> Result<Vec<u64>> {
        self.inner.bucket_digests()
    }
    fn bucket_keys(&self, bucket: usize, after: Option<&[u8]>, limit: usize) -> Result<KeyPage> {
        self.inner.bucket_keys(bucket, after, limit)
    }
    fn bucket_values(
        &self,
        bucket: usize,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ValuePage> {
        self.inner.bucket_values(bucket, after, limit)
    }
    fn delete_buckets(&self, buckets: std::ops::Range<usize>) -> Result<u64> {
        self.inner.delete_buckets(buckets)
    }
    fn config(&self) -> &StoreConfig {
        self.inner.config()
    }
}

/// What the disk does to one commit of a [`Faulty`] store (or to one of its periodic fsyncs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The log append fails with ENOSPC. As the disk store does, nothing is applied (the log is
    /// rewound) and the error is [`Error::NoSpace`]: the store takes writes again after.
    WriteNoSpace,
    /// The log append fails with EIO: nothing is applied, [`Error::Io`].
    WriteEio,
    /// The fsync after the append fails with EIO: the record reached the kernel, not surely
    /// the disk; nothing is published, [`Error::Io`].
    FsyncEio,
    /// The fsync fails with ENOSPC (writeback found no room): [`Error::Io`] as well: an fsync
    /// that failed is never retried.
    FsyncNoSpace,
}

impl Fault {
    fn error(self) -> Error {
        let (context, errno) = match self {
            Fault::WriteNoSpace => ("injected: appending to the log", 28),
            Fault::WriteEio => ("injected: appending to the log", 5),
            Fault::FsyncEio => ("injected: syncing the log", 5),
            Fault::FsyncNoSpace => ("injected: syncing the log", 28),
        };
        let io = IoError::new(context, std::io::Error::from_raw_os_error(errno));
        match self {
            Fault::WriteNoSpace => Error::NoSpace(io),
            _ => Error::Io(io),
        }
    }
}

/// A store whose disk fails on cue, modelled on the disk store's contract: a commit is
/// published to readers only once its log record is written (and, in `sync` mode, synced), a
/// write that finds the disk full changes nothing, and what a crash would keep is tracked apart
/// ([`durable`](Self::durable)): in `sync` mode every commit that succeeded, in `periodic` mode
/// only what a successful [`sync`](Store::sync) covered.
#[derive(Debug)]
pub struct Faulty {
    /// What readers see.
    applied: MemStore,
    /// What a crash would keep.
    durable: MemStore,
    /// Applied in `periodic` mode and not yet synced.
    unsynced: Mutex<Vec<(Vec<u8>, Value)>>,
    /// The fault each next commit meets (`None`: it succeeds); after the script, none.
    commits: Mutex<VecDeque<Option<Fault>>>,
    /// The same for the periodic fsyncs.
    syncs: Mutex<VecDeque<Option<Fault>>>,
    applies: AtomicUsize,
}

impl Faulty {
    /// An empty store with `config` whose commits meet `commits` in turn, and whose periodic
    /// fsyncs meet `syncs` (then succeed).
    pub fn new(
        config: StoreConfig,
        commits: impl IntoIterator<Item = Option<Fault>>,
        syncs: impl IntoIterator<Item = Option<Fault>>,
    ) -> Arc<Faulty> {
        Arc::new(Faulty {
            applied: MemStore::new(config),
            durable: MemStore::new(config),
            unsynced: Mutex::new(Vec::new()),
            commits: Mutex::new(commits.into_iter().collect()),
            syncs: Mutex::new(syncs.into_iter().collect()),
            applies: AtomicUsize::new(0),
        })
    }

    /// Returns how many commits were tried (failed ones included).
    pub fn applies(&self) -> usize {
        self.applies.load(Ordering::SeqCst)
    }

    /// Returns what a crash now would leave of `key`.
    pub fn durable(&self, key: &[u8]) -> Option<Value> {
        self.durable.get(key).expect("a memory store reads")
    }

    fn make_durable(&self, merged: Vec<(Vec<u8>, Value)>) {
        let mut batch: Vec<Write> = merged
            .into_iter()
            .map(|(key, value)| Write::new(key, Mutation::Merge(value)))
            .collect();
        self.durable
            .apply(&mut batch)
            .expect("a memory store applies");
    }
}

impl Store for Faulty {
    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        self.applied.get(key)
    }
    fn apply(&self, batch: &mut [Write]) -> Result<()> {
        self.applies.fetch_add(1, Ordering::SeqCst);
        let fault = self.commits.lock().unwrap().pop_front().flatten();
        let sync = matches!(self.config().durability, Durability::Sync);
        match fault {
            // Nothing reached readers (nor the disk, for certain).
            Some(f @ (Fault::WriteNoSpace | Fault::WriteEio)) => return Err(f.error()),
            Some(f) if sync => return Err(f.error()),
            _ => {}
        }
        self.applied.apply(batch)?;
        let merged: Vec<(Vec<u8>, Value)> = batch
            .iter()
            .filter_map(|w| Some((w.key.clone(), w.outcome.clone()?.ok()?)))
            .collect();
        if sync {
            self.make_durable(merged);
        } else {
            self.unsynced.lock().unwrap().extend(merged);
        }
        Ok(())
    }
    fn sync(&self) -> Result<()> {
        if let Some(fault) = self.syncs.lock().unwrap().pop_front().flatten() {
            return Err(fault.error());
        }
        let pending = std::mem::take(&mut *self.unsynced.lock().unwrap());
        self.make_durable(pending);
        Ok(())
    }
    fn digest(&self, key: &[u8]) -> Result<Option<u64>> {
        self.applied.digest(key)
    }
    fn bucket_digests(&self) -> Result<Vec<u64>> {
        self.applied.bucket_digests()
    }
    fn bucket_keys(&self, bucket: usize, after: Option<&[u8]>, limit: usize) -> Result<KeyPage> {
        self.applied.bucket_keys(bucket, after, limit)
    }
    fn bucket_values(
        &self,
        bucket: usize,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ValuePage> {
        self.applied.bucket_values(bucket, after, limit)
    }
    fn delete_buckets(&self, buckets: std::ops::Range<usize>) -> Result<u64> {
        self.durable.delete_buckets(buckets.clone())?;
        self.applied.delete_buckets(buckets)
    }
    fn config(&self) -> &StoreConfig {
        self.applied.config()
    }
}
