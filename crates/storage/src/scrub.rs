//! The scrub: a walk of the whole store in ring order that verifies every stored value's
//! checksum at a rate the caller sets, and the store's integrity counters.
//!
//! [`Store::scrub`](crate::Store::scrub) verifies a slice of the ring (up to a budget of bytes)
//! from a [`ScrubCursor`] and says where to go on; [`Scrubber`] paces those steps to a rate in
//! bytes per second (it says how long to wait; the caller waits: this crate reads no clock);
//! [`scrub_pass`] walks the whole ring once (`haze scrub`, offline). A damaged value found is
//! quarantined, as a read that finds it would.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::{DIGEST_BUCKETS, Result, Store};

/// Where a scrub stands in the ring: the next key to verify is the first of digest bucket
/// `bucket` after `after`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubCursor {
    /// The digest bucket.
    pub bucket: usize,
    /// The last key verified in it, if any.
    pub after: Option<Vec<u8>>,
}

impl ScrubCursor {
    /// The start of the ring.
    pub fn start() -> ScrubCursor {
        ScrubCursor::default()
    }

    /// Returns whether the cursor is at the start of the ring.
    pub fn is_start(&self) -> bool {
        self.bucket == 0 && self.after.is_none()
    }

    /// The cursor at the start of `bucket`, or of the ring past the last bucket.
    pub(crate) fn at_bucket(bucket: usize) -> ScrubCursor {
        ScrubCursor {
            bucket: if bucket >= DIGEST_BUCKETS { 0 } else { bucket },
            after: None,
        }
    }
}

/// A value a scrub found corrupt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptKey {
    /// The key.
    pub key: Vec<u8>,
    /// What is wrong.
    pub detail: String,
    /// Whether it was quarantined before this scrub (found by a read or an earlier scrub, and
    /// not yet repaired), rather than found now.
    pub earlier: bool,
}

/// What one step of a scrub did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubStep {
    /// Keys verified.
    pub keys: u64,
    /// Bytes read (keys and stored entries).
    pub bytes: u64,
    /// The corrupt values found, in ring order.
    pub corrupt: Vec<CorruptKey>,
    /// Where the next step starts.
    pub next: ScrubCursor,
    /// Whether this step reached the end of the ring (`next` is its start again).
    pub wrapped: bool,
}

/// What a whole pass of the ring found ([`scrub_pass`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubSummary {
    /// Keys verified.
    pub keys: u64,
    /// Bytes read.
    pub bytes: u64,
    /// The corrupt values, in ring order.
    pub corrupt: Vec<CorruptKey>,
}

/// Paces scrub steps to a rate: each [`step`](Self::step) verifies up to a step's worth of
/// bytes and returns how long to wait before the next.
#[derive(Debug, Clone)]
pub struct Scrubber {
    cursor: ScrubCursor,
    bytes_per_sec: u64,
    step_bytes: u64,
}

impl Scrubber {
    /// A scrub from the start of the ring at `bytes_per_sec` (at least 1), in steps of a tenth
    /// of a second's worth (at least 64 KiB, at most 16 MiB).
    pub fn new(bytes_per_sec: u64) -> Scrubber {
        let bytes_per_sec = bytes_per_sec.max(1);
        Scrubber {
            cursor: ScrubCursor::start(),
            bytes_per_sec,
            step_bytes: (bytes_per_sec / 10).clamp(64 * 1024, 16 * 1024 * 1024),
        }
    }

    /// Returns where the next step starts.
    pub fn cursor(&self) -> &ScrubCursor {
        &self.cursor
    }

    /// Verifies the next slice of the ring and returns what it found, and how long to wait
    /// before the next step to hold the rate.
    ///
    /// # Errors
    ///
    /// As [`Store::scrub`]: the cursor stays where it was.
    pub fn step(&mut self, store: &dyn Store) -> Result<(ScrubStep, Duration)> {
        let step = store.scrub(&self.cursor, self.step_bytes)?;
        self.cursor = step.next.clone();
        let wait = Duration::from_secs_f64(step.bytes as f64 / self.bytes_per_sec as f64);
        Ok((step, wait))
    }
}

/// Verifies the whole ring once, from its start, at `bytes_per_sec` if given (calling `wait`
/// with each pause), else as fast as it reads.
///
/// # Errors
///
/// As [`Store::scrub`].
pub fn scrub_pass(
    store: &dyn Store,
    bytes_per_sec: Option<u64>,
    mut wait: impl FnMut(Duration),
) -> Result<ScrubSummary> {
    let mut scrubber = Scrubber::new(bytes_per_sec.unwrap_or(u64::MAX));
    let mut summary = ScrubSummary::default();
    loop {
        let (step, pause) = scrubber.step(store)?;
        summary.keys += step.keys;
        summary.bytes += step.bytes;
        summary.corrupt.extend(step.corrupt);
        if step.wrapped {
            return Ok(summary);
        }
        if bytes_per_sec.is_some() {
            wait(pause);
        }
    }
}

/// The integrity counters of a store ([`Store::integrity`](crate::Store::integrity)), for
/// `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IntegrityStats {
    /// Stored values found damaged (by a read, a write, a page or a scrub) and quarantined.
    pub corrupt_found: u64,
    /// Reads refused because the value is corrupt or quarantined.
    pub corrupt_reads: u64,
    /// Quarantined values replaced by a merge of a healthy copy.
    pub repaired: u64,
    /// Keys a scrub verified.
    pub scrubbed_keys: u64,
    /// Bytes a scrub read.
    pub scrubbed_bytes: u64,
    /// Scrub passes completed (the end of the ring reached).
    pub scrub_passes: u64,
}

/// The counters behind [`IntegrityStats`].
#[derive(Debug, Default)]
pub(crate) struct Integrity {
    pub(crate) corrupt_found: AtomicU64,
    pub(crate) corrupt_reads: AtomicU64,
    pub(crate) repaired: AtomicU64,
    pub(crate) scrubbed_keys: AtomicU64,
    pub(crate) scrubbed_bytes: AtomicU64,
    pub(crate) scrub_passes: AtomicU64,
}

impl Integrity {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> IntegrityStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        IntegrityStats {
            corrupt_found: get(&self.corrupt_found),
            corrupt_reads: get(&self.corrupt_reads),
            repaired: get(&self.repaired),
            scrubbed_keys: get(&self.scrubbed_keys),
            scrubbed_bytes: get(&self.scrubbed_bytes),
            scrub_passes: get(&self.scrub_passes),
        }
    }

    /// Counts a scrub step.
    pub(crate) fn scrubbed(&self, step: &ScrubStep) {
        Integrity::add(&self.scrubbed_keys, step.keys);
        Integrity::add(&self.scrubbed_bytes, step.bytes);
        Integrity::add(&self.scrub_passes, u64::from(step.wrapped));
    }
}

/// [`Store::scrub`](crate::Store::scrub) for a store without checksums: walks the bucket
/// pages (what the store itself checks when it reads them is all that is verified).
pub(crate) fn scrub_by_pages<S: Store + ?Sized>(
    store: &S,
    from: &ScrubCursor,
    budget_bytes: u64,
) -> Result<ScrubStep> {
    const PAGE: usize = 256;
    let mut step = ScrubStep {
        next: from.clone(),
        ..ScrubStep::default()
    };
    while step.bytes < budget_bytes.max(1) {
        let cursor = &step.next;
        let (page, more) = store.bucket_keys(cursor.bucket, cursor.after.as_deref(), PAGE)?;
        step.keys += page.len() as u64;
        step.bytes += page.iter().map(|(k, _)| k.len() as u64 + 8).sum::<u64>();
        step.next = match (more, page.last()) {
            (true, Some((last, _))) => ScrubCursor {
                bucket: cursor.bucket,
                after: Some(last.clone()),
            },
            _ => ScrubCursor::at_bucket(cursor.bucket + 1),
        };
        if step.next.is_start() {
            step.wrapped = true;
            break;
        }
    }
    Ok(step)
}
