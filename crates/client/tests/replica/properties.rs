//! Random offline edits on 2–4 replicas, concurrent edits through the node, random sync
//! orders and interrupted syncs: nothing is lost, nothing moves down, everything converges.

use std::collections::BTreeMap;

use haze_client::{Replica, Scalar};
use haze_crdt::{PnCounter, Value};
use proptest::prelude::*;

use crate::harness::{TestNode, replica};

#[derive(Debug, Clone)]
enum Step {
    /// Replica `who` edits key `key` offline.
    Edit { who: usize, key: u8, edit: Edit },
    /// The node applies an edit itself (another client, online).
    Online { key: u8, edit: Edit },
    /// Replica `who` syncs every key, or only the first `limit` (an interrupted sync).
    Sync { who: usize, limit: Option<usize> },
    /// Replica `who` fetches a key by name.
    Fetch { who: usize, key: u8 },
}

#[derive(Debug, Clone)]
enum Edit {
    Count(i8),
    Add(u8),
    Remove(u8),
}

fn step(replicas: usize) -> impl Strategy<Value = Step> {
    let edit = prop_oneof![
        (-3i8..4).prop_map(Edit::Count),
        (0u8..4).prop_map(Edit::Add),
        (0u8..4).prop_map(Edit::Remove),
    ];
    prop_oneof![
        4 => (0..replicas, 0u8..4, edit.clone()).prop_map(|(who, key, edit)| Step::Edit { who, key, edit }),
        1 => (0u8..4, edit).prop_map(|(key, edit)| Step::Online { key, edit }),
        2 => (0..replicas, prop::option::of(0usize..3)).prop_map(|(who, limit)| Step::Sync { who, limit }),
        1 => (0..replicas, 0u8..4).prop_map(|(who, key)| Step::Fetch { who, key }),
    ]
}

/// Counters live under even keys, sets under odd ones, so edits never mismatch types.
fn key(k: u8, edit: &Edit) -> String {
    match edit {
        Edit::Count(_) => format!("c{}", k % 2),
        _ => format!("s{}", k % 2),
    }
}

fn apply(replica: &mut Replica, k: u8, edit: &Edit) {
    let key = key(k, edit);
    match edit {
        Edit::Count(n) => {
            replica.counter_add(&key, i64::from(*n)).unwrap();
        }
        Edit::Add(m) => {
            replica
                .set_add(&key, [Scalar::UInt(u64::from(*m))])
                .unwrap();
        }
        Edit::Remove(m) => {
            replica
                .set_remove(&key, [Scalar::UInt(u64::from(*m))])
                .unwrap();
        }
    }
}

/// `older` is below `newer` in the lattice: merging it into `newer` changes nothing.
fn below(older: &Value, newer: &Value) -> bool {
    let mut merged = newer.clone();
    merged.merge(older.clone()).is_ok() && merged == *newer
}

fn run(replicas: usize, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let node = TestNode::start().await;
        let client = node.client().await;
        let dir = tempfile::tempdir().unwrap();
        let mut devices: Vec<Replica> = (0..replicas)
            .map(|i| replica(dir.path(), &format!("r{i}"), i as u64 + 1))
            .collect();
        let mut counted: i128 = 0;
        let mut seen: Vec<BTreeMap<Vec<u8>, Value>> = vec![BTreeMap::new(); replicas];
        for step in steps {
            match &step {
                Step::Edit { who, key: k, edit } => {
                    apply(&mut devices[*who], *k, edit);
                    if let Edit::Count(n) = edit {
                        counted += i128::from(*n);
                    }
                }
                Step::Online { key: k, edit } => {
                    let key = key(*k, edit);
                    match edit {
                        Edit::Count(n) => {
                            client.counter_add(&key, i64::from(*n)).await.unwrap();
                            counted += i128::from(*n);
                        }
                        Edit::Add(m) => {
                            client
                                .set_add(&key, [Scalar::UInt(u64::from(*m))])
                                .await
                                .unwrap();
                        }
                        Edit::Remove(m) => {
                            client
                                .set_remove(&key, [Scalar::UInt(u64::from(*m))])
                                .await
                                .unwrap();
                        }
                    }
                }
                Step::Sync { who, limit } => {
                    let keys: Vec<Vec<u8>> = devices[*who].keys().map(<[u8]>::to_vec).collect();
                    let keys = &keys[..limit.unwrap_or(keys.len()).min(keys.len())];
                    devices[*who].sync_keys(&client, keys).await.unwrap();
                }
                Step::Fetch { who, key: k } => {
                    for name in [format!("c{}", k % 2), format!("s{}", k % 2)] {
                        devices[*who].fetch(&client, name).await.unwrap();
                    }
                }
            }
            // A replica never moves down its lattice.
            for (device, before) in devices.iter().zip(seen.iter_mut()) {
                for (key, old) in before.iter() {
                    let now = device.get(key).expect("a replica never forgets a key");
                    prop_assert!(below(old, now), "{:?} moved down after {:?}", key, step);
                }
                *before = device
                    .keys()
                    .map(|k| (k.to_vec(), device.get(k).unwrap().clone()))
                    .collect();
            }
        }
        // Heal: every device fetches every key and syncs, twice.
        for _ in 0..2 {
            for device in &mut devices {
                for name in ["c0", "c1", "s0", "s1"] {
                    device.fetch(&client, name).await.unwrap();
                }
                device.sync(&client).await.unwrap();
            }
        }
        for name in ["c0", "c1", "s0", "s1"] {
            let stored = client.get(name).await.unwrap();
            for device in &devices {
                prop_assert_eq!(
                    device.get(name).cloned(),
                    stored.clone(),
                    "{} did not converge",
                    name
                );
            }
        }
        // No increment is lost and none counted twice.
        let total: i128 = ["c0", "c1"]
            .iter()
            .filter_map(|k| devices[0].get_typed::<PnCounter>(k).unwrap())
            .map(|c| c.value())
            .sum();
        prop_assert_eq!(total, counted);
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("HAZE_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn replicas_and_the_store_converge_without_losing_an_edit(
        replicas in 2usize..=4,
        steps in prop::collection::vec(step(4), 1..40),
    ) {
        let steps = steps.into_iter().map(|mut s| {
            match &mut s {
                Step::Edit { who, .. } | Step::Sync { who, .. } | Step::Fetch { who, .. } => *who %= replicas,
                Step::Online { .. } => {}
            }
            s
        }).collect();
        run(replicas, steps)?;
    }
}
