//! A simulated disk: a store whose writes survive a process crash (the kernel keeps them) but
//! not a power loss unless they were synced. A node acknowledges a write in `sync` mode only
//! after the sync that covers it, so a power loss across every node loses nothing
//! acknowledged; a node that acknowledged before syncing (the planted bug `AckBeforeDurable`)
//! loses what it acknowledged.

use std::sync::{Arc, Mutex, PoisonError};

use haze_crdt::Value;
use haze_storage::{
    DIGEST_BUCKETS, KeyPage, MemStore, Mutation, Store, StoreConfig, ValuePage, Write,
};

/// The store of one simulated node's disk.
#[derive(Debug)]
pub struct SimDisk {
    /// What the node reads and writes: every applied write.
    live: MemStore,
    /// What a power loss keeps: every synced write.
    durable: Arc<MemStore>,
    /// Writes applied since the last sync, in order.
    unsynced: Mutex<Vec<(Vec<u8>, Value)>>,
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> SimDisk {
        SimDisk {
            live: MemStore::new(StoreConfig::default()),
            durable: Arc::new(MemStore::new(StoreConfig::default())),
            unsynced: Mutex::default(),
        }
    }

    /// The disk as a power loss leaves it: what was synced, nothing else.
    pub fn after_power_loss(&self) -> SimDisk {
        let live = MemStore::new(StoreConfig::default());
        copy_into(&self.durable, &live);
        SimDisk {
            live,
            durable: self.durable.clone(),
            unsynced: Mutex::default(),
        }
    }

    /// How many applied writes a power loss now would lose.
    pub fn unsynced(&self) -> usize {
        self.unsynced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Merges every value of `from` into `to`.
fn copy_into(from: &MemStore, to: &MemStore) {
    for bucket in 0..DIGEST_BUCKETS {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let (page, more) = from
                .bucket_values(bucket, after.as_deref(), 1024)
                .expect("memory reads");
            after = page.last().map(|(k, _)| k.clone());
            let mut writes: Vec<Write> = page
                .into_iter()
                .map(|(k, v)| Write::new(k, Mutation::Merge(v)))
                .collect();
            to.apply(&mut writes).expect("memory writes");
            if !more {
                break;
            }
        }
    }
}

impl Store for SimDisk {
    fn get(&self, key: &[u8]) -> haze_storage::Result<Option<Value>> {
        self.live.get(key)
    }

    fn apply(&self, batch: &mut [Write]) -> haze_storage::Result<()> {
        self.live.apply(batch)?;
        let mut unsynced = self.unsynced.lock().unwrap_or_else(PoisonError::into_inner);
        for write in batch.iter() {
            if let Some(Ok(value)) = &write.outcome {
                unsynced.push((write.key.clone(), value.clone()));
            }
        }
        Ok(())
    }

    fn sync(&self) -> haze_storage::Result<()> {
        let unsynced =
            std::mem::take(&mut *self.unsynced.lock().unwrap_or_else(PoisonError::into_inner));
        let mut writes: Vec<Write> = unsynced
            .into_iter()
            .map(|(k, v)| Write::new(k, Mutation::Merge(v)))
            .collect();
        self.durable.apply(&mut writes)
    }

    fn digest(&self, key: &[u8]) -> haze_storage::Result<Option<u64>> {
        self.live.digest(key)
    }

    fn bucket_digests(&self) -> haze_storage::Result<Vec<u64>> {
        self.live.bucket_digests()
    }

    fn bucket_keys(
        &self,
        bucket: usize,
        after: Option<&[u8]>,
        limit: usize,
    ) -> haze_storage::Result<KeyPage> {
        self.live.bucket_keys(bucket, after, limit)
    }

    fn bucket_values(
        &self,
        bucket: usize,
        after: Option<&[u8]>,
        limit: usize,
    ) -> haze_storage::Result<ValuePage> {
        self.live.bucket_values(bucket, after, limit)
    }

    /// Durable at once, as the disk store's logged delete is; the writes before it are synced
    /// first (the log is sequential: its synced delete record covers them).
    fn delete_buckets(&self, buckets: std::ops::Range<usize>) -> haze_storage::Result<u64> {
        self.sync()?;
        self.durable.delete_buckets(buckets.clone())?;
        self.live.delete_buckets(buckets)
    }

    fn config(&self) -> &StoreConfig {
        self.live.config()
    }
}
