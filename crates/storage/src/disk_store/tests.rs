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
