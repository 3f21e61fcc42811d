//! A data directory written by another format version is refused with both versions named, and
//! left exactly as it was: a refused open must not replay, cut, start or rewrite anything there
//! (docs/storage-format.md, "Versioning").

use std::collections::BTreeMap;
use std::path::Path;

use haze_storage::{DiskStore, Error, Store, StoreConfig};
use redb::{ReadableDatabase, ReadableTable};

use crate::suite::{counter, merge};

/// The tables of `haze.redb`, as docs/storage-format.md describes them.
const META: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
const VALUES: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("values");
const DIGESTS: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("digests");

/// Sets `meta.format` of the directory's `haze.redb` (as another version of Haze would have
/// written it), closing the database cleanly.
fn mark_format(dir: &Path, format: u64) {
    let db = redb::Database::create(dir.join("haze.redb")).expect("the redb file opens");
    let txn = db.begin_write().unwrap();
    {
        let mut meta = txn.open_table(META).unwrap();
        meta.insert("format", format).unwrap();
    }
    txn.commit().unwrap();
}

/// What a directory holds: every file's name; the bytes of every file but `haze.redb`; and
/// the contents of `haze.redb`'s tables (redb rewrites its own header whenever the file is
/// opened for writing, so its bytes are not compared: what it stores is).
#[derive(Debug, PartialEq, Eq)]
struct Contents {
    files: BTreeMap<String, Option<Vec<u8>>>,
    meta: Vec<(String, u64)>,
    values: Vec<(Vec<u8>, Vec<u8>)>,
    digests: Vec<(String, Vec<u8>)>,
}

fn contents(dir: &Path) -> Contents {
    let files = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = (name != "haze.redb").then(|| std::fs::read(&p).unwrap());
            (name, bytes)
        })
        .collect();
    let db = redb::ReadOnlyDatabase::open(dir.join("haze.redb")).expect("a clean redb file");
    let txn = db.begin_read().unwrap();
    let meta = txn
        .open_table(META)
        .unwrap()
        .iter()
        .unwrap()
        .map(|e| {
            let (k, v) = e.unwrap();
            (k.value().to_string(), v.value())
        })
        .collect();
    let values = txn
        .open_table(VALUES)
        .unwrap()
        .iter()
        .unwrap()
        .map(|e| {
            let (k, v) = e.unwrap();
            (k.value().to_vec(), v.value().to_vec())
        })
        .collect();
    let digests = txn
        .open_table(DIGESTS)
        .unwrap()
        .iter()
        .unwrap()
        .map(|e| {
            let (k, v) = e.unwrap();
            (k.value().to_string(), v.value().to_vec())
        })
        .collect();
    Contents {
        files,
        meta,
        values,
        digests,
    }
}

/// Opens `dir`, which must be refused as format 3, and checks that nothing in it changed.
fn assert_refused_untouched(dir: &Path) {
    let before = contents(dir);
    assert!(
        before.meta.contains(&("format".to_string(), 3)),
        "{:?}",
        before.meta
    );
    let err = DiskStore::open(dir, StoreConfig::default()).unwrap_err();
    assert_eq!(
        err,
        Error::UnsupportedFormat {
            found: 3,
            expected: 2
        }
    );
    let message = err.to_string();
    assert!(
        message.contains("format 3") && message.contains("reads 2"),
        "the message names both versions: {message}"
    );
    let after = contents(dir);
    assert_eq!(
        after.files.keys().collect::<Vec<_>>(),
        before.files.keys().collect::<Vec<_>>(),
        "a refused open adds or removes no file"
    );
    for (name, bytes) in &before.files {
        assert!(after.files[name] == *bytes, "a refused open changed {name}");
    }
    assert!(
        after == before,
        "a refused open changed what haze.redb holds"
    );
}

#[test]
fn a_directory_of_another_format_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    {
        let disk = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
        for i in 0..20u64 {
            merge(&disk, format!("k{i}").as_bytes(), counter(i, i + 1)).unwrap();
        }
    } // a clean close: flushed, one empty log segment left
    mark_format(dir.path(), 3);
    assert_refused_untouched(dir.path());
    // Refused again the same way: the first refusal left nothing that changes the answer.
    assert_refused_untouched(dir.path());

    // The refusal was about the version alone: marked as this build's format, it opens with
    // its data.
    mark_format(dir.path(), 2);
    let disk = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
    for i in 0..20u64 {
        assert_eq!(
            disk.get(format!("k{i}").as_bytes()).unwrap(),
            Some(counter(i, i + 1)),
            "k{i}"
        );
    }
}

#[test]
fn a_crashed_directory_of_another_format_keeps_its_log_unreplayed_and_uncut() {
    // A directory another version left after a crash: writes only in the log, and a torn last
    // record. Replaying it (or cutting the torn tail, or starting a segment of this version's
    // log) would change data this build cannot read correctly.
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
    for i in 0..20u64 {
        merge(&disk, format!("k{i}").as_bytes(), counter(i, i + 1)).unwrap();
    }
    // Copy the files while the store is open, as a crash would leave them.
    let image = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, image.path().join(path.file_name().unwrap())).unwrap();
    }
    drop(disk);
    mark_format(image.path(), 3);
    let segment = std::fs::read_dir(image.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("wal-"))
        .expect("a log segment");
    let logged = std::fs::read(&segment).unwrap();
    assert!(logged.len() > 100, "the writes are in the log");
    let mut torn = logged.clone();
    torn.extend_from_slice(&[0, 0, 0, 40, 1, 2, 3]); // a record's header, cut short
    std::fs::write(&segment, &torn).unwrap();

    assert_refused_untouched(image.path());

    // Marked as this build's format, the same directory replays every logged write.
    mark_format(image.path(), 2);
    let disk = DiskStore::open(image.path(), StoreConfig::default()).unwrap();
    for i in 0..20u64 {
        assert_eq!(
            disk.get(format!("k{i}").as_bytes()).unwrap(),
            Some(counter(i, i + 1)),
            "k{i}"
        );
    }
}
