//! The records of a segment, in the layouts this build reads, and their payloads.
//!
//! ```text
//! version 1, 2: record = len:u32 BE, xxh3(payload):u64 BE, payload
//! version 3:    record = "HzR3", len:u32 BE, seq:u64 BE, xxh3(payload, seed seq):u64 BE,
//!                        xxh3(the 24 bytes before, seed: the record's offset in the file):u64 BE,
//!                        payload
//! ```
//!
//! Version 3 exists so that damage can be bounded and reported: the header's own check says
//! whether its length and number can be trusted (a damaged payload then costs exactly its
//! record, and the next one starts where the header says), the marker lets a scan find the next
//! record after a damaged header, the number says how many records a damaged range held (the
//! gap between the intact ones around it), and the offset in the header's check stops a record
//! copied elsewhere (inside a value, say) from passing as one.

use haze_crdt::encode::{Reader, writer};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::Logged;

/// The first bytes of every version-3 record: what a scan for the next record looks for.
pub(crate) const SYNC: [u8; 4] = *b"HzR3";
/// The header of a version-3 record.
pub(crate) const HEADER_V3: usize = 32;
/// The header of a version-1 or -2 record.
pub(crate) const HEADER_V1: usize = 12;
/// The kind byte of a delete record.
pub(crate) const DELETE: u8 = 1;

/// The layouts of a segment's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Layout {
    /// Versions 1 and 2: length and checksum.
    Plain,
    /// Version 3: marker, length, number, checksums of the payload and of the header.
    Numbered,
}

/// A complete record whose checks pass.
#[derive(Debug)]
pub(crate) struct Found<'a> {
    pub(crate) payload: &'a [u8],
    /// Where the record ends (the next one starts).
    pub(crate) end: usize,
    /// Its number (version 3).
    pub(crate) seq: Option<u64>,
}

/// Why the bytes at an offset are no record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bad {
    /// Fewer bytes are left than a header takes.
    ShortHeader,
    /// The header fails its check (version 3): nothing in it can be trusted.
    Header,
    /// The payload runs past the end of the file. `trusted` if the header passed its check.
    ShortPayload { seq: Option<u64>, trusted: bool },
    /// The payload fails its checksum. `trusted` if the header passed its check (then the next
    /// record starts at `end`).
    Payload {
        seq: Option<u64>,
        end: usize,
        trusted: bool,
    },
}

impl Bad {
    /// What is wrong, for a report.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Bad::ShortHeader => "the file ends inside a record's header",
            Bad::Header => "a record's header fails its check",
            Bad::ShortPayload { .. } => "the file ends inside a record",
            Bad::Payload { .. } => "a record's checksum does not match its contents",
        }
    }

    /// Whether a crash in the middle of an append could have left this (an incomplete record).
    pub(crate) fn incomplete(&self) -> bool {
        matches!(self, Bad::ShortHeader | Bad::ShortPayload { .. })
    }

    /// The damaged record's number, if its header is intact.
    pub(crate) fn seq(&self) -> Option<u64> {
        match self {
            Bad::ShortPayload { seq, trusted } | Bad::Payload { seq, trusted, .. } if *trusted => {
                *seq
            }
            _ => None,
        }
    }
}

/// Returns version-3 record number `seq` holding `payload`, to be written at `offset`.
pub(crate) fn encode(offset: u64, seq: u64, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("the caller checked the payload's size");
    let mut record = Vec::with_capacity(HEADER_V3 + payload.len());
    record.extend_from_slice(&SYNC);
    record.extend_from_slice(&len.to_be_bytes());
    record.extend_from_slice(&seq.to_be_bytes());
    record.extend_from_slice(&xxh3_64_with_seed(payload, seq).to_be_bytes());
    let check = xxh3_64_with_seed(&record[..24], offset);
    record.extend_from_slice(&check.to_be_bytes());
    record.extend_from_slice(payload);
    record
}

fn u32_at(bytes: &[u8], at: usize) -> usize {
    u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads the record at `at` of a segment in `layout`.
pub(crate) fn read_at(bytes: &[u8], at: usize, layout: Layout) -> Result<Found<'_>, Bad> {
    let header = match layout {
        Layout::Plain => HEADER_V1,
        Layout::Numbered => HEADER_V3,
    };
    if bytes.len().saturating_sub(at) < header {
        return Err(Bad::ShortHeader);
    }
    let (len, seq, checksum, trusted) = match layout {
        Layout::Plain => (u32_at(bytes, at), None, u64_at(bytes, at + 4), false),
        Layout::Numbered => {
            let check = xxh3_64_with_seed(&bytes[at..at + 24], at as u64);
            if bytes[at..at + 4] != SYNC || check != u64_at(bytes, at + 24) {
                return Err(Bad::Header);
            }
            let seq = u64_at(bytes, at + 8);
            (
                u32_at(bytes, at + 4),
                Some(seq),
                u64_at(bytes, at + 16),
                true,
            )
        }
    };
    let start = at + header;
    let end = start.saturating_add(len);
    let Some(payload) = bytes.get(start..end) else {
        return Err(Bad::ShortPayload { seq, trusted });
    };
    let sum = match seq {
        Some(seq) => xxh3_64_with_seed(payload, seq),
        None => xxh3_64(payload),
    };
    if sum != checksum {
        return Err(Bad::Payload { seq, end, trusted });
    }
    Ok(Found { payload, end, seq })
}

/// Returns the payload of a merge record holding `entries`.
pub(crate) fn merge_payload(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(
        16 + entries
            .iter()
            .map(|(k, v)| k.len() + v.len() + 6)
            .sum::<usize>(),
    );
    writer::len(&mut payload, entries.len());
    for (key, value) in entries {
        writer::bytes(&mut payload, key);
        writer::bytes(&mut payload, value);
    }
    payload
}

/// Returns the payload of a record deleting every key of digest buckets `buckets`.
pub(crate) fn delete_payload(buckets: std::ops::Range<usize>) -> Vec<u8> {
    let mut payload = Vec::with_capacity(24);
    writer::len(&mut payload, 0);
    payload.push(DELETE);
    writer::len(&mut payload, buckets.start);
    writer::len(&mut payload, buckets.end);
    payload
}

/// Parses a payload whose checksum passed.
pub(crate) fn parse_payload(payload: &[u8]) -> Option<Logged> {
    let mut r = Reader::new(payload);
    let n = r.count(2).ok()?;
    if n == 0 {
        if r.u8().ok()? != DELETE {
            return None;
        }
        let start = usize::try_from(r.varint().ok()?).ok()?;
        let end = usize::try_from(r.varint().ok()?).ok()?;
        return (r.remaining() == 0 && start <= end).then_some(Logged::Delete(start..end));
    }
    let mut entries = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let key = r.bytes().ok()?.to_vec();
        let value = r.bytes().ok()?.to_vec();
        entries.push((key, value));
    }
    (r.remaining() == 0).then_some(Logged::Merge(entries))
}

/// The keys a damaged payload still seems to name, read as far as its layout holds (nothing is
/// verified: for a report only).
pub(crate) fn keys_named(payload: &[u8], max_key: usize) -> Vec<Vec<u8>> {
    let mut r = Reader::new(payload);
    let mut keys = Vec::new();
    let Ok(n) = r.count(2) else {
        return keys;
    };
    for _ in 0..n {
        match (r.bytes(), r.bytes()) {
            (Ok(key), Ok(_)) if key.len() <= max_key => keys.push(key.to_vec()),
            _ => break,
        }
    }
    keys
}

/// Whether the bytes at `at` could be a plain-layout record whose payload parses, checked
/// without hashing or allocating: what a scan of an old segment tries at every position before
/// it hashes a payload.
pub(crate) fn plausible_plain(bytes: &[u8], at: usize) -> bool {
    if bytes.len().saturating_sub(at) < HEADER_V1 {
        return false;
    }
    let start = at + HEADER_V1;
    let Some(payload) = bytes.get(start..start.saturating_add(u32_at(bytes, at))) else {
        return false;
    };
    let mut r = Reader::new(payload);
    match r.count(2) {
        Ok(0) => r.u8() == Ok(DELETE),
        Ok(n) => (0..n).all(|_| r.bytes().is_ok() && r.bytes().is_ok()) && r.remaining() == 0,
        Err(_) => false,
    }
}
