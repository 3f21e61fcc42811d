//! redb's tables, the format marker, and the bucket digests as redb stores them.

use std::collections::BTreeSet;
use std::ops::Bound;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::entry;
use crate::error::engine;
use crate::flush::CHUNK;
use crate::key::{bucket_bounds, digest_bucket};
use crate::{DIGEST_BUCKETS, Error, Result};

/// Ring-ordered key (hash, then key bytes) → an entry (`crate::entry`: the encoded `Value` and
/// its checksum, or a quarantine marker).
pub(crate) const VALUES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("values");
/// `"buckets"` → the digest of every bucket (XOR of the digests of its keys in `VALUES`), as 4096
/// big-endian `u64`s, written by every commit that changes `VALUES`.
pub(crate) const DIGESTS: TableDefinition<&str, &[u8]> = TableDefinition::new("digests");
pub(crate) const DIGESTS_KEY: &str = "buckets";
/// Format markers.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The layout of the tables above. Bump it (and add an upgrade) for any change. Version 2:
/// every entry of `VALUES` carries a checksum, or marks a quarantined value (`crate::entry`);
/// version 1 stored the bare encoding, and is upgraded on open ([`upgrade_values`]).
pub(super) const FORMAT_VERSION: u64 = 2;
/// The oldest layout this build upgrades.
const OLDEST_FORMAT: u64 = 1;

/// The bucket digests as stored in redb.
pub(crate) fn digests_blob(digests: &[u64]) -> Vec<u8> {
    digests.iter().flat_map(|d| d.to_be_bytes()).collect()
}

/// The bucket digests stored in redb.
pub(crate) fn parse_digests(blob: &[u8]) -> Result<Vec<u64>> {
    if blob.len() != DIGEST_BUCKETS * 8 {
        return Err(Error::Corrupt(format!(
            "the digests take {} bytes, not {}",
            blob.len(),
            DIGEST_BUCKETS * 8
        )));
    }
    Ok(blob
        .chunks_exact(8)
        .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

/// Checks that `db` holds this build's layout (`meta.format`) or one it upgrades, marking a new
/// database with this build's; returns the version found.
///
/// # Errors
///
/// [`Error::UnsupportedFormat`] for another version (nothing is written then).
pub(super) fn check_format(db: &Database) -> Result<u64> {
    const CONTEXT: &str = "checking the format of haze.redb";
    let txn = db.begin_write().map_err(engine(CONTEXT))?;
    let found = {
        let mut meta = txn.open_table(META).map_err(engine(CONTEXT))?;
        let found = meta
            .get("format")
            .map_err(engine(CONTEXT))?
            .map(|v| v.value());
        match found {
            Some(found) if (OLDEST_FORMAT..=FORMAT_VERSION).contains(&found) => {}
            Some(found) => {
                return Err(Error::UnsupportedFormat {
                    found,
                    expected: FORMAT_VERSION,
                });
            }
            None => {
                meta.insert("format", FORMAT_VERSION)
                    .map_err(engine(CONTEXT))?;
            }
        }
        txn.open_table(VALUES).map_err(engine(CONTEXT))?;
        txn.open_table(DIGESTS).map_err(engine(CONTEXT))?;
        found.unwrap_or(FORMAT_VERSION)
    };
    txn.commit().map_err(engine(CONTEXT))?;
    Ok(found)
}

/// Upgrades the values of a version-1 database to version 2: each bare encoding becomes a
/// value entry with its checksum (an encoding that does not decode becomes a quarantine
/// marker, and its bucket's digest is computed again). In durable commits of [`CHUNK`] keys;
/// the last one marks the database as version 2, so a crash midway resumes (an upgraded entry
/// is told from a bare encoding by its first byte: an encoding starts with its version, 1).
pub(super) fn upgrade_values(db: &Database) -> Result<u64> {
    const CONTEXT: &str = "upgrading haze.redb to format 2";
    let mut after: Option<Vec<u8>> = None;
    let mut upgraded = 0;
    loop {
        let txn = db.begin_write().map_err(engine(CONTEXT))?;
        let last = {
            let mut table = txn.open_table(VALUES).map_err(engine(CONTEXT))?;
            let start = after.as_deref();
            let chunk: Vec<(Vec<u8>, Vec<u8>)> = {
                let range = match start {
                    Some(a) => table.range::<&[u8]>((Bound::Excluded(a), Bound::Unbounded)),
                    None => table.range::<&[u8]>(..),
                }
                .map_err(engine(CONTEXT))?;
                range
                    .take(CHUNK)
                    .map(|e| e.map(|(k, v)| (k.value().to_vec(), v.value().to_vec())))
                    .collect::<Result<_, _>>()
                    .map_err(engine(CONTEXT))?
            };
            let mut dirty = BTreeSet::new();
            for (skey, bytes) in &chunk {
                if matches!(bytes.first(), Some(&entry::VALUE | &entry::QUARANTINED)) {
                    continue; // upgraded before a crash
                }
                let key = &skey[8..];
                let upgraded_entry = if haze_crdt::Value::decode(bytes).is_ok() {
                    entry::value_entry(key, bytes).0
                } else {
                    dirty.insert(bucket_of(skey));
                    entry::quarantine_entry(bytes)
                };
                table
                    .insert(skey.as_slice(), upgraded_entry.as_slice())
                    .map_err(engine(CONTEXT))?;
                upgraded += 1;
            }
            if !dirty.is_empty() {
                let mut digests_table = txn.open_table(DIGESTS).map_err(engine(CONTEXT))?;
                let mut digests = match digests_table.get(DIGESTS_KEY).map_err(engine(CONTEXT))? {
                    Some(blob) => parse_digests(blob.value())?,
                    None => vec![0; DIGEST_BUCKETS],
                };
                for bucket in dirty {
                    digests[bucket] = bucket_sum(&table, bucket).map_err(engine(CONTEXT))?;
                }
                digests_table
                    .insert(DIGESTS_KEY, digests_blob(&digests).as_slice())
                    .map_err(engine(CONTEXT))?;
            }
            after = chunk.last().map(|(k, _)| k.clone());
            chunk.len() < CHUNK
        };
        if last {
            txn.open_table(META)
                .map_err(engine(CONTEXT))?
                .insert("format", FORMAT_VERSION)
                .map_err(engine(CONTEXT))?;
        }
        txn.commit().map_err(engine(CONTEXT))?;
        if last {
            return Ok(upgraded);
        }
    }
}

/// The digest bucket of a store key.
pub(crate) fn bucket_of(skey: &[u8]) -> usize {
    digest_bucket(u64::from_be_bytes(
        skey[..8]
            .try_into()
            .expect("a store key starts with its hash"),
    ))
}

/// The digest of `bucket` computed from what `table` holds: the XOR of its sound entries'
/// checksums (a quarantined or damaged entry counts as absent).
pub(crate) fn bucket_sum(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    bucket: usize,
) -> Result<u64, redb::StorageError> {
    let Some((start, end)) = bucket_bounds(bucket, None) else {
        return Ok(0);
    };
    let range = (
        start.as_ref().map(Vec::as_slice),
        end.as_ref().map(Vec::as_slice),
    );
    let mut sum = 0;
    for item in table.range::<&[u8]>(range)? {
        let (skey, value) = item?;
        sum ^= entry::parse(&skey.value()[8..], value.value()).contribution();
    }
    Ok(sum)
}

/// The bucket digests redb holds (those as of the last flush).
pub(super) fn stored_buckets(db: &Database) -> Result<Vec<u64>> {
    const CONTEXT: &str = "reading the bucket digests";
    let txn = db.begin_read().map_err(engine(CONTEXT))?;
    let table = txn.open_table(DIGESTS).map_err(engine(CONTEXT))?;
    match table.get(DIGESTS_KEY).map_err(engine(CONTEXT))? {
        Some(blob) => parse_digests(blob.value()),
        None => Ok(vec![0; DIGEST_BUCKETS]),
    }
}
