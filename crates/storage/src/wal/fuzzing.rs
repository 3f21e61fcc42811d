//! The log's decoders, reachable from outside the crate for the fuzz targets (`fuzz/`, target
//! `wal`) and nothing else: not an API, hidden from the docs, free to change.
//!
//! A segment is untrusted input (a damaged disk writes anything): reading one must never panic,
//! and whatever is read must account for every byte (intact records and damaged ranges, in
//! order, back to back).

use std::ops::Range;
use std::path::Path;

use super::record::{encode, parse_payload};
use super::{Logged, MAGIC, MAGIC_LEN, scan};

/// What a scan of a segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Each intact record: where it is in the file, and what it holds.
    pub records: Vec<(Range<usize>, Record)>,
    /// Each damaged range: where it starts and where the next intact record (or the end) is.
    pub damage: Vec<Range<u64>>,
}

/// One record's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Keys and encoded values to merge.
    Merge(Vec<(Vec<u8>, Vec<u8>)>),
    /// Digest buckets to delete.
    Delete(Range<usize>),
}

fn record(logged: Logged) -> Record {
    match logged {
        Logged::Merge(entries) => Record::Merge(entries),
        Logged::Delete(buckets) => Record::Delete(buckets),
    }
}

/// Reads `bytes` as a whole segment file (magic first), the way opening a store does.
///
/// # Errors
///
/// What opening the store says of a file that is no log this build reads.
pub fn scan_segment(bytes: &[u8]) -> crate::Result<Segment> {
    let scanned = scan(bytes, Path::new("fuzz.log"))?;
    Ok(Segment {
        records: scanned
            .records
            .into_iter()
            .map(|r| (r.bytes, record(r.logged)))
            .collect(),
        damage: scanned
            .damage
            .into_iter()
            .map(|d| d.offset..d.end)
            .collect(),
    })
}

/// Reads `payload` as a record's payload whose checksum passed.
pub fn parse_record(payload: &[u8]) -> Option<Record> {
    parse_payload(payload).map(record)
}

/// Returns a version-3 segment holding one merge record of `entries` per element of
/// `records`, numbered from 1: what the log writes (for seeds and round trips).
pub fn segment_of(records: &[Vec<(Vec<u8>, Vec<u8>)>]) -> Vec<u8> {
    let mut file = MAGIC.to_vec();
    for (seq, entries) in (1u64..).zip(records) {
        let refs: Vec<(&[u8], &[u8])> = entries
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        let bytes = encode(file.len() as u64, seq, &super::record::merge_payload(&refs));
        file.extend_from_slice(&bytes);
    }
    file
}

/// The length of a segment's magic: where its first record starts.
pub const MAGIC_BYTES: usize = MAGIC_LEN;

/// Returns the payload of a merge record holding `entries` (what [`parse_record`] reads).
pub fn merge_payload(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let refs: Vec<(&[u8], &[u8])> = entries
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    super::record::merge_payload(&refs)
}
