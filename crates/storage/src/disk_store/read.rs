//! Reads: the newest value of a key, pages of a bucket. The recent tables first (the active
//! one, then the frozen one), then redb; none of them waits for the writer.

use std::collections::BTreeMap;
use std::sync::PoisonError;

use redb::ReadableDatabase;

use super::DiskStore;
use super::layout::VALUES;
use crate::Result;
use crate::error::engine;
use crate::key::{Page, bucket_bounds, key_page, store_key};

impl DiskStore {
    /// Up to `limit` entries of `bucket` after `after`, each as its user key and `item` of its
    /// store key and encoded value, and whether more follow.
    pub(super) fn bucket_page<T>(
        &self,
        bucket: usize,
        after: Option<&[u8]>,
        limit: usize,
        item: impl Fn(&[u8], &[u8]) -> T,
    ) -> Result<Page<T>> {
        const CONTEXT: &str = "reading a bucket";
        let Some(bounds) = bucket_bounds(bucket, after) else {
            return Ok((Vec::new(), false));
        };
        let take = limit.saturating_add(1);
        // Newest first: the active table, the frozen one, then redb. A reader of redb that
        // starts after a flush committed may also see values still in the tables: same bytes.
        let (active, frozen) = {
            let tables = self.recent.read().unwrap_or_else(PoisonError::into_inner);
            let page = |t: &BTreeMap<Vec<u8>, Vec<u8>>| -> Vec<(Vec<u8>, T)> {
                t.range(bounds.clone())
                    .take(take)
                    .map(|(k, v)| (k.clone(), item(k, v)))
                    .collect()
            };
            (
                page(&tables.active.values),
                tables.frozen.as_deref().map(page).unwrap_or_default(),
            )
        };
        let txn = self.db.begin_read().map_err(engine(CONTEXT))?;
        let table = txn.open_table(VALUES).map_err(engine(CONTEXT))?;
        let (start, end) = (
            bounds.0.as_ref().map(Vec::as_slice),
            bounds.1.as_ref().map(Vec::as_slice),
        );
        let mut stored = Vec::new();
        let range = table
            .range::<&[u8]>((start, end))
            .map_err(engine(CONTEXT))?;
        for entry in range.take(take) {
            let (k, v) = entry.map_err(engine(CONTEXT))?;
            stored.push((k.value().to_vec(), item(k.value(), v.value())));
        }
        Ok(key_page([active, frozen, stored], limit))
    }

    /// The active table's entries (store key → encoded value), for tests of the flusher.
    #[cfg(test)]
    pub(crate) fn recent_values(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let tables = self.recent.read().unwrap_or_else(PoisonError::into_inner);
        tables.active.values.clone()
    }

    /// Returns the newest encoding of `key`: a recent write's, else redb's.
    pub(super) fn encoded(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        const CONTEXT: &str = "reading a value";
        let skey = store_key(key);
        if let Some(v) = self
            .recent
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .newest(&skey)
        {
            return Ok(Some(v.clone()));
        }
        let txn = self.db.begin_read().map_err(engine(CONTEXT))?;
        let table = txn.open_table(VALUES).map_err(engine(CONTEXT))?;
        let found = table.get(skey.as_slice()).map_err(engine(CONTEXT))?;
        Ok(found.map(|v| v.value().to_vec()))
    }
}
