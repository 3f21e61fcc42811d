//! A value found damaged: quarantined, and its bucket's digest computed again; and the scrub,
//! which looks for such values.
//!
//! Quarantining puts a marker (the damaged entry as found) in the active table, in front of
//! the damaged entry; the next flush writes it to redb in its place. Reads of the key then fail
//! with [`Error::CorruptValue`](crate::Error::CorruptValue), pages leave it out, and a merge
//! treats it as absent, so a healthy copy (a replica's, a client's) replaces it. The marker is
//! not logged: if the store stops before the flush, the next read finds the damage again.
//!
//! The bucket's digest is computed again from what the bucket holds (each sound value's
//! checksum, nothing for the others) rather than by XOR-ing the damaged entry's checksum out:
//! the damaged bytes may be that very checksum. Quarantining waits for the writer's lock (a
//! commit, an fsync): rare, and only the read that found the damage waits.

use std::collections::BTreeMap;
use std::sync::PoisonError;

use redb::{ReadOnlyTable, ReadableDatabase};

use super::layout::VALUES;
use super::{DiskStore, Tables, lock};
use crate::entry::{self, Slot, printable};
use crate::error::engine;
use crate::key::{RingKey, bucket_bounds, digest_bucket, ring_bounds, ring_hash};
use crate::scrub::Integrity;
use crate::{CorruptKey, Result, ScrubCursor, ScrubStep};

/// The keys one page of a scrub reads.
const SCRUB_PAGE: usize = 256;

impl DiskStore {
    /// Quarantines the store key `skey`, whose newest entry was read as `found` and is damaged
    /// (`why`), unless a write replaced it since. Returns whether it did.
    pub(super) fn quarantine(&self, skey: &[u8], found: &[u8], why: &str) -> bool {
        const CONTEXT: &str = "quarantining a damaged value";
        let key = &skey[8..];
        let _writer = lock(&self.writer); // no commit meanwhile
        let done = (|| -> Result<bool> {
            let txn = self.db.get()?.begin_read().map_err(engine(CONTEXT))?;
            let table = txn.open_table(VALUES).map_err(engine(CONTEXT))?;
            let tables = self.recent.read().unwrap_or_else(PoisonError::into_inner);
            let ring_key = RingKey::new(skey.to_vec());
            let current = match tables.newest(&ring_key) {
                Some(newest) => Some(newest.clone()),
                None => table
                    .get(skey)
                    .map_err(engine(CONTEXT))?
                    .map(|v| v.value().to_vec()),
            };
            if current.as_deref() != Some(found) {
                return Ok(false); // written since
            }
            let bucket = digest_bucket(ring_hash(key));
            let exact = self.bucket_digest(&tables, &table, bucket)?;
            drop(tables);
            lock(&self.hot).forget(&ring_key);
            let marker = entry::quarantine_entry(found);
            let mut tables = self.recent.write().unwrap_or_else(PoisonError::into_inner);
            let active = &mut tables.active;
            let added = marker.len();
            match active.values.insert(ring_key, marker) {
                Some(previous) => active.bytes = active.bytes - previous.len() + added,
                None => active.bytes += skey.len() + added,
            }
            drop(tables);
            lock(&self.buckets)[bucket] = exact;
            Ok(true)
        })();
        match done {
            Ok(true) => {
                Integrity::add(&self.integrity.corrupt_found, 1);
                tracing::error!(
                    key = %printable(key),
                    why,
                    "a stored value is corrupt: quarantined (reads of it fail until a healthy copy is merged into it)"
                );
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::error!(key = %printable(key), why, error = %e, "a stored value is corrupt, and could not be quarantined");
                false
            }
        }
    }

    /// The digest of `bucket` computed from what it holds: each key's newest entry (in
    /// `tables`, else in redb's `table`), its checksum if sound, else nothing. The caller
    /// holds the writer's lock.
    pub(super) fn bucket_digest(
        &self,
        tables: &Tables,
        table: &ReadOnlyTable<&'static [u8], &'static [u8]>,
        bucket: usize,
    ) -> Result<u64> {
        const CONTEXT: &str = "computing a bucket's digest";
        let Some((start, end)) = bucket_bounds(bucket, None) else {
            return Ok(0);
        };
        let mut newest: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        let sources = [Some(&tables.active.values), tables.frozen.as_deref()];
        for recent in sources.into_iter().flatten() {
            for (skey, stored) in recent.range(ring_bounds(&start, &end)) {
                newest
                    .entry(skey.to_vec())
                    .or_insert_with(|| entry::parse(&skey[8..], stored).contribution());
            }
        }
        let range = (
            start.as_ref().map(Vec::as_slice),
            end.as_ref().map(Vec::as_slice),
        );
        for item in table.range::<&[u8]>(range).map_err(engine(CONTEXT))? {
            let (skey, stored) = item.map_err(engine(CONTEXT))?;
            let skey = skey.value();
            if !newest.contains_key(skey) {
                newest.insert(
                    skey.to_vec(),
                    entry::parse(&skey[8..], stored.value()).contribution(),
                );
            }
        }
        Ok(newest.values().fold(0, |sum, c| sum ^ c))
    }

    /// [`Store::scrub`](crate::Store::scrub): verifies whole pages of keys from `from` on.
    pub(super) fn scrub_from(&self, from: &ScrubCursor, budget_bytes: u64) -> Result<ScrubStep> {
        let mut step = ScrubStep {
            next: from.clone(),
            ..ScrubStep::default()
        };
        let mut found: Vec<(Vec<u8>, Vec<u8>, &'static str)> = Vec::new();
        let mut corrupt: Vec<(Vec<u8>, CorruptKey)> = Vec::new();
        while step.bytes < budget_bytes.max(1) {
            let cursor = step.next.clone();
            step.next = match bucket_bounds(cursor.bucket, cursor.after.as_deref()) {
                None => ScrubCursor::at_bucket(cursor.bucket + 1),
                Some((start, end)) => {
                    let (raw, more) = self.raw_range(start, end, SCRUB_PAGE)?;
                    for (skey, stored) in &raw {
                        step.keys += 1;
                        step.bytes += (skey.len() + stored.len()) as u64;
                        match entry::parse(&skey[8..], stored) {
                            Slot::Value { .. } => {}
                            Slot::Quarantined => corrupt.push((
                                skey.clone(),
                                CorruptKey {
                                    key: skey[8..].to_vec(),
                                    detail: "quarantined earlier, not yet repaired".into(),
                                    earlier: true,
                                },
                            )),
                            Slot::Damaged(why) => found.push((skey.clone(), stored.clone(), why)),
                        }
                    }
                    match raw.last() {
                        Some((last, _)) if more => ScrubCursor {
                            bucket: cursor.bucket,
                            after: Some(last[8..].to_vec()),
                        },
                        _ => ScrubCursor::at_bucket(cursor.bucket + 1),
                    }
                }
            };
            if step.next.is_start() {
                step.wrapped = true;
                break;
            }
        }
        for (skey, stored, why) in found {
            // Reported even if a write replaced it meanwhile: the stored bytes were damaged.
            self.quarantine(&skey, &stored, why);
            corrupt.push((
                skey.clone(),
                CorruptKey {
                    key: skey[8..].to_vec(),
                    detail: why.to_string(),
                    earlier: false,
                },
            ));
        }
        corrupt.sort_by(|a, b| a.0.cmp(&b.0));
        step.corrupt = corrupt.into_iter().map(|(_, c)| c).collect();
        self.integrity.scrubbed(&step);
        Ok(step)
    }
}
