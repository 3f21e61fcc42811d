//! redb's tables, the format marker, and the bucket digests as redb stores them.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::error::engine;
use crate::{DIGEST_BUCKETS, Error, Result};

/// Ring-ordered key (hash, then key bytes) → encoded `Value`.
pub(crate) const VALUES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("values");
/// `"buckets"` → the digest of every bucket (XOR of the digests of its keys in `VALUES`), as 4096
/// big-endian `u64`s, written by every commit that changes `VALUES`.
pub(crate) const DIGESTS: TableDefinition<&str, &[u8]> = TableDefinition::new("digests");
pub(crate) const DIGESTS_KEY: &str = "buckets";
/// Format markers.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The layout of the tables above. Bump it (and add an upgrade) for any change.
const FORMAT_VERSION: u64 = 1;

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

/// Checks that `db` holds this build's layout (`meta.format`), marking a new database with it.
///
/// # Errors
///
/// [`Error::UnsupportedFormat`] for another version (nothing is written then).
pub(super) fn check_format(db: &Database) -> Result<()> {
    const CONTEXT: &str = "checking the format of haze.redb";
    let txn = db.begin_write().map_err(engine(CONTEXT))?;
    {
        let mut meta = txn.open_table(META).map_err(engine(CONTEXT))?;
        let found = meta
            .get("format")
            .map_err(engine(CONTEXT))?
            .map(|v| v.value());
        match found {
            Some(FORMAT_VERSION) => {}
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
    }
    txn.commit().map_err(engine(CONTEXT))
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
