//! A store in memory: the reference for the conformance suite, and for simulations.

use std::collections::BTreeMap;
use std::sync::Mutex;

use haze_crdt::Value;

use crate::apply::merged_value;
use crate::key::{
    Page, bucket_bounds, buckets_range, decode, decode_page, digest_bucket, entry_digest,
    key_digest, key_page, ring_hash, store_key,
};
use crate::{DIGEST_BUCKETS, KeyPage, Result, Store, StoreConfig, ValuePage, Write};

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

    /// Up to `limit` entries of `bucket` after `after`, each as its user key and `item` of its
    /// store key and encoded value, and whether more follow.
    fn bucket_page<T>(
        &self,
        bucket: usize,
        after: Option<&[u8]>,
        limit: usize,
        item: impl Fn(&[u8], &[u8]) -> T,
    ) -> Page<T> {
        let Some(bounds) = bucket_bounds(bucket, after) else {
            return (Vec::new(), false);
        };
        let state = self.state();
        let page: Vec<_> = state
            .values
            .range(bounds)
            .take(limit.saturating_add(1))
            .map(|(k, v)| (k.clone(), item(k, v)))
            .collect();
        key_page([page], limit)
    }
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
                merged_value(
                    &self.config,
                    &write.key,
                    current,
                    mutation,
                    old.as_ref().map_or(0, Vec::len),
                )
                .map(|(value, framed)| {
                    let encoded = framed.into_encoded();
                    let bucket = digest_bucket(ring_hash(&write.key));
                    if let Some(old) = &old {
                        state.buckets[bucket] ^= key_digest(&write.key, old);
                    }
                    state.buckets[bucket] ^= key_digest(&write.key, &encoded);
                    state.values.insert(skey, encoded);
                    value
                }),
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
        Ok(self.bucket_page(bucket, after, limit, |skey, encoded| {
            entry_digest(skey, encoded).1
        }))
    }

    fn bucket_values(
        &self,
        bucket: usize,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ValuePage> {
        decode_page(self.bucket_page(bucket, after, limit, |_, encoded| encoded.to_vec()))
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
