//! Reading a whole segment: its intact records, and every damaged range between them, found by
//! resynchronising after each (the next record that passes its checks).
//!
//! A damaged range is *torn* when it is what a crash in the middle of an append leaves: an
//! incomplete record (or bytes never written: zeros) running to the end of the file, with no
//! intact record after it. Only a torn range at the end of the last segment may be cut off on
//! open; any other damage stops the open (`DiskStore::open`) and needs `haze repair`.

use std::ops::Range;
use std::path::Path;

use super::record::{
    Bad, HEADER_V1, HEADER_V3, Layout, SYNC, keys_named, parse_payload, plausible_plain, read_at,
};
use super::{Logged, MAGIC_LEN, magic_layout};
use crate::Result;

/// The longest key a damaged payload is believed to name (for reports).
const MAX_NAMED_KEY: usize = 4096;

/// A segment, read.
#[derive(Debug)]
pub(crate) struct Scanned {
    /// The layout its magic names (`None`: an empty file, or a magic cut short).
    pub(crate) layout: Option<Layout>,
    pub(crate) records: Vec<Intact>,
    pub(crate) damage: Vec<Damage>,
}

/// An intact record.
#[derive(Debug)]
pub(crate) struct Intact {
    /// Where it starts and ends in the file.
    pub(crate) bytes: Range<usize>,
    /// Where its payload is.
    pub(crate) payload: Range<usize>,
    pub(crate) seq: Option<u64>,
    pub(crate) logged: Logged,
}

/// A damaged range of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damage {
    /// Where it starts.
    pub(crate) offset: u64,
    /// Where the next intact record starts, or the file ends.
    pub(crate) end: u64,
    /// What is wrong at `offset`.
    pub(crate) reason: &'static str,
    /// The number of the damaged record, if its header is intact.
    pub(crate) seq: Option<u64>,
    /// Whether the range is exactly one record (its header, intact or bridged by its length,
    /// led to the next intact record).
    pub(crate) one_record: bool,
    /// Whether a crash in the middle of an append could have left it (see the module's doc).
    pub(crate) torn: bool,
    /// Whether it is bytes never written (zeros) to the end of the file.
    pub(crate) unwritten: bool,
    /// The keys its payload still seems to name (unverified).
    pub(crate) keys: Vec<Vec<u8>>,
}

impl Scanned {
    /// Returns how many intact records of this segment start after `offset`.
    pub(crate) fn records_after(&self, offset: u64) -> u64 {
        self.records
            .iter()
            .filter(|r| r.bytes.start as u64 > offset)
            .count() as u64
    }

    /// Returns the highest record number in the segment.
    pub(crate) fn last_seq(&self) -> Option<u64> {
        self.records.iter().filter_map(|r| r.seq).max()
    }
}

/// Reads the segment at `path` (for messages), whose contents are `bytes`.
///
/// # Errors
///
/// Only for a magic that names no log this build reads (see `super::magic_layout`).
pub(crate) fn scan(bytes: &[u8], path: &Path) -> Result<Scanned> {
    let mut scanned = Scanned {
        layout: None,
        records: Vec::new(),
        damage: Vec::new(),
    };
    if bytes.len() < MAGIC_LEN {
        // Empty, or a magic cut short: a segment whose creation a crash interrupted.
        if !bytes.is_empty() {
            magic_layout(bytes, path)?;
            scanned.damage.push(Damage {
                offset: 0,
                end: bytes.len() as u64,
                reason: "the file ends inside its magic",
                seq: None,
                one_record: false,
                torn: true,
                unwritten: bytes.iter().all(|&b| b == 0),
                keys: Vec::new(),
            });
        }
        return Ok(scanned);
    }
    let layout = magic_layout(bytes, path)?;
    Ok(scan_as(bytes, layout))
}

/// Reads the segment whose contents are `bytes` as a segment of `layout`, whatever its magic
/// says (at least a magic's length).
pub(crate) fn scan_as(bytes: &[u8], layout: Layout) -> Scanned {
    let mut scanned = Scanned {
        layout: Some(layout),
        records: Vec::new(),
        damage: Vec::new(),
    };
    let mut at = MAGIC_LEN;
    let mut last_seq: Option<u64> = None;
    while at < bytes.len() {
        let bad = match read_at(bytes, at, layout) {
            Ok(found) => match parse_payload(found.payload) {
                Some(logged) if in_order(found.seq, last_seq) => {
                    let start = found.end - found.payload.len();
                    scanned.records.push(Intact {
                        bytes: at..found.end,
                        payload: start..found.end,
                        seq: found.seq,
                        logged,
                    });
                    last_seq = found.seq.or(last_seq);
                    at = found.end;
                    continue;
                }
                // Passed its checksums but does not parse, or is out of order: not a record
                // this log wrote there.
                _ => Bad::Payload {
                    seq: None,
                    end: found.end,
                    trusted: false,
                },
            },
            Err(bad) => bad,
        };
        // Where the next record starts: after this one if its header can be trusted (or, in
        // the plain layout, if its length leads to an intact record), else the next position
        // where an intact record is found.
        let bridged = match bad {
            Bad::Payload {
                end, trusted: true, ..
            } => Some(end),
            Bad::Payload {
                end,
                trusted: false,
                ..
            } if layout == Layout::Plain && intact_at(bytes, end, layout, last_seq) => Some(end),
            _ => None,
        };
        let next = bridged.or_else(|| find_next(bytes, at + 1, layout, last_seq));
        let end = next.unwrap_or(bytes.len());
        let unwritten = bytes[at..].iter().all(|&b| b == 0);
        let payload_start = at
            + match layout {
                Layout::Plain => HEADER_V1,
                Layout::Numbered => HEADER_V3,
            };
        let keys = match bad {
            Bad::Payload { .. } | Bad::ShortPayload { .. } if payload_start < end => {
                keys_named(&bytes[payload_start..end], MAX_NAMED_KEY)
            }
            _ => Vec::new(),
        };
        scanned.damage.push(Damage {
            offset: at as u64,
            end: end as u64,
            reason: if unwritten && next.is_none() {
                "the file ends in bytes never written (zeros)"
            } else {
                bad.reason()
            },
            seq: bad.seq(),
            one_record: bridged.is_some(),
            torn: next.is_none() && (bad.incomplete() || unwritten),
            unwritten: unwritten && next.is_none(),
            keys,
        });
        at = end;
    }
    scanned
}

/// Whether a record numbered `seq` may follow one numbered `last` (numbers only grow).
fn in_order(seq: Option<u64>, last: Option<u64>) -> bool {
    match (seq, last) {
        (Some(seq), Some(last)) => seq > last,
        _ => true,
    }
}

/// Whether an intact record that may follow `last_seq` starts at `at`.
fn intact_at(bytes: &[u8], at: usize, layout: Layout, last_seq: Option<u64>) -> bool {
    if layout == Layout::Plain && !plausible_plain(bytes, at) {
        return false;
    }
    match read_at(bytes, at, layout) {
        Ok(found) => in_order(found.seq, last_seq) && parse_payload(found.payload).is_some(),
        Err(_) => false,
    }
}

/// Returns the first position from `from` on where an intact record starts.
fn find_next(bytes: &[u8], from: usize, layout: Layout, last_seq: Option<u64>) -> Option<usize> {
    let mut at = from;
    while at < bytes.len() {
        if layout == Layout::Numbered {
            // Only where the marker is.
            let skip = bytes[at..].windows(SYNC.len()).position(|w| w == SYNC)?;
            at += skip;
        }
        if intact_at(bytes, at, layout, last_seq) {
            return Some(at);
        }
        at += 1;
    }
    None
}
