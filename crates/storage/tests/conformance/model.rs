//! The disk store against a model (`BTreeMap` of merged counters), with reopening as one of the
//! random operations, and against the memory store's digests.

use std::collections::BTreeMap;

use haze_crdt::{Crdt, GCounter, Value};
use haze_storage::{DiskStore, Durability, MemStore, Store, StoreConfig};
use proptest::prelude::*;

use crate::suite::{counter, merge};

#[derive(Debug, Clone)]
enum Op {
    Merge { key: u8, actor: u64, n: u64 },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..8, 0u64..3, 1u64..4).prop_map(|(key, actor, n)| Op::Merge { key, actor, n }),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_disk_store_matches_the_model_across_reopens(ops in prop::collection::vec(op(), 1..30)) {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig { durability: Durability::Periodic { interval_ms: 1_000 }, ..StoreConfig::default() };
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
