//! The disk store against a model (`BTreeMap` of merged counters), with reopening as one of the
//! random operations, and against the memory store's digests.

use std::collections::BTreeMap;

use haze_crdt::{Crdt, GCounter, Value};
use haze_storage::{
    DIGEST_BUCKETS, DiskStore, Durability, MemStore, Store, StoreConfig, digest_bucket, ring_hash,
};
use proptest::prelude::*;

use crate::suite::{counter, merge};

#[derive(Debug, Clone)]
enum Op {
    Merge {
        key: u8,
        actor: u64,
        n: u64,
    },
    Reopen,
    /// Delete the keys of one half of the ring (a partition moving away).
    DeleteHalf {
        upper: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..8, 0u64..3, 1u64..4).prop_map(|(key, actor, n)| Op::Merge { key, actor, n }),
        1 => Just(Op::Reopen),
        1 => any::<bool>().prop_map(|upper| Op::DeleteHalf { upper }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("HAZE_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_disk_store_matches_the_model_across_reopens(ops in prop::collection::vec(op(), 1..30), tiny_flushes in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        // With tiny flushes, nearly every write starts a background flush while others go on.
        let flush_bytes = if tiny_flushes { 64 } else { StoreConfig::default().flush_bytes };
        let config = StoreConfig { durability: Durability::Periodic { interval_ms: 1_000 }, flush_bytes, ..StoreConfig::default() };
        let mut disk = DiskStore::open(dir.path(), config).unwrap();
        let mem = MemStore::new(config);
        let mut model: BTreeMap<u8, GCounter> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Merge { key, actor, n } => {
                    let value = counter(actor, n);
                    let stored = merge(&disk, &[key], value.clone()).unwrap();
                    merge(&mem, &[key], value.clone()).unwrap();
                    let entry = model.entry(key).or_default();
                    entry.merge_from(GCounter::try_from(value).unwrap());
                    prop_assert_eq!(stored, Value::from(entry.clone()));
                }
                Op::DeleteHalf { upper } => {
                    let half = DIGEST_BUCKETS / 2;
                    let buckets = if upper { half..DIGEST_BUCKETS } else { 0..half };
                    let doomed: Vec<u8> = model.keys().copied().filter(|k| buckets.contains(&digest_bucket(ring_hash(&[*k])))).collect();
                    prop_assert_eq!(disk.delete_buckets(buckets.clone()).unwrap(), doomed.len() as u64);
                    prop_assert_eq!(mem.delete_buckets(buckets).unwrap(), doomed.len() as u64);
                    for key in doomed {
                        model.remove(&key);
                    }
                }
                Op::Reopen => {
                    disk.sync().unwrap();
                    drop(disk);
                    disk = DiskStore::open(dir.path(), config).unwrap();
                }
            }
            for key in 0u8..8 {
                prop_assert_eq!(disk.get(&[key]).unwrap(), model.get(&key).cloned().map(Value::from));
            }
        }
        prop_assert_eq!(disk.bucket_digests().unwrap(), mem.bucket_digests().unwrap());
    }
}

#[test]
fn sync_writes_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let disk = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
        merge(&disk, b"k", counter(1, 5)).unwrap();
    }
    let disk = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
    assert_eq!(disk.get(b"k").unwrap(), Some(counter(1, 5)));
}

fn log_bytes(dir: &std::path::Path) -> Vec<u64> {
    let mut sizes: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("wal-"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::metadata(&p).unwrap().len(),
            )
        })
        .collect();
    sizes.sort();
    sizes.into_iter().map(|(_, len)| len).collect()
}

#[test]
fn a_crash_image_of_the_directory_recovers_every_write_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
    for i in 0..100u64 {
        merge(&disk, format!("k{i}").as_bytes(), counter(i, i + 1)).unwrap();
    }
    // Copy the files while the store is open: what a crash would leave on disk (redb holds its
    // last flush; the acknowledged writes since are only in the log).
    let image = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, image.path().join(path.file_name().unwrap())).unwrap();
    }
    assert!(
        log_bytes(image.path()).iter().sum::<u64>() > 1_000,
        "the writes are in the log"
    );
    drop(disk);
    // Without the log, the image's redb file alone has none of the writes.
    let redb_only = tempfile::tempdir().unwrap();
    std::fs::copy(
        image.path().join("haze.redb"),
        redb_only.path().join("haze.redb"),
    )
    .unwrap();
    let without_log = DiskStore::open(redb_only.path(), StoreConfig::default()).unwrap();
    let survived = (0..100u64)
        .filter(|i| {
            without_log
                .get(format!("k{i}").as_bytes())
                .unwrap()
                .is_some()
        })
        .count();
    assert_eq!(
        survived, 0,
        "redb alone kept {survived} of 100: the log is what made them durable"
    );
    let recovered = DiskStore::open(image.path(), StoreConfig::default()).unwrap();
    for i in 0..100u64 {
        assert_eq!(
            recovered.get(format!("k{i}").as_bytes()).unwrap(),
            Some(counter(i, i + 1)),
            "k{i}"
        );
    }
    assert_eq!(
        log_bytes(image.path()),
        [8],
        "replayed, flushed, and one empty segment left"
    );
}

#[test]
fn background_flushes_keep_every_write_readable_and_recoverable() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        flush_bytes: 256,
        ..StoreConfig::default()
    };
    let disk = DiskStore::open(dir.path(), config).unwrap();
    for round in 0..20u64 {
        for i in 0..20u64 {
            merge(&disk, format!("k{i}").as_bytes(), counter(round, 1)).unwrap();
        }
        for i in 0..20u64 {
            let stored = disk.get(format!("k{i}").as_bytes()).unwrap().unwrap();
            assert_eq!(
                stored,
                (0..=round)
                    .map(|r| counter(r, 1))
                    .reduce(|mut a, b| {
                        a.merge(b).unwrap();
                        a
                    })
                    .unwrap()
            );
        }
    }
    let digests = disk.bucket_digests().unwrap();
    drop(disk);
    let reopened = DiskStore::open(dir.path(), config).unwrap();
    assert_eq!(
        reopened.bucket_digests().unwrap(),
        digests,
        "digests survive flushes and reopening"
    );
    assert_eq!(log_bytes(dir.path()), [8]);
}

#[test]
fn a_log_that_fails_to_replay_is_kept_for_the_next_try() {
    // Found in review: a failed open dropped the half-built store, whose close flushed an empty
    // table and deleted every log segment, replayed or not.
    let dir = tempfile::tempdir().unwrap();
    {
        let disk = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
        merge(&disk, b"k", counter(1, 1)).unwrap();
        std::mem::forget(disk); // a crash: nothing flushed
    }
    // Append a record whose value does not decode (as a newer format might write).
    let segment = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("wal-"))
        .unwrap();
    let payload = [1u8, 1, b'x', 2, 0xff, 0xff];
    let offset = std::fs::metadata(&segment).unwrap().len();
    let record = crate::log_bytes::record(offset, 2, &payload);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap();
    std::io::Write::write_all(&mut file, &record).unwrap();
    drop(file);
    let before = log_bytes(dir.path());
    // The redb file is still locked by the forgotten store in this process: copy the directory.
    let image = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, image.path().join(path.file_name().unwrap())).unwrap();
    }
    let err = DiskStore::open(image.path(), StoreConfig::default()).unwrap_err();
    assert!(matches!(err, haze_storage::Error::Corrupt(_)), "{err}");
    assert_eq!(
        log_bytes(image.path())[..before.len()],
        before[..],
        "the log is untouched"
    );
}

/// Copies `dir` as a crash would leave it (the store is still open: nothing flushed on close).
fn crash_image(dir: &std::path::Path) -> tempfile::TempDir {
    let image = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, image.path().join(path.file_name().unwrap())).unwrap();
    }
    image
}

#[test]
fn a_deleted_range_stays_deleted_after_a_crash_and_later_writes_stay() {
    let dir = tempfile::tempdir().unwrap();
    let upper = DIGEST_BUCKETS / 2..DIGEST_BUCKETS;
    let in_upper = |key: &[u8]| upper.contains(&digest_bucket(ring_hash(key)));
    let keys: Vec<Vec<u8>> = (0..200u64).map(|i| format!("k{i}").into_bytes()).collect();
    // Written once and flushed to redb (a clean close), then again: only in the log.
    {
        let disk = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
        for (i, key) in keys.iter().enumerate() {
            merge(&disk, key, counter(1, i as u64 + 1)).unwrap();
        }
    }
    let disk = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
    for key in &keys {
        merge(&disk, key, counter(2, 1)).unwrap();
    }
    let doomed = keys.iter().filter(|k| in_upper(k)).count() as u64;
    assert!(
        doomed > 50 && doomed < 150,
        "{doomed} keys in the upper half"
    );
    assert_eq!(disk.delete_buckets(upper.clone()).unwrap(), doomed);
    // The partition comes back later (another move): writes after the delete are kept.
    let returning = keys.iter().find(|k| in_upper(k)).unwrap();
    merge(&disk, returning, counter(3, 7)).unwrap();
    let digests = disk.bucket_digests().unwrap();

    let image = crash_image(dir.path());
    drop(disk);
    let recovered = DiskStore::open(image.path(), StoreConfig::default()).unwrap();
    for (i, key) in keys.iter().enumerate() {
        let found = recovered.get(key).unwrap();
        if key == returning {
            assert_eq!(found, Some(counter(3, 7)), "written after the delete");
        } else if in_upper(key) {
            assert_eq!(found, None, "{} came back", String::from_utf8_lossy(key));
        } else {
            let mut both = counter(1, i as u64 + 1);
            both.merge(counter(2, 1)).unwrap();
            assert_eq!(found, Some(both));
        }
    }
    assert_eq!(recovered.bucket_digests().unwrap(), digests);
    // The replay flushed: reopening again (nothing left to replay) reads the same.
    drop(recovered);
    let reopened = DiskStore::open(image.path(), StoreConfig::default()).unwrap();
    assert_eq!(reopened.get(returning).unwrap(), Some(counter(3, 7)));
    assert_eq!(reopened.bucket_digests().unwrap(), digests);
}
