//! The checks every store passes.

use haze_crdt::{ActorId, GCounter, OrSet, Value, ValueKind};
use haze_storage::{
    DIGEST_BUCKETS, Mutation, Store, StoreConfig, Write, WriteError, digest_bucket, key_digest,
    ring_hash,
};
use tempfile::TempDir;

pub type Make = fn(StoreConfig) -> (Box<dyn Store>, Option<TempDir>);

pub fn counter(actor: u64, n: u64) -> Value {
    let mut c = GCounter::new();
    c.increment(ActorId::new(actor), n).unwrap();
    Value::from(c)
}

pub fn merge(store: &dyn Store, key: &[u8], value: Value) -> Result<Value, WriteError> {
    let mut batch = [Write::new(key.to_vec(), Mutation::Merge(value))];
    store.apply(&mut batch).expect("the commit succeeds");
    batch[0].outcome.take().expect("applied")
}

fn count(value: &Value) -> u128 {
    match value {
        Value::GCounter(c) => c.value(),
        other => panic!("not a counter: {other:?}"),
    }
}

pub fn absent_keys_read_as_none(make: Make) {
    let (store, _dir) = make(StoreConfig::default());
    assert_eq!(store.get(b"nothing").unwrap(), None);
    assert_eq!(store.digest(b"nothing").unwrap(), None);
}

pub fn a_merge_creates_then_merges(make: Make) {
    let (store, _dir) = make(StoreConfig::default());
    assert_eq!(count(&merge(&*store, b"k", counter(1, 2)).unwrap()), 2);
    assert_eq!(count(&merge(&*store, b"k", counter(2, 3)).unwrap()), 5);
    assert_eq!(
        count(&merge(&*store, b"k", counter(1, 2)).unwrap()),
        5,
        "merging twice changes nothing"
    );
    assert_eq!(count(&store.get(b"k").unwrap().unwrap()), 5);
}

pub fn a_type_mismatch_is_refused_and_changes_nothing(make: Make) {
    let (store, _dir) = make(StoreConfig::default());
    merge(&*store, b"k", counter(1, 2)).unwrap();
    let err = merge(&*store, b"k", Value::from(OrSet::<String>::new())).unwrap_err();
    assert_eq!(
        err,
        WriteError::TypeMismatch {
            stored: ValueKind::GCounter,
            given: ValueKind::OrSet
        }
    );
    assert_eq!(count(&store.get(b"k").unwrap().unwrap()), 2);
}

pub fn oversized_values_and_keys_are_refused_and_change_nothing(make: Make) {
    let config = StoreConfig {
        max_value_bytes: 64,
        max_key_bytes: 8,
        ..StoreConfig::default()
    };
    let (store, _dir) = make(config);
    merge(&*store, b"k", counter(1, 1)).unwrap();
    let digests = store.bucket_digests().unwrap();
    // Each actor adds about 10 bytes: 10 actors pass 64.
    let mut big = counter(1, 1);
    for actor in 2..12 {
        big.merge(counter(actor << 40, 1)).unwrap();
    }
    assert!(matches!(
        merge(&*store, b"k", big),
        Err(WriteError::ValueTooLarge { limit: 64, .. })
    ));
    assert!(matches!(
        merge(&*store, b"too long a key", counter(1, 1)),
        Err(WriteError::KeyTooLarge { limit: 8, .. })
    ));
    assert_eq!(count(&store.get(b"k").unwrap().unwrap()), 1);
    assert_eq!(store.get(b"too long a key").unwrap(), None);
    assert_eq!(store.bucket_digests().unwrap(), digests);
}

pub fn updates_apply_in_batch_order(make: Make) {
    let (store, _dir) = make(StoreConfig::default());
    let add = |n: u64| {
        Mutation::Update(Box::new(move |current: Option<Value>| {
            let mut c = match current {
                None => GCounter::new(),
                Some(v) => GCounter::try_from(v)?,
            };
            c.increment(ActorId::new(7), n)?;
            Ok(Value::from(c))
        }))
    };
    let mut batch = [
        Write::new(b"k".to_vec(), add(1)),
        Write::new(b"k".to_vec(), add(2)),
        Write::new(b"j".to_vec(), add(5)),
    ];
    store.apply(&mut batch).unwrap();
    let outcomes: Vec<u128> = batch
        .iter_mut()
        .map(|w| count(&w.outcome.take().unwrap().unwrap()))
        .collect();
    assert_eq!(outcomes, [1, 3, 5]);
    // An update that changes the type is refused.
    let mut refused = [Write::new(
        b"k".to_vec(),
        Mutation::Update(Box::new(|_| Ok(Value::bottom(ValueKind::Flag)))),
    )];
    store.apply(&mut refused).unwrap();
    assert!(matches!(
        refused[0].outcome,
        Some(Err(WriteError::TypeMismatch { .. }))
    ));
}

pub fn digests_track_every_write(make: Make) {
    let (store, _dir) = make(StoreConfig::default());
    let keys: Vec<Vec<u8>> = (0..200u32)
        .map(|i| format!("key-{i}").into_bytes())
        .collect();
    for (i, key) in keys.iter().enumerate() {
        merge(&*store, key, counter(1, i as u64 + 1)).unwrap();
        if i % 3 == 0 {
            merge(&*store, key, counter(2, 1)).unwrap(); // a second write of the key
        }
    }
    // Recompute every bucket from scratch and compare with the incrementally kept digests.
    let mut expected = vec![0u64; DIGEST_BUCKETS];
    for key in &keys {
        let encoded = store.get(key).unwrap().unwrap().encode();
        assert_eq!(store.digest(key).unwrap(), Some(key_digest(key, &encoded)));
        expected[digest_bucket(ring_hash(key))] ^= key_digest(key, &encoded);
    }
    assert_eq!(store.bucket_digests().unwrap(), expected);
}

/// `bucket_keys` lists every key once, in ring order, page by page, with digests that add up to
/// their bucket's; `bucket_values` gives the same pages with the keys' values.
pub fn bucket_keys_list_each_key_once(make: Make) {
    // A small flush threshold, so a disk store holds keys in redb and in memory at once.
    let config = StoreConfig {
        flush_bytes: 2048,
        ..StoreConfig::default()
    };
    let (store, _dir) = make(config);
    let keys: Vec<Vec<u8>> = (0..300u32)
        .map(|i| format!("bk-{i}").into_bytes())
        .collect();
    for (i, key) in keys.iter().enumerate() {
        merge(&*store, key, counter(1, i as u64 + 1)).unwrap();
    }
    // Rewrite some, so older versions sit below newer ones.
    for key in keys.iter().step_by(7) {
        merge(&*store, key, counter(2, 5)).unwrap();
    }
    let buckets = store.bucket_digests().unwrap();
    let mut seen = Vec::new();
    let mut nonempty = 0;
    for (bucket, &bucket_digest) in buckets.iter().enumerate() {
        let mut after: Option<Vec<u8>> = None;
        let mut xor = 0u64;
        let mut in_bucket = Vec::new();
        loop {
            let (page, more) = store.bucket_keys(bucket, after.as_deref(), 2).unwrap();
            assert!(page.len() <= 2);
            // The same page with values: what a stream sends.
            let (values, more_values) = store.bucket_values(bucket, after.as_deref(), 2).unwrap();
            assert_eq!(more_values, more);
            assert_eq!(values.len(), page.len());
            for ((key, value), (listed, _)) in values.iter().zip(&page) {
                assert_eq!(key, listed);
                assert_eq!(store.get(key).unwrap().as_ref(), Some(value));
            }
            for (key, digest) in &page {
                assert_eq!(digest_bucket(ring_hash(key)), bucket);
                assert_eq!(store.digest(key).unwrap(), Some(*digest));
                xor ^= digest;
                in_bucket.push(key.clone());
            }
            after = page.last().map(|(k, _)| k.clone());
            if !more {
                break;
            }
        }
        nonempty += usize::from(!in_bucket.is_empty());
        let hashes: Vec<u64> = in_bucket.iter().map(|k| ring_hash(k)).collect();
        assert!(hashes.windows(2).all(|w| w[0] <= w[1]), "ring order");
        assert_eq!(xor, bucket_digest, "bucket {bucket}");
        seen.extend(in_bucket);
    }
    seen.sort();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(seen, expected);
    assert!(nonempty > 200, "keys spread over buckets");
    assert_eq!(
        store.bucket_keys(DIGEST_BUCKETS, None, 10).unwrap(),
        (vec![], false)
    );
    // A cursor from another bucket (a malicious or confused peer) reads nothing, never panics.
    let later = keys
        .iter()
        .max_by_key(|k| digest_bucket(ring_hash(k)))
        .unwrap();
    assert_eq!(
        store.bucket_keys(0, Some(later), 10).unwrap(),
        (vec![], false)
    );
}

/// Deleting a range of buckets (a partition that moved away) removes exactly their keys and
/// zeroes exactly their digests; keys outside stay as they were.
pub fn delete_buckets_drops_exactly_their_keys(make: Make) {
    let config = StoreConfig {
        flush_bytes: 2048,
        ..StoreConfig::default()
    };
    let (store, _dir) = make(config);
    let keys: Vec<Vec<u8>> = (0..400u32)
        .map(|i| format!("db-{i}").into_bytes())
        .collect();
    for (i, key) in keys.iter().enumerate() {
        merge(&*store, key, counter(1, i as u64 + 1)).unwrap();
    }
    let before = store.bucket_digests().unwrap();
    // A sixteenth of the ring: partition 3 of 16.
    let doomed = 3 * DIGEST_BUCKETS / 16..4 * DIGEST_BUCKETS / 16;
    let inside = |k: &[u8]| doomed.contains(&digest_bucket(ring_hash(k)));
    let expected = keys.iter().filter(|k| inside(k)).count() as u64;
    assert!(expected > 5, "the range holds keys");
    assert_eq!(store.delete_buckets(doomed.clone()).unwrap(), expected);
    for key in &keys {
        assert_eq!(store.get(key).unwrap().is_some(), !inside(key), "{key:?}");
    }
    let after = store.bucket_digests().unwrap();
    for (bucket, (a, b)) in after.iter().zip(&before).enumerate() {
        if doomed.contains(&bucket) {
            assert_eq!(*a, 0, "bucket {bucket}");
        } else {
            assert_eq!(a, b, "bucket {bucket}");
        }
    }
    // Writes go on, in the emptied range too.
    let back = keys.iter().find(|k| inside(k)).unwrap();
    merge(&*store, back, counter(1, 9)).unwrap();
    assert!(store.get(back).unwrap().is_some());
    assert_eq!(store.delete_buckets(0..0).unwrap(), 0);
}

pub fn keys_are_counted_once_wherever_they_are(make: Make) {
    // Small flushes: some keys are in redb, some in the recent tables, some in both.
    let config = StoreConfig {
        flush_bytes: 2048,
        ..StoreConfig::default()
    };
    let (store, _dir) = make(config);
    assert_eq!(store.key_count().unwrap(), 0);
    for i in 0..300u64 {
        merge(&*store, format!("kc-{i}").as_bytes(), counter(1, i + 1)).unwrap();
    }
    assert_eq!(store.key_count().unwrap(), 300);
    // Writing to keys that exist adds none.
    for i in 0..300u64 {
        merge(&*store, format!("kc-{i}").as_bytes(), counter(2, 1)).unwrap();
    }
    assert_eq!(store.key_count().unwrap(), 300);
    let doomed = 0..DIGEST_BUCKETS / 2;
    let deleted = store.delete_buckets(doomed).unwrap();
    assert_eq!(store.key_count().unwrap(), 300 - deleted);
}
