//! A store in memory: the reference for the conformance suite, and for simulations.

use std::collections::BTreeMap;
use std::sync::Mutex;

use haze_crdt::Value;

use crate::apply::merged_value;
use crate::key::{
    bucket_bounds, buckets_range, digest_bucket, entry_digest, key_digest, key_page, ring_hash,
    store_key,
};
use crate::{DIGEST_BUCKETS, Error, KeyPage, Result, Store, StoreConfig, ValuePage, Write};

/// A [`Store`] that keeps encoded values in a `BTreeMap` in ring order. Nothing survives the
/// process; `sync` does nothing.
#[derive(Debug)]
pub struct MemStore {
    config: StoreConfig,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Ring-ordered key → encoded value.
    values: BTreeMap<Vec<u8>, Vec<u8>>,
    buckets: Vec<u64>,
}

impl MemStore {
    /// Returns an empty store.
    pub fn new(config: StoreConfig) -> Self {
        MemStore {
            config,
            state: Mutex::new(State {
                values: BTreeMap::new(),
                buckets: vec![0; DIGEST_BUCKETS],
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock would be our bug; the state is still consistent
        // because every write replaces whole entries.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn decode(bytes: &[u8]) -> Result<Value> {
    Value::decode(bytes).map_err(|e| Error::Corrupt(e.to_string()))
}

impl Store for MemStore {
    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        self.state()
            .values
            .get(&store_key(key))
            .map(|b| decode(b))
            .transpose()
    }

    fn apply(&self, batch: &mut [Write]) -> Result<()> {
        let mut state = self.state();
        for write in batch.iter_mut() {
            let Some(mutation) = write.mutation.take() else {
                continue;
            };
            let skey = store_key(&write.key);
            let old = state.values.get(&skey).cloned();
            let current = old.as_deref().map(decode).transpose()?;
            write.outcome = Some(
                merged_value(&self.config, &write.key, current, mutation).map(
                    |(value, encoded)| {
                        let bucket = digest_bucket(ring_hash(&write.key));
                        if let Some(old) = &old {
                            state.buckets[bucket] ^= key_digest(&write.key, old);
                        }
                        state.buckets[bucket] ^= key_digest(&write.key, &encoded);
                        state.values.insert(skey, encoded);
                        value
                    },
                ),
            );
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn digest(&self, key: &[u8]) -> Result<Option<u64>> {
        Ok(self
            .state()
            .values
            .get(&store_key(key))
            .map(|b| key_digest(key, b)))
    }

    fn bucket_digests(&self) -> Result<Vec<u64>> {
        Ok(self.state().buckets.clone())
    }

    fn bucket_keys(&self, bucket: usize, after: Option<&[u8]>, limit: usize) -> Result<KeyPage> {
        let Some(bounds) = bucket_bounds(bucket, after) else {
            return Ok((Vec::new(), false));
        };
        let state = self.state();
        let page: Vec<_> = state
            .values
            .range(bounds)
            .take(limit.saturating_add(1))
            .map(|(k, v)| entry_digest(k, v))
            .collect();
        Ok(key_page([page], limit))
    }

    fn bucket_values(
        &self,
        bucket: usize,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ValuePage> {
        let Some(bounds) = bucket_bounds(bucket, after) else {
            return Ok((Vec::new(), false));
        };
        let state = self.state();
        let page = state
            .values
            .range(bounds)
            .take(limit.saturating_add(1))
            .map(|(k, v)| Ok((k.clone(), decode(v)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(key_page([page], limit))
    }

    fn delete_buckets(&self, buckets: std::ops::Range<usize>) -> Result<u64> {
        let Some(range) = buckets_range(&buckets) else {
            return Ok(0);
        };
        let mut state = self.state();
        let doomed: Vec<Vec<u8>> = state.values.range(range).map(|(k, _)| k.clone()).collect();
        for key in &doomed {
            state.values.remove(key);
        }
        for bucket in buckets {
            state.buckets[bucket] = 0;
        }
        Ok(doomed.len() as u64)
    }

    fn config(&self) -> &StoreConfig {
        &self.config
    }
}
