//! Log recovery that tells the truth (docs/storage-format.md, "Recovery"): only the incomplete
//! last record of the last segment is cut off, and said; damage anywhere else refuses the open,
//! naming the file, the offset and the intact records after it, and changes nothing; then
//! `repair_log` salvages every intact record and sets the damaged file aside.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use haze_storage::{DiskStore, Durability, Error, Store, StoreConfig, TornTail, repair_log};

use crate::log_bytes::{merge_payload, plain_record, record};
use crate::suite::{counter, merge};

/// One commit (one log record) per key, fsync'ed on close only: fast, and each key's value is
/// in one record of its own.
fn config() -> StoreConfig {
    StoreConfig {
        durability: Durability::Periodic {
            interval_ms: 60_000,
        },
        ..StoreConfig::default()
    }
}

fn key(i: u64) -> Vec<u8> {
    format!("k{i}").into_bytes()
}

/// A data directory as a crash leaves it after `n` writes of keys `k0..` (one record each, all
/// only in the log), and its one log segment.
fn crashed(n: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskStore::open(dir.path(), config()).unwrap();
    for i in 0..n {
        merge(&disk, &key(i), counter(i, i + 1)).unwrap();
    }
    disk.sync().unwrap();
    let image = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, image.path().join(path.file_name().unwrap())).unwrap();
    }
    drop(disk);
    let segments = segments(image.path());
    assert_eq!(segments.len(), 1, "{segments:?}");
    (image, segments.into_iter().next().unwrap())
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("wal-"))
        .collect();
    found.sort();
    found
}

/// Every file of `dir` but `haze.redb` (whose header redb rewrites on open), by name.
fn log_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().unwrap() != "haze.redb")
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

#[test]
fn a_byte_flipped_mid_log_refuses_the_open_and_a_repair_loses_only_its_record() {
    let n = 300;
    let (image, segment) = crashed(n);
    let mut bytes = std::fs::read(&segment).unwrap();
    let flipped = bytes.len() / 2;
    bytes[flipped] ^= 0x20;
    std::fs::write(&segment, &bytes).unwrap();
    let before = log_files(image.path());

    let err = DiskStore::open(image.path(), config()).unwrap_err();
    println!("injected: byte {flipped} of {} flipped", segment.display());
    println!("held: the open was refused: {err}");
    let Error::LogDamaged {
        file,
        offset,
        records_after,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(file, &segment);
    assert!(*offset <= flipped as u64 && *offset > (flipped as u64) - 200);
    let message = err.to_string();
    assert!(message.contains("wal-") && message.contains(&format!("at byte {offset}")));
    assert_eq!(
        log_files(image.path()),
        before,
        "a refused open changes nothing"
    );

    let report = repair_log(image.path(), "damaged-test").unwrap();
    println!("{report}");
    assert_eq!(report.recovered(), n - 1);
    assert_eq!(report.lost(), (1, 0));
    let lost = &report.segments[0].lost[0];
    assert_eq!(lost.offset, *offset);
    let [lost_key] = lost.keys.as_slice() else {
        panic!("{lost:?}")
    };
    let index: u64 = String::from_utf8_lossy(&lost_key[1..]).parse().unwrap();
    assert_eq!(
        index + 1 + records_after,
        n,
        "the refusal counted what follows"
    );
    let aside = image.path().join("damaged-test");
    assert_eq!(
        std::fs::read(aside.join(segment.file_name().unwrap())).unwrap(),
        bytes,
        "the damaged segment is kept, as it was"
    );
    assert!(aside.join("report.txt").exists());

    let disk = DiskStore::open(image.path(), config()).unwrap();
    let mut read_back = 0;
    for i in 0..n {
        let found = disk.get(&key(i)).unwrap();
        if i == index {
            assert_eq!(found, None);
        } else {
            assert_eq!(found, Some(counter(i, i + 1)), "k{i}");
            read_back += 1;
        }
    }
    println!(
        "held: after the repair {read_back} of {n} writes read back; lost: k{index}, the one \
         in the damaged record"
    );
}

#[test]
fn a_torn_last_record_is_cut_and_said_and_every_complete_record_stays() {
    let (image, segment) = crashed(50);
    let offset = std::fs::metadata(&segment).unwrap().len();
    let late = record(offset, 51, &merge_payload(b"late", &counter(9, 9).encode()));
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap();
    let torn = late.len() / 2;
    std::io::Write::write_all(&mut file, &late[..torn]).unwrap();
    drop(file);
    let disk = DiskStore::open(image.path(), config()).unwrap();
    println!(
        "injected: the first {torn} of {} bytes of a 51st record appended",
        late.len()
    );
    assert_eq!(
        disk.torn_tail(),
        Some(&TornTail {
            file: segment.clone(),
            offset,
            bytes: torn as u64,
            records: 1,
        })
    );
    for i in 0..50 {
        assert_eq!(disk.get(&key(i)).unwrap(), Some(counter(i, i + 1)), "k{i}");
    }
    assert_eq!(disk.get(b"late").unwrap(), None);
    println!("held: cut {torn} bytes (1 record) and said so; the 50 complete records read back");
}

#[test]
fn zeros_never_written_at_the_end_are_a_torn_tail() {
    let (image, segment) = crashed(10);
    let offset = std::fs::metadata(&segment).unwrap().len();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap();
    std::io::Write::write_all(&mut file, &[0; 4096]).unwrap();
    drop(file);
    let disk = DiskStore::open(image.path(), config()).unwrap();
    let torn = disk.torn_tail().unwrap();
    assert_eq!((torn.offset, torn.bytes, torn.records), (offset, 4096, 0));
    assert_eq!(disk.get(&key(9)).unwrap(), Some(counter(9, 10)));
}

#[test]
fn a_record_cut_short_in_a_segment_that_is_not_the_last_refuses_the_open() {
    let (image, segment) = crashed(20);
    // A later segment with 20 intact records (a copy: each record's check names its offset,
    // which the copy keeps).
    let name = segment.file_name().unwrap().to_string_lossy().into_owned();
    let seq = u64::from_str_radix(&name["wal-".len()..name.len() - ".log".len()], 16).unwrap();
    let later = image.path().join(format!("wal-{:016x}.log", seq + 1));
    std::fs::copy(&segment, &later).unwrap();
    let len = std::fs::metadata(&segment).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let err = DiskStore::open(image.path(), config()).unwrap_err();
    println!("injected: the last record of the older of two segments cut short; held: {err}");
    assert!(
        matches!(&err, Error::LogDamaged { file, records_after: 20, .. } if file == &segment),
        "{err:?}"
    );
}

#[test]
fn an_old_log_still_replays_and_its_damage_is_judged_alike() {
    let dir = tempfile::tempdir().unwrap();
    drop(DiskStore::open(dir.path(), config()).unwrap());
    // A segment as version 2 wrote it (the first layout), after the empty one the close left.
    let last = segments(dir.path()).pop().unwrap();
    let name = last.file_name().unwrap().to_string_lossy().into_owned();
    let seq = u64::from_str_radix(&name["wal-".len()..name.len() - ".log".len()], 16).unwrap();
    let old = dir.path().join(format!("wal-{:016x}.log", seq + 1));
    let mut bytes = b"HAZEWAL1".to_vec();
    for i in 0..10 {
        bytes.extend(plain_record(&merge_payload(
            &key(i),
            &counter(i, 1).encode(),
        )));
    }
    std::fs::write(&old, &bytes).unwrap();
    let image = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, image.path().join(path.file_name().unwrap())).unwrap();
    }
    let disk = DiskStore::open(dir.path(), config()).unwrap();
    for i in 0..10 {
        assert_eq!(disk.get(&key(i)).unwrap(), Some(counter(i, 1)));
    }
    // The same segment with a byte of its fifth record flipped: refused, then repaired.
    let old = image.path().join(old.file_name().unwrap());
    let record_len = plain_record(&merge_payload(&key(0), &counter(0, 1).encode())).len();
    bytes[8 + 4 * record_len + 15] ^= 1;
    std::fs::write(&old, &bytes).unwrap();
    let err = DiskStore::open(image.path(), config()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LogDamaged {
                records_after: 5,
                ..
            }
        ),
        "{err:?}"
    );
    let report = repair_log(image.path(), "aside").unwrap();
    println!("{report}");
    assert_eq!((report.recovered(), report.lost()), (9, (1, 0)));
    let disk = DiskStore::open(image.path(), config()).unwrap();
    assert_eq!(disk.get(&key(4)).unwrap(), None);
    assert_eq!(disk.get(&key(5)).unwrap(), Some(counter(5, 1)));
}
