//! [`ControllerState::advance`]: a round over the change's moves, each taken one step if what
//! its state waits for happened, then the publish step (a new table for the moves ready to
//! switch) and the completion step (the change ends, the next starts).

use haze_ring::{Epoch, MoveState, NodeId, PartitionId, PartitionTable, Transition};

use super::round::Round;
use crate::{Change, ControllerState, MemberState, MoveLimits, Outcome, Result, Tracker};

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
        t.rate = limits.rate;
        let table = self.table.clone().expect("a change under way has a table");
        let ready = self.step_moves(&mut t, tracker, now_ms, limits)?;
        self.keep_notes(&t);
        let table = publish(&mut t, table, ready, tracker, now_ms)?;
        self.complete(t, table, tracker, limits)?;
        Ok(*self != before)
    }

    /// Takes every move of `t` one step if what its state waits for happened (a move that has
    /// not switched yet first replaces its receiving nodes that are down). Returns the proxying
    /// moves ready to switch, by index.
    fn step_moves(
        &self,
        t: &mut Transition,
        tracker: &mut Tracker,
        now_ms: u64,
        limits: &MoveLimits,
    ) -> Result<Vec<usize>> {
        let mut round = Round::new(tracker, now_ms, limits, self.members(), &t.moves);
        let mut ready = Vec::new();
        for (i, m) in t.moves.iter_mut().enumerate() {
            round.tracker.entered.entry(m.partition).or_insert(now_ms);
            if matches!(m.state, MoveState::Pending | MoveState::Streaming) {
                round.retarget(m, &mut t.target)?;
            }
            match m.state {
                MoveState::Pending => round.pending(m),
                MoveState::Streaming => round.streaming(m),
                MoveState::Proxying => {
                    if round.proxying(m) {
                        ready.push(i);
                    }
                }
                MoveState::Routed => round.routed(m),
                MoveState::Cleaning => round.cleaning(m),
                MoveState::Done => {}
            }
        }
        Ok(ready)
    }

    /// The completion step. Waits for every move to be done (until then the change stays under
    /// way, routed by `table`). Then the target takes effect (with the reorders of the same
    /// replicas, which moved no data, in a last epoch), members follow the table (a leaving
    /// node that a rolled-back move left in it stays active, an active one it places nowhere
    /// goes back to standby), leaving members are released, and the next queued change starts.
    pub(super) fn complete(
        &mut self,
        t: Transition,
        mut table: PartitionTable,
        tracker: &mut Tracker,
        limits: &MoveLimits,
    ) -> Result<()> {
        if !t.moves.iter().all(|m| m.state == MoveState::Done) {
            self.table = Some(table);
            self.transition = Some(t);
            return Ok(());
        }
        if table.nodes() != t.target.nodes() || !same_assignment(&table, &t.target) {
            table = t.target.with_epoch(next_epoch(&table));
        }
        // What was asked: kept when the change started (a state file from before that was kept
        // has only the leaving members to go by).
        let asked = self.running.take().unwrap_or_else(|| Change {
            add: Vec::new(),
            remove: self
                .members()
                .iter()
                .filter(|(_, m)| m.state == MemberState::Leaving)
                .map(|(id, _)| *id)
                .collect(),
        });
        let noted = std::mem::take(&mut self.notes);
        self.record_outcome(Outcome::of(&asked, &t, &table, &noted));
        let placed = table.nodes();
        for (id, member) in self.members_mut() {
            if member.state == MemberState::Leaving && placed.contains(id) {
                member.state = MemberState::Active;
            } else if member.state == MemberState::Active && !placed.contains(id) {
                member.state = MemberState::Standby;
            }
        }
        self.table = Some(table);
        self.release_leaving();
        tracker.entered.clear();
        self.start_next(limits.rate)
    }
}

/// The publish step: switches the proxying moves that are `ready` (indexes into `t.moves`) to
/// their new replicas in a table of the next epoch, and marks them routed at it. Waits for at
/// least one ready move; when the replication factor changes, for every move to be at least
/// proxying and every proxying one to be ready: every partition then switches at once, to the
/// target table. Returns the table in force.
pub(super) fn publish(
    t: &mut Transition,
    table: PartitionTable,
    ready: Vec<usize>,
    tracker: &mut Tracker,
    now_ms: u64,
) -> Result<PartitionTable> {
    if ready.is_empty() {
        return Ok(table);
    }
    let whole = t.target.replication() != table.replication();
    if whole {
        let proxying = t
            .moves
            .iter()
            .filter(|m| m.state == MoveState::Proxying)
            .count();
        let all_ready =
            t.moves.iter().all(|m| m.state >= MoveState::Proxying) && ready.len() == proxying;
        if !all_ready {
            return Ok(table);
        }
    }
    let (table, routed) = if whole {
        let table = t.target.with_epoch(next_epoch(&table));
        (table, (0..t.moves.len()).collect())
    } else {
        let changes: Vec<(PartitionId, &[NodeId])> = ready
            .iter()
            .map(|&i| (t.moves[i].partition, t.moves[i].after.as_slice()))
            .collect();
        (table.successor(&changes)?, ready)
    };
    for i in routed {
        let m = &mut t.moves[i];
        if m.state == MoveState::Proxying {
            m.state = MoveState::Routed;
            m.routed_at = Some(table.epoch());
            tracker.entered.insert(m.partition, now_ms);
        }
    }
    Ok(table)
}

fn next_epoch(table: &PartitionTable) -> Epoch {
    Epoch(table.epoch().0.saturating_add(1))
}

fn same_assignment(a: &PartitionTable, b: &PartitionTable) -> bool {
    a.partitions() == b.partitions()
        && (0..a.partitions()).all(|p| a.replicas(PartitionId(p)) == b.replicas(PartitionId(p)))
}
