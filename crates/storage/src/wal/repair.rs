//! Salvaging a damaged log: every intact record is kept, in order; the damaged files are set
//! aside, never deleted; a report says what was recovered and what was lost (file, offsets,
//! record counts, the keys a damaged record still names).
//!
//! Each damaged segment is rewritten with its intact records alone (a temporary file, synced,
//! then renamed over it, after the original was linked into the aside directory), so a crash
//! leaves either the damaged segment, which a second run repairs again, or the repaired one.
//! Version-3 records keep their numbers (the gaps say what was lost); older segments keep their
//! layout and their records' bytes.

use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use super::record::{self, Layout};
use super::scan::{Scanned, scan, scan_as};
use super::{MAGIC, MAGIC_LEN, read_segment, segment_path, segments, sync_dir};
use crate::entry::printable;
use crate::error::{engine, io_at};
use crate::{Error, Result};

/// What [`repair_log`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairReport {
    /// The data directory.
    pub dir: PathBuf,
    /// Every segment of the log, oldest first.
    pub segments: Vec<SegmentRepair>,
    /// Where the damaged segments (and this report, as `report.txt`) were set aside; `None`
    /// when nothing was damaged (and nothing changed).
    pub aside: Option<PathBuf>,
}

/// One segment of a repaired log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentRepair {
    /// The segment.
    pub file: PathBuf,
    /// Its intact records: kept.
    pub recovered: u64,
    /// Its damaged ranges: lost.
    pub lost: Vec<LostRange>,
    /// Where the damaged original now is, if it was damaged.
    pub moved_to: Option<PathBuf>,
}

/// A damaged range of a segment, whose records could not be recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LostRange {
    /// Where it starts in the segment.
    pub offset: u64,
    /// Where it ends (the next intact record, or the end of the file).
    pub end: u64,
    /// How many records it held, when the format can tell: an intact header, or the numbers of
    /// the intact records around it (version 3); an old segment's record whose length led to
    /// the next intact one.
    pub records: Option<u64>,
    /// Their numbers (version 3), when known.
    pub numbers: Option<RangeInclusive<u64>>,
    /// What was wrong where it starts.
    pub reason: String,
    /// Whether it was what a crash in the middle of an append leaves at the end of the log
    /// (never acknowledged in `sync` mode).
    pub torn: bool,
    /// The keys its damaged payload still seems to name (unverified: a damaged byte may be in
    /// a key).
    pub keys: Vec<Vec<u8>>,
}

impl RepairReport {
    /// Returns whether anything was damaged.
    pub fn damaged(&self) -> bool {
        self.segments.iter().any(|s| !s.lost.is_empty())
    }

    /// Returns how many records were recovered.
    pub fn recovered(&self) -> u64 {
        self.segments.iter().map(|s| s.recovered).sum()
    }

    /// Returns how many records are known to be lost, and how many damaged ranges hold an
    /// unknown number of them.
    pub fn lost(&self) -> (u64, usize) {
        let ranges = self.segments.iter().flat_map(|s| &s.lost);
        let known = ranges.clone().filter_map(|r| r.records).sum();
        (known, ranges.filter(|r| r.records.is_none()).count())
    }
}

impl fmt::Display for RepairReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "log of {}:", self.dir.display())?;
        for segment in &self.segments {
            let name = segment
                .file
                .file_name()
                .unwrap_or_default()
                .to_string_lossy();
            writeln!(f, "  {name}: {} intact records kept", segment.recovered)?;
            for lost in &segment.lost {
                write!(
                    f,
                    "    LOST bytes {}..{} ({} bytes): ",
                    lost.offset,
                    lost.end,
                    lost.end - lost.offset
                )?;
                match (&lost.records, &lost.numbers) {
                    (Some(n), Some(numbers)) if numbers.start() == numbers.end() => {
                        write!(f, "{n} record (number {})", numbers.start())?;
                    }
                    (Some(n), Some(numbers)) => write!(
                        f,
                        "{n} records (numbers {}..={})",
                        numbers.start(),
                        numbers.end()
                    )?,
                    (Some(n), None) => write!(f, "{n} record(s)")?,
                    (None, _) => write!(f, "an unknown number of records")?,
                }
                write!(f, ": {}", lost.reason)?;
                if lost.torn {
                    write!(f, " (a torn last write: never acknowledged in sync mode)")?;
                }
                if !lost.keys.is_empty() {
                    let keys: Vec<String> = lost.keys.iter().map(|k| printable(k)).collect();
                    write!(f, "; keys it names (unverified): {}", keys.join(", "))?;
                }
                writeln!(f)?;
            }
            if let Some(moved) = &segment.moved_to {
                writeln!(f, "    damaged original set aside as {}", moved.display())?;
            }
        }
        let (known, unknown) = self.lost();
        write!(
            f,
            "recovered {} record(s); lost {known} record(s)",
            self.recovered()
        )?;
        if unknown > 0 {
            write!(f, " and {unknown} damaged ranges of unknown record counts")?;
        }
        writeln!(f)
    }
}

/// Salvages the log of the data directory `dir`: keeps every intact record of every segment,
/// sets each damaged segment aside in `dir/aside_name/` (created if needed) and rewrites it
/// with its intact records only, and writes the report there as `report.txt`. A log without
/// damage is left as it is. The directory then opens (nothing damaged is left in the log).
///
/// # Errors
///
/// [`Error::UnsupportedFormat`] for a segment of a log version this build does not read (the
/// directory is left as it is); [`Error::Corrupt`] for a file named as a segment in which no
/// record at all can be found; [`Error::Engine`] if another process has the directory open (a
/// running node); [`Error::Io`] if reading or writing fails.
pub fn repair_log(dir: &Path, aside_name: &str) -> Result<RepairReport> {
    // Held to the end: redb's lock keeps a node from opening the directory meanwhile, and this
    // from repairing the log of a running node.
    let redb_file = dir.join("haze.redb");
    let _lock = if redb_file.exists() {
        Some(redb::Database::open(&redb_file).map_err(engine(
            "locking haze.redb (is a node running on this directory?)",
        ))?)
    } else {
        None
    };
    let found = segments(dir)?;
    let mut scanned = Vec::with_capacity(found.len());
    for (seq, path) in &found {
        let bytes = read_segment(path)?;
        let segment = match scan(&bytes, path) {
            Ok(segment) => segment,
            Err(Error::Corrupt(why)) => {
                // A damaged magic: read it as this version's records, if any are there.
                let segment = scan_as(&bytes, Layout::Numbered);
                if segment.records.is_empty() {
                    return Err(Error::Corrupt(format!(
                        "{why}, and no record of one can be found in it: left as it is"
                    )));
                }
                segment
            }
            Err(other) => return Err(other),
        };
        scanned.push((*seq, path.clone(), bytes, segment));
    }
    let counts = lost_counts(scanned.iter().map(|(_, _, _, s)| s));
    let mut report = RepairReport {
        dir: dir.to_path_buf(),
        segments: Vec::new(),
        aside: None,
    };
    let aside = dir.join(aside_name);
    for ((seq, path, bytes, segment), counts) in scanned.iter().zip(counts) {
        let mut repaired = SegmentRepair {
            file: path.clone(),
            recovered: segment.records.len() as u64,
            lost: segment
                .damage
                .iter()
                .zip(counts)
                .map(|(d, (records, numbers))| LostRange {
                    offset: d.offset,
                    end: d.end,
                    records,
                    numbers,
                    reason: d.reason.to_string(),
                    torn: d.torn,
                    keys: d.keys.clone(),
                })
                .collect(),
            moved_to: None,
        };
        if !segment.damage.is_empty() {
            std::fs::create_dir_all(&aside)
                .map_err(io_at("creating the directory for damaged files", &aside))?;
            report.aside = Some(aside.clone());
            repaired.moved_to = Some(rewrite(dir, *seq, path, bytes, segment, &aside)?);
        }
        report.segments.push(repaired);
    }
    if let Some(aside) = &report.aside {
        sync_dir(aside)?;
        sync_dir(dir)?;
        let path = aside.join("report.txt");
        std::fs::write(&path, report.to_string())
            .and_then(|()| std::fs::File::open(&path)?.sync_all())
            .map_err(io_at("writing the repair report", &path))?;
        sync_dir(aside)?;
        // What the next open will find: nothing damaged.
        for (_, path) in segments(dir)? {
            let bytes = read_segment(&path)?;
            if let Some(d) = scan(&bytes, &path)?.damage.first() {
                return Err(Error::Corrupt(format!(
                    "{} is still damaged at byte {} after the repair: {}",
                    path.display(),
                    d.offset,
                    d.reason
                )));
            }
        }
    }
    Ok(report)
}

/// Sets the damaged segment `seq` at `path` aside (a hard link, or a copy) and replaces it with
/// its intact records; returns where the original now is.
fn rewrite(
    dir: &Path,
    seq: u64,
    path: &Path,
    bytes: &[u8],
    segment: &Scanned,
    aside: &Path,
) -> Result<PathBuf> {
    let mut kept = Vec::with_capacity(bytes.len());
    match segment.layout {
        // Old segments keep their magic and their records' bytes (they do not depend on where
        // they are).
        Some(Layout::Plain) => {
            kept.extend_from_slice(&bytes[..MAGIC_LEN]);
            for r in &segment.records {
                kept.extend_from_slice(&bytes[r.bytes.clone()]);
            }
        }
        // A version-3 record's header names where it is: each is written anew, same number.
        Some(Layout::Numbered) => {
            kept.extend_from_slice(MAGIC);
            for r in &segment.records {
                let seq = r.seq.expect("a version-3 record has a number");
                let encoded = record::encode(kept.len() as u64, seq, &bytes[r.payload.clone()]);
                kept.extend_from_slice(&encoded);
            }
        }
        // A magic cut short: no record; an empty segment opens.
        None => {}
    }
    let name = segment_path(dir, seq)
        .file_name()
        .expect("a segment has a name")
        .to_owned();
    let moved = aside.join(&name);
    if std::fs::hard_link(path, &moved).is_err() {
        std::fs::copy(path, &moved)
            .and_then(|_| std::fs::File::open(&moved)?.sync_all())
            .map_err(io_at("setting aside the damaged log segment", &moved))?;
    }
    let temporary = path.with_extension("log.repair");
    std::fs::write(&temporary, &kept)
        .and_then(|()| std::fs::File::open(&temporary)?.sync_all())
        .map_err(io_at("writing the repaired log segment", &temporary))?;
    std::fs::rename(&temporary, path).map_err(io_at("replacing the damaged log segment", path))?;
    Ok(moved)
}

/// What the format tells of a damaged range: how many records, and their numbers.
type Count = (Option<u64>, Option<RangeInclusive<u64>>);

/// For each damaged range of each segment, in order: how many records it held and their
/// numbers, when the format can tell.
fn lost_counts<'a>(segments: impl Iterator<Item = &'a Scanned>) -> Vec<Vec<Count>> {
    /// The whole log as one sequence of intact records (their numbers) and damaged ranges.
    enum Item<'a> {
        Record(Option<u64>),
        Damage(usize, usize, &'a super::Damage),
    }
    let mut items = Vec::new();
    let mut counts = Vec::new();
    for (i, segment) in segments.enumerate() {
        let mut records = segment.records.iter().peekable();
        for (j, damage) in segment.damage.iter().enumerate() {
            while let Some(r) = records.next_if(|r| (r.bytes.start as u64) < damage.offset) {
                items.push(Item::Record(r.seq));
            }
            items.push(Item::Damage(i, j, damage));
        }
        items.extend(records.map(|r| Item::Record(r.seq)));
        counts.push(vec![(None, None); segment.damage.len()]);
    }
    for (k, item) in items.iter().enumerate() {
        let Item::Damage(i, j, damage) = item else {
            continue;
        };
        // The numbers of the intact records right around it (another damaged range next to it
        // shares the gap: then only its own header can tell).
        let before = match k.checked_sub(1).map(|k| &items[k]) {
            Some(Item::Record(seq)) => *seq,
            _ => None,
        };
        let after = match items.get(k + 1) {
            Some(Item::Record(seq)) => *seq,
            _ => None,
        };
        counts[*i][*j] = if damage.one_record {
            (Some(1), damage.seq.or(before.map(|b| b + 1)).map(|s| s..=s))
        } else if let (Some(before), Some(after)) = (before, after) {
            let n = after.saturating_sub(before + 1);
            (Some(n), (n > 0).then(|| before + 1..=after - 1))
        } else if let (Some(seq), true) = (damage.seq, k + 1 == items.len()) {
            // The last record of the log, cut short: its header is intact.
            (Some(1), Some(seq..=seq))
        } else {
            (None, None)
        };
    }
    counts
}
