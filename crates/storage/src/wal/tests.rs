//! The log's records, torn tails, magics and deletes.

use super::*;

/// The merged entries of `records`, in order.
fn entries(records: Vec<Logged>) -> Vec<Entry> {
    records
        .into_iter()
        .flat_map(|r| match r {
            Logged::Merge(entries) => entries,
            Logged::Delete(_) => Vec::new(),
        })
        .collect()
}

#[test]
fn records_round_trip_and_a_torn_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.log");
    {
        let (mut wal, entries) = Wal::open(&path).unwrap();
        assert!(entries.is_empty());
        wal.append(&[(b"a", b"1"), (b"b", b"22")], true).unwrap();
        wal.append(&[(b"c", b"333")], true).unwrap();
    }
    // Tear the last record: keep all but its last byte.
    let len = std::fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let (mut wal, records) = Wal::open(&path).unwrap();
    assert_eq!(
        entries(records),
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"22".to_vec())
        ]
    );
    // Appending after recovery continues a valid log.
    wal.append(&[(b"d", b"4")], true).unwrap();
    drop(wal);
    let (_, records) = Wal::open(&path).unwrap();
    assert_eq!(entries(records).len(), 3);
}

#[test]
fn a_corrupt_record_ends_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.log");
    {
        let (mut wal, _) = Wal::open(&path).unwrap();
        wal.append(&[(b"a", b"1")], true).unwrap();
        wal.append(&[(b"b", b"2")], true).unwrap();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let (_, records) = Wal::open(&path).unwrap();
    assert_eq!(entries(records), vec![(b"a".to_vec(), b"1".to_vec())]);
}

#[test]
fn a_file_that_is_not_a_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.log");
    std::fs::write(&path, b"something else entirely").unwrap();
    assert!(matches!(Wal::open(&path), Err(Error::Corrupt(_))));
    assert!(matches!(check_segment(&path), Err(Error::Corrupt(_))));
    // The prefix without a version digit is no log either.
    std::fs::write(&path, b"HAZEWALX").unwrap();
    assert!(matches!(Wal::open(&path), Err(Error::Corrupt(_))));
}

#[test]
fn a_log_of_another_version_is_refused_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.log");
    let mut bytes = b"HAZEWAL3".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 40, 1, 2, 3]);
    std::fs::write(&path, &bytes).unwrap();
    let refused = Error::UnsupportedFormat {
        found: 3,
        expected: 2,
    };
    assert_eq!(check_segment(&path).unwrap_err(), refused);
    assert_eq!(Wal::open(&path).unwrap_err(), refused);
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "left as it was");
    // Both known versions, and an empty segment, pass the check.
    for magic in [MAGIC_V1.as_slice(), MAGIC.as_slice(), b""] {
        std::fs::write(&path, magic).unwrap();
        check_segment(&path).unwrap();
    }
}

#[test]
fn deletes_replay_in_log_order_and_first_format_logs_still_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.log");
    {
        let (mut wal, _) = Wal::open(&path).unwrap();
        wal.append(&[(b"a", b"1")], true).unwrap();
        wal.append_delete(16..32).unwrap();
        wal.append(&[(b"b", b"2")], true).unwrap();
    }
    let (_, records) = Wal::open(&path).unwrap();
    assert_eq!(
        records,
        vec![
            Logged::Merge(vec![(b"a".to_vec(), b"1".to_vec())]),
            Logged::Delete(16..32),
            Logged::Merge(vec![(b"b".to_vec(), b"2".to_vec())]),
        ]
    );
    // Marked by its delete, so that an older binary refuses it; a log without deletes keeps
    // the first format's magic, which every version reads.
    assert_eq!(&std::fs::read(&path).unwrap()[..8], MAGIC);
    let plain = dir.path().join("plain.log");
    Wal::open(&plain)
        .unwrap()
        .0
        .append(&[(b"c", b"3")], true)
        .unwrap();
    assert_eq!(&std::fs::read(&plain).unwrap()[..8], MAGIC_V1);
    // Reopened, a marked log appends more deletes without marking it again.
    let (mut wal, _) = Wal::open(&path).unwrap();
    wal.append_delete(0..1).unwrap();
    assert_eq!(Wal::open(&path).unwrap().1.len(), 4);
}
