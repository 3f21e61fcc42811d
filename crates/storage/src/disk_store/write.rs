//! The writer's side: commits (merge, log, publish) and the flushes they start.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use super::staging::StagedKeys;
use super::{DiskStore, Recent, WriterState, hot, lock};
use crate::apply::{kept_kind, merged_value};
use crate::entry::{self, Framed, Slot, printable};
use crate::error::engine;
use crate::flush::{FlushPlan, Flusher};
use crate::key::{RingKey, decode, digest_bucket};
use crate::ring_map::RingMap;
use crate::scrub::Integrity;
use crate::wal::{Wal, segment_path, sync_dir};
use crate::{Durability, Error, InPlace, Mutation, Result, StoreConfig, Write, WriteError};

impl DiskStore {
    /// [`Store::apply`](crate::Store::apply): commits `batch` with logging, then starts a flush
    /// if one is due.
    pub(super) fn apply_logged(&self, batch: &mut [Write]) -> Result<()> {
        let mut writer = lock(&self.writer);
        self.ready(&mut writer)?;
        if let Err(e) = self.commit(&mut writer.wal, batch, &self.config, true) {
            for write in batch.iter_mut() {
                write.outcome = None; // nothing of it was applied
            }
            // A flush that met a full disk makes redb refuse every call until it is reopened:
            // a commit that read from redb meanwhile failed for that, not for itself.
            let e = match &writer.flusher {
                Some(_) if !e.is_retryable() => match self.finish_flush(&mut writer) {
                    Err(flush) if flush.is_retryable() => flush,
                    _ => e,
                },
                _ => e,
            };
            if !e.is_retryable() {
                // An fsync (or a write other than for room) failed: the log can no longer be
                // trusted to hold what it was given. Refuse every later commit.
                writer.failed = Some(e.clone());
            }
            return Err(e);
        }
        let active_bytes = self
            .recent
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .active
            .bytes;
        let flush_bytes = self.config.flush_bytes;
        let due = active_bytes > flush_bytes || writer.wal.len() > 4 * flush_bytes as u64;
        // While a flush runs, the writer goes on and lets the active table grow, up to four
        // times the threshold; only past that does it wait (backpressure when writes outrun
        // redb), instead of stalling every time a flush is due.
        let busy = writer.flusher.as_ref().is_some_and(|f| !f.is_finished());
        let must = active_bytes > 4 * flush_bytes || writer.wal.len() > 8 * flush_bytes as u64;
        if due
            && busy
            && let Some(flusher) = &writer.flusher
        {
            // The next flush is due before this one ended: it paces itself no longer.
            flusher.hurry();
        }
        let delete_waits = self.deletes_waiting.load(Ordering::SeqCst) > 0;
        if due
            && (must || (!busy && !delete_waits))
            && let Err(e) = self.start_flush(&mut writer)
            && !e.is_retryable()
        {
            // This batch is durable (its log record is synced) and visible: acknowledge it.
            // The store refuses the next one. (No room for a new segment is no failure: the
            // flush starts with a later commit.)
            writer.failed = Some(e);
        }
        Ok(())
    }

    /// Applies `batch`: merges each write against the newest value (this batch's, then the
    /// recent tables', then redb's), logs the results (and fdatasyncs in `sync` mode) when
    /// `log`, then publishes them to readers. A stored value that fails its check counts as
    /// absent for a merge (a healthy copy replaces it) and refuses an update (an operation on
    /// nothing would reuse what the lost state counted); it is quarantined.
    ///
    /// # Errors
    ///
    /// If logging failed: nothing of the batch was published.
    pub(super) fn commit(
        &self,
        wal: &mut Wal,
        batch: &mut [Write],
        config: &StoreConfig,
        log: bool,
    ) -> Result<()> {
        const CONTEXT: &str = "reading a value to merge into";
        // Each key's newest state in this batch. Its final values are what the log records (one
        // entry per key: replaying them gives what replaying every step would, merges being
        // idempotent) and what joins the active table.
        let mut staged: StagedKeys<Staged> = StagedKeys::with_capacity(batch.len());
        // What this batch changes in the bucket digests: a bucket whose damaged entry was found
        // is computed again (`exact`), then every change XORs in (`delta`). A key's staged
        // values contribute nothing until the batch ends, when its final value's checksum is
        // added: its intermediate values would cancel out anyway, and hashing each of them cost
        // as much as encoding it.
        // (A list, not a map: XORs commute, and a map cost a tree insert per write.)
        let mut delta: Vec<(usize, u64)> = Vec::with_capacity(2 * batch.len());
        let mut exact: BTreeMap<usize, u64> = BTreeMap::new();
        let mut found: Vec<(Vec<u8>, &'static str)> = Vec::new();
        let mut repaired = 0;
        // A key's value is decoded once per batch: each write of the key after the first starts
        // from the outcome of the last one applied (its `holder` in `staged`), which was most
        // of a hot key's cost. It is moved on when that write wants no value (which is then
        // superseded) and copied only when it does.
        // A hot key's first write of the batch starts from the value kept decoded since the
        // last commit (`hot`), if it is the stored one.
        let mut hot = lock(&self.hot);
        hot.tick();
        {
            let tables = self.recent.read().unwrap_or_else(PoisonError::into_inner);
            // redb's values, for a key the recent tables do not hold: the snapshot readers
            // share (taken under the tables' lock, as theirs are: see `db`), not a read
            // transaction of its own, which cost as much as a small commit's writes.
            let stored = self.db.values()?;
            for i in 0..batch.len() {
                // The holders of keys are earlier writes of the batch.
                let (earlier, rest) = batch.split_at_mut(i);
                let write = &mut rest[0];
                let Some(mutation) = write.mutation.take() else {
                    continue;
                };
                let key = write.key.as_slice();
                let skey = RingKey::of(key);
                let bucket = digest_bucket(skey.ring_hash());
                // A value changed in place since its last encoding is encoded before any write
                // other than in place reads it.
                if !matches!(mutation, Mutation::InPlace(_))
                    && let Some(&Staged::Dirty {
                        holder,
                        len,
                        growth,
                    }) = staged.get(&skey)
                {
                    let encoded = held_value(&earlier[holder])
                        .map(|v| Framed::encode(v, len.saturating_add(growth)));
                    match encoded {
                        Some(encoded) => {
                            staged.set(&skey, Staged::Encoded { encoded, holder });
                        }
                        None => {
                            write.outcome = Some(Err(lost_value()));
                            continue;
                        }
                    }
                }
                // The key's state before this write: this batch's (its own output: a value
                // needs no check, and its contribution is counted when the batch ends), else
                // the recent tables' or redb's entry, checked.
                let from_redb;
                let mut dirty = None;
                let mut kept = None;
                let (slot, old_contribution, old_entry, held_by) = match staged.get(&skey) {
                    Some(Staged::Encoded { encoded, holder }) => (
                        Some(Slot::Value {
                            checksum: 0,
                            encoded: encoded.encoded(),
                        }),
                        0,
                        None,
                        Some(*holder),
                    ),
                    Some(&Staged::Dirty {
                        len,
                        growth,
                        holder,
                    }) => {
                        dirty = Some((len, growth));
                        (None, 0, None, Some(holder))
                    }
                    Some(Staged::Entry(entry)) => {
                        let slot = entry::parse(key, entry);
                        (
                            Some(slot),
                            slot.contribution(),
                            Some(entry.as_slice()),
                            None,
                        )
                    }
                    None => {
                        let recent = tables.newest(&skey);
                        from_redb = match recent {
                            Some(_) => None,
                            None => stored
                                .get(skey.as_slice())
                                .map_err(engine(CONTEXT))?
                                .map(|v| v.value().to_vec()),
                        };
                        let old = recent.map(Vec::as_slice).or(from_redb.as_deref());
                        // A kept value stands for the entry it was committed as: that entry's
                        // bytes need no check (nor decode), they are not used.
                        kept = old.and_then(entry::peek).and_then(|(checksum, encoded)| {
                            let value = hot.take(&skey, checksum, encoded.len())?;
                            Some((Slot::Value { checksum, encoded }, value))
                        });
                        let slot = match &kept {
                            Some((slot, _)) => Some(*slot),
                            None => old.map(|old| entry::parse(key, old)),
                        };
                        (slot, slot.map_or(0, |s| s.contribution()), old, None)
                    }
                };
                // The marker that quarantines a damaged value an operation finds.
                let marker = match (slot, &mutation) {
                    (Some(Slot::Damaged(_)), Mutation::Update(_) | Mutation::InPlace(_)) => {
                        old_entry.map(entry::quarantine_entry)
                    }
                    _ => None,
                };
                if let Some(Slot::Damaged(why)) = slot {
                    if let std::collections::btree_map::Entry::Vacant(e) = exact.entry(bucket) {
                        e.insert(self.bucket_digest(&tables, &stored, bucket)?);
                    }
                    found.push((key.to_vec(), why));
                }
                // The write whose outcome holds the key's current value, if its value was
                // taken from it (to be put back if this write is refused).
                let mut taken_from = None;
                let mut take_held = || match held_by.map(|j| &mut earlier[j]) {
                    Some(held) if held.wants_value => held_value(held).cloned(),
                    Some(held) => {
                        taken_from = held_by;
                        held.superseded = true;
                        held.outcome.take().and_then(Result::ok)
                    }
                    None => None,
                };
                let outcome: Result<Applied, Refused> = match (slot, mutation) {
                    (None, Mutation::InPlace(op)) => {
                        let (current, len, growth) = match dirty {
                            Some((len, growth)) => match take_held() {
                                Some(value) => (Some(value), len, growth),
                                None => {
                                    write.outcome = Some(Err(lost_value()));
                                    continue;
                                }
                            },
                            None => (None, 0, 0),
                        };
                        in_place(config, key, current, op, len, growth)
                    }
                    (None, mutation) => merged_value(config, key, None, mutation, 0)
                        .map(Applied::Encoded)
                        .map_err(Refused::from),
                    (Some(Slot::Value { encoded, .. }), mutation) => {
                        let current = match (take_held(), kept) {
                            (Some(value), _) | (None, Some((_, value))) => Ok(value),
                            (None, None) => decode(encoded),
                        };
                        match (current, mutation) {
                            (Ok(current), Mutation::InPlace(op)) => {
                                in_place(config, key, Some(current), op, encoded.len(), 0)
                            }
                            (Ok(current), mutation) => {
                                merged_value(config, key, Some(current), mutation, encoded.len())
                                    .map(Applied::Encoded)
                                    .map_err(Refused::from)
                            }
                            // A sound checksum over bytes that do not decode: refused, left
                            // alone.
                            (Err(e), _) => Err(WriteError::Store(e).into()),
                        }
                    }
                    (Some(_), Mutation::Merge(given)) => {
                        repaired += 1;
                        merged_value(config, key, None, Mutation::Merge(given), 0)
                            .map(Applied::Encoded)
                            .map_err(Refused::from)
                    }
                    (Some(_), Mutation::Update(_) | Mutation::InPlace(_)) => {
                        Err(WriteError::Store(Error::CorruptValue {
                            key: key.to_vec(),
                            detail: "the stored value is corrupt (quarantined): an operation \
                                     needs it; merge a healthy copy first"
                                .into(),
                        })
                        .into())
                    }
                };
                if let Some(marker) = marker {
                    // Quarantined now, with this commit.
                    staged.set(&skey, Staged::Entry(marker));
                }
                write.outcome = Some(match outcome {
                    Ok(applied) => {
                        if old_contribution != 0 {
                            delta.push((bucket, old_contribution));
                        }
                        let (value, state) = match applied {
                            Applied::Encoded((value, encoded)) => {
                                (value, Staged::Encoded { encoded, holder: i })
                            }
                            Applied::InPlace { value, len, growth } => (
                                value,
                                Staged::Dirty {
                                    len,
                                    growth,
                                    holder: i,
                                },
                            ),
                        };
                        staged.insert(skey, state);
                        Ok(value)
                    }
                    Err(Refused { error, kept }) => {
                        if let Some(j) = taken_from {
                            // Refused after taking the value of an earlier write: that write
                            // holds the key's value again: the operation gave it back
                            // unchanged, else it is decoded from what is staged.
                            let restored = match (kept, staged.get(&skey)) {
                                (Some(value), _) => Ok(value),
                                (None, Some(Staged::Encoded { encoded, .. })) => {
                                    decode(encoded.encoded()).map_err(WriteError::Store)
                                }
                                (None, _) => Err(lost_value()),
                            };
                            earlier[j].superseded = false;
                            earlier[j].outcome = Some(restored);
                        }
                        Err(error)
                    }
                });
            }
        }
        // Each staged value's entry, made once per key (a value changed in place is encoded
        // now); its checksum joins the digests now.
        let mut entries: Vec<(RingKey, Vec<u8>)> = Vec::with_capacity(staged.len());
        // The keys whose final values the writer is asked to hand back (see `hot`).
        let mut expected = Vec::new();
        for (skey, state) in staged.in_order() {
            let (encoded, holder) = match state {
                Staged::Entry(entry) => {
                    hot.forget(&skey);
                    entries.push((skey, entry));
                    continue;
                }
                Staged::Encoded { encoded, holder } => (encoded, holder),
                Staged::Dirty {
                    holder,
                    len,
                    growth,
                } => {
                    let Some(value) = held_value(&batch[holder]) else {
                        // Unreachable by `commit`'s invariant; refusing the write would be
                        // wrong (it was applied), so the commit fails whole.
                        return Err(Error::Io(
                            format!(
                                "the value of {} changed in this commit went missing",
                                printable(&skey[8..])
                            )
                            .into(),
                        ));
                    };
                    let encoded = Framed::encode(value, len.saturating_add(growth));
                    if encoded.encoded().len() > config.max_value_bytes {
                        tracing::error!(
                            key = %printable(&skey[8..]),
                            size = encoded.encoded().len(),
                            limit = config.max_value_bytes,
                            "an operation's growth bound was wrong: a value passed the size limit"
                        );
                    }
                    (encoded, holder)
                }
            };
            let size = encoded.encoded().len();
            let (entry, checksum) = encoded.into_entry(&skey[8..]);
            delta.push((digest_bucket(skey.ring_hash()), checksum));
            let held = &mut batch[holder];
            if size >= hot::MIN_BYTES && !held.wants_value && matches!(held.outcome, Some(Ok(_))) {
                held.give_back = true;
                expected.push((skey.clone(), checksum, size));
            } else {
                hot.forget(&skey);
            }
            entries.push((skey, entry));
        }
        let staged = entries;
        let logged: Vec<(&[u8], &[u8])> = staged
            .iter()
            .filter(|(_, e)| e.first() == Some(&entry::VALUE))
            .map(|(skey, e)| (&skey[8..], &e[entry::VALUE_HEADER..]))
            .collect();
        if log && !logged.is_empty() {
            // Durable (in sync mode) before anyone can read it.
            wal.append(&logged, matches!(config.durability, Durability::Sync))?;
        }
        for (skey, checksum, len) in expected {
            hot.expect(skey, checksum, len);
        }
        drop(hot);
        let mut tables = self.recent.write().unwrap_or_else(PoisonError::into_inner);
        let active = &mut tables.active;
        for (key, value) in staged {
            let (key_len, value_len) = (key.len(), value.len());
            match active.values.insert(key, value) {
                Some(previous) => active.bytes = active.bytes - previous.len() + value_len,
                None => active.bytes += key_len + value_len,
            }
        }
        drop(tables);
        {
            let mut buckets = lock(&self.buckets);
            for (bucket, digest) in exact {
                buckets[bucket] = digest;
            }
            for (bucket, change) in delta {
                buckets[bucket] ^= change;
            }
        }
        Integrity::add(&self.integrity.corrupt_found, found.len() as u64);
        Integrity::add(&self.integrity.repaired, repaired);
        for (key, why) in found {
            tracing::error!(
                key = %printable(&key),
                why,
                "a stored value is corrupt: a write treats it as absent (a merge replaces it, an operation is refused)"
            );
        }
        Ok(())
    }

    /// Waits for the flush in progress, if any, then forgets its frozen table. A flush that
    /// found the disk full keeps its table, is set to start again ([`WriterState::retry`]),
    /// and its [`Error::NoSpace`] is returned. A flush waiting to start again is started now if
    /// its wait is over (and waited for), else its error is returned.
    pub(super) fn finish_flush(&self, writer: &mut WriterState) -> Result<()> {
        self.retry_flush(writer)?;
        if let Some(flusher) = writer.flusher.take() {
            let plan = flusher.plan().clone();
            match flusher.join() {
                Ok(()) => {}
                Err(e) if e.is_retryable() => {
                    tracing::warn!(
                        error = %e,
                        "a flush to haze.redb found the disk full: writes are refused until it \
                         succeeds (it is tried again every second); reads are served"
                    );
                    writer.retry = Some((plan, retry_at(), e.clone()));
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
            let mut tables = self.recent.write().unwrap_or_else(PoisonError::into_inner);
            tables.frozen = None;
            // Readers missing the active table now need redb as the flush left it. (The
            // flusher let the shared snapshot go after its last commit already; this keeps
            // the invariant of `db` true here on its own.)
            self.db.forget_values();
            drop(tables);
        }
        Ok(())
    }

    /// Starts again the flush that found the disk full, once its wait is over (after a reopen
    /// of redb if the flusher's failed); until then answers with its error.
    fn retry_flush(&self, writer: &mut WriterState) -> Result<()> {
        let Some((plan, at, error)) = writer.retry.take() else {
            return Ok(());
        };
        if !due(at) {
            writer.retry = Some((plan, at, error.clone()));
            return Err(error);
        }
        if !self.db.is_open()
            && let Err(e) = self.db.reopen()
        {
            tracing::warn!(error = %e, "haze.redb could not be reopened yet");
            writer.retry = Some((plan, retry_at(), error.clone()));
            return Err(error);
        }
        match Flusher::start(self.db.clone(), self.dir.clone(), plan.clone()) {
            Ok(flusher) => {
                tracing::info!("trying again the flush to haze.redb that found the disk full");
                writer.flusher = Some(flusher);
                Ok(())
            }
            Err(e) => {
                writer.retry = Some((plan, retry_at(), error));
                Err(e)
            }
        }
    }

    /// Starts a flush: a new log segment takes the next writes, the active table is frozen, and
    /// a thread writes it to redb durably, then deletes the older segments. Waits first for a
    /// flush still in progress (backpressure when writes outrun flushes).
    fn start_flush(&self, writer: &mut WriterState) -> Result<()> {
        self.finish_flush(writer)?;
        // In `periodic` mode the old segment may hold unsynced records: sync them before a
        // newer segment exists, so recovery never finds a gap.
        writer.wal.sync()?;
        let seq = writer.seq + 1;
        let wal = Wal::create(&segment_path(&self.dir, seq), writer.wal.next_seq())?;
        sync_dir(&self.dir)?;
        writer.wal = wal;
        writer.seq = seq;
        let frozen = {
            let mut tables = self.recent.write().unwrap_or_else(PoisonError::into_inner);
            // The next table will likely take as many keys as this one did: sized for them
            // now, the writer never stops to move a table of hundreds of thousands of entries
            // into a larger one (a pause of milliseconds for every request waiting on it).
            let next = Recent {
                values: RingMap::with_capacity(tables.active.values.len()),
                bytes: 0,
            };
            let frozen = Arc::new(std::mem::replace(&mut tables.active, next).values);
            tables.frozen = Some(frozen.clone());
            frozen
        };
        // The digests of exactly redb plus the frozen table (the writer is held: nothing newer):
        // what redb's own digests will be after the flush.
        let buckets = lock(&self.buckets).clone();
        let plan = FlushPlan {
            seq,
            values: frozen,
            expected: buckets,
        };
        let flusher = Flusher::start(self.db.clone(), self.dir.clone(), plan)?;
        writer.flusher = Some(flusher);
        Ok(())
    }

    /// Checks that the store still takes writes, and forgets a finished flush (a failed one
    /// stops the store).
    pub(super) fn ready(&self, writer: &mut WriterState) -> Result<()> {
        if let Some(failure) = &writer.failed {
            return Err(Error::stopped(failure));
        }
        // A flush waiting to start again (the disk was full): writes are refused until it has
        // started; it then runs while the writer goes on.
        self.retry_flush(writer)?;
        if writer.flusher.as_ref().is_some_and(Flusher::is_finished)
            && let Err(e) = self.finish_flush(writer)
        {
            if !e.is_retryable() {
                writer.failed = Some(e.clone());
            }
            return Err(e);
        }
        Ok(())
    }

    /// Flushes everything now, on this thread (at open and close).
    pub(super) fn flush_now(&self, writer: &mut WriterState) -> Result<()> {
        self.start_flush(writer)?;
        self.finish_flush(writer)
    }
}

/// A key's state staged by a commit.
enum Staged {
    /// An entry as it will be stored: a quarantine marker.
    Entry(Vec<u8>),
    /// A value's encoding: its entry (tag, checksum) is made once, when the commit ends, however
    /// many writes of the key the commit holds.
    Encoded {
        encoded: Framed,
        /// The write of the batch whose outcome holds this value, decoded (unless it was
        /// refused after all: see `commit`).
        holder: usize,
    },
    /// A value changed in place ([`InPlace`]) since its last encoding, which was `len` bytes
    /// (0: none); the changes add at most `growth`. It is encoded when the commit ends, or
    /// when a write other than in place reads it. Invariant: `holder`'s outcome holds it.
    Dirty {
        holder: usize,
        len: usize,
        growth: usize,
    },
}

/// What a write did to its key's value.
enum Applied {
    /// The new value and its encoding.
    Encoded((haze_crdt::Value, Framed)),
    /// The value changed in place: its encoding was `len` bytes before the changes made since,
    /// which add at most `growth`.
    InPlace {
        value: haze_crdt::Value,
        len: usize,
        growth: usize,
    },
}

/// A refused write, and the value it was given if it gives it back unchanged.
struct Refused {
    error: WriteError,
    kept: Option<haze_crdt::Value>,
}

impl From<WriteError> for Refused {
    fn from(error: WriteError) -> Self {
        Refused { error, kept: None }
    }
}

/// The value a write's outcome holds.
fn held_value(write: &Write) -> Option<&haze_crdt::Value> {
    write.outcome.as_ref().and_then(|o| o.as_ref().ok())
}

fn lost_value() -> WriteError {
    WriteError::Store(Error::Io(
        "a value kept for the commit's next write went missing".into(),
    ))
}

/// Applies an [`InPlace`] operation to `current`, whose last encoding was `len` bytes, plus
/// at most `growth` from in-place changes since. When the operation's bound keeps the value
/// within the size limit, it is applied where it is and nothing is encoded; otherwise it is
/// applied to a copy, which is encoded and measured (and replaces the value only if it fits).
fn in_place(
    config: &StoreConfig,
    key: &[u8],
    mut current: Option<haze_crdt::Value>,
    op: Box<dyn InPlace>,
    len: usize,
    growth: usize,
) -> Result<Applied, Refused> {
    let refused = |error, kept| Err(Refused { error, kept });
    if key.len() > config.max_key_bytes {
        let error = WriteError::KeyTooLarge {
            size: key.len(),
            limit: config.max_key_bytes,
        };
        return refused(error, current);
    }
    let kind = current.as_ref().map(haze_crdt::Value::kind);
    let bound = op.growth_bound(current.as_ref());
    let mut most = bound.and_then(|b| len.checked_add(growth)?.checked_add(b));
    let mut len = len;
    if let (Some(b), Some(value)) = (bound, &current)
        && growth > 0
        && most.is_none_or(|m| m > config.max_value_bytes)
    {
        // The bounds of the commit's earlier writes add up past the limit: measure the value
        // (once, then the bounds start again from its true size) before copying it for each
        // write from here on.
        let mut encoded = Vec::with_capacity(len.saturating_add(growth));
        value.encode_into(&mut encoded);
        len = encoded.len();
        most = len.checked_add(b);
    }
    match most {
        Some(most) if most <= config.max_value_bytes => {
            if let Err(error) = op.apply(&mut current) {
                return refused(error, current);
            }
            match current {
                Some(value) => match kept_kind(kind, &value) {
                    Ok(()) => Ok(Applied::InPlace {
                        value,
                        len,
                        growth: most - len,
                    }),
                    // Breaks `InPlace`'s contract; the value it changed is not kept.
                    Err(error) => refused(error, None),
                },
                None => refused(lost_value(), None),
            }
        }
        // Applied to a copy, as any other write is, so that a refusal leaves `current` as it was.
        _ => match merged_value(config, key, current.clone(), Mutation::InPlace(op), len) {
            Ok(merged) => Ok(Applied::Encoded(merged)),
            Err(error) => refused(error, current),
        },
    }
}

/// How long a flush that found the disk full waits before it is tried again.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

#[allow(
    clippy::disallowed_methods,
    reason = "paces the retries of a flush on a full disk, as the flusher paces its commits"
)]
fn retry_at() -> std::time::Instant {
    std::time::Instant::now() + RETRY_AFTER
}

#[allow(
    clippy::disallowed_methods,
    reason = "paces the retries of a flush on a full disk, as the flusher paces its commits"
)]
fn due(at: std::time::Instant) -> bool {
    std::time::Instant::now() >= at
}
