//! The disk store's own side of a failing disk: a write that finds the disk full changes
//! nothing and the store goes on; any other failure stops it; reads go on.

use std::io::ErrorKind;

use haze_crdt::{ActorId, GCounter, Value};

use super::*;
use crate::{Mutation, Write, WriteError};

fn counter(n: u64) -> Value {
    let mut c = GCounter::new();
    c.increment(ActorId::new(1), n).unwrap();
    Value::from(c)
}

fn merge(store: &DiskStore, key: &[u8], n: u64) -> Result<Option<Result<Value, WriteError>>> {
    let mut batch = [Write::new(key.to_vec(), Mutation::Merge(counter(n)))];
    store.apply(&mut batch)?;
    Ok(batch[0].outcome.take())
}

#[test]
fn a_full_disk_refuses_a_commit_without_effect_and_any_other_failure_stops_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
    merge(&store, b"a", 1).unwrap();
    let digests = store.bucket_digests().unwrap();
    let log_len = lock(&store.writer).wal.len();

    lock(&store.writer).wal.fail_next_write = Some((7, ErrorKind::StorageFull));
    let full = merge(&store, b"b", 1).unwrap_err();
    assert!(matches!(full, Error::NoSpace(_)), "{full:?}");
    assert_eq!(store.get(b"b").unwrap(), None, "nothing published");
    assert_eq!(store.bucket_digests().unwrap(), digests);
    assert_eq!(lock(&store.writer).wal.len(), log_len, "the log rewound");
    // Room again: the store goes on.
    assert_eq!(merge(&store, b"b", 2).unwrap(), Some(Ok(counter(2))));

    lock(&store.writer).wal.fail_next_write = Some((7, ErrorKind::Other));
    let failed = merge(&store, b"c", 1).unwrap_err();
    assert!(matches!(failed, Error::Io(_)), "{failed:?}");
    for refused in [
        merge(&store, b"d", 1).unwrap_err(),
        store.sync().unwrap_err(),
    ] {
        assert!(matches!(refused, Error::Stopped(_)), "{refused:?}");
    }
    assert_eq!(store.get(b"a").unwrap(), Some(counter(1)), "reads go on");
    assert_eq!(store.get(b"b").unwrap(), Some(counter(2)));
    drop(store);
    // Everything acknowledged is in the log the failed store left.
    let store = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
    assert_eq!(store.get(b"b").unwrap(), Some(counter(2)));
    assert_eq!(store.get(b"c").unwrap(), None);
}

/// An update adding `n` to the counter (one actor), refused when the stored value is another
/// type's or when `n` is 0 (a refusal after the writer took the key's value).
fn add(n: u64) -> Mutation {
    Mutation::Update(Box::new(move |current| {
        let mut c = match current {
            None => GCounter::new(),
            Some(Value::GCounter(c)) => c,
            Some(other) => {
                return Err(WriteError::TypeMismatch {
                    stored: other.kind(),
                    given: haze_crdt::ValueKind::GCounter,
                });
            }
        };
        if n == 0 {
            return Err(WriteError::Refused(haze_crdt::Error::CounterOverflow));
        }
        c.increment(ActorId::new(1), n).unwrap();
        Ok(Value::from(c))
    }))
}

#[test]
fn a_hot_keys_value_moves_through_a_commit_and_each_write_that_wants_it_gets_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
    let k = b"hot".to_vec();
    let mut batch = [
        Write::applied_only(k.clone(), add(1)), // 0: superseded by 1
        Write::applied_only(k.clone(), add(2)), // 1: superseded by 2
        Write::new(k.clone(), add(4)),          // 2: wants its value: 7
        Write::applied_only(k.clone(), add(0)), // 3: refused (2's value copied, kept)
        Write::applied_only(b"other".to_vec(), add(100)), // 4: another key
        Write::applied_only(k.clone(), add(8)), // 5: holds the newest value: 15
        Write::applied_only(k.clone(), add(0)), // 6: refused after taking 5's value
    ];
    store.apply(&mut batch).unwrap();
    let state = |w: &Write| (w.superseded, w.outcome.clone());
    assert_eq!(state(&batch[0]), (true, None));
    assert_eq!(state(&batch[1]), (true, None));
    assert_eq!(state(&batch[2]), (false, Some(Ok(counter(7)))));
    assert!(matches!(
        batch[3].outcome,
        Some(Err(WriteError::Refused(_)))
    ));
    assert_eq!(state(&batch[4]), (false, Some(Ok(counter(100)))));
    // The refused write after it gave the taken value back.
    assert_eq!(state(&batch[5]), (false, Some(Ok(counter(15)))));
    assert!(matches!(
        batch[6].outcome,
        Some(Err(WriteError::Refused(_)))
    ));
    assert_eq!(store.get(&k).unwrap(), Some(counter(15)));

    // The digests are those of the final values, as if each had been written alone.
    let alone = tempfile::tempdir().unwrap();
    let fresh = DiskStore::open(alone.path(), StoreConfig::default()).unwrap();
    merge(&fresh, &k, 15).unwrap();
    merge(&fresh, b"other", 100).unwrap();
    assert_eq!(
        store.bucket_digests().unwrap(),
        fresh.bucket_digests().unwrap()
    );
    assert_eq!(store.digest(&k).unwrap(), fresh.digest(&k).unwrap());
    // And the log holds them: a reopen replays the same.
    drop(store);
    let store = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
    assert_eq!(store.get(&k).unwrap(), Some(counter(15)));
    assert_eq!(
        store.bucket_digests().unwrap(),
        fresh.bucket_digests().unwrap()
    );
}

/// Adds `n` to a grow-only counter in place; refuses (unchanged) when `n` is 0 or the value is
/// another type. Its bound is `bound`.
struct AddInPlace {
    n: u64,
    bound: Option<usize>,
}

impl crate::InPlace for AddInPlace {
    fn growth_bound(&self, _: Option<&Value>) -> Option<usize> {
        self.bound
    }

    fn apply(self: Box<Self>, current: &mut Option<Value>) -> std::result::Result<(), WriteError> {
        if let Some(other) = current
            .as_ref()
            .filter(|v| !matches!(v, Value::GCounter(_)))
        {
            return Err(WriteError::TypeMismatch {
                stored: other.kind(),
                given: haze_crdt::ValueKind::GCounter,
            });
        }
        if self.n == 0 {
            return Err(WriteError::Refused(haze_crdt::Error::CounterOverflow));
        }
        let Value::GCounter(c) = current.get_or_insert_with(|| Value::from(GCounter::new())) else {
            unreachable!("checked above")
        };
        c.increment(ActorId::new(1), self.n).unwrap();
        Ok(())
    }
}

fn in_place(n: u64, bound: Option<usize>) -> Mutation {
    Mutation::InPlace(Box::new(AddInPlace { n, bound }))
}

#[test]
fn in_place_writes_keep_a_value_unencoded_through_a_commit_and_the_limit_holds() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        max_value_bytes: 50,
        ..StoreConfig::default()
    };
    let store = DiskStore::open(dir.path(), config).unwrap();
    let k = b"hot".to_vec();
    let mut batch = [
        Write::applied_only(k.clone(), in_place(1, Some(8))), // 0: superseded by 1
        Write::applied_only(k.clone(), in_place(0, Some(8))), // 1: refused, gives 0 its value back
        Write::applied_only(k.clone(), in_place(2, Some(8))), // 2: 3, taken from 0
        Write::applied_only(k.clone(), Mutation::Merge(counter(10))), // 3: reads it encoded: 10
        Write::applied_only(k.clone(), in_place(1, None)),    // 4: no bound: measured, 11
        Write::applied_only(k.clone(), in_place(1, Some(100))), // 5: bound past the limit: 12
        Write::new(k.clone(), in_place(4, Some(8))),          // 6: wants its value: 16
        Write::applied_only(k.clone(), in_place(5, Some(8))), // 7: copied from 6: 21
    ];
    store.apply(&mut batch).unwrap();
    let state = |w: &Write| (w.superseded, w.outcome.clone());
    assert_eq!(state(&batch[0]), (true, None));
    assert!(matches!(
        batch[1].outcome,
        Some(Err(WriteError::Refused(_)))
    ));
    for superseded in &batch[2..6] {
        assert_eq!(state(superseded), (true, None));
    }
    assert_eq!(state(&batch[6]), (false, Some(Ok(counter(16)))));
    assert_eq!(state(&batch[7]), (false, Some(Ok(counter(21)))));
    assert_eq!(store.get(&k).unwrap(), Some(counter(21)));

    // Past the limit: a value of 51 bytes or more is refused and the key is left as it was.
    let mut big = GCounter::new();
    for actor in 2..8 {
        big.increment(ActorId::new(actor), 1 << 40).unwrap();
    }
    let big = Value::from(big);
    assert!(big.encode().len() <= 48, "{}", big.encode().len());
    merge_value(&store, b"full", big.clone());
    let mut batch = [
        Write::applied_only(b"full".to_vec(), in_place(1 << 50, Some(1000))),
        Write::applied_only(b"full".to_vec(), in_place(1, Some(16))),
    ];
    store.apply(&mut batch).unwrap();
    assert!(
        matches!(
            batch[0].outcome,
            Some(Err(WriteError::ValueTooLarge { .. }))
        ),
        "{:?}",
        batch[0].outcome
    );
    assert!(matches!(batch[1].outcome, Some(Ok(_))));

    // Bounds that add up past the limit while the value stays small: the value is measured
    // again and the writes go on (each is applied, none refused).
    let mut batch: Vec<Write> = (0..10)
        .map(|_| Write::applied_only(b"many".to_vec(), in_place(1, Some(20))))
        .collect();
    store.apply(&mut batch).unwrap();
    assert!(batch[..9].iter().all(|w| w.superseded));
    assert_eq!(batch[9].outcome, Some(Ok(counter(10))));

    // The digests and the log are those of the final values.
    let alone = tempfile::tempdir().unwrap();
    let fresh = DiskStore::open(alone.path(), config).unwrap();
    merge(&fresh, &k, 21).unwrap();
    merge_value(&fresh, b"full", store.get(b"full").unwrap().unwrap());
    merge(&fresh, b"many", 10).unwrap();
    assert_eq!(
        store.bucket_digests().unwrap(),
        fresh.bucket_digests().unwrap()
    );
    drop(store);
    let store = DiskStore::open(dir.path(), config).unwrap();
    assert_eq!(store.get(&k).unwrap(), Some(counter(21)));
    assert_eq!(
        store.bucket_digests().unwrap(),
        fresh.bucket_digests().unwrap()
    );
}

fn merge_value(store: &DiskStore, key: &[u8], value: Value) {
    let mut batch = [Write::new(key.to_vec(), Mutation::Merge(value))];
    store.apply(&mut batch).unwrap();
    assert!(matches!(batch[0].outcome, Some(Ok(_))));
}

/// A grow-only counter of 150 actors besides actor 1, whose encoding is past `hot::MIN_BYTES`.
fn wide_counter() -> Value {
    let mut c = GCounter::new();
    for actor in 2..152 {
        c.increment(ActorId::new(actor), 1 << 40).unwrap();
    }
    let c = Value::from(c);
    assert!(c.encode().len() >= hot::MIN_BYTES, "{}", c.encode().len());
    c
}

/// `value` with actor 1's count raised by `n`.
fn plus(value: &Value, n: u64) -> Value {
    let Value::GCounter(c) = value else {
        panic!("{value:?}")
    };
    let mut c = c.clone();
    c.increment(ActorId::new(1), n).unwrap();
    Value::from(c)
}

/// Actor 1's count in an outcome that holds a grow-only counter (a short failure message).
fn own_count(outcome: &Option<std::result::Result<Value, WriteError>>) -> Option<u64> {
    match outcome {
        Some(Ok(Value::GCounter(c))) => Some(c.count_of(ActorId::new(1))),
        _ => None,
    }
}

#[test]
fn a_hot_keys_decoded_value_is_kept_for_its_next_commit_while_it_is_the_one_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
    let k = b"hot".to_vec();
    let apply = |write: Write| {
        let mut batch = [write];
        store.apply(&mut batch).unwrap();
        let [write] = batch;
        write
    };
    // A write that wants no value, of a large value: the store asks for it back.
    let first = apply(Write::applied_only(
        k.clone(),
        Mutation::Merge(wide_counter()),
    ));
    assert!(first.give_back);
    let stored = first.outcome.unwrap().unwrap();
    // A value the store never stored, handed back in its place, shows whether the next commit
    // starts from the kept value instead of decoding (a caller hands back what it was given).
    store.keep(&k, plus(&stored, 1000));
    let second = apply(Write::applied_only(k.clone(), in_place(1, Some(16))));
    assert!(second.give_back, "in place, then asked back too");
    assert_eq!(
        own_count(&second.outcome),
        Some(1001),
        "started from the kept value"
    );
    assert_eq!(second.outcome, Some(Ok(plus(&stored, 1001))));
    let stored = store.get(&k).unwrap().unwrap();
    assert_eq!(stored, plus(&wide_counter(), 1001));

    // A write that wants its value keeps it: nothing is asked back, and a value handed back
    // anyway is not used.
    let third = apply(Write::new(k.clone(), in_place(1, Some(16))));
    assert!(!third.give_back);
    store.keep(&k, plus(&stored, 1000));
    let fourth = apply(Write::applied_only(k.clone(), in_place(1, Some(16))));
    assert_eq!(
        own_count(&fourth.outcome),
        Some(1003),
        "decoded from the stored value"
    );
    assert_eq!(fourth.outcome, Some(Ok(plus(&stored, 2))));

    // A value handed back, then the key deleted and written again as before: the next commit
    // starts from the new value.
    store.keep(&k, plus(&stored, 1000));
    store.delete_buckets(0..crate::DIGEST_BUCKETS).unwrap();
    let again = apply(Write::applied_only(
        k.clone(),
        Mutation::Merge(plus(&stored, 2)),
    ));
    assert!(again.give_back);
    let fifth = apply(Write::applied_only(k.clone(), in_place(1, Some(16))));
    assert_eq!(own_count(&fifth.outcome), Some(1004));
    assert_eq!(fifth.outcome, Some(Ok(plus(&stored, 3))));

    // Small values are decoded each time: nothing is asked back.
    let small = apply(Write::applied_only(
        b"small".to_vec(),
        in_place(1, Some(16)),
    ));
    assert!(!small.give_back);

    // What is stored and logged is what the writes made.
    drop(store);
    let store = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
    assert_eq!(store.get(&k).unwrap(), Some(plus(&stored, 3)));
}

/// Reads of keys in redb share one snapshot of it (`db::Db::values`): each flush that ends and
/// each delete must let it go, or reads would serve what redb held before.
#[test]
fn reads_from_redb_see_each_flush_and_delete_not_an_older_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(dir.path(), StoreConfig::default()).unwrap();
    let flush = || store.flush_now(&mut lock(&store.writer)).unwrap();
    merge(&store, b"a", 1).unwrap();
    flush();
    assert_eq!(store.get(b"a").unwrap(), Some(counter(1)), "read from redb");
    merge(&store, b"a", 2).unwrap();
    merge(&store, b"b", 5).unwrap();
    flush();
    {
        let tables = store.recent.read().unwrap();
        assert!(
            tables.active.values.is_empty() && tables.frozen.is_none(),
            "all in redb"
        );
    }
    assert_eq!(
        store.get(b"a").unwrap(),
        Some(counter(2)),
        "the second flush's value"
    );
    assert_eq!(store.get(b"b").unwrap(), Some(counter(5)));
    // A flush's own commits happen while its frozen table still answers: mid-flush reads
    // never needed the new snapshot; after it, they do (checked above). Then a delete.
    store.delete_buckets(0..crate::DIGEST_BUCKETS).unwrap();
    assert_eq!(store.get(b"a").unwrap(), None, "deleted from redb");
    assert_eq!(store.get(b"b").unwrap(), None);
}
