//! Carrying out a change: what nodes report, and how each partition's move advances.
//!
//! The controller keeps in memory what nodes tell it (their epoch, their streams' progress,
//! the partitions they deleted) in a [`Tracker`], and [`ControllerState::advance`] moves each
//! partition along the protocol from it. Only the moves' states are persisted: after a restart
//! nodes report again within a poll, and a step whose report was lost is redone (streaming
//! again is merging again).

use std::collections::{BTreeMap, BTreeSet};

use haze_ring::{MoveState, NodeId, PartitionId, PartitionTable};

use crate::api::{SeenRequest, StreamReport};
use crate::{ControllerState, Result};

/// The limits and timings of moves (`haze controller` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MoveLimits {
    /// How many partitions stream at once, cluster-wide.
    pub partitions: usize,
    /// How many partitions stream at once to one node: a new node receives every stream of
    /// its addition, and its writes must keep up with clients' copies too.
    #[serde(default = "default_per_node")]
    pub per_node: usize,
    /// The most bytes per second each node streams (0: no limit).
    pub rate: u64,
    /// How long a partition stays routed before departing replicas delete it even if some node
    /// never reported the new epoch.
    pub grace_ms: u64,
    /// A node silent this long is taken for down: streams from it are re-planned from another
    /// replica, and it is not waited for.
    pub dead_after_ms: u64,
    /// A move in one state longer than this is reported stuck.
    pub stuck_after_ms: u64,
}

fn default_per_node() -> usize {
    2
}

impl Default for MoveLimits {
    fn default() -> Self {
        MoveLimits {
            partitions: 16,
            per_node: default_per_node(),
            rate: 64 * 1024 * 1024,
            grace_ms: 30_000,
            dead_after_ms: 10_000,
            stuck_after_ms: 300_000,
        }
    }
}

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

    fn forget_other_changes(&mut self, change: u64) {
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

impl ControllerState {
    /// Moves the change under way along, from what `tracker` knows at `now_ms`; starts the
    /// next queued change when it is done. Returns whether the state changed (then it must be
    /// saved).
    ///
    /// # Errors
    ///
    /// [`Error::Ring`](crate::Error::Ring) if a table cannot be derived (a bug).
    pub fn advance(
        &mut self,
        tracker: &mut Tracker,
        now_ms: u64,
        limits: &MoveLimits,
    ) -> Result<bool> {
        let before = self.clone();
        self.start_next(limits.rate)?;
        let Some(mut t) = self.transition.take() else {
            return Ok(*self != before);
        };
        tracker.forget_other_changes(t.change);
        if t.rate != limits.rate {
            t.rate = limits.rate;
        }
        let table = self.table.clone().expect("a change under way has a table");
        let mut streaming = t
            .moves
            .iter()
            .filter(|m| m.state == MoveState::Streaming)
            .count();
        // Streams per receiving node.
        let mut receiving: BTreeMap<NodeId, usize> = BTreeMap::new();
        for m in t.moves.iter().filter(|m| m.state == MoveState::Streaming) {
            for s in &m.streams {
                *receiving.entry(s.to).or_default() += 1;
            }
        }
        let mut publish: Vec<usize> = Vec::new();
        let candidates: Vec<NodeId> = self
            .members()
            .iter()
            .filter(|(id, m)| {
                m.state == crate::MemberState::Active && !tracker.is_down(**id, now_ms, limits)
            })
            .map(|(id, _)| *id)
            .collect();
        let mut target = t.target.clone();
        for (i, m) in t.moves.iter_mut().enumerate() {
            let entered = tracker.entered.get(&m.partition).copied();
            let enter = |tracker: &mut Tracker, m: &mut haze_ring::PartitionMove, s| {
                m.state = s;
                tracker.entered.insert(m.partition, now_ms);
            };
            if entered.is_none() {
                tracker.entered.insert(m.partition, now_ms);
            }
            if matches!(m.state, MoveState::Pending | MoveState::Streaming) {
                retarget(
                    m,
                    &mut target,
                    &candidates,
                    tracker,
                    now_ms,
                    limits,
                    &mut streaming,
                )?;
            }
            match m.state {
                MoveState::Pending if streaming < limits.partitions.max(1) => {
                    // The joining replicas take copies as soon as the stream starts: they must
                    // know the change first.
                    let since = entered.unwrap_or(now_ms);
                    let known = m.after.iter().filter(|n| m.joins(**n)).all(|n| {
                        tracker.is_down(*n, now_ms, limits)
                            || tracker.seen.get(n).is_some_and(|s| s.at_ms > since)
                    });
                    let room = m.streams.iter().all(|s| {
                        receiving.get(&s.to).copied().unwrap_or(0) < limits.per_node.max(1)
                    });
                    if known && room {
                        m.attempts += 1;
                        replan_sources(m, tracker, now_ms, limits);
                        enter(tracker, m, MoveState::Streaming);
                        streaming += 1;
                        for s in &m.streams {
                            *receiving.entry(s.to).or_default() += 1;
                        }
                    }
                }
                MoveState::Pending => {}
                MoveState::Streaming => {
                    let done = m.streams.iter().all(|s| {
                        tracker
                            .streams
                            .get(&(m.partition, s.to))
                            .is_some_and(|(from, r)| *from == s.source && r.done)
                    });
                    if done {
                        m.note = None;
                        enter(tracker, m, MoveState::Proxying);
                        streaming -= 1;
                    } else if replan_sources(m, tracker, now_ms, limits) {
                        m.attempts += 1;
                    }
                }
                MoveState::Proxying => {
                    // The departing replicas learn they proxy before routers switch (or are down).
                    let since = entered.unwrap_or(now_ms);
                    let told = m.before.iter().filter(|n| m.departs(**n)).all(|n| {
                        tracker.is_down(*n, now_ms, limits)
                            || tracker.seen.get(n).is_some_and(|s| s.at_ms > since)
                    });
                    if told {
                        publish.push(i);
                    }
                }
                MoveState::Routed => {
                    let epoch = m.routed_at.map_or(0, |e| e.0);
                    let everyone = self.members().keys().all(|n| {
                        tracker.is_down(*n, now_ms, limits)
                            || tracker
                                .seen
                                .get(n)
                                .and_then(|s| s.epoch)
                                .is_some_and(|e| e >= epoch)
                    });
                    let waited = tracker.in_state_ms(m.partition, now_ms) >= limits.grace_ms;
                    if everyone || waited {
                        enter(tracker, m, MoveState::Cleaning);
                    }
                }
                MoveState::Cleaning => {
                    let cleaned = m.before.iter().filter(|n| m.departs(**n)).all(|n| {
                        tracker.cleaned.contains(&(m.partition, *n))
                            || tracker.is_down(*n, now_ms, limits)
                    });
                    if cleaned {
                        enter(tracker, m, MoveState::Done);
                    }
                }
                MoveState::Done => {}
            }
        }
        t.target = target;
        let mut table = table;
        if !publish.is_empty() {
            let whole = t.target.replication() != table.replication();
            // A new replication factor switches every partition at once: each must be ready,
            // and each departing replica told.
            let proxying = t
                .moves
                .iter()
                .filter(|m| m.state == MoveState::Proxying)
                .count();
            let all_ready =
                t.moves.iter().all(|m| m.state >= MoveState::Proxying) && publish.len() == proxying;
            if !whole || all_ready {
                table = if whole {
                    t.target.with_epoch(next_epoch(&table))
                } else {
                    let changes: Vec<(PartitionId, &[NodeId])> = publish
                        .iter()
                        .map(|&i| (t.moves[i].partition, t.moves[i].after.as_slice()))
                        .collect();
                    table.successor(&changes)?
                };
                let routed: Vec<usize> = if whole {
                    (0..t.moves.len()).collect()
                } else {
                    publish
                };
                for i in routed {
                    let m = &mut t.moves[i];
                    if m.state == MoveState::Proxying {
                        m.state = MoveState::Routed;
                        m.routed_at = Some(table.epoch());
                        tracker.entered.insert(m.partition, now_ms);
                    }
                }
            }
        }
        if t.moves.iter().all(|m| m.state == MoveState::Done) {
            // Reorders of the same replicas moved no data: they take effect now.
            if table.nodes() != t.target.nodes() || !same_assignment(&table, &t.target) {
                table = t.target.with_epoch(next_epoch(&table));
            }
            // A leaving node a rolled-back move left in the table stays a member; a joining
            // node whose every move went elsewhere holds nothing: standby again.
            let placed = table.nodes();
            for (id, member) in self.members_mut() {
                if member.state == crate::MemberState::Leaving && placed.contains(id) {
                    member.state = crate::MemberState::Active;
                } else if member.state == crate::MemberState::Active && !placed.contains(id) {
                    member.state = crate::MemberState::Standby;
                }
            }
            self.table = Some(table);
            self.release_leaving();
            tracker.entered.clear();
            self.start_next(limits.rate)?;
        } else {
            self.table = Some(table);
            self.transition = Some(t);
        }
        Ok(*self != before)
    }
}

fn next_epoch(table: &PartitionTable) -> haze_ring::Epoch {
    haze_ring::Epoch(table.epoch().0.saturating_add(1))
}

fn same_assignment(a: &PartitionTable, b: &PartitionTable) -> bool {
    a.partitions() == b.partitions()
        && (0..a.partitions()).all(|p| a.replicas(PartitionId(p)) == b.replicas(PartitionId(p)))
}

/// Gives every stream whose receiving node is down another receiving node: an active member
/// up, not yet a replica of the partition, holding the fewest replicas in `target` (which it
/// updates). With none, the move is rolled back (the partition keeps its replicas).
fn retarget(
    m: &mut haze_ring::PartitionMove,
    target: &mut PartitionTable,
    candidates: &[NodeId],
    tracker: &mut Tracker,
    now_ms: u64,
    limits: &MoveLimits,
    streaming: &mut usize,
) -> Result<()> {
    for i in 0..m.streams.len() {
        let dead = m.streams[i].to;
        if !tracker.is_down(dead, now_ms, limits) {
            continue;
        }
        let load = target.load();
        let choice = candidates
            .iter()
            .filter(|n| !m.before.contains(n) && !m.after.contains(n))
            .min_by_key(|n| (load.get(n).copied().unwrap_or(0), **n))
            .copied();
        let Some(new) = choice else {
            if m.before.len() != target.replication() {
                m.note = Some(format!(
                    "{dead} is not answering and no other node can take its replica"
                ));
                continue;
            }
            m.note = Some(format!(
                "{dead} is not answering and no other node can take its replica: rolled back"
            ));
            m.after.clone_from(&m.before);
            m.streams.clear();
            if m.state == MoveState::Streaming {
                *streaming = streaming.saturating_sub(1);
            }
            m.state = MoveState::Done;
            *target = target
                .successor(&[(m.partition, m.before.as_slice())])?
                .with_epoch(target.epoch());
            return Ok(());
        };
        m.note = Some(format!(
            "{dead} is not answering: {new} takes its replica instead"
        ));
        for slot in &mut m.after {
            if *slot == dead {
                *slot = new;
            }
        }
        m.streams[i].to = new;
        m.attempts += 1;
        // A report about an earlier stream to this node must not count for the new one.
        tracker.streams.remove(&(m.partition, dead));
        tracker.streams.remove(&(m.partition, new));
        *target = target
            .successor(&[(m.partition, m.after.as_slice())])?
            .with_epoch(target.epoch());
    }
    Ok(())
}

/// Gives every stream whose source is down another source among the partition's replicas
/// before the change that are up (those that stay first). Returns whether any changed.
fn replan_sources(
    m: &mut haze_ring::PartitionMove,
    tracker: &mut Tracker,
    now_ms: u64,
    limits: &MoveLimits,
) -> bool {
    let mut changed = false;
    for i in 0..m.streams.len() {
        let stream = m.streams[i];
        if !tracker.is_down(stream.source, now_ms, limits) {
            continue;
        }
        let mut candidates: Vec<NodeId> = m
            .before
            .iter()
            .copied()
            .filter(|n| *n != stream.to && !tracker.is_down(*n, now_ms, limits))
            .collect();
        candidates.sort_by_key(|n| m.departs(*n));
        match candidates.first() {
            Some(&source) if source != stream.source => {
                m.note = Some(format!(
                    "{} is not answering: {} streams to {} instead",
                    stream.source, source, stream.to
                ));
                m.streams[i].source = source;
                tracker.streams.remove(&(m.partition, stream.to));
                changed = true;
            }
            Some(_) => {}
            None => {
                m.note = Some(format!(
                    "no replica of {} is answering: waiting for one to stream to {}",
                    m.partition, stream.to
                ));
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::CleanReport;
    use crate::{Change, ClusterId, MemberState};

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
}
