//! The [`Status`] of a controller: its state summarized, with the change's progress and
//! each member's last report from the [`Tracker`].

use std::collections::BTreeMap;

use haze_ring::MoveState;

use crate::api::{ChangeStatus, MemberStatus, MoveStatus, Seen, Status, StreamStatus};
use crate::{ControllerState, MoveLimits, Tracker};

impl Status {
    /// Summarizes `state`.
    pub fn of(state: &ControllerState) -> Status {
        let table = state.table();
        let (load, primaries) = table.map_or_else(
            || (BTreeMap::new(), BTreeMap::new()),
            |t| (t.load(), t.primaries()),
        );
        let members = state
            .members()
            .iter()
            .map(|(id, m)| MemberStatus {
                id: *id,
                addr: m.addr.clone(),
                state: m.state,
                partitions: load.get(id).copied().unwrap_or(0),
                primaries: primaries.get(id).copied().unwrap_or(0),
                seen: None,
            })
            .collect();
        Status {
            cluster: state.cluster,
            partitions: state.partitions,
            replicas: state.replicas,
            epoch: table.map(|t| t.epoch().0),
            members,
            table: table.cloned(),
            transition: state.transition().cloned(),
            progress: None,
            queued: state.queued().map(ToString::to_string).collect(),
            dropped: state.dropped().cloned().collect(),
            outcomes: state.outcomes().cloned().collect(),
            committed: None,
            limits: None,
            version: None,
            tokens: None,
        }
    }

    /// Adds the change's progress from `tracker` at `now_ms`, and the limits.
    pub fn with_progress(mut self, tracker: &Tracker, now_ms: u64, limits: &MoveLimits) -> Status {
        self.limits = Some(*limits);
        self.progress = self.transition.as_ref().map(|t| ChangeStatus {
            change: t.change,
            description: t.description.clone(),
            counts: t.counts(),
            moves: t
                .moves
                .iter()
                .map(|m| {
                    let in_state_ms = tracker.in_state_ms(m.partition, now_ms);
                    MoveStatus {
                        partition: m.partition,
                        state: m.state,
                        before: m.before.clone(),
                        after: m.after.clone(),
                        streams: m
                            .streams
                            .iter()
                            .map(|s| StreamStatus {
                                stream: *s,
                                report: tracker
                                    .streams
                                    .get(&(m.partition, s.to))
                                    .filter(|(from, _)| *from == s.source)
                                    .map(|(_, r)| r.clone()),
                            })
                            .collect(),
                        in_state_ms,
                        stuck: m.state != MoveState::Done
                            && m.state != MoveState::Pending
                            && in_state_ms >= limits.stuck_after_ms,
                        attempts: m.attempts,
                        note: m.note.clone(),
                    }
                })
                .collect(),
        });
        self
    }

    /// Adds each member's last report from `tracker`, as of `now_ms`.
    pub(crate) fn with_seen(mut self, tracker: &Tracker, now_ms: u64) -> Status {
        for member in &mut self.members {
            member.seen = tracker.seen.get(&member.id).map(|s| Seen {
                epoch: s.epoch,
                ago_ms: now_ms.saturating_sub(s.at_ms),
            });
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use haze_ring::{MoveState, NodeId};

    use crate::api::Status;
    use crate::{Change, ClusterId, ControllerState, MoveLimits, Tracker};

    #[test]
    fn a_move_in_one_state_past_stuck_after_is_stuck_unless_it_waits_its_turn() {
        let mut s = ControllerState::new(ClusterId(7), 16, 3).unwrap();
        for i in 1..=4 {
            s.register(&format!("127.0.0.1:{}", 7700 + i)).unwrap();
        }
        let add = |ids: &[u64]| Change {
            add: ids.iter().copied().map(NodeId).collect(),
            remove: vec![],
        };
        s.carry_out(add(&[1, 2, 3]), 0).unwrap();
        s.carry_out(add(&[4]), 0).unwrap();
        let mut t = s.transition.take().unwrap();
        t.moves[0].state = MoveState::Streaming;
        t.moves[1].state = MoveState::Cleaning;
        s.transition = Some(t);
        let limits = MoveLimits::default();
        let mut tracker = Tracker::default();
        let moves = &s.transition().unwrap().moves;
        for m in moves {
            tracker.entered.insert(m.partition, 1_000);
        }
        tracker.entered.insert(moves[1].partition, 2_000);
        let now = 1_000 + limits.stuck_after_ms;
        let status = Status::of(&s).with_progress(&tracker, now, &limits);
        let stuck: Vec<bool> = status
            .progress
            .as_ref()
            .unwrap()
            .moves
            .iter()
            .map(|m| m.stuck)
            .collect();
        assert!(stuck[0], "streaming for stuck_after_ms");
        assert!(!stuck[1], "cleaning for less");
        assert!(
            stuck[2..].iter().all(|s| !s),
            "pending moves wait their turn"
        );
        let metrics = crate::metrics::render(&status);
        assert!(
            metrics.contains("\nhaze_controller_moves_stuck 1\n"),
            "{metrics}"
        );
    }
}
