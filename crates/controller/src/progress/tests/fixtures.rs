//! What the state tests share: the clock reads 12 s (past `dead_after_ms`, 10 s, so a node
//! never heard from is down), partition 0's move entered its state at 8 s, and nodes that
//! matter poll at 11 s unless a case says otherwise.

use std::collections::BTreeMap;

use haze_ring::{MoveState, NodeId, PartitionId, PartitionMove, Stream};

use crate::api::StreamReport;
use crate::{Member, MemberState, MoveLimits, NodeSeen, Tracker};

pub(super) const NOW: u64 = 12_000;
pub(super) const ENTERED: u64 = 8_000;
pub(super) const UP: u64 = 11_000;
pub(super) const P: PartitionId = PartitionId(0);

pub(super) fn limits(partitions: usize, per_node: usize) -> MoveLimits {
    MoveLimits {
        partitions,
        per_node,
        ..MoveLimits::default()
    }
}

/// Partition `p`'s move in `state`: replicas `before` → `after`, streams `(to, source)`.
pub(super) fn partition_move(
    p: u32,
    state: MoveState,
    before: &[u64],
    after: &[u64],
    streams: &[(u64, u64)],
) -> PartitionMove {
    PartitionMove {
        partition: PartitionId(p),
        before: before.iter().copied().map(NodeId).collect(),
        after: after.iter().copied().map(NodeId).collect(),
        streams: streams
            .iter()
            .map(|&(to, source)| Stream {
                to: NodeId(to),
                source: NodeId(source),
            })
            .collect(),
        state,
        routed_at: None,
        attempts: 0,
        note: None,
    }
}

/// Members n1…n5: active, but n5 standby.
pub(super) fn members() -> BTreeMap<NodeId, Member> {
    (1..=5)
        .map(|i| {
            let state = if i == 5 {
                MemberState::Standby
            } else {
                MemberState::Active
            };
            let addr = format!("127.0.0.1:{}", 7700 + i);
            (
                NodeId(i),
                Member {
                    addr,
                    state,
                    identity: None,
                },
            )
        })
        .collect()
}

/// A tracker in which partition 0 entered its state at [`ENTERED`] and each `(node, epoch,
/// at_ms)` polled last.
pub(super) fn tracker(polls: &[(u64, Option<u64>, u64)]) -> Tracker {
    let mut tracker = Tracker::default();
    tracker.entered.insert(P, ENTERED);
    for &(node, epoch, at_ms) in polls {
        tracker.seen.insert(NodeId(node), NodeSeen { epoch, at_ms });
    }
    tracker
}

pub(super) fn report(partition: PartitionId, to: u64, done: bool) -> StreamReport {
    StreamReport {
        change: 0,
        partition,
        to: NodeId(to),
        keys: 1,
        bytes: 1,
        done,
        passes: 1,
        error: None,
    }
}
