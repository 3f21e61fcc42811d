//! The writer's counters, for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters of the writer thread, for `/metrics`.
#[derive(Debug, Default)]
pub struct CommitStats {
    /// Commits made (one per group of writes).
    pub commits: AtomicU64,
    /// Writes applied (acknowledged or refused by their own rules).
    pub writes: AtomicU64,
    /// Total time spent committing (applying and, in `sync` mode, fsyncing), in microseconds.
    pub commit_micros: AtomicU64,
    /// Commits that took at most 0.1, 0.5, 1, 5, 10, 50 ms, and the rest.
    pub commit_micros_buckets: [AtomicU64; 7],
    /// Commits of at most 1, 2, 4, 16, 64, 256, 1024 writes, and more: how well writes group.
    pub commit_size_buckets: [AtomicU64; 8],
    /// Periodic fsyncs (in `periodic` mode).
    pub syncs: AtomicU64,
    /// Fsyncs of a `periodic` store made at once because a commit held a write that is
    /// acknowledged only when durable (another node's copy).
    pub durable_syncs: AtomicU64,
    /// Commits refused because the disk was full (their writes answered with the error).
    pub no_space: AtomicU64,
    /// Passes of the writer's loop: it woke up (for a write, a `Wake` or a stop), or went on
    /// without sleeping because background writes were left.
    pub wakeups: AtomicU64,
}

/// The upper bounds of [`CommitStats::commit_size_buckets`], in writes.
pub const COMMIT_SIZE_BOUNDS: [u64; 7] = [1, 2, 4, 16, 64, 256, 1024];

/// The upper bounds of [`CommitStats::commit_micros_buckets`], in microseconds.
pub const COMMIT_BUCKET_BOUNDS_MICROS: [u64; 6] = [100, 500, 1_000, 5_000, 10_000, 50_000];

impl CommitStats {
    pub(super) fn record(&self, writes: usize, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(writes as u64, Ordering::Relaxed);
        self.commit_micros.fetch_add(micros, Ordering::Relaxed);
        let bucket = COMMIT_BUCKET_BOUNDS_MICROS
            .iter()
            .position(|&b| micros <= b)
            .unwrap_or(6);
        self.commit_micros_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let size = COMMIT_SIZE_BOUNDS
            .iter()
            .position(|&b| writes as u64 <= b)
            .unwrap_or(7);
        self.commit_size_buckets[size].fetch_add(1, Ordering::Relaxed);
    }
}
