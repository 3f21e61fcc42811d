//! The log's records, damage found and judged, torn tails, magics, deletes, failed appends.

#![allow(clippy::print_stdout)] // the fault tests print what they injected and what held

use std::io::ErrorKind;

use super::record::{delete_payload, merge_payload};
use super::*;

/// The merged entries of `segment`'s intact records, in order.
fn entries(segment: &Scanned) -> Vec<Entry> {
    segment
        .records
        .iter()
        .flat_map(|r| match &r.logged {
            Logged::Merge(entries) => entries.clone(),
            Logged::Delete(_) => Vec::new(),
        })
        .collect()
}

fn entry(key: &str, value: &str) -> Entry {
    (key.as_bytes().to_vec(), value.as_bytes().to_vec())
}

/// A segment at `path` with one record per `(key, value)`, numbered from 1.
fn write_segment(path: &Path, records: &[(&str, &str)]) -> Vec<u8> {
    let mut wal = Wal::create(path, 1).unwrap();
    for (k, v) in records {
        wal.append(&[(k.as_bytes(), v.as_bytes())], true).unwrap();
    }
    std::fs::read(path).unwrap()
}

fn scanned(path: &Path) -> Scanned {
    scan(&std::fs::read(path).unwrap(), path).unwrap()
}

/// Where each record of a segment starts, from its scan.
fn starts(path: &Path) -> Vec<usize> {
    scanned(path)
        .records
        .iter()
        .map(|r| r.bytes.start)
        .collect()
}

const RECORDS: [(&str, &str); 5] = [
    ("a", "1"),
    ("b", "22"),
    ("c", "333"),
    ("d", "4444"),
    ("e", "55555"),
];

#[test]
fn records_round_trip_with_their_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.log");
    write_segment(&path, &RECORDS);
    let segment = scanned(&path);
    assert!(segment.damage.is_empty());
    assert_eq!(
        entries(&segment),
        RECORDS.map(|(k, v)| entry(k, v)).to_vec()
    );
    let numbers: Vec<_> = segment.records.iter().map(|r| r.seq).collect();
    assert_eq!(numbers, (1..=5).map(Some).collect::<Vec<_>>());
    assert_eq!(&std::fs::read(&path).unwrap()[..8], MAGIC);
}

#[test]
fn a_record_cut_short_at_the_end_is_a_torn_tail_and_nothing_else_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.log");
    let bytes = write_segment(&path, &RECORDS);
    let last = *starts(&path).last().unwrap();
    // Cut inside the last record's header, and inside its payload: both torn.
    for keep in [last + 5, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let segment = scanned(&path);
        assert_eq!(segment.records.len(), 4, "cut at {keep}");
        let [damage] = segment.damage.as_slice() else {
            panic!("{:?}", segment.damage)
        };
        assert!(damage.torn && !damage.unwritten, "{damage:?}");
        assert_eq!(
            (damage.offset, damage.end),
            (last as u64, keep as u64),
            "{damage:?}"
        );
        println!("cut at byte {keep}: torn tail {damage:?}");
    }
    // Zeros that were never written: torn too.
    let mut zeros = bytes.clone();
    zeros.extend_from_slice(&[0; 100]);
    std::fs::write(&path, &zeros).unwrap();
    let segment = scanned(&path);
    assert_eq!(segment.records.len(), 5);
    assert!(segment.damage[0].torn && segment.damage[0].unwritten);
}

#[test]
fn a_flipped_byte_mid_segment_costs_its_record_and_the_rest_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.log");
    let bytes = write_segment(&path, &RECORDS);
    let at = starts(&path);
    // In the payload of record 3 (its value), and in the header of record 2.
    for (flip, damaged, named) in [(at[3] - 2, 2, true), (at[1] + 9, 1, false)] {
        let mut flipped = bytes.clone();
        flipped[flip] ^= 0x10;
        std::fs::write(&path, &flipped).unwrap();
        let segment = scanned(&path);
        let [damage] = segment.damage.as_slice() else {
            panic!("{:?}", segment.damage)
        };
        println!("flipped byte {flip}: {damage:?}");
        assert!(!damage.torn, "damage mid-segment is never a torn tail");
        assert_eq!(
            (damage.offset, damage.end),
            (at[damaged] as u64, at[damaged + 1] as u64)
        );
        assert_eq!(segment.records_after(damage.offset), 3 - damaged as u64 + 1);
        let mut expected = RECORDS.map(|(k, v)| entry(k, v)).to_vec();
        expected.remove(damaged);
        assert_eq!(entries(&segment), expected, "every other record is intact");
        if named {
            assert_eq!(damage.seq, Some(3));
            assert!(damage.one_record);
            assert_eq!(damage.keys, vec![b"c".to_vec()]);
        } else {
            // A damaged header: nothing in it is trusted; the scan found the next record.
            assert_eq!((damage.seq, damage.one_record), (None, false));
        }
    }
}

#[test]
fn a_damaged_last_record_that_is_complete_is_damage_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.log");
    let mut bytes = write_segment(&path, &RECORDS);
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let segment = scanned(&path);
    assert!(!segment.damage[0].torn, "{:?}", segment.damage);
}

#[test]
fn a_file_that_is_not_a_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.log");
    std::fs::write(&path, b"something else entirely").unwrap();
    assert!(matches!(check_segment(&path), Err(Error::Corrupt(_))));
    assert!(matches!(
        scan(&std::fs::read(&path).unwrap(), &path),
        Err(Error::Corrupt(_))
    ));
    // The prefix without a version digit is no log either.
    std::fs::write(&path, b"HAZEWALX").unwrap();
    assert!(matches!(check_segment(&path), Err(Error::Corrupt(_))));
    // A segment is never started over one with contents.
    assert!(matches!(Wal::create(&path, 1), Err(Error::Corrupt(_))));
}

#[test]
fn a_log_of_another_version_is_refused_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.log");
    let mut bytes = b"HAZEWAL4".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 40, 1, 2, 3]);
    std::fs::write(&path, &bytes).unwrap();
    let refused = Error::UnsupportedFormat {
        found: 4,
        expected: 3,
    };
    assert_eq!(check_segment(&path).unwrap_err(), refused);
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "left as it was");
    // Every known version, an empty segment, and a magic cut short pass the check.
    for magic in [MAGIC_V1.as_slice(), MAGIC_V2, MAGIC, b"", b"HAZE"] {
        std::fs::write(&path, magic).unwrap();
        check_segment(&path).unwrap();
    }
}

/// A segment of the first layout (versions 1 and 2): length, xxh3, payload.
fn plain_segment(magic: &[u8; 8], payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = magic.to_vec();
    for payload in payloads {
        bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(payload).to_be_bytes());
        bytes.extend_from_slice(payload);
    }
    bytes
}

#[test]
fn deletes_replay_in_log_order_and_older_logs_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.log");
    {
        let mut wal = Wal::create(&path, 7).unwrap();
        wal.append(&[(b"a", b"1")], true).unwrap();
        wal.append_delete(16..32).unwrap();
        wal.append(&[(b"b", b"2")], true).unwrap();
    }
    let expected = vec![
        Logged::Merge(vec![entry("a", "1")]),
        Logged::Delete(16..32),
        Logged::Merge(vec![entry("b", "2")]),
    ];
    let logged = |s: Scanned| s.records.into_iter().map(|r| r.logged).collect::<Vec<_>>();
    assert_eq!(logged(scanned(&path)), expected);
    // The same records as versions 1 and 2 wrote them.
    let payloads = vec![
        merge_payload(&[(b"a", b"1")]),
        delete_payload(16..32),
        merge_payload(&[(b"b", b"2")]),
    ];
    for magic in [MAGIC_V1, MAGIC_V2] {
        std::fs::write(&path, plain_segment(magic, &payloads)).unwrap();
        let segment = scanned(&path);
        assert_eq!(segment.layout, Some(Layout::Plain));
        assert!(segment.damage.is_empty());
        assert_eq!(logged(segment), expected);
    }
    // An old segment's damaged payload whose length still leads to the next record costs
    // exactly that record; its torn tail is torn.
    let mut bytes = plain_segment(MAGIC_V1, &payloads);
    bytes[8 + 12 + 2] ^= 0xff;
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&path, &bytes).unwrap();
    let segment = scanned(&path);
    assert_eq!(segment.records.len(), 1, "the delete alone is intact");
    let [first, last] = segment.damage.as_slice() else {
        panic!("{:?}", segment.damage)
    };
    assert!(first.one_record && !first.torn, "{first:?}");
    assert!(last.torn, "{last:?}");
}

#[test]
fn an_append_that_fails_rewinds_the_segment_and_says_whether_the_disk_was_full() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.log");
    let mut wal = Wal::create(&path, 1).unwrap();
    wal.append(&[(b"a", b"1")], true).unwrap();
    let before = std::fs::read(&path).unwrap();
    // Half a record reaches the file, then the disk is full.
    wal.fail_next_write = Some((20, ErrorKind::StorageFull));
    let err = wal.append(&[(b"b", b"2")], true).unwrap_err();
    println!("injected ENOSPC after 20 bytes of an append: {err}");
    assert!(
        matches!(&err, Error::NoSpace(_)) && err.is_retryable(),
        "{err:?}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before, "rewound");
    // Any other failure of a write is no reason to go on.
    wal.fail_next_write = Some((3, ErrorKind::Other));
    let err = wal.append(&[(b"b", b"2")], true).unwrap_err();
    assert!(
        matches!(&err, Error::Io(_)) && !err.is_retryable(),
        "{err:?}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before, "rewound");
    // The next append continues a valid log, with the next number.
    wal.append(&[(b"c", b"3")], true).unwrap();
    let segment = scanned(&path);
    assert!(segment.damage.is_empty());
    assert_eq!(entries(&segment), vec![entry("a", "1"), entry("c", "3")]);
    assert_eq!(segment.last_seq(), Some(2));
}

#[test]
fn a_repair_keeps_every_intact_record_and_sets_the_damaged_segment_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = segment_path(dir.path(), 1);
    let bytes = write_segment(&path, &RECORDS);
    let at = starts(&path);
    let mut flipped = bytes.clone();
    flipped[at[3] - 2] ^= 0x04; // in record 3's payload (its value)
    std::fs::write(&path, &flipped).unwrap();

    let report = repair_log(dir.path(), "damaged-1").unwrap();
    println!("{report}");
    assert!(report.damaged());
    assert_eq!(report.recovered(), 4);
    assert_eq!(report.lost(), (1, 0));
    let lost = &report.segments[0].lost[0];
    assert_eq!(lost.numbers, Some(3..=3));
    assert_eq!(lost.keys, vec![b"c".to_vec()]);
    let aside = dir.path().join("damaged-1");
    assert_eq!(
        std::fs::read(aside.join(path.file_name().unwrap())).unwrap(),
        flipped,
        "the damaged original is kept as it was"
    );
    let written = std::fs::read_to_string(aside.join("report.txt")).unwrap();
    assert!(written.contains("1 record (number 3)"), "{written}");
    let segment = scanned(&path);
    assert!(segment.damage.is_empty());
    let mut expected = RECORDS.map(|(k, v)| entry(k, v)).to_vec();
    expected.remove(2);
    assert_eq!(entries(&segment), expected);
    let numbers: Vec<_> = segment.records.iter().filter_map(|r| r.seq).collect();
    assert_eq!(numbers, [1, 2, 4, 5], "records keep their numbers");
    // A second repair finds nothing to do.
    let again = repair_log(dir.path(), "damaged-2").unwrap();
    assert!(!again.damaged() && again.aside.is_none());
    assert!(!dir.path().join("damaged-2").exists());
}

#[test]
fn a_repair_counts_the_records_of_a_damaged_range_from_the_numbers_around_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = segment_path(dir.path(), 1);
    let bytes = write_segment(&path, &RECORDS);
    let at = starts(&path);
    // Records 2 and 3 overwritten by garbage: headers and all.
    let mut flipped = bytes.clone();
    for b in &mut flipped[at[1]..at[3]] {
        *b = 0x33;
    }
    std::fs::write(&path, &flipped).unwrap();
    let report = repair_log(dir.path(), "aside").unwrap();
    println!("{report}");
    assert_eq!(report.lost(), (2, 0));
    assert_eq!(report.segments[0].lost[0].numbers, Some(2..=3));
    assert_eq!(report.recovered(), 3);
}
