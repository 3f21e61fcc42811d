//! Whole changes carried out by polls of the nodes: every state in order, nodes lost on the
//! way, changes queued behind another.

use std::collections::BTreeSet;

use haze_ring::{MoveState, NodeId, PartitionId};

use crate::api::{CleanReport, SeenRequest, StreamReport};
use crate::{Change, ClusterId, ControllerState, MemberState, MoveLimits, Tracker};

/// A cluster of `n` active nodes, Q = 16, N = 3, and one standby node more.
fn cluster(n: u64) -> ControllerState {
    let mut s = ControllerState::new(ClusterId(7), 16, 3).unwrap();
    for i in 1..=n + 1 {
        s.register(&format!("127.0.0.1:{}", 7700 + i)).unwrap();
    }
    let first = (1..=n).map(NodeId).collect();
    s.carry_out(
        Change {
            add: first,
            remove: vec![],
        },
        0,
    )
    .unwrap();
    s
}

/// Every live node polls once: reports its epoch, the streams it sends (all complete) and
/// the partitions it cleaned; the controller advances after each.
fn poll_round(s: &mut ControllerState, tracker: &mut Tracker, now: u64, live: &[u64]) {
    let limits = MoveLimits {
        partitions: 4,
        ..MoveLimits::default()
    };
    for &id in live {
        let node = NodeId(id);
        let (mut streams, mut cleaned) = (Vec::new(), Vec::new());
        if let Some(t) = s.transition() {
            for m in &t.moves {
                // A stream completes only if its receiving node answers.
                for st in m
                    .streams
                    .iter()
                    .filter(|st| st.source == node && live.contains(&st.to.0))
                {
                    if m.state == MoveState::Streaming {
                        streams.push(StreamReport {
                            change: t.change,
                            partition: m.partition,
                            to: st.to,
                            keys: 10,
                            bytes: 100,
                            done: true,
                            passes: 1,
                            error: None,
                        });
                    }
                }
                if m.state == MoveState::Cleaning && m.departs(node) {
                    cleaned.push(CleanReport {
                        change: t.change,
                        partition: m.partition,
                        keys: 10,
                    });
                }
            }
        }
        let report = SeenRequest {
            node,
            epoch: s.table().map(|t| t.epoch().0),
            streams,
            cleaned,
            known: None,
            wait_ms: None,
        };
        tracker.record(&report, s.transition().map(|t| t.change), now);
        s.advance(tracker, now, &limits).unwrap();
    }
}

#[test]
fn an_added_node_gets_its_share_through_every_state_in_order() {
    let mut s = cluster(3);
    let before = s.table().unwrap().clone();
    s.carry_out(
        Change {
            add: vec![NodeId(4)],
            remove: vec![],
        },
        0,
    )
    .unwrap();
    let t = s.transition().unwrap().clone();
    assert!(t.moves.iter().all(|m| m.state == MoveState::Pending));
    assert_eq!(s.table(), Some(&before), "nothing routes elsewhere yet");
    let mut tracker = Tracker::default();
    let mut seen_states = BTreeSet::new();
    let mut epochs = BTreeSet::new();
    for round in 0..200u64 {
        poll_round(&mut s, &mut tracker, round * 500, &[1, 2, 3, 4]);
        epochs.insert(s.table().unwrap().epoch().0);
        let Some(t) = s.transition() else { break };
        let streaming = t.moves.iter().filter(|m| m.state == MoveState::Streaming);
        assert!(streaming.count() <= 4);
        seen_states.extend(t.moves.iter().map(|m| m.state));
    }
    assert!(s.transition().is_none(), "the change finished");
    assert_eq!(
        seen_states.len(),
        6,
        "every state was seen: {seen_states:?}"
    );
    assert!(
        epochs.len() > 2,
        "partitions switched a few at a time: {epochs:?}"
    );
    let table = s.table().unwrap();
    assert_eq!(table.replicas(PartitionId(0)).len(), 3);
    assert!(table.load()[&NodeId(4)] >= 11, "{:?}", table.load());
    assert_eq!(s.members()[&NodeId(4)].state, MemberState::Active);
    assert!(s.check().is_ok());
    let outcome = s.outcomes().last().expect("an outcome");
    assert!(outcome.done, "{outcome:?}");
    assert_eq!((outcome.rolled_back, outcome.replanned), (0, 0));
    assert_eq!(outcome.epoch, table.epoch().0);
}

#[test]
fn removing_a_dead_node_streams_its_partitions_from_the_survivors() {
    let mut s = cluster(4);
    s.carry_out(
        Change {
            add: vec![],
            remove: vec![NodeId(2)],
        },
        0,
    )
    .unwrap();
    assert_eq!(s.members()[&NodeId(2)].state, MemberState::Leaving);
    let mut tracker = Tracker::default();
    // n2 never reports: once the controller has run past `dead_after`, it is down.
    for round in 0..400u64 {
        poll_round(&mut s, &mut tracker, round * 500, &[1, 3, 4]);
        if s.transition().is_none() {
            break;
        }
        if let Some(t) = s.transition() {
            for m in t.moves.iter().filter(|m| m.state >= MoveState::Proxying) {
                assert!(m.streams.iter().all(|st| st.source != NodeId(2)));
            }
        }
    }
    assert!(s.transition().is_none(), "the change finished without n2");
    assert!(!s.members().contains_key(&NodeId(2)), "n2 was released");
    assert!(!s.table().unwrap().nodes().contains(&NodeId(2)));
    assert!(s.check().is_ok());
}

#[test]
fn a_node_added_then_lost_has_its_replicas_given_to_another() {
    let mut s = cluster(4);
    s.register("127.0.0.1:7799").unwrap(); // n6 (n5 is the standby of `cluster`)
    s.carry_out(
        Change {
            add: vec![NodeId(6)],
            remove: vec![],
        },
        0,
    )
    .unwrap();
    let mut tracker = Tracker::default();
    // n6 never answers; n5 (standby) does.
    for round in 0..600u64 {
        poll_round(&mut s, &mut tracker, round * 500, &[1, 2, 3, 4, 5]);
        if s.transition().is_none() {
            break;
        }
    }
    assert!(s.transition().is_none(), "the change finished without n6");
    let table = s.table().unwrap();
    assert!(!table.nodes().contains(&NodeId(6)), "{:?}", table.load());
    assert_eq!(s.members()[&NodeId(6)].state, MemberState::Standby);
    assert!(s.check().is_ok(), "{:?}", s.check());
    // And the change says it did not do what was asked, and why.
    let outcome = s.outcomes().last().expect("an outcome");
    assert_eq!((outcome.change, outcome.done), (2, false), "{outcome:?}");
    assert_eq!(outcome.add, [NodeId(6)]);
    assert!(outcome.replanned > 0, "{outcome:?}");
    assert!(
        outcome.problems[0].starts_with("n6 was not added"),
        "{outcome:?}"
    );
    assert!(
        outcome
            .notes
            .iter()
            .any(|n| n.contains("n6 is not answering")),
        "{outcome:?}"
    );
}

#[test]
fn a_removal_whose_receiver_is_lost_is_rolled_back_and_says_so() {
    // Four nodes, three replicas: each partition of n4 moves to the one other node that does
    // not hold it. n3 never answers, and no node can take its place: its moves roll back.
    let mut s = cluster(4);
    s.carry_out(
        Change {
            add: vec![],
            remove: vec![NodeId(4)],
        },
        0,
    )
    .unwrap();
    let mut tracker = Tracker::default();
    for round in 0..600u64 {
        poll_round(&mut s, &mut tracker, round * 500, &[1, 2, 4, 5]);
        if s.transition().is_none() {
            break;
        }
    }
    assert!(s.transition().is_none(), "the change ended");
    assert_eq!(
        s.members()[&NodeId(4)].state,
        MemberState::Active,
        "n4 stays"
    );
    let outcome = s.outcomes().last().expect("an outcome");
    assert!(!outcome.done, "{outcome:?}");
    assert_eq!(outcome.remove, [NodeId(4)]);
    let held = s.table().unwrap().load()[&NodeId(4)];
    assert_eq!(outcome.rolled_back, held, "{outcome:?}");
    assert!(
        outcome.problems[0].starts_with(&format!(
            "n4 was not released: it stays active with {held} partitions: {held} of its \
             partitions' moves were rolled back (n3 is not answering"
        )),
        "{outcome:?}"
    );
    assert!(
        outcome.summary().contains("NOT done"),
        "{}",
        outcome.summary()
    );
    assert!(s.check().is_ok(), "{:?}", s.check());
}

#[test]
fn a_change_committed_while_another_runs_waits_its_turn() {
    let mut s = cluster(3);
    s.register("127.0.0.1:7799").unwrap(); // n5
    s.propose(Change {
        add: vec![NodeId(4)],
        remove: vec![],
    })
    .unwrap();
    s.commit(0).unwrap();
    let plan = s
        .propose(Change {
            add: vec![],
            remove: vec![NodeId(4)],
        })
        .unwrap();
    assert!(
        !plan.moves.is_empty(),
        "planned against the running change's target"
    );
    s.commit(0).unwrap();
    assert_eq!(s.queued().count(), 1);
    assert!(matches!(s.commit(0), Err(crate::Error::NothingProposed)));
    let mut tracker = Tracker::default();
    let mut changes = BTreeSet::new();
    for round in 0..600u64 {
        poll_round(&mut s, &mut tracker, round * 500, &[1, 2, 3, 4]);
        match s.transition() {
            Some(t) => {
                changes.insert(t.change);
            }
            None => break,
        }
    }
    assert_eq!(changes.len(), 2, "both changes ran, one after the other");
    assert!(s.transition().is_none());
    assert!(!s.members().contains_key(&NodeId(4)));
    assert_eq!(s.table().unwrap().nodes().len(), 3);
}

#[test]
fn changes_that_cannot_be_made_are_refused_with_the_reason() {
    let s = cluster(3);
    let err = s
        .plan(&Change {
            add: vec![],
            remove: vec![NodeId(1)],
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            crate::Error::TooFewNodes {
                left: 2,
                replicas: 3
            }
        ),
        "{err}"
    );
    let err = s
        .plan(&Change {
            add: vec![NodeId(1)],
            remove: vec![],
        })
        .unwrap_err();
    assert!(matches!(err, crate::Error::NothingToAdd), "{err}");
    let err = s
        .plan(&Change {
            add: vec![],
            remove: vec![NodeId(4)],
        })
        .unwrap_err();
    assert!(matches!(err, crate::Error::NotActive(_)), "{err}");
}
