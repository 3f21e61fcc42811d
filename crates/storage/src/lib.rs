//! Haze's durable store: CRDT [`Value`](haze_crdt::Value)s by key, merged atomically, made
//! durable in groups.
//!
//! Keys are stored in *ring order*: a stable 64-bit hash of the key bytes (xxh3) first, then the
//! key, so every partition of the ring is one contiguous range that later layers stream and
//! digest. Every write is a read-merge-write of one key inside the store's single writer, so
//! merges of one key are atomic; a [`GroupCommitter`] thread applies the writes that arrive
//! together as one group, made durable by one log append and one fdatasync (group commit). The
//! [`DiskStore`] keeps recent writes in memory and flushes them to redb in the background.
//!
//! The API is synchronous (no tokio here): async code submits writes to the committer with a
//! completion callback and reads directly.
//!
//! # Layout
//!
//! * `key` — ring hashing, ring-ordered store keys, digest buckets.
//! * `store` — the [`Store`] trait, writes and their outcomes, configuration.
//! * `mem_store` — [`MemStore`], in memory, for tests and simulations.
//! * `disk_store` — [`DiskStore`], durable: the log, the recent tables, redb (opening and
//!   recovery, reads, writes and flushes, deletes, each in a file of its own).
//! * `flush` — the flusher: recent values into redb in paced, small commits.
//! * `entry` — what a key's stored entry is: a value and its checksum, or a quarantine marker.
//! * `scrub` — walking the store to verify every value at a given rate; integrity counters.
//! * `wal` — the write-ahead log's segments and records, recovery that tells the truth, and
//!   [`repair_log`], which salvages a damaged log.
//! * `apply` — the merge of one write into a stored value, shared by both stores.
//! * `group_commit` — the writer thread, with a foreground and a background queue (its handle,
//!   its counters and its loop apart).
//! * `error` — [`Error`] (the store failed, keeping the cause: an [`IoError`], an
//!   [`EngineError`]; or a value is corrupt; or the log is damaged; or the disk is full) and
//!   [`WriteError`] (one write was refused).

mod apply;
mod disk_store;
mod entry;
mod error;
mod flush;
mod group_commit;
mod key;
mod mem_store;
mod ring_map;
mod scrub;
mod store;
mod wal;

pub use disk_store::{DiskStore, TornTail};
pub use error::{EngineError, Error, IoError, Result, WriteError};
pub use group_commit::{
    Answer, AppliedReply, BACKGROUND_ALONE, BACKGROUND_PER_COMMIT, COMMIT_BUCKET_BOUNDS_MICROS,
    COMMIT_SIZE_BOUNDS, CommitStats, GroupCommitter, Priority, Reply, SubmitError, WriterHandle,
};
pub use key::{DIGEST_BUCKETS, digest_bucket, key_digest, ring_hash};
pub use mem_store::MemStore;
pub use scrub::{
    CorruptKey, IntegrityStats, ScrubCursor, ScrubStep, ScrubSummary, Scrubber, scrub_pass,
};
pub use store::{Durability, InPlace, KeyPage, Mutation, Store, StoreConfig, ValuePage, Write};
/// The log's decoders, for the fuzz targets (`fuzz/`): not an API.
#[doc(hidden)]
pub use wal::fuzzing as wal_fuzzing;
pub use wal::{LostRange, RepairReport, SegmentRepair, repair_log};
