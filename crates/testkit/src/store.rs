//! Stores that fail or wait on purpose, over a [`MemStore`]: what the tests of the node and of
//! the group committer put under a writer to see what it does when a commit fails or is slow.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use haze_crdt::Value;
use haze_storage::{Error, KeyPage, MemStore, Result, Store, StoreConfig, ValuePage, Write};

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

/// A store that can hold its first commit until released, fail its n-th commit, and count syncs
/// (and tell who waits for one).
#[derive(Debug)]
pub struct Gated {
    inner: MemStore,
    gate: Mutex<bool>,
    opened: Condvar,
    applies: AtomicUsize,
    fail_on: Option<usize>,
    syncs: Mutex<usize>,
    synced: Condvar,
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
        })
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
        // A hang guard, not a timing assertion: without the sync this would wait forever.
        let (syncs, waited) = self
            .synced
            .wait_timeout_while(
                self.syncs.lock().unwrap(),
                Duration::from_secs(10),
                |syncs| *syncs == 0,
            )
            .unwrap();
        drop(syncs);
        assert!(!waited.timed_out(), "the store was never synced");
    }

    /// Lets every held commit go on, and every later one pass.
    pub fn release(&self) {
        *self.gate.lock().unwrap() = false;
        self.opened.notify_all();
    }
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
