//! Reading arbitrary bytes as a log segment never panics and accounts for every byte: intact
//! records and damaged ranges follow each other from the magic to the end of the file. Read as
//! one record's payload, whatever parses is written back by the log and read again unchanged,
//! with no damage.
#![no_main]

use haze_storage::wal_fuzzing::{MAGIC_BYTES, Record, parse_record, scan_segment, segment_of};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(segment) = scan_segment(bytes) {
        let mut at = MAGIC_BYTES.min(bytes.len()) as u64;
        let mut records = segment.records.iter().peekable();
        let mut damage = segment.damage.iter().peekable();
        if bytes.len() < MAGIC_BYTES {
            // A magic cut short: at most one damaged range, the whole file.
            assert!(segment.records.is_empty());
            assert!(segment.damage.iter().all(|d| d.start == 0));
            return;
        }
        loop {
            if let Some((range, _)) = records.peek()
                && range.start as u64 == at
            {
                assert!(range.end > range.start);
                at = range.end as u64;
                records.next();
            } else if let Some(range) = damage.peek()
                && range.start == at
            {
                assert!(range.end > range.start);
                at = range.end;
                damage.next();
            } else {
                break;
            }
        }
        assert_eq!(
            at,
            bytes.len() as u64,
            "records and damage cover the segment"
        );
        assert!(records.next().is_none() && damage.next().is_none());
    }
    if let Some(Record::Merge(entries)) = parse_record(bytes) {
        let again = scan_segment(&segment_of(std::slice::from_ref(&entries))).expect("a log");
        assert!(again.damage.is_empty());
        assert_eq!(again.records.len(), 1);
        assert_eq!(again.records[0].1, Record::Merge(entries));
    }
});
