//! Reads: the newest entry of a key, pages of a bucket. The recent tables first (the active
//! one, then the frozen one), then redb; none of them waits for the writer. Every entry served
//! is verified (`crate::entry`); a damaged one is quarantined and never served.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::PoisonError;

use redb::{ReadableDatabase, ReadableTableMetadata};

use super::DiskStore;
use super::layout::VALUES;
use crate::entry::{self, Slot};
use crate::error::engine;
use crate::key::{Page, RingKey, bucket_bounds, ring_bounds};
use crate::ring_map::RingMap;
use crate::scrub::Integrity;
use crate::{Error, Result};

/// Entries of a range, newest first: (store key, entry).
pub(super) type RawPage = Vec<(Vec<u8>, Vec<u8>)>;

impl DiskStore {
    /// Up to `limit` sound values of `bucket` after `after`, each as its user key and `item` of
    /// its checksum and encoding, and whether more follow. Quarantined values are left out;
    /// damaged ones too, and quarantined.
    pub(super) fn bucket_page<T>(
        &self,
        bucket: usize,
        after: Option<&[u8]>,
        limit: usize,
        item: impl Fn(u64, &[u8]) -> T,
    ) -> Result<Page<T>> {
        let Some((mut start, end)) = bucket_bounds(bucket, after) else {
            return Ok((Vec::new(), false));
        };
        let mut page = Vec::new();
        let mut damaged = Vec::new();
        // Values left out do not count against the page: read on until it is full or the
        // bucket ends (so a caller paging by the last key always advances).
        let more = 'pages: loop {
            let (raw, more) =
                self.raw_range(start.clone(), end.clone(), limit.saturating_add(1))?;
            for (skey, stored) in raw {
                if page.len() == limit {
                    break 'pages true;
                }
                match entry::parse(&skey[8..], &stored) {
                    Slot::Value { checksum, encoded } => {
                        page.push((skey[8..].to_vec(), item(checksum, encoded)));
                    }
                    Slot::Quarantined => {}
                    Slot::Damaged(why) => damaged.push((skey.clone(), stored.clone(), why)),
                }
                start = Bound::Excluded(skey);
            }
            if !more {
                break false;
            }
        };
        for (skey, stored, why) in damaged {
            self.quarantine(&skey, &stored, why);
        }
        Ok((page, more))
    }

    /// Up to `take` entries of the store-key range `start..end`, newest source first (the
    /// active table, the frozen one, redb), in ring order, and whether more follow.
    pub(super) fn raw_range(
        &self,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        take: usize,
    ) -> Result<(RawPage, bool)> {
        const CONTEXT: &str = "reading a range of keys";
        // One more than asked from each source: if any has more, the merge has more.
        let each = take.saturating_add(1);
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        {
            let tables = self.recent.read().unwrap_or_else(PoisonError::into_inner);
            let sources = [Some(&tables.active.values), tables.frozen.as_deref()];
            for table in sources.into_iter().flatten() {
                for (k, v) in table.range(ring_bounds(&start, &end)).take(each) {
                    merged.entry(k.to_vec()).or_insert_with(|| v.clone());
                }
            }
        }
        // A reader of redb that starts after a flush committed may also see values still in
        // the tables: the same bytes, and the tables' come first.
        let txn = self.db.get()?.begin_read().map_err(engine(CONTEXT))?;
        let table = txn.open_table(VALUES).map_err(engine(CONTEXT))?;
        let range = (
            start.as_ref().map(Vec::as_slice),
            end.as_ref().map(Vec::as_slice),
        );
        for item in table
            .range::<&[u8]>(range)
            .map_err(engine(CONTEXT))?
            .take(each)
        {
            let (k, v) = item.map_err(engine(CONTEXT))?;
            merged
                .entry(k.value().to_vec())
                .or_insert_with(|| v.value().to_vec());
        }
        let more = merged.len() > take;
        Ok((merged.into_iter().take(take).collect(), more))
    }

    /// The active table's entries (store key → entry), for tests of the flusher.
    #[cfg(test)]
    pub(crate) fn recent_values(&self) -> BTreeMap<RingKey, Vec<u8>> {
        let tables = self.recent.read().unwrap_or_else(PoisonError::into_inner);
        let values = tables.active.values.iter();
        values.map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Counts the keys: redb's (its table keeps its length) and the recent tables' that redb
    /// does not hold yet, looked up one by one after the tables' keys are copied (writers wait
    /// only for the copy). A flush that ends meanwhile may make it off by the keys it moved.
    pub(super) fn count_keys(&self) -> Result<u64> {
        const CONTEXT: &str = "counting keys";
        let recent: std::collections::BTreeSet<Vec<u8>> = {
            let tables = self.recent.read().unwrap_or_else(PoisonError::into_inner);
            let frozen = tables.frozen.as_deref().into_iter().flat_map(RingMap::keys);
            (tables.active.values.keys().chain(frozen))
                .map(|k| k.to_vec())
                .collect()
        };
        let txn = self.db.get()?.begin_read().map_err(engine(CONTEXT))?;
        let table = txn.open_table(VALUES).map_err(engine(CONTEXT))?;
        let mut count = table.len().map_err(engine(CONTEXT))?;
        for skey in &recent {
            if table
                .get(skey.as_slice())
                .map_err(engine(CONTEXT))?
                .is_none()
            {
                count += 1;
            }
        }
        Ok(count)
    }

    /// Returns the newest entry of the store key `skey`: a recent write's, else redb's.
    pub(super) fn entry(&self, skey: &RingKey) -> Result<Option<Vec<u8>>> {
        const CONTEXT: &str = "reading a value";
        let values = {
            let tables = self.recent.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(v) = tables.newest(skey) {
                return Ok(Some(v.clone()));
            }
            // Taken under the tables' lock: a flush's end forgets the snapshot under their
            // write lock, as its frozen table goes (see `db`).
            self.db.values()?
        };
        let found = values.get(skey.as_slice()).map_err(engine(CONTEXT))?;
        Ok(found.map(|v| v.value().to_vec()))
    }

    /// Returns the checksum and the encoding of `key`'s value, verified.
    ///
    /// # Errors
    ///
    /// [`Error::CorruptValue`] if it is quarantined, or damaged (then it is quarantined now).
    pub(super) fn verified(&self, key: &[u8]) -> Result<Option<(u64, Verified)>> {
        let skey = RingKey::of(key);
        let Some(stored) = self.entry(&skey)? else {
            return Ok(None);
        };
        let detail = match entry::parse(key, &stored) {
            // The entry is handed on as it is: its value is not copied out of it.
            Slot::Value { checksum, .. } => return Ok(Some((checksum, Verified(stored)))),
            Slot::Quarantined => {
                "it was found damaged earlier and is quarantined until a healthy copy is merged \
                 into it"
                    .to_string()
            }
            Slot::Damaged(why) => {
                self.quarantine(&skey, &stored, why);
                format!("{why}; it is quarantined until a healthy copy is merged into it")
            }
        };
        Integrity::add(&self.integrity.corrupt_reads, 1);
        Err(Error::CorruptValue {
            key: key.to_vec(),
            detail,
        })
    }
}

/// A value entry whose checksum was verified.
pub(super) struct Verified(Vec<u8>);

impl Verified {
    /// The value's encoding.
    pub(super) fn encoded(&self) -> &[u8] {
        &self.0[entry::VALUE_HEADER..]
    }

    /// The value's encoding, moved out of the entry (without a new allocation).
    pub(super) fn into_encoded(self) -> Vec<u8> {
        let mut entry = self.0;
        entry.drain(..entry::VALUE_HEADER);
        entry
    }
}
