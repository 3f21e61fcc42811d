//! The write-ahead log that makes a group of writes durable with one append and one fdatasync.
//!
//! redb makes a commit durable by writing every B-tree page the commit touched and syncing;
//! for random keys that is many pages per write. So the disk store makes each group durable
//! here instead: the merged values of the group are appended as one record and the segment is
//! fdatasync'ed; the values reach redb later, in bulk, and the segments they came from are then
//! deleted. Replaying a record *merges* its values into the store, so replaying records that
//! redb already holds is harmless (merge is idempotent).
//!
//! ```text
//! file   = magic ("HAZEWAL1", or "HAZEWAL2" once it holds a delete) record*
//! record = payload_len:u32 BE, checksum:u64 BE (xxh3 of payload), payload
//! payload = count:varint (> 0), then count × (key: len-prefixed bytes, value: len-prefixed encoding)
//!         | 0:varint, 1:u8, first:varint, end:varint      (delete digest buckets first..end)
//! ```
//!
//! A delete record is how a partition that moved away is dropped without flushing first: the
//! records before it put the partition's keys back on replay, and the delete takes them out
//! again (of the tables and of redb), in log order. A segment is written as version 1 and
//! marked version 2 before its first delete: a binary that only knows version 1 refuses such a
//! segment instead of misreading it, and reads every other (a rollback works unless a delete
//! is waiting in the log).
//!
//! The log is a sequence of segment files (`wal-<seq>.log`). A record that is truncated or fails
//! its checksum ends its segment (a torn write of the last, unacknowledged group); recovery
//! truncates the file there.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use haze_crdt::encode::{Reader, writer};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::io_at;
use crate::{Error, Result};

/// The magic of a segment that holds deletes.
const MAGIC: &[u8; 8] = b"HAZEWAL2";
/// The magic of a segment without deletes (the first format, which every version reads).
const MAGIC_V1: &[u8; 8] = b"HAZEWAL1";
/// What every version's magic starts with; the digit after it is the version.
const MAGIC_PREFIX: &[u8; 7] = b"HAZEWAL";
/// The newest version of the log this build reads (the digit of [`MAGIC`]).
const VERSION: u64 = 2;
/// The kind byte of a delete record.
const DELETE: u8 = 1;
const RECORD_HEADER: usize = 12;

/// An open log, positioned at its end.
#[derive(Debug)]
pub(crate) struct Wal {
    file: File,
    /// Where the file is, for error messages.
    path: PathBuf,
    len: u64,
    /// Whether the file is marked as holding deletes ([`MAGIC`]).
    deletes: bool,
}

/// One replayed entry: a key and the encoding of a value merged into it.
pub(crate) type Entry = (Vec<u8>, Vec<u8>);

/// What one record of the log asks of a replay, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Logged {
    /// Merge these values.
    Merge(Vec<Entry>),
    /// Delete every key of these digest buckets.
    Delete(std::ops::Range<usize>),
}

impl Wal {
    /// Opens the log at `path`, creating it if needed, and returns it with every complete
    /// record, in order. A torn or corrupt tail is cut off.
    pub(crate) fn open(path: &Path) -> Result<(Wal, Vec<Logged>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_at("opening the log segment", path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(io_at("reading the log segment", path))?;
        if bytes.is_empty() {
            file.write_all(MAGIC_V1)
                .and_then(|()| file.sync_all())
                .map_err(io_at("starting the log segment", path))?;
            return Ok((
                Wal {
                    file,
                    path: path.to_path_buf(),
                    len: MAGIC_V1.len() as u64,
                    deletes: false,
                },
                Vec::new(),
            ));
        }
        let deletes = holds_deletes(&bytes, path)?;
        let mut records = Vec::new();
        let mut at = MAGIC.len();
        while let Some((payload, next)) = record_at(&bytes, at) {
            match parse_payload(payload) {
                Some(parsed) => records.push(parsed),
                None => break,
            }
            at = next;
        }
        if at < bytes.len() {
            // A torn or corrupt tail: the last group, never acknowledged. Cut it off.
            file.set_len(at as u64)
                .and_then(|()| file.sync_all())
                .map_err(io_at("cutting the torn tail of the log segment", path))?;
        }
        file.seek(SeekFrom::Start(at as u64))
            .map_err(io_at("seeking in the log segment", path))?;
        Ok((
            Wal {
                file,
                path: path.to_path_buf(),
                len: at as u64,
                deletes,
            },
            records,
        ))
    }

    /// Appends one record holding `entries` (keys and encoded values) and, if `sync`, waits for
    /// it to reach the disk.
    pub(crate) fn append(&mut self, entries: &[(&[u8], &[u8])], sync: bool) -> Result<()> {
        if entries.is_empty() {
            // A record of no entries would read as a delete of another kind: write nothing.
            return Ok(());
        }
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
        self.append_record(&payload, sync)
    }

    /// Appends a record deleting every key of the digest buckets `buckets`, and waits for it
    /// to reach the disk.
    pub(crate) fn append_delete(&mut self, buckets: std::ops::Range<usize>) -> Result<()> {
        if !self.deletes {
            // Marked first (and synced): a binary that cannot read deletes must refuse the file.
            std::os::unix::fs::FileExt::write_all_at(&self.file, MAGIC, 0)
                .and_then(|()| self.file.sync_data())
                .map_err(io_at(
                    "marking as holding deletes the log segment",
                    &self.path,
                ))?;
            self.deletes = true;
        }
        let mut payload = Vec::with_capacity(24);
        writer::len(&mut payload, 0);
        payload.push(DELETE);
        writer::len(&mut payload, buckets.start);
        writer::len(&mut payload, buckets.end);
        self.append_record(&payload, true)
    }

    fn append_record(&mut self, payload: &[u8], sync: bool) -> Result<()> {
        let len = u32::try_from(payload.len()).map_err(|_| {
            Error::Io(format!("a log record of {} bytes (4 GiB at most)", payload.len()).into())
        })?;
        let mut record = Vec::with_capacity(RECORD_HEADER + payload.len());
        record.extend_from_slice(&len.to_be_bytes());
        record.extend_from_slice(&xxh3_64(payload).to_be_bytes());
        record.extend_from_slice(payload);
        self.file
            .write_all(&record)
            .map_err(io_at("appending to the log segment", &self.path))?;
        self.len += record.len() as u64;
        if sync {
            self.sync()?;
        }
        Ok(())
    }

    /// Waits until everything appended is on the disk.
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(io_at("syncing the log segment", &self.path))
    }

    /// Returns the log's size in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }
}

/// Returns the path of log segment `seq` in `dir`.
pub(crate) fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("wal-{seq:016x}.log"))
}

/// Returns the log segments in `dir`, oldest first.
pub(crate) fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    let listing = || io_at("listing the data directory", dir);
    for entry in std::fs::read_dir(dir).map_err(listing())? {
        let path = entry.map_err(listing())?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let seq = name
            .strip_prefix("wal-")
            .and_then(|n| n.strip_suffix(".log"));
        if let Some(seq) = seq.and_then(|hex| u64::from_str_radix(hex, 16).ok()) {
            found.push((seq, path));
        }
    }
    found.sort();
    Ok(found)
}

/// Makes the creation or removal of files in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at("syncing the data directory", dir))
}

/// Checks that the segment at `path` is a log of a version this build reads (or empty: a
/// segment whose creation a crash cut short), reading only its magic.
///
/// # Errors
///
/// As [`holds_deletes`].
pub(crate) fn check_segment(path: &Path) -> Result<()> {
    let mut head = Vec::with_capacity(MAGIC.len());
    File::open(path)
        .and_then(|f| f.take(MAGIC.len() as u64).read_to_end(&mut head))
        .map_err(io_at("reading the log segment", path))?;
    if head.is_empty() {
        return Ok(());
    }
    holds_deletes(&head, path).map(|_| ())
}

/// Returns whether a segment starting with `head` (at least its magic) is marked as holding
/// deletes ([`MAGIC`]) or not ([`MAGIC_V1`]).
///
/// # Errors
///
/// [`Error::UnsupportedFormat`] for the magic of another version of the log ("HAZEWAL"
/// and a digit), [`Error::Corrupt`] for anything else: it is not a Haze log.
fn holds_deletes(head: &[u8], path: &Path) -> Result<bool> {
    match head.get(..MAGIC.len()) {
        Some(magic) if magic == MAGIC => Ok(true),
        Some(magic) if magic == MAGIC_V1 => Ok(false),
        Some([prefix @ .., digit]) if prefix == MAGIC_PREFIX && digit.is_ascii_digit() => {
            Err(Error::UnsupportedFormat {
                found: u64::from(digit - b'0'),
                expected: VERSION,
            })
        }
        _ => Err(Error::Corrupt(format!(
            "{} is not a Haze write-ahead log",
            path.display()
        ))),
    }
}

/// Returns the payload of the record at `at` and where the next starts, if the record is
/// complete and its checksum matches.
fn record_at(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let header = bytes.get(at..at + RECORD_HEADER)?;
    let len = u32::from_be_bytes(header[..4].try_into().ok()?) as usize;
    let checksum = u64::from_be_bytes(header[4..].try_into().ok()?);
    let start = at + RECORD_HEADER;
    let payload = bytes.get(start..start.checked_add(len)?)?;
    (xxh3_64(payload) == checksum).then_some((payload, start + len))
}

fn parse_payload(payload: &[u8]) -> Option<Logged> {
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

#[cfg(test)]
mod tests;
