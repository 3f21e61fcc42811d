//! Each move state's step alone: what it waits for, one table of cases per state.

use haze_ring::{Epoch, MoveState, NodeId, PartitionMove};

use super::fixtures::{ENTERED, NOW, P, UP, limits, members, partition_move, report, tracker};
use crate::MoveLimits;
use crate::progress::round::Round;

#[test]
fn pending_waits_for_a_slot_and_for_its_joining_replicas_to_know() {
    // P0: n3 → n4 (n4 joins). Other moves already streaming, to the nodes listed.
    /// Why, when n4 last polled, the receivers of the other streaming moves, the limits, and
    /// the state after.
    type Case = (
        &'static str,
        Option<u64>,
        &'static [u64],
        MoveLimits,
        MoveState,
    );
    let cases: [Case; 8] = [
        (
            "n4 polled since",
            Some(9_000),
            &[],
            limits(2, 1),
            MoveState::Streaming,
        ),
        (
            "n4 polled before",
            Some(7_000),
            &[],
            limits(2, 1),
            MoveState::Pending,
        ),
        (
            "n4 polled as it began",
            Some(ENTERED),
            &[],
            limits(2, 1),
            MoveState::Pending,
        ),
        (
            "n4 silent: down",
            Some(1_000),
            &[],
            limits(2, 1),
            MoveState::Streaming,
        ),
        (
            "n4 never heard: down",
            None,
            &[],
            limits(2, 1),
            MoveState::Streaming,
        ),
        (
            "no slot in the cluster",
            Some(9_000),
            &[5],
            limits(1, 1),
            MoveState::Pending,
        ),
        (
            "no slot at n4",
            Some(9_000),
            &[4],
            limits(2, 1),
            MoveState::Pending,
        ),
        (
            "slots left",
            Some(9_000),
            &[4, 5],
            limits(3, 2),
            MoveState::Streaming,
        ),
    ];
    for (why, n4, others, limits, want) in cases {
        let mut polls = vec![(1, None, UP), (2, None, UP), (3, None, UP)];
        polls.extend(n4.map(|at| (4, None, at)));
        let mut tracker = tracker(&polls);
        let mut moves: Vec<PartitionMove> = (1..)
            .zip(others)
            .map(|(p, &to)| partition_move(p, MoveState::Streaming, &[1], &[to], &[(to, 1)]))
            .collect();
        let mut m = partition_move(0, MoveState::Pending, &[1, 2, 3], &[1, 2, 4], &[(4, 3)]);
        moves.push(m.clone());
        let members = members();
        let mut round = Round::new(&mut tracker, NOW, &limits, &members, &moves);
        round.pending(&mut m);
        assert_eq!(m.state, want, "{why}");
        let started = want == MoveState::Streaming;
        assert_eq!(
            round.streaming,
            others.len() + usize::from(started),
            "{why}"
        );
        assert_eq!(m.attempts, u32::from(started), "{why}");
        let clock = if started { NOW } else { ENTERED };
        assert_eq!(tracker.entered[&P], clock, "{why}: the state's clock");
    }
}

#[test]
fn a_move_that_starts_streaming_streams_from_a_source_that_is_up() {
    // n3 (the replica n4 replaces) is down: a replica that stays (n1) streams instead.
    let mut tracker = tracker(&[(1, None, UP), (2, None, UP), (4, None, UP)]);
    let mut m = partition_move(0, MoveState::Pending, &[1, 2, 3], &[1, 2, 4], &[(4, 3)]);
    let (limits, members) = (limits(2, 1), members());
    let mut round = Round::new(&mut tracker, NOW, &limits, &members, &[]);
    round.pending(&mut m);
    assert_eq!(m.state, MoveState::Streaming);
    assert_eq!(m.streams[0].source, NodeId(1));
    assert_eq!(
        m.attempts, 1,
        "starting is one attempt, whatever the source"
    );
    assert_eq!(
        m.note.as_deref(),
        Some("n3 is not answering: n1 streams to n4 instead")
    );
}

#[test]
fn streaming_waits_for_every_stream_to_report_a_complete_pass_from_its_source() {
    // P0: n2 → n4 and n3 → n5. Reports: (receiver, sender, done).
    /// Why, the reports, whether n3 is up, and the state after.
    type Case = (&'static str, &'static [(u64, u64, bool)], bool, MoveState);
    let cases: [Case; 6] = [
        ("no report", &[], true, MoveState::Streaming),
        (
            "both complete",
            &[(4, 2, true), (5, 3, true)],
            true,
            MoveState::Proxying,
        ),
        ("one complete", &[(4, 2, true)], true, MoveState::Streaming),
        (
            "one pass under way",
            &[(4, 2, true), (5, 3, false)],
            true,
            MoveState::Streaming,
        ),
        // A report from a sender the stream no longer has (it was replaced) does not count.
        (
            "one from another sender",
            &[(4, 2, true), (5, 1, true)],
            true,
            MoveState::Streaming,
        ),
        // A sender that went down after reporting its complete pass: the pass counts.
        (
            "n3 down after its pass",
            &[(4, 2, true), (5, 3, true)],
            false,
            MoveState::Proxying,
        ),
    ];
    for (why, reports, n3_up, want) in cases {
        let mut polls = vec![(1, None, UP), (2, None, UP), (4, None, UP), (5, None, UP)];
        polls.extend(n3_up.then_some((3, None, UP)));
        let mut tracker = tracker(&polls);
        for &(to, from, done) in reports {
            let r = report(P, to, done);
            tracker.streams.insert((P, NodeId(to)), (NodeId(from), r));
        }
        let mut m = partition_move(
            0,
            MoveState::Streaming,
            &[1, 2, 3],
            &[1, 4, 5],
            &[(4, 2), (5, 3)],
        );
        m.note = Some("an earlier note".into());
        let (limits, members) = (limits(2, 2), members());
        let mut round = Round::new(&mut tracker, NOW, &limits, &members, &[m.clone()]);
        round.streaming(&mut m);
        assert_eq!(m.state, want, "{why}");
        if want == MoveState::Proxying {
            assert_eq!(m.note, None, "{why}: the note is cleared");
            assert_eq!(round.streaming, 0, "{why}: its slot is freed");
            assert_eq!(tracker.entered[&P], NOW, "{why}");
        } else {
            assert_eq!(round.streaming, 1, "{why}");
        }
    }
}

#[test]
fn a_streaming_move_whose_source_is_down_streams_again_from_another() {
    // n3 is down before its pass completed: n1 (it stays) streams to n5 from the start.
    let mut tracker = tracker(&[(1, None, UP), (2, None, UP), (4, None, UP), (5, None, UP)]);
    tracker
        .streams
        .insert((P, NodeId(5)), (NodeId(3), report(P, 5, false)));
    let mut m = partition_move(
        0,
        MoveState::Streaming,
        &[1, 2, 3],
        &[1, 4, 5],
        &[(4, 2), (5, 3)],
    );
    m.attempts = 1;
    let (limits, members) = (limits(2, 2), members());
    let mut round = Round::new(&mut tracker, NOW, &limits, &members, &[m.clone()]);
    round.streaming(&mut m);
    assert_eq!(m.state, MoveState::Streaming);
    assert_eq!(m.streams[1].source, NodeId(1));
    assert_eq!(m.attempts, 2);
    assert!(
        !tracker.streams.contains_key(&(P, NodeId(5))),
        "n3's report is forgotten"
    );
    assert_eq!(tracker.entered[&P], ENTERED, "still streaming since then");
}

#[test]
fn proxying_waits_for_every_departing_replica_to_know_or_be_down() {
    // P0: n2 and n3 depart; n1 stays. When n2 and n3 last polled (`None`: never).
    let cases: [(&str, Option<u64>, Option<u64>, bool); 7] = [
        ("both polled since", Some(9_000), Some(9_000), true),
        ("n3 polled before", Some(9_000), Some(7_000), false),
        ("n3 polled as it began", Some(9_000), Some(ENTERED), false),
        ("n3 silent: down", Some(9_000), Some(1_000), true),
        ("n3 never heard: down", Some(9_000), None, true),
        ("neither polled since", Some(7_000), Some(7_000), false),
        ("both down", None, None, true),
    ];
    for (why, n2, n3, want) in cases {
        let mut polls = vec![(1, None, ENTERED - 1)];
        polls.extend(n2.map(|at| (2, None, at)));
        polls.extend(n3.map(|at| (3, None, at)));
        let mut tracker = tracker(&polls);
        let m = partition_move(0, MoveState::Proxying, &[1, 2, 3], &[1, 4, 5], &[]);
        let (limits, members) = (limits(2, 2), members());
        let round = Round::new(&mut tracker, NOW, &limits, &members, &[]);
        assert_eq!(round.proxying(&m), want, "{why}");
    }
    // Nothing departs (the replication factor grows): ready at once.
    let mut tracker = tracker(&[]);
    let m = partition_move(0, MoveState::Proxying, &[1, 2], &[1, 2, 3], &[]);
    let (limits, members) = (limits(2, 2), members());
    assert!(Round::new(&mut tracker, NOW, &limits, &members, &[]).proxying(&m));
}

#[test]
fn routed_waits_for_every_live_member_to_have_the_epoch_or_for_the_grace_period() {
    // Routed at epoch 7. n1…n4 report epoch 7; n5 (standby: every member counts) reports
    // `n5` as (epoch, at_ms), or never.
    let grace = MoveLimits::default().grace_ms;
    /// Why, n5's last report, now, and the state after.
    type Case = (&'static str, Option<(Option<u64>, u64)>, u64, MoveState);
    let cases: [Case; 8] = [
        ("n5 has it", Some((Some(7), UP)), NOW, MoveState::Cleaning),
        (
            "n5 has a later one",
            Some((Some(8), UP)),
            NOW,
            MoveState::Cleaning,
        ),
        ("n5 is behind", Some((Some(6), UP)), NOW, MoveState::Routed),
        ("n5 has no table", Some((None, UP)), NOW, MoveState::Routed),
        (
            "n5 is behind but down",
            Some((Some(6), 1_000)),
            NOW,
            MoveState::Cleaning,
        ),
        ("n5 never heard: down", None, NOW, MoveState::Cleaning),
        (
            "n5 is behind, grace not over",
            Some((Some(6), ENTERED + grace - 2)),
            ENTERED + grace - 1,
            MoveState::Routed,
        ),
        (
            "n5 is behind, grace over",
            Some((Some(6), ENTERED + grace - 1)),
            ENTERED + grace,
            MoveState::Cleaning,
        ),
    ];
    for (why, n5, now, want) in cases {
        let mut polls: Vec<_> = (1..=4).map(|n| (n, Some(7), now - 1)).collect();
        polls.extend(n5.map(|(epoch, at)| (5, epoch, at)));
        let mut tracker = tracker(&polls);
        let mut m = partition_move(0, MoveState::Routed, &[1, 2, 3], &[1, 2, 4], &[]);
        m.routed_at = Some(Epoch(7));
        let (limits, members) = (limits(2, 2), members());
        let mut round = Round::new(&mut tracker, now, &limits, &members, &[]);
        round.routed(&mut m);
        assert_eq!(m.state, want, "{why}");
        let clock = if want == MoveState::Cleaning {
            now
        } else {
            ENTERED
        };
        assert_eq!(tracker.entered[&P], clock, "{why}");
    }
}

#[test]
fn cleaning_waits_for_every_departing_replica_to_delete_or_be_down() {
    // P0: n2 and n3 depart; n1 stays. Who reported the partition deleted, and whether n3 is up.
    let cases: [(&str, &[u64], bool, MoveState); 6] = [
        ("both deleted", &[2, 3], true, MoveState::Done),
        ("n3 has not", &[2], true, MoveState::Cleaning),
        ("n3 has not but is down", &[2], false, MoveState::Done),
        (
            "a staying replica's report does not count",
            &[1, 2],
            true,
            MoveState::Cleaning,
        ),
        ("neither has", &[], true, MoveState::Cleaning),
        (
            "n3 deleted, then went down",
            &[2, 3],
            false,
            MoveState::Done,
        ),
    ];
    for (why, deleted, n3_up, want) in cases {
        let mut polls = vec![(1, None, UP), (2, None, UP)];
        polls.extend(n3_up.then_some((3, None, UP)));
        let mut tracker = tracker(&polls);
        for &n in deleted {
            tracker.cleaned.insert((P, NodeId(n)));
        }
        let mut m = partition_move(0, MoveState::Cleaning, &[1, 2, 3], &[1, 4, 5], &[]);
        let (limits, members) = (limits(2, 2), members());
        let mut round = Round::new(&mut tracker, NOW, &limits, &members, &[]);
        round.cleaning(&mut m);
        assert_eq!(m.state, want, "{why}");
    }
}
