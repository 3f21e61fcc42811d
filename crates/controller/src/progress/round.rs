//! One round over a change's moves: what it knows and counts ([`Round`]), and one step per
//! move state, each taken when what the state waits for has happened.

use std::collections::BTreeMap;

use haze_ring::{MoveState, NodeId, PartitionMove};

use crate::{Member, MemberState, MoveLimits, Tracker};

/// What one advance knows (the nodes' reports, the time, the limits, the members) and counts
/// as it walks the moves in partition order.
#[derive(Debug)]
pub(super) struct Round<'a> {
    /// What nodes reported; a step that moves a partition on starts its state's clock here.
    pub(super) tracker: &'a mut Tracker,
    /// Now, on the tracker's clock.
    pub(super) now_ms: u64,
    /// The controller's limits.
    pub(super) limits: &'a MoveLimits,
    /// Every registered node.
    members: &'a BTreeMap<NodeId, Member>,
    /// The active members that are up: those that may take a down receiver's replica.
    pub(super) candidates: Vec<NodeId>,
    /// The moves streaming, cluster-wide. A move that finishes (or is rolled back) frees its
    /// slot at once, for a move later in the same round.
    pub(super) streaming: usize,
    /// The streams per receiving node, of the moves streaming when the round began and those
    /// it started. A stream that ends, or is given another receiver, frees its node's slot
    /// only at the next round (which counts again).
    receiving: BTreeMap<NodeId, usize>,
}

impl<'a> Round<'a> {
    /// Starts a round over `moves` at `now_ms`.
    pub(super) fn new(
        tracker: &'a mut Tracker,
        now_ms: u64,
        limits: &'a MoveLimits,
        members: &'a BTreeMap<NodeId, Member>,
        moves: &[PartitionMove],
    ) -> Round<'a> {
        let streaming_moves = moves.iter().filter(|m| m.state == MoveState::Streaming);
        let mut receiving: BTreeMap<NodeId, usize> = BTreeMap::new();
        for s in streaming_moves.clone().flat_map(|m| &m.streams) {
            *receiving.entry(s.to).or_default() += 1;
        }
        let candidates = members
            .iter()
            .filter(|(id, m)| {
                m.state == MemberState::Active && !tracker.is_down(**id, now_ms, limits)
            })
            .map(|(id, _)| *id)
            .collect();
        Round {
            streaming: streaming_moves.count(),
            receiving,
            candidates,
            tracker,
            now_ms,
            limits,
            members,
        }
    }

    /// Returns whether `node` is taken for down now.
    pub(super) fn down(&self, node: NodeId) -> bool {
        self.tracker.is_down(node, self.now_ms, self.limits)
    }

    /// Returns whether `node` polled after `since`, or is down (not waited for).
    fn heard_since(&self, node: NodeId, since: u64) -> bool {
        self.down(node)
            || self
                .tracker
                .seen
                .get(&node)
                .is_some_and(|s| s.at_ms > since)
    }

    /// Returns when `m` entered its state (now, for a move the tracker has no clock for yet).
    fn since(&self, m: &PartitionMove) -> u64 {
        self.tracker
            .entered
            .get(&m.partition)
            .copied()
            .unwrap_or(self.now_ms)
    }

    /// Moves `m` to `state`, whose clock starts now.
    fn enter(&mut self, m: &mut PartitionMove, state: MoveState) {
        m.state = state;
        self.tracker.entered.insert(m.partition, self.now_ms);
    }

    /// `pending` → `streaming`. Waits for a streaming slot, cluster-wide (fewer than
    /// `partitions` moves streaming) and at each of its receiving nodes (fewer than `per_node`
    /// streams), and for every joining replica to have polled since the move became pending,
    /// or to be down: joining replicas take copies as soon as the stream starts, so they must
    /// know the change first. Its streams then start (another attempt), from sources that are
    /// up.
    pub(super) fn pending(&mut self, m: &mut PartitionMove) {
        if self.streaming >= self.limits.partitions.max(1) {
            return;
        }
        let since = self.since(m);
        let known = m
            .after
            .iter()
            .filter(|n| m.joins(**n))
            .all(|n| self.heard_since(*n, since));
        let room = m
            .streams
            .iter()
            .all(|s| self.receiving.get(&s.to).copied().unwrap_or(0) < self.limits.per_node.max(1));
        if known && room {
            m.attempts += 1;
            self.replan_sources(m);
            self.enter(m, MoveState::Streaming);
            self.streaming += 1;
            for s in &m.streams {
                *self.receiving.entry(s.to).or_default() += 1;
            }
        }
    }

    /// `streaming` → `proxying`. Waits for every stream to report a complete pass from its
    /// planned source (a report from a source replaced since does not count; one from a source
    /// that went down after it does). Meanwhile a stream whose source is down gets another one
    /// (another attempt).
    pub(super) fn streaming(&mut self, m: &mut PartitionMove) {
        let done = m.streams.iter().all(|s| {
            self.tracker
                .streams
                .get(&(m.partition, s.to))
                .is_some_and(|(from, r)| *from == s.source && r.done)
        });
        if done {
            m.note = None;
            self.enter(m, MoveState::Proxying);
            self.streaming -= 1;
        } else if self.replan_sources(m) {
            m.attempts += 1;
        }
    }

    /// `proxying`, ready to be routed. Waits for every departing replica to have polled since
    /// the move began proxying (it knows to pass the partition's requests on before routers
    /// switch), or to be down. Returns whether it is ready: the publish step switches it.
    pub(super) fn proxying(&self, m: &PartitionMove) -> bool {
        let since = self.since(m);
        m.before
            .iter()
            .filter(|n| m.departs(**n))
            .all(|n| self.heard_since(*n, since))
    }

    /// `routed` → `cleaning`. Waits for every member to report the epoch that routed the
    /// partition (or a later one), or to be down; or for `grace_ms` in this state.
    pub(super) fn routed(&mut self, m: &mut PartitionMove) {
        let epoch = m.routed_at.map_or(0, |e| e.0);
        let everyone = self.members.keys().all(|n| {
            self.down(*n)
                || self
                    .tracker
                    .seen
                    .get(n)
                    .and_then(|s| s.epoch)
                    .is_some_and(|e| e >= epoch)
        });
        let waited = self.tracker.in_state_ms(m.partition, self.now_ms) >= self.limits.grace_ms;
        if everyone || waited {
            self.enter(m, MoveState::Cleaning);
        }
    }

    /// `cleaning` → `done`. Waits for every departing replica to report the partition deleted,
    /// or to be down (it then keeps its copy until its anti-entropy hands it back).
    pub(super) fn cleaning(&mut self, m: &mut PartitionMove) {
        let cleaned = m
            .before
            .iter()
            .filter(|n| m.departs(**n))
            .all(|n| self.tracker.cleaned.contains(&(m.partition, *n)) || self.down(*n));
        if cleaned {
            self.enter(m, MoveState::Done);
        }
    }
}
