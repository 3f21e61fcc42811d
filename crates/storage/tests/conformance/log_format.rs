//! A log segment of another layout is refused, never misread (docs/storage-format.md,
//! "Versioning"): a magic naming a version of the log this build does not know is
//! `UnsupportedFormat`, and the directory is left as it was; a file whose magic is not Haze's
//! at all is `Corrupt`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use haze_storage::{DiskStore, Error, Store, StoreConfig};

use crate::suite::{counter, merge};

/// A copy of a data directory as a crash leaves it: 20 keys written, all of them only in the
/// log (the copy is taken while the store is open). Returns it with its log segment.
fn crashed_directory() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
    for i in 0..20u64 {
        merge(&disk, format!("k{i}").as_bytes(), counter(i, i + 1)).unwrap();
    }
    let image = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, image.path().join(path.file_name().unwrap())).unwrap();
    }
    drop(disk);
    let segments = segments(image.path());
    assert_eq!(segments.len(), 1, "{segments:?}");
    let segment = segments.into_iter().next().unwrap();
    assert!(
        std::fs::read(&segment).unwrap().len() > 100,
        "the writes are in the log"
    );
    (image, segment)
}

/// The log segments of `dir`, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("wal-"))
        .collect();
    found.sort();
    found
}

/// The bytes of every file of `dir` but `haze.redb` (redb rewrites its own header whenever
/// the file is opened for writing, which the format check does).
fn log_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .filter(|(name, _)| name != "haze.redb")
        .map(|(name, p)| (name, std::fs::read(p).unwrap()))
        .collect()
}

/// Replaces the first 8 bytes of the file at `path`.
fn set_magic(path: &Path, magic: &[u8; 8]) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[..8].copy_from_slice(magic);
    std::fs::write(path, bytes).unwrap();
}

fn assert_all_keys(disk: &DiskStore) {
    for i in 0..20u64 {
        assert_eq!(
            disk.get(format!("k{i}").as_bytes()).unwrap(),
            Some(counter(i, i + 1)),
            "k{i}"
        );
    }
}

#[test]
fn a_log_segment_of_an_unknown_version_is_refused_and_the_log_left_as_it_was() {
    let (image, segment) = crashed_directory();
    // A segment a later version would write after this one, whose older segment ends in a
    // torn record: an open that began replaying would cut it.
    let name = segment.file_name().unwrap().to_string_lossy().into_owned();
    let seq = u64::from_str_radix(&name["wal-".len()..name.len() - ".log".len()], 16).unwrap();
    let newer = image.path().join(format!("wal-{:016x}.log", seq + 1));
    std::fs::copy(&segment, &newer).unwrap();
    set_magic(&newer, b"HAZEWAL4");
    let mut torn = std::fs::read(&segment).unwrap();
    torn.extend_from_slice(&[0, 0, 0, 40, 1, 2, 3]); // a record's header, cut short
    std::fs::write(&segment, &torn).unwrap();
    let before = log_files(image.path());

    let err = DiskStore::open(image.path(), StoreConfig::default()).unwrap_err();
    assert_eq!(
        err,
        Error::UnsupportedFormat {
            found: 4,
            expected: 3
        }
    );
    assert!(err.to_string().contains("format 4"), "{err}");
    assert_eq!(
        log_files(image.path()),
        before,
        "a refused open cuts, replays, adds or removes no segment"
    );

    // The refusal was about that segment alone: without it, the directory opens with its data.
    std::fs::remove_file(&newer).unwrap();
    assert_all_keys(&DiskStore::open(image.path(), StoreConfig::default()).unwrap());
}

#[test]
fn a_log_segment_whose_magic_is_not_hazes_is_corrupt() {
    let (image, segment) = crashed_directory();
    let logged = std::fs::read(&segment).unwrap();
    set_magic(&segment, b"SQLite f");
    let err = DiskStore::open(image.path(), StoreConfig::default()).unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("wal-"), "names the file: {err}");

    // Given back its magic, the same segment replays every write.
    std::fs::write(&segment, &logged).unwrap();
    assert_all_keys(&DiskStore::open(image.path(), StoreConfig::default()).unwrap());
}
