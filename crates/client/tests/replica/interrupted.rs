//! A sync cut at each point of its exchange (the property test cuts at random points; this
//! names them): the replica keeps every local edit, the store keeps what reached it whole, and
//! the next complete sync converges.

use std::sync::Arc;

use haze_client::{Client, ClientConfig, Replica};
use haze_crdt::{ActorId, PnCounter, TypedValue};
use haze_testkit::TestNode;

use crate::cut::{Cut, CutDial};
use crate::harness::{NODE_ACTOR, replica, scratch_dir, start_node};

/// Keys in the sync: two merge requests' worth (a request holds 256 states).
const KEYS: usize = 300;
const DEVICE: u64 = 7;

fn key(i: usize) -> String {
    format!("k{i:03}")
}

/// Whether a state holds `actor`'s increment.
fn has(state: Option<haze_crdt::Value>, actor: u64) -> bool {
    let counter = PnCounter::try_from_value(state.expect("every key is held")).unwrap();
    counter.increments().count_of(ActorId::new(actor)) == 1
}

/// How many keys hold the device's increment at the node, and the node's at the device.
fn spread(node: &TestNode, device: &Replica) -> (usize, usize) {
    let at_node = (0..KEYS).filter(|&i| has(node.get(key(i).as_bytes()), DEVICE));
    let at_device = (0..KEYS).filter(|&i| has(device.get(key(i)).cloned(), NODE_ACTOR));
    (at_node.count(), at_device.count())
}

fn requests(frame: u32, offset: u64) -> Cut {
    Cut {
        answers: false,
        frame,
        offset,
    }
}

fn answers(frame: u32, offset: u64) -> Cut {
    Cut {
        answers: true,
        ..requests(frame, offset)
    }
}

#[tokio::test]
async fn a_sync_cut_at_any_point_loses_nothing_and_the_next_sync_converges() {
    // The exchange of a first sync of 300 keys that differ everywhere. Requests: 0 hello,
    // 1 digests by list id, 2 the same with the keys (the node does not know the list yet),
    // 3 and 4 the two merge requests. Answers: 0 hello, 1 "unknown list", 2 digests, 3 and 4
    // the merged states. For each cut: how many of the 300 keys the node merged, and the
    // device (`some`: some but not all).
    let (none, some, all) = (Some(0), None, Some(KEYS));
    // Past the end of a frame: the connection is cut just after it.
    const PAST: u64 = 1 << 20;
    let cuts = [
        ("in the hello", requests(0, 2), none, none),
        ("in the key list", requests(2, 10), none, none),
        ("after the digest request", answers(2, 0), none, none),
        ("in the first merge request", requests(3, 100), none, none),
        ("between the merge requests", requests(4, 0), some, none),
        ("after the last merge request", requests(4, PAST), all, none),
        ("in the second merge answer", answers(4, 100), all, some),
    ];
    for (point, cut, node_merged, device_merged) in cuts {
        let node = start_node().await;
        let client = node.client().await;
        let dir = scratch_dir();
        let mut device = replica(dir.path(), "device", DEVICE);
        for i in 0..KEYS {
            device.counter_add(key(i), 1).unwrap();
            client.counter_add(key(i), 1).await.unwrap();
        }
        let before: Vec<_> = (0..KEYS).map(|i| device.get(key(i)).cloned()).collect();

        let dial = Arc::new(CutDial::new(cut));
        let (total, open) = node.connections();
        let config = ClientConfig {
            dial: dial.clone(),
            ..ClientConfig::default()
        };
        let result = device
            .sync(&Client::lazy(&node.addr.to_string(), config))
            .await;
        node.settle(total + dial.dials(), open).await;
        assert!(result.is_err(), "a sync cut {point} succeeded: {result:?}");

        let after: Vec<_> = (0..KEYS).map(|i| device.get(key(i)).cloned()).collect();
        let kept = (before.iter().zip(&after)).all(|(b, a)| {
            let mut merged = a.clone().unwrap();
            merged.merge(b.clone().unwrap()).is_ok() && Some(merged) == *a
        });
        assert!(kept, "a sync cut {point} lost local edits");
        let (at_node, at_device) = spread(&node, &device);
        let expect = |n: Option<usize>, got: usize| match n {
            Some(n) => got == n,
            None => 0 < got && got < KEYS,
        };
        assert!(
            expect(node_merged, at_node) && expect(device_merged, at_device),
            "cut {point}: the node merged {at_node} and the device {at_device} of {KEYS} keys"
        );

        device.sync(&client).await.unwrap();
        assert_eq!(spread(&node, &device), (KEYS, KEYS), "after a cut {point}");
        for i in 0..KEYS {
            assert_eq!(device.get(key(i)).cloned(), node.get(key(i).as_bytes()));
        }
    }
}
