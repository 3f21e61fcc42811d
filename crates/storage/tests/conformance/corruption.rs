//! Checksums end to end (docs/storage-format.md, "What is checked"): a value damaged in
//! `haze.redb` is never served nor sent, is counted, logged and quarantined, and a merge of a
//! healthy copy replaces it; bucket digests count it as absent, exactly; the scrub finds it;
//! a directory of format 1 is upgraded with checksums.

use std::path::Path;

use haze_crdt::Value;
use haze_storage::{
    DiskStore, Error, MemStore, Mutation, Store, StoreConfig, Write, WriteError, digest_bucket,
    key_digest, ring_hash, scrub_pass,
};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::suite::{counter, merge};

const VALUES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("values");
const DIGESTS: TableDefinition<&str, &[u8]> = TableDefinition::new("digests");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

fn key(i: u64) -> Vec<u8> {
    format!("k{i}").into_bytes()
}

fn store_key(key: &[u8]) -> Vec<u8> {
    let mut skey = ring_hash(key).to_be_bytes().to_vec();
    skey.extend_from_slice(key);
    skey
}

/// A closed data directory holding keys `k0..n` (flushed to redb by the close).
fn filled(n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
    let mut batch: Vec<Write> = (0..n)
        .map(|i| Write::new(key(i), Mutation::Merge(counter(i, i + 1))))
        .collect();
    disk.apply(&mut batch).unwrap();
    assert!(batch.iter().all(|w| matches!(w.outcome, Some(Ok(_)))));
    dir
}

/// Flips a bit of byte `at` of `key`'s entry in the closed directory's `haze.redb`, as bit rot
/// would (redb does not check its pages on a read).
fn damage(dir: &Path, key: &[u8], at: usize) {
    let db = redb::Database::create(dir.join("haze.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(VALUES).unwrap();
        let skey = store_key(key);
        let mut entry = table
            .get(skey.as_slice())
            .unwrap()
            .unwrap()
            .value()
            .to_vec();
        entry[at] ^= 0x01;
        table.insert(skey.as_slice(), entry.as_slice()).unwrap();
    }
    txn.commit().unwrap();
}

/// The bucket digests of keys `k0..n` but `except`, as any store computes them.
fn digests_without(n: u64, except: &[u64]) -> Vec<u64> {
    let mem = MemStore::new(StoreConfig::default());
    for i in (0..n).filter(|i| !except.contains(i)) {
        merge(&mem, &key(i), counter(i, i + 1)).unwrap();
    }
    mem.bucket_digests().unwrap()
}

fn listed(store: &dyn Store, key: &[u8]) -> (bool, bool) {
    let bucket = digest_bucket(ring_hash(key));
    let keys = store.bucket_keys(bucket, None, 10_000).unwrap().0;
    let values = store.bucket_values(bucket, None, 10_000).unwrap().0;
    (
        keys.iter().any(|(k, _)| k == key),
        values.iter().any(|(k, _)| k == key),
    )
}

fn update(store: &dyn Store, key: &[u8]) -> Result<Value, WriteError> {
    let op = Mutation::Update(Box::new(|current| Ok(current.unwrap_or(counter(99, 1)))));
    let mut batch = [Write::new(key.to_vec(), op)];
    store.apply(&mut batch).unwrap();
    batch[0].outcome.take().unwrap()
}

/// Checks everything a damaged, not yet repaired `k7` of a store of `k0..n` must be.
fn assert_quarantined(disk: &DiskStore, n: u64) {
    let k7 = key(7);
    for read in [disk.get(&k7).map(drop), disk.digest(&k7).map(drop)] {
        assert!(
            matches!(&read, Err(Error::CorruptValue { key, .. }) if key == &k7),
            "{read:?}"
        );
    }
    assert_eq!(
        listed(disk, &k7),
        (false, false),
        "never listed, never sent"
    );
    assert_eq!(
        disk.bucket_digests().unwrap(),
        digests_without(n, &[7]),
        "the bucket counts it as absent, exactly"
    );
    assert!(
        matches!(
            update(disk, &k7),
            Err(WriteError::Store(Error::CorruptValue { .. }))
        ),
        "an operation on a value it cannot read is refused"
    );
}

#[test]
fn a_damaged_value_is_never_served_and_a_merge_of_a_healthy_copy_repairs_it() {
    let n = 200;
    // The last byte of the value's encoding, and a byte of the checksum itself.
    for at in [usize::MAX, 3] {
        let dir = filled(n);
        let len = {
            let disk = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
            disk.get(&key(7)).unwrap().unwrap().encode().len() + 9
        };
        let at = at.min(len - 1);
        damage(dir.path(), &key(7), at);
        let disk = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
        let err = disk.get(&key(7)).unwrap_err();
        println!("injected: a bit of byte {at} of k7's entry in haze.redb flipped");
        println!("held: the read failed: {err}");
        assert_quarantined(&disk, n);
        let counted = disk.integrity();
        assert_eq!((counted.corrupt_found, counted.corrupt_reads), (1, 3));
        for i in (0..n).filter(|&i| i != 7) {
            assert_eq!(disk.get(&key(i)).unwrap(), Some(counter(i, i + 1)));
        }
        // A healthy copy (another replica's, a client's) is merged: the damaged one counts as
        // absent, never merged.
        assert_eq!(merge(&disk, &key(7), counter(7, 8)), Ok(counter(7, 8)));
        assert_eq!(disk.integrity().repaired, 1);
        assert_eq!(disk.get(&key(7)).unwrap(), Some(counter(7, 8)));
        assert_eq!(listed(&disk, &key(7)), (true, true));
        assert_eq!(disk.bucket_digests().unwrap(), digests_without(n, &[]));
        drop(disk);
        let disk = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
        assert_eq!(disk.get(&key(7)).unwrap(), Some(counter(7, 8)));
        println!("held: a merge of a healthy copy repaired it; the digests are exact");
    }
}

#[test]
fn a_quarantine_outlives_a_restart_until_a_merge_repairs_it() {
    let n = 50;
    let dir = filled(n);
    damage(dir.path(), &key(7), 12);
    {
        let disk = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
        assert!(disk.get(&key(7)).is_err());
    } // the close flushes the quarantine to redb
    let disk = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
    assert_quarantined(&disk, n);
    assert_eq!(
        disk.integrity().corrupt_found,
        0,
        "found in the earlier run"
    );
    merge(&disk, &key(7), counter(7, 8)).unwrap();
    assert_eq!(disk.get(&key(7)).unwrap(), Some(counter(7, 8)));
}

#[test]
fn a_write_that_finds_a_damaged_value_treats_it_as_absent_and_quarantines_it() {
    let n = 50;
    let dir = filled(n);
    damage(dir.path(), &key(7), 12);
    let disk = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
    // Found by an operation first: refused, and quarantined.
    assert!(update(&disk, &key(7)).is_err());
    assert_eq!(disk.integrity().corrupt_found, 1);
    assert_quarantined(&disk, n);
}

#[test]
fn the_scrub_finds_every_damaged_value_at_the_rate_asked() {
    let n = 3000;
    let dir = filled(n);
    let damaged = [3, 500, 1200, 2222, 2999];
    for &i in &damaged {
        damage(dir.path(), &key(i), 12);
    }
    let disk = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
    let rate = 512 * 1024;
    let mut waited = std::time::Duration::ZERO;
    let pass = scrub_pass(&disk, Some(rate), |pause| waited += pause).unwrap();
    let mut found: Vec<Vec<u8>> = pass.corrupt.iter().map(|c| c.key.clone()).collect();
    found.sort();
    let mut expected: Vec<Vec<u8>> = damaged.iter().map(|&i| key(i)).collect();
    expected.sort();
    println!(
        "injected: {} values damaged among {n}; held: the scrub read {} keys, {} bytes, waited \
         {waited:?} at {rate} B/s, and found {:?}",
        damaged.len(),
        pass.keys,
        pass.bytes,
        found
            .iter()
            .map(|k| String::from_utf8_lossy(k))
            .collect::<Vec<_>>()
    );
    assert_eq!(found, expected);
    assert!(pass.corrupt.iter().all(|c| !c.earlier));
    assert_eq!(pass.keys, n);
    // The pauses add up to the rate (the last step's is not waited).
    let paced = pass.bytes as f64 / rate as f64;
    assert!(
        waited.as_secs_f64() <= paced && waited.as_secs_f64() > paced * 0.5,
        "{waited:?} for {paced} s of reading"
    );
    assert_eq!(disk.integrity().corrupt_found, damaged.len() as u64);
    assert_eq!(disk.bucket_digests().unwrap(), digests_without(n, &damaged));
    // A second pass reports them as quarantined earlier.
    let again = scrub_pass(&disk, None, |_| {}).unwrap();
    assert_eq!(again.corrupt.len(), damaged.len());
    assert!(again.corrupt.iter().all(|c| c.earlier));
    assert_eq!(disk.integrity().scrub_passes, 2);
}

#[test]
fn a_format_1_directory_is_upgraded_and_its_undecodable_values_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let n = 50;
    let bad = b"bad".to_vec();
    {
        // What format 1 stored: bare encodings, and their digests.
        let db = redb::Database::create(dir.path().join("haze.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            txn.open_table(META).unwrap().insert("format", 1).unwrap();
            let mut values = txn.open_table(VALUES).unwrap();
            let mut digests = digests_without(n, &[]);
            for i in 0..n {
                let encoded = counter(i, i + 1).encode();
                values
                    .insert(store_key(&key(i)).as_slice(), encoded.as_slice())
                    .unwrap();
            }
            let garbage = b"\x01\xff\xff".as_slice();
            values.insert(store_key(&bad).as_slice(), garbage).unwrap();
            digests[digest_bucket(ring_hash(&bad))] ^= key_digest(&bad, garbage);
            let blob: Vec<u8> = digests.iter().flat_map(|d| d.to_be_bytes()).collect();
            txn.open_table(DIGESTS)
                .unwrap()
                .insert("buckets", blob.as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let disk = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
    for i in 0..n {
        assert_eq!(disk.get(&key(i)).unwrap(), Some(counter(i, i + 1)));
    }
    assert!(matches!(disk.get(&bad), Err(Error::CorruptValue { .. })));
    assert_eq!(disk.bucket_digests().unwrap(), digests_without(n, &[]));
    drop(disk);
    let db = redb::ReadOnlyDatabase::open(dir.path().join("haze.redb")).unwrap();
    let txn = db.begin_read().unwrap();
    let format = txn.open_table(META).unwrap().get("format").unwrap();
    assert_eq!(format.map(|v| v.value()), Some(2));
    let values = txn.open_table(VALUES).unwrap();
    assert!(
        values
            .iter()
            .unwrap()
            .all(|e| matches!(e.unwrap().1.value().first(), Some(0x5A | 0xA5))),
        "every entry carries its checksum, or marks a quarantine"
    );
}
