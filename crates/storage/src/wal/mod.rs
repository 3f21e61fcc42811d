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
//! file    = magic ("HAZEWAL3"; older: "HAZEWAL1", or "HAZEWAL2" once it holds a delete) record*
//! record  = see `record` (version 3: marker, length, number, checksums of payload and header)
//! payload = count:varint (> 0), then count × (key: len-prefixed bytes, value: len-prefixed encoding)
//!         | 0:varint, 1:u8, first:varint, end:varint      (delete digest buckets first..end)
//! ```
//!
//! A delete record is how a partition that moved away is dropped without flushing first: the
//! records before it put the partition's keys back on replay, and the delete takes them out
//! again (of the tables and of redb), in log order. This build writes version 3 only; it reads
//! every version (a binary that knows versions 1 and 2 only refuses a version-3 segment).
//!
//! The log is a sequence of segment files (`wal-<seq>.log`). Opening them (`scan`) finds every
//! intact record and every damaged range; only the incomplete last record of the last segment
//! (a crash in the middle of an append) may be cut off, and the store says so. `repair`
//! salvages the intact records of a damaged log.
//!
//! A write that fails (the disk is full) rewinds the segment to its last complete record, so
//! the next append continues a valid log; an fsync that fails is never retried.

#[doc(hidden)]
pub mod fuzzing;
mod record;
mod repair;
mod scan;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) use self::record::Layout;
pub use self::repair::{LostRange, RepairReport, SegmentRepair, repair_log};
pub(crate) use self::scan::{Damage, Scanned, scan};
use crate::error::{io_at, write_at};
use crate::{Error, Result};

/// The magic of the segments this build writes.
const MAGIC: &[u8; 8] = b"HAZEWAL3";
/// The magic of a version-2 segment: version 1's records, and deletes.
const MAGIC_V2: &[u8; 8] = b"HAZEWAL2";
/// The magic of a version-1 segment (no deletes).
const MAGIC_V1: &[u8; 8] = b"HAZEWAL1";
/// What every version's magic starts with; the digit after it is the version.
const MAGIC_PREFIX: &[u8; 7] = b"HAZEWAL";
/// A magic's length.
pub(crate) const MAGIC_LEN: usize = 8;
/// The newest version of the log this build reads (the digit of [`MAGIC`]).
const VERSION: u64 = 3;

/// The segment being written, positioned at its end.
#[derive(Debug)]
pub(crate) struct Wal {
    /// Shared with [`SegmentSync`]s, which fsync it without holding the log.
    file: Arc<File>,
    /// Where the file is, for error messages.
    path: PathBuf,
    /// The length of its complete records: where the next append goes, and what a failed
    /// append rewinds to.
    len: u64,
    /// The number of the next record.
    next_seq: u64,
    /// A failure to inject into the next append (tests of the rewind).
    #[cfg(test)]
    pub(crate) fail_next_write: Option<(usize, std::io::ErrorKind)>,
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
    /// Starts a new segment at `path` whose first record is numbered `next_seq` (an empty file
    /// there, left by a creation a crash cut short, is reused).
    ///
    /// # Errors
    ///
    /// [`Error::NoSpace`] if the disk is full (no file is left behind), [`Error::Io`] otherwise;
    /// [`Error::Corrupt`] if a segment with contents is already there.
    pub(crate) fn create(path: &Path, next_seq: u64) -> Result<Wal> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(write_at("creating the log segment", path))?;
        let existing = file
            .metadata()
            .map_err(io_at("reading the log segment", path))?
            .len();
        if existing != 0 {
            return Err(Error::Corrupt(format!(
                "{} already holds {existing} bytes: a new segment cannot start there",
                path.display()
            )));
        }
        if let Err(e) = file.write_all(MAGIC) {
            // Nothing of it is needed: remove it, so that a full disk leaves no stray segment.
            let _ = std::fs::remove_file(path);
            return Err(write_at("starting the log segment", path)(e));
        }
        file.sync_all()
            .map_err(io_at("syncing the new log segment", path))?;
        Ok(Wal {
            file: Arc::new(file),
            path: path.to_path_buf(),
            len: MAGIC.len() as u64,
            next_seq,
            #[cfg(test)]
            fail_next_write: None,
        })
    }

    /// Appends one record holding `entries` (keys and encoded values) and, if `sync`, waits for
    /// it to reach the disk.
    ///
    /// # Errors
    ///
    /// [`Error::NoSpace`] if the disk is full: the segment was rewound, nothing was appended.
    /// [`Error::Io`] for any other failure, and for a failed fsync: the store must stop.
    pub(crate) fn append(&mut self, entries: &[(&[u8], &[u8])], sync: bool) -> Result<()> {
        if entries.is_empty() {
            // A record of no entries would read as a delete of another kind: write nothing.
            return Ok(());
        }
        self.append_record(&record::merge_payload(entries), sync)
    }

    /// Appends a record deleting every key of the digest buckets `buckets`, and waits for it
    /// to reach the disk.
    ///
    /// # Errors
    ///
    /// As [`append`](Self::append).
    pub(crate) fn append_delete(&mut self, buckets: std::ops::Range<usize>) -> Result<()> {
        self.append_record(&record::delete_payload(buckets), true)
    }

    fn append_record(&mut self, payload: &[u8], sync: bool) -> Result<()> {
        if u32::try_from(payload.len()).is_err() {
            return Err(Error::Io(
                format!("a log record of {} bytes (4 GiB at most)", payload.len()).into(),
            ));
        }
        let record = record::encode(self.len, self.next_seq, payload);
        if let Err(e) = self.write(&record) {
            // Whatever part of the record reached the file goes: the next append continues
            // a valid log. If even that fails, the store must stop (the tail is torn).
            self.file
                .set_len(self.len)
                .and_then(|()| (&*self.file).seek(SeekFrom::Start(self.len)).map(drop))
                .map_err(io_at(
                    "rewinding the log segment after a failed append",
                    &self.path,
                ))?;
            return Err(write_at("appending to the log segment", &self.path)(e));
        }
        self.len += record.len() as u64;
        self.next_seq += 1;
        if sync {
            self.sync()?;
        }
        Ok(())
    }

    /// Writes `bytes` at the end of the file (or fails the way a test asked).
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        #[cfg(test)]
        if let Some((written, kind)) = self.fail_next_write.take() {
            (&*self.file).write_all(&bytes[..written.min(bytes.len())])?;
            return Err(std::io::Error::from(kind));
        }
        (&*self.file).write_all(bytes)
    }

    /// Waits until everything appended is on the disk.
    ///
    /// # Errors
    ///
    /// [`Error::Io`], whatever the cause: after a failed fsync the kernel may have dropped the
    /// pages it could not write, so a later fsync that succeeds proves nothing (PostgreSQL's
    /// "fsyncgate"); the store must stop.
    pub(crate) fn sync(&mut self) -> Result<()> {
        // Not through `sync_later`: in `sync` mode this runs for every commit, and a
        // `SegmentSync` copies the path.
        sync_segment(&self.file, &self.path)
    }

    /// What fsyncs this segment later, without holding the log: appends may go on meanwhile
    /// (the fsync covers at least every record appended before it begins).
    pub(crate) fn sync_later(&self) -> SegmentSync {
        SegmentSync {
            file: self.file.clone(),
            path: self.path.clone(),
        }
    }

    /// Returns the number the next record will have.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Returns the segment's size in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }
}

/// A segment to fsync ([`Wal::sync_later`]).
#[derive(Debug)]
pub(crate) struct SegmentSync {
    file: Arc<File>,
    path: PathBuf,
}

impl SegmentSync {
    /// Waits until everything appended to the segment before this call is on the disk.
    ///
    /// # Errors
    ///
    /// As [`Wal::sync`].
    pub(crate) fn sync(&self) -> Result<()> {
        sync_segment(&self.file, &self.path)
    }
}

fn sync_segment(file: &File, path: &Path) -> Result<()> {
    file.sync_data()
        .map_err(io_at("syncing the log segment", path))
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

/// Checks that the segment at `path` is a log of a version this build reads (or empty, or a
/// magic cut short: a segment whose creation a crash interrupted), reading only its magic.
///
/// # Errors
///
/// As [`magic_layout`].
pub(crate) fn check_segment(path: &Path) -> Result<()> {
    let mut head = Vec::with_capacity(MAGIC_LEN);
    File::open(path)
        .and_then(|f| f.take(MAGIC_LEN as u64).read_to_end(&mut head))
        .map_err(io_at("reading the log segment", path))?;
    if head.is_empty() {
        return Ok(());
    }
    magic_layout(&head, path).map(|_| ())
}

/// Reads the segment at `path` whole.
pub(crate) fn read_segment(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(io_at("reading the log segment", path))
}

/// Returns the record layout of a segment starting with `head` (its magic, or the start of one
/// that a crash cut short).
///
/// # Errors
///
/// [`Error::UnsupportedFormat`] for the magic of another version of the log ("HAZEWAL"
/// and a digit), [`Error::Corrupt`] for anything else: it is not a Haze log.
pub(crate) fn magic_layout(head: &[u8], path: &Path) -> Result<Layout> {
    let magic = &head[..head.len().min(MAGIC_LEN)];
    if magic.len() < MAGIC_LEN {
        // A magic cut short: any of ours starts so.
        if MAGIC.starts_with(magic) || MAGIC_V1.starts_with(magic) || MAGIC_V2.starts_with(magic) {
            return Ok(Layout::Numbered);
        }
    } else if magic == MAGIC {
        return Ok(Layout::Numbered);
    } else if magic == MAGIC_V1 || magic == MAGIC_V2 {
        return Ok(Layout::Plain);
    } else if let [prefix @ .., digit] = magic
        && prefix == MAGIC_PREFIX
        && digit.is_ascii_digit()
    {
        return Err(Error::UnsupportedFormat {
            found: u64::from(digit - b'0'),
            expected: VERSION,
        });
    }
    Err(Error::Corrupt(format!(
        "{} is not a Haze write-ahead log",
        path.display()
    )))
}

#[cfg(test)]
mod tests;
