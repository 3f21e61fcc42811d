//! What nodes reported, kept in memory ([`Tracker`]).
//!
//! Only the moves' states are persisted: after a restart nodes report again within a poll, and
//! a step whose report was lost is redone (streaming again is merging again).

use std::collections::{BTreeMap, BTreeSet};

use haze_ring::{NodeId, PartitionId};

use crate::MoveLimits;
use crate::api::{SeenRequest, StreamReport};

/// What a node last said, and when (milliseconds on the tracker's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSeen {
    /// The epoch of its table.
    pub epoch: Option<u64>,
    /// When.
    pub at_ms: u64,
}

/// What the controller knows from nodes' reports, in memory.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    /// Each node's last report.
    pub seen: BTreeMap<NodeId, NodeSeen>,
    /// The last progress of each stream, by partition and receiving node, with its sender.
    pub streams: BTreeMap<(PartitionId, NodeId), (NodeId, StreamReport)>,
    /// The partitions each departing node reported deleted, for the change under way.
    pub cleaned: BTreeSet<(PartitionId, NodeId)>,
    /// When each partition entered its state.
    pub entered: BTreeMap<PartitionId, u64>,
    /// The change the reports are about.
    change: u64,
}

impl Tracker {
    /// Records a node's report, made at `now_ms`; reports about another change than `change`
    /// are dropped.
    pub fn record(&mut self, report: &SeenRequest, change: Option<u64>, now_ms: u64) {
        self.seen.insert(
            report.node,
            NodeSeen {
                epoch: report.epoch,
                at_ms: now_ms,
            },
        );
        let Some(change) = change else {
            return;
        };
        self.forget_other_changes(change);
        for stream in report.streams.iter().filter(|s| s.change == change) {
            self.streams
                .insert((stream.partition, stream.to), (report.node, stream.clone()));
        }
        for clean in report.cleaned.iter().filter(|c| c.change == change) {
            self.cleaned.insert((clean.partition, report.node));
        }
    }

    /// Forgets the streams, cleanups and state clocks of any change but `change`.
    pub(crate) fn forget_other_changes(&mut self, change: u64) {
        if self.change != change {
            self.change = change;
            self.streams.clear();
            self.cleaned.clear();
            self.entered.clear();
        }
    }

    /// Returns whether `node` is taken for down at `now_ms`: silent for `dead_after_ms`, or
    /// never heard from since the tracker's clock passed that long.
    pub fn is_down(&self, node: NodeId, now_ms: u64, limits: &MoveLimits) -> bool {
        let last = self.seen.get(&node).map_or(0, |s| s.at_ms);
        now_ms.saturating_sub(last) >= limits.dead_after_ms
    }

    /// Returns how long `partition` has been in its state.
    pub fn in_state_ms(&self, partition: PartitionId, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.entered.get(&partition).copied().unwrap_or(now_ms))
    }
}
