//! The storage trait and what a write is.

use haze_crdt::Value;

use crate::{IntegrityStats, Result, ScrubCursor, ScrubStep, WriteError};

/// How writes are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Acknowledge a write only after an fsync that covers it (the default). Writes that arrive
    /// together share one fsync.
    Sync,
    /// Acknowledge once a write is applied; fsync every `interval_ms` milliseconds. A crash can
    /// lose the acknowledged writes of the last interval.
    Periodic {
        /// Milliseconds between fsyncs.
        interval_ms: u64,
    },
}

/// Limits and durability of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// How writes are made durable.
    pub durability: Durability,
    /// The largest key, in bytes (default 1 KiB).
    pub max_key_bytes: usize,
    /// The largest encoded value, in bytes (default 64 KiB). A merge whose result would be larger
    /// is refused and changes nothing.
    pub max_value_bytes: usize,
    /// How many bytes of recent writes the disk store keeps in memory before flushing them to
    /// its B-tree in the background (default 32 MiB), or four times that of log. While a flush
    /// runs, writes go on until four times this size is held in memory, then wait for it.
    pub flush_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            durability: Durability::Sync,
            max_key_bytes: 1024,
            max_value_bytes: 64 * 1024,
            flush_bytes: 32 * 1024 * 1024,
        }
    }
}

/// What a write does to the stored value of its key.
pub enum Mutation {
    /// Merge a full state into the stored one (the stored value is created if absent).
    Merge(Value),
    /// Apply an operation to the stored value (`None` if absent) and return the new value: a
    /// typed operation applied by the node on a client's behalf. It runs inside the writer, so
    /// it is atomic with respect to every other write of the key. An error refuses the write.
    Update(Box<dyn FnOnce(Option<Value>) -> Result<Value, WriteError> + Send>),
    /// Apply an operation to the stored value where it is ([`InPlace`]): for a large value
    /// written often, whose writes then cost what the operation touches rather than the
    /// whole value.
    InPlace(Box<dyn InPlace>),
}

/// An operation applied to a stored value where it is, without copying it.
///
/// Its contract, which lets the store keep a value decoded and unencoded from one write to
/// the next: [`apply`](Self::apply) leaves the value exactly as it was when it refuses, and
/// [`growth_bound`](Self::growth_bound) never says less than the operation can add to the
/// value's encoding. The store checks the value-size limit with the bound (encoding the value
/// only when the bound could cross the limit) and encodes each key once per commit.
pub trait InPlace: Send {
    /// At most how many bytes applying the operation to `current` can add to its encoding;
    /// `None` if it cannot say (the store then applies it to a copy and measures).
    fn growth_bound(&self, current: Option<&Value>) -> Option<usize>;

    /// Applies the operation to `current` (`None`: the key is absent; on success it holds a
    /// value). On an error `current` is exactly as it was.
    ///
    /// # Errors
    ///
    /// Why the operation is refused: another type ([`WriteError::TypeMismatch`]), a refusal
    /// of the CRDT.
    fn apply(self: Box<Self>, current: &mut Option<Value>) -> Result<(), WriteError>;
}

impl std::fmt::Debug for Mutation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mutation::Merge(v) => f.debug_tuple("Merge").field(&v.kind()).finish(),
            Mutation::Update(_) => f.write_str("Update(..)"),
            Mutation::InPlace(_) => f.write_str("InPlace(..)"),
        }
    }
}

/// One write in a batch: a key, its mutation, and after [`Store::apply`] its outcome.
#[derive(Debug)]
pub struct Write {
    /// The key (user bytes, not yet in ring order).
    pub key: Vec<u8>,
    /// What to do; taken when applied.
    pub mutation: Option<Mutation>,
    /// The merged value now stored, or why this write was refused. `None` once applied if the
    /// write is [`superseded`](Self::superseded).
    pub outcome: Option<Result<Value, WriteError>>,
    /// Whether the caller needs the merged value (else only whether the write was applied).
    pub wants_value: bool,
    /// Set by a store for a write that does not want its value, was applied, and was followed
    /// in the same batch by a write of the same key that was applied too: the store moved the
    /// merged value on to that write instead of copying it (its outcome is then `None`), and
    /// the key's newest value is in the outcome of a later write of the batch. This is what
    /// keeps a hot key's writes from copying its whole value each.
    pub superseded: bool,
    /// Set by a store for an applied write that wants no value, whose outcome holds its key's
    /// newest value: the store would keep that value decoded for the key's next commit, so
    /// whoever answers the write hands it back with [`Store::keep`] once done with it.
    pub give_back: bool,
}

impl Write {
    /// Returns a write of `mutation` to `key`, not yet applied, whose caller wants the merged
    /// value.
    pub fn new(key: Vec<u8>, mutation: Mutation) -> Self {
        Write {
            key,
            mutation: Some(mutation),
            outcome: None,
            wants_value: true,
            superseded: false,
            give_back: false,
        }
    }

    /// As [`new`](Self::new), for a caller that needs only whether the write was applied: a
    /// store may then supersede it ([`superseded`](Self::superseded)).
    pub fn applied_only(key: Vec<u8>, mutation: Mutation) -> Self {
        Write {
            wants_value: false,
            ..Write::new(key, mutation)
        }
    }
}

/// A page of keys and their digests, and whether more follow ([`Store::bucket_keys`]).
pub type KeyPage = (Vec<(Vec<u8>, u64)>, bool);

/// A page of keys and their values, and whether more follow ([`Store::bucket_values`]).
pub type ValuePage = (Vec<(Vec<u8>, Value)>, bool);

/// A store of CRDT values by key.
///
/// Implementations: [`DiskStore`](crate::DiskStore) and [`MemStore`](crate::MemStore), which
/// pass one conformance suite (`tests/conformance`).
pub trait Store: Send + Sync + 'static {
    /// Returns the value stored under `key`.
    ///
    /// # Errors
    ///
    /// [`Error`](crate::Error) if the store cannot read;
    /// [`Error::CorruptValue`](crate::Error::CorruptValue) if the stored value is damaged (it
    /// is then quarantined: never served, and replaced by the next merge into the key).
    fn get(&self, key: &[u8]) -> Result<Option<Value>>;

    /// Returns the encoding of the value stored under `key` ([`Value::encode`]), for a caller
    /// that only passes it on: a store that holds encodings skips decoding the value and
    /// encoding it again.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    fn get_encoded(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.get(key)?.map(|value| value.encode()))
    }

    /// Applies a batch of writes, in order, as one atomic commit: each write reads the key's
    /// value (seeing earlier writes of the batch), merges, checks the limits, and stores the
    /// result; a refused write changes nothing and the others go on. With [`Durability::Sync`],
    /// the commit is durable when this returns.
    ///
    /// # Errors
    ///
    /// [`Error::NoSpace`](crate::Error::NoSpace) if the disk is full: nothing of the batch was
    /// applied, and the store takes the next batch (see [`Error::is_retryable`]). Any other
    /// [`Error`](crate::Error) if the commit failed: then no write of the batch may be
    /// acknowledged, and the store must not be used again.
    ///
    /// [`Error::is_retryable`]: crate::Error::is_retryable
    fn apply(&self, batch: &mut [Write]) -> Result<()>;

    /// Takes back the value of a write the store marked [`give_back`](Write::give_back), once
    /// its caller is done with it: a store may keep it decoded, so that the key's next commit
    /// need not decode the stored value again. The default drops it.
    fn keep(&self, key: &[u8], value: Value) {
        let _ = (key, value);
    }

    /// Makes every applied write durable (for [`Durability::Periodic`]).
    ///
    /// # Errors
    ///
    /// [`Error`](crate::Error) if the fsync failed.
    fn sync(&self) -> Result<()>;

    /// Returns the digest of the value stored under `key`: [`key_digest`](crate::key_digest) of
    /// its encoding, or `None` if absent.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    fn digest(&self, key: &[u8]) -> Result<Option<u64>>;

    /// Returns the digest of each of the [`DIGEST_BUCKETS`](crate::DIGEST_BUCKETS) slices of the
    /// ring: the XOR of the digests of its keys, kept up to date by every write.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    fn bucket_digests(&self) -> Result<Vec<u64>>;

    /// Returns up to `limit` keys of digest bucket `bucket` (see
    /// [`digest_bucket`](crate::digest_bucket)) with their digests, in ring order, starting after
    /// key `after` if given, and whether more follow: how anti-entropy finds which keys of a
    /// bucket differ between two replicas. A bucket past the last holds no keys. A corrupt
    /// value is left out (and quarantined), as if absent: its bucket's digest counts it so, and
    /// a healthy replica's copy is fetched to replace it.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    fn bucket_keys(&self, bucket: usize, after: Option<&[u8]>, limit: usize) -> Result<KeyPage>;

    /// Returns up to `limit` keys of digest bucket `bucket` with their values, in the order and
    /// pages of [`bucket_keys`](Self::bucket_keys): how a node streams a partition to a new
    /// replica, reading each key once.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    fn bucket_values(&self, bucket: usize, after: Option<&[u8]>, limit: usize)
    -> Result<ValuePage>;

    /// Deletes every key of the digest buckets `buckets`, durably, and returns how many it
    /// deleted; those buckets' digests become 0. How a node drops a partition that moved away
    /// (a partition is a union of whole buckets). Writes wait while it runs. A disk store logs
    /// the delete (a replay deletes the range again after putting back its logged writes), so
    /// it costs no flush.
    ///
    /// # Errors
    ///
    /// As [`apply`](Self::apply).
    fn delete_buckets(&self, buckets: std::ops::Range<usize>) -> Result<u64>;

    /// Returns the configuration.
    fn config(&self) -> &StoreConfig;

    /// Verifies the stored values from `from` on, in ring order, until about `budget_bytes`
    /// were read (whole pages of keys) or the ring ends, and returns what it found and where to
    /// go on. A damaged value is quarantined, as a read that finds it would. [`Scrubber`]
    /// paces the steps; [`scrub_pass`](crate::scrub_pass) walks the ring once. A store without
    /// checksums (the default) walks its key pages only.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// [`Scrubber`]: crate::Scrubber
    fn scrub(&self, from: &ScrubCursor, budget_bytes: u64) -> Result<ScrubStep> {
        crate::scrub::scrub_by_pages(self, from, budget_bytes)
    }

    /// Returns how many keys hold a value (for `INFO keyspace`). The default walks every
    /// bucket's key pages: a store that can count faster says so.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    fn key_count(&self) -> Result<u64> {
        let mut count = 0;
        for bucket in 0..crate::DIGEST_BUCKETS {
            let mut after: Option<Vec<u8>> = None;
            loop {
                let (page, more) = self.bucket_keys(bucket, after.as_deref(), 1024)?;
                count += page.len() as u64;
                match page.into_iter().next_back() {
                    Some((last, _)) if more => after = Some(last),
                    _ => break,
                }
            }
        }
        Ok(count)
    }

    /// Returns the integrity counters: corrupt values found, reads refused, repairs, scrubbing
    /// (all 0 for a store without checksums, the default).
    fn integrity(&self) -> IntegrityStats {
        IntegrityStats::default()
    }
}
