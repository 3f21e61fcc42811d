//! Deleting the keys of digest buckets: how a node drops a partition that moved away.

use std::collections::BTreeSet;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use redb::ReadableTable;

use super::layout::{DIGESTS, DIGESTS_KEY, VALUES, digests_blob, parse_digests};
use super::{DiskStore, lock};
use crate::error::engine;
use crate::key::{RingKey, buckets_range, ring_bounds};
use crate::{DIGEST_BUCKETS, Result};

impl DiskStore {
    /// [`Store::delete_buckets`](crate::Store::delete_buckets): waits for the flush under way,
    /// logs the delete, then carries it out.
    pub(super) fn delete(&self, buckets: std::ops::Range<usize>) -> Result<u64> {
        if buckets_range(&buckets).is_none() {
            return Ok(0);
        }
        // A flush under way may be writing keys of the range to redb: the delete comes after
        // it. Wait for it without holding up writes.
        self.deletes_waiting.fetch_add(1, Ordering::SeqCst);
        self.wait_for_flusher();
        let mut writer = lock(&self.writer);
        self.deletes_waiting.fetch_sub(1, Ordering::SeqCst);
        self.ready(&mut writer)?;
        // The writer may have started another since: finish it (rare; writes wait meanwhile).
        // Then the delete is logged before it is done: from the moment the record is durable,
        // a replay puts the range's logged writes back and then deletes them again, so no
        // flush is needed first (it used to be: every moved partition cost a flush).
        // Whatever happens below, values kept decoded may no longer be stored.
        lock(&self.hot).clear();
        let deleted = self
            .finish_flush(&mut writer)
            .and_then(|()| writer.wal.append_delete(buckets.clone()))
            .and_then(|()| self.delete_range(buckets));
        if let Err(e) = &deleted
            && !e.is_retryable()
        {
            // The log and redb may disagree until a replay: take no more writes. (No room for
            // the delete's record changed nothing: the log was rewound.)
            writer.failed = Some(e.clone());
        }
        deleted
    }

    /// Waits until no flush runs, taking the writer's lock only to look. It does not hurry the
    /// flush: a cleanup can wait, clients' requests should not wait for a flusher taking a
    /// whole core.
    fn wait_for_flusher(&self) {
        while lock(&self.writer)
            .flusher
            .as_ref()
            .is_some_and(|f| !f.is_finished())
        {
            #[allow(
                clippy::disallowed_methods,
                reason = "a store's own thread waits for its flusher thread"
            )]
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// Deletes every key of `buckets` from redb and the active table, and zeroes their digests.
    /// The caller holds the writer, and no flush runs (a frozen table's keys would reach redb
    /// after the delete). The log holds the delete (or, at open, replays it): redb's commit
    /// needs no fsync of its own, the next flush's commits make it durable, and until then a
    /// crash replays the delete.
    pub(super) fn delete_range(&self, buckets: std::ops::Range<usize>) -> Result<u64> {
        const CONTEXT: &str = "deleting the keys of digest buckets";
        let Some((start, end)) = buckets_range(&buckets) else {
            return Ok(0);
        };
        let buckets = buckets.start..buckets.end.min(DIGEST_BUCKETS);
        let in_table: BTreeSet<Vec<u8>> = self
            .recent
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .active
            .values
            .range(ring_bounds(&start, &end))
            .map(|(k, _)| k.to_vec())
            .collect();
        let mut deleted = in_table.len() as u64;
        let mut txn = self.db.get()?.begin_write().map_err(engine(CONTEXT))?;
        // No fsync while clients' writes wait for the writer (see above).
        txn.set_durability(redb::Durability::None)
            .map_err(engine(CONTEXT))?;
        {
            let mut table = txn.open_table(VALUES).map_err(engine(CONTEXT))?;
            let range = (
                start.as_ref().map(Vec::as_slice),
                end.as_ref().map(Vec::as_slice),
            );
            table
                .retain_in::<&[u8], _>(range, |key, _| {
                    deleted += u64::from(!in_table.contains(key));
                    false
                })
                .map_err(engine(CONTEXT))?;
            // redb's digests stay those of what redb holds.
            let mut digests_table = txn.open_table(DIGESTS).map_err(engine(CONTEXT))?;
            let mut stored = match digests_table.get(DIGESTS_KEY).map_err(engine(CONTEXT))? {
                Some(blob) => parse_digests(blob.value())?,
                None => vec![0; DIGEST_BUCKETS],
            };
            for bucket in buckets.clone() {
                stored[bucket] = 0;
            }
            digests_table
                .insert(DIGESTS_KEY, digests_blob(&stored).as_slice())
                .map_err(engine(CONTEXT))?;
        }
        txn.commit().map_err(engine(CONTEXT))?;
        {
            let mut tables = self.recent.write().unwrap_or_else(PoisonError::into_inner);
            // Readers missing the active table now need redb without the range.
            self.db.forget_values();
            let active = &mut tables.active;
            for key in in_table {
                let key = RingKey::new(key);
                if let Some(value) = active.values.remove(&key) {
                    active.bytes -= key.len() + value.len();
                }
            }
        }
        let mut digests = lock(&self.buckets);
        for bucket in buckets {
            digests[bucket] = 0;
        }
        Ok(deleted)
    }
}
