//! The steps after the round: publishing a table for the moves ready to switch, and
//! completing the change.

use haze_ring::{MoveState, NodeId, PartitionTable, Transition};

use crate::progress::advance::publish;
use crate::{Change, ClusterId, ControllerState, MemberState, MoveLimits, Tracker};

const NOW: u64 = 5_000;

/// A cluster of `active` nodes (Q = 16, N = `replicas`) and `standby` more, with `change`
/// under way; returns it with the change and the table in force.
fn changing(
    active: u64,
    standby: u64,
    replicas: usize,
    change: Change,
) -> (ControllerState, Transition, PartitionTable) {
    let mut s = ControllerState::new(ClusterId(7), 16, replicas).unwrap();
    for i in 1..=active + standby {
        s.register(&format!("127.0.0.1:{}", 7700 + i)).unwrap();
    }
    let first = Change {
        add: (1..=active).map(NodeId).collect(),
        remove: vec![],
    };
    s.carry_out(first, 0).unwrap();
    s.carry_out(change, 0).unwrap();
    let t = s.transition().expect("the change runs").clone();
    let table = s.table().unwrap().clone();
    (s, t, table)
}

fn add(id: u64) -> Change {
    Change {
        add: vec![NodeId(id)],
        remove: vec![],
    }
}

fn remove(id: u64) -> Change {
    Change {
        add: vec![],
        remove: vec![NodeId(id)],
    }
}

#[test]
fn publish_switches_the_ready_moves_in_one_new_epoch() {
    let (_, mut t, table) = changing(3, 1, 3, add(4));
    assert!(t.moves.len() >= 3, "{}", t.moves.len());
    let mut tracker = Tracker::default();
    t.moves[0].state = MoveState::Proxying;
    t.moves[1].state = MoveState::Proxying;
    let untouched = t.clone();
    let same = publish(&mut t, table.clone(), vec![], &mut tracker, NOW).unwrap();
    assert_eq!((same, &t), (table.clone(), &untouched), "nothing ready");

    let next = publish(&mut t, table.clone(), vec![0], &mut tracker, NOW).unwrap();
    assert_eq!(next.epoch().0, table.epoch().0 + 1);
    let (switched, waiting) = (&t.moves[0], &t.moves[1]);
    assert_eq!(next.replicas(switched.partition), switched.after.as_slice());
    assert_eq!(switched.state, MoveState::Routed);
    assert_eq!(switched.routed_at, Some(next.epoch()));
    assert_eq!(tracker.entered[&switched.partition], NOW);
    assert_eq!(next.replicas(waiting.partition), waiting.before.as_slice());
    assert_eq!(waiting.state, MoveState::Proxying);
    assert!(!tracker.entered.contains_key(&waiting.partition));
}

#[test]
fn a_new_replication_factor_switches_every_partition_at_once_when_all_are_ready() {
    // Two nodes hold two replicas of each partition; a third makes it three: every partition
    // moves, and one table switches them all.
    let (_, mut t, table) = changing(2, 1, 3, add(3));
    assert_eq!((table.replication(), t.target.replication()), (2, 3));
    assert_eq!(t.moves.len(), 16);
    let mut tracker = Tracker::default();
    let all: Vec<usize> = (0..t.moves.len()).collect();
    for m in &mut t.moves {
        m.state = MoveState::Proxying;
    }
    t.moves[5].state = MoveState::Streaming;
    let not_yet: [(&str, Vec<usize>); 2] = [
        (
            "one still streams",
            all.iter().copied().filter(|&i| i != 5).collect(),
        ),
        (
            "one is not ready",
            all.iter().copied().filter(|&i| i != 6).collect(),
        ),
    ];
    for (why, ready) in not_yet {
        let before = t.clone();
        let same = publish(&mut t, table.clone(), ready, &mut tracker, NOW).unwrap();
        assert_eq!((&same, &t), (&table, &before), "{why}");
        t.moves[5].state = MoveState::Proxying;
    }
    t.moves[7].state = MoveState::Done; // already through (it counts as ready)
    let ready = all.iter().copied().filter(|&i| i != 7).collect();
    let next = publish(&mut t, table.clone(), ready, &mut tracker, NOW).unwrap();
    assert_eq!(next, t.target.with_epoch(next.epoch()));
    assert_eq!(next.epoch().0, table.epoch().0 + 1);
    for (i, m) in t.moves.iter().enumerate() {
        let want = if i == 7 {
            MoveState::Done
        } else {
            MoveState::Routed
        };
        assert_eq!(m.state, want, "move {i}");
    }
}

#[test]
fn completion_waits_for_every_move_then_applies_the_target_and_releases_the_leaving() {
    let (mut s, mut t, table) = changing(4, 1, 3, remove(2));
    s.carry_out(add(5), 0).unwrap();
    assert_eq!(s.queued().count(), 1, "a change waits behind");
    s.transition = None; // `advance` takes the change out while it works on it
    let mut tracker = Tracker::default();
    tracker.entered.insert(t.moves[0].partition, 1);
    for m in &mut t.moves {
        m.state = MoveState::Done;
    }
    t.moves[0].state = MoveState::Cleaning;
    let limits = MoveLimits::default();
    let mut waiting = s.clone();
    waiting
        .complete(t.clone(), table.clone(), &mut tracker, &limits)
        .unwrap();
    assert_eq!(waiting.transition(), Some(&t), "one move is still cleaning");
    assert_eq!(waiting.table(), Some(&table));
    assert_eq!(waiting.members()[&NodeId(2)].state, MemberState::Leaving);

    t.moves[0].state = MoveState::Done;
    let target = t.target.clone();
    s.complete(t, table.clone(), &mut tracker, &limits).unwrap();
    assert!(!s.members().contains_key(&NodeId(2)), "n2 is released");
    assert!(tracker.entered.is_empty());
    let next = s.transition().expect("the queued change started");
    assert_eq!(next.description, "add n5");
    assert_eq!(s.members()[&NodeId(5)].state, MemberState::Active);
    let now = s.table().unwrap();
    assert_eq!(
        now,
        &target.with_epoch(now.epoch()),
        "the target is in force"
    );
    assert_eq!(now.epoch().0, table.epoch().0 + 1);
    assert!(s.check().is_ok(), "{:?}", s.check());
}

#[test]
fn completion_keeps_a_leaving_node_a_rolled_back_move_left_in_the_table() {
    // Every move of n2's removal but the first is done; the first was rolled back (its
    // partition keeps n2), as `retarget` does when no node can take the replica.
    let (mut s, mut t, table) = changing(4, 0, 3, remove(2));
    s.transition = None;
    for m in &mut t.moves {
        m.state = MoveState::Done;
    }
    let rolled = &mut t.moves[0];
    rolled.after.clone_from(&rolled.before);
    let kept = [(rolled.partition, rolled.before.as_slice())];
    t.target = t
        .target
        .successor(&kept)
        .unwrap()
        .with_epoch(t.target.epoch());
    let mut tracker = Tracker::default();
    s.complete(t, table, &mut tracker, &MoveLimits::default())
        .unwrap();
    assert_eq!(s.members()[&NodeId(2)].state, MemberState::Active);
    assert_eq!(s.table().unwrap().load()[&NodeId(2)], 1);
    assert!(s.transition().is_none());
    assert!(s.check().is_ok(), "{:?}", s.check());
}

#[test]
fn completion_returns_a_joining_node_every_move_went_past_to_standby() {
    // n5 was to join, but every move it was in was rolled back: it holds nothing.
    let (mut s, mut t, table) = changing(4, 1, 3, add(5));
    s.transition = None;
    for m in &mut t.moves {
        m.state = MoveState::Done;
        m.after.clone_from(&m.before);
    }
    t.target = table.with_epoch(t.target.epoch());
    let mut tracker = Tracker::default();
    s.complete(t, table.clone(), &mut tracker, &MoveLimits::default())
        .unwrap();
    assert_eq!(s.members()[&NodeId(5)].state, MemberState::Standby);
    assert_eq!(s.table(), Some(&table), "nothing changed: no new epoch");
    assert!(s.check().is_ok(), "{:?}", s.check());
}
