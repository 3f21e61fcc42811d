//! Streams whose receiving node or source is down get another one.

use haze_ring::{MoveState, NodeId, PartitionMove, PartitionTable};

use super::round::Round;
use crate::Result;

impl Round<'_> {
    /// Gives every stream whose receiving node is down another receiving node: an active
    /// member up, not yet a replica of the partition, holding the fewest replicas in `target`
    /// (which it updates). With none, the move is rolled back (the partition keeps its
    /// replicas), unless the replication factor changes: then it waits, with a note.
    pub(super) fn retarget(
        &mut self,
        m: &mut PartitionMove,
        target: &mut PartitionTable,
    ) -> Result<()> {
        for i in 0..m.streams.len() {
            let dead = m.streams[i].to;
            if !self.down(dead) {
                continue;
            }
            let load = target.load();
            let choice = self
                .candidates
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
                    self.streaming = self.streaming.saturating_sub(1);
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
            self.tracker.streams.remove(&(m.partition, dead));
            self.tracker.streams.remove(&(m.partition, new));
            *target = target
                .successor(&[(m.partition, m.after.as_slice())])?
                .with_epoch(target.epoch());
        }
        Ok(())
    }

    /// Gives every stream whose source is down another source among the partition's replicas
    /// before the change that are up (those that stay first). Returns whether any changed.
    pub(super) fn replan_sources(&mut self, m: &mut PartitionMove) -> bool {
        let mut changed = false;
        for i in 0..m.streams.len() {
            let stream = m.streams[i];
            if !self.down(stream.source) {
                continue;
            }
            let mut candidates: Vec<NodeId> = m
                .before
                .iter()
                .copied()
                .filter(|n| *n != stream.to && !self.down(*n))
                .collect();
            candidates.sort_by_key(|n| m.departs(*n));
            match candidates.first() {
                Some(&source) if source != stream.source => {
                    m.note = Some(format!(
                        "{} is not answering: {} streams to {} instead",
                        stream.source, source, stream.to
                    ));
                    m.streams[i].source = source;
                    self.tracker.streams.remove(&(m.partition, stream.to));
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
}
