//! Membership changes: planning them, committing them, starting them one after another.

use std::collections::BTreeSet;

use haze_ring::{NodeId, PartitionId, PartitionTable, Transition};

use crate::{ControllerState, Error, MemberState, Outcome, Result};

/// Dropped changes remembered (and shown in the status), newest last.
const MAX_DROPPED: usize = 8;

/// A membership change: nodes to give partitions, nodes to take them from.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Change {
    /// Standby nodes that receive partitions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<NodeId>,
    /// Active nodes whose partitions move to the others; they leave the cluster after.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<NodeId>,
}

impl std::fmt::Display for Change {
    /// `add n4, n5; remove n2`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |ids: &[NodeId]| {
            ids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !self.add.is_empty() {
            parts.push(format!("add {}", list(&self.add)));
        }
        if !self.remove.is_empty() {
            parts.push(format!("remove {}", list(&self.remove)));
        }
        f.write_str(&parts.join("; "))
    }
}

/// A planned change: the table it leads to and the partitions whose replicas change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// What was asked.
    pub change: Change,
    /// The table it starts from (after the changes under way and queued), if any.
    pub from: Option<PartitionTable>,
    /// The table it leads to.
    pub target: PartitionTable,
    /// The partitions whose replica set changes: partition, replicas before, after.
    pub moves: Vec<PlannedMove>,
}

/// One partition of a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlannedMove {
    /// The partition.
    pub partition: PartitionId,
    /// Its replicas before, primary first.
    pub before: Vec<NodeId>,
    /// Its replicas after.
    pub after: Vec<NodeId>,
}

impl ControllerState {
    /// Resolves node names (ids like `n3` or addresses) to ids.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownNode`].
    pub fn resolve_all(&self, nodes: &[String]) -> Result<Vec<NodeId>> {
        nodes.iter().map(|n| self.resolve(n)).collect()
    }

    /// The nodes that will hold partitions once the change under way and the queued ones are
    /// done, and the table they start from.
    fn destination(&self) -> (BTreeSet<NodeId>, Option<PartitionTable>) {
        let mut nodes: BTreeSet<NodeId> = self
            .members()
            .iter()
            .filter(|(_, m)| m.state == MemberState::Active)
            .map(|(id, _)| *id)
            .collect();
        let mut table = self
            .transition
            .as_ref()
            .map(|t| t.target.clone())
            .or_else(|| self.table.clone());
        for queued in &self.queued {
            nodes.extend(&queued.add);
            for id in &queued.remove {
                nodes.remove(id);
            }
            let list: Vec<NodeId> = nodes.iter().copied().collect();
            table = PartitionTable::place(table.as_ref(), &list, self.partitions, self.replicas)
                .ok()
                .or(table);
        }
        (nodes, table)
    }

    /// Plans `change` (without keeping it): where every partition's replicas go.
    ///
    /// # Errors
    ///
    /// [`Error::NothingToAdd`] for an empty change or nodes already active; [`Error::NotActive`]
    /// to remove a node that holds nothing; [`Error::TooFewNodes`] if fewer nodes than replicas
    /// would be left; [`Error::NoRoom`] if a node would hold nothing.
    pub fn plan(&self, change: &Change) -> Result<Plan> {
        let (mut nodes, from) = self.destination();
        if change.add.is_empty() && change.remove.is_empty() {
            return Err(Error::NothingToAdd);
        }
        for id in &change.add {
            let standby = self.members().get(id).map(|m| m.state) == Some(MemberState::Standby);
            if !standby || nodes.contains(id) {
                return Err(Error::NothingToAdd);
            }
        }
        for id in &change.remove {
            if !nodes.contains(id) {
                return Err(Error::NotActive(id.to_string()));
            }
        }
        let before = nodes.len();
        nodes.extend(&change.add);
        for id in &change.remove {
            nodes.remove(id);
        }
        let kept_replicas = from.as_ref().map_or(0, PartitionTable::replication);
        if nodes.is_empty() || nodes.len() < kept_replicas.min(before) {
            return Err(Error::TooFewNodes {
                left: nodes.len(),
                replicas: kept_replicas,
            });
        }
        let list: Vec<NodeId> = nodes.iter().copied().collect();
        let target = PartitionTable::place(from.as_ref(), &list, self.partitions, self.replicas)?;
        // More nodes than replica slots (Q × N): a node placed nowhere would be "active" yet
        // hold nothing.
        let placed = target.nodes();
        let idle: Vec<String> = change
            .add
            .iter()
            .filter(|id| !placed.contains(id))
            .map(ToString::to_string)
            .collect();
        if !idle.is_empty() {
            return Err(Error::NoRoom(idle.join(", ")));
        }
        let moves = match &from {
            Some(from) => Transition::plan(0, String::new(), from, target.clone(), 0)
                .moves
                .into_iter()
                .map(|m| PlannedMove {
                    partition: m.partition,
                    before: m.before,
                    after: m.after,
                })
                .collect(),
            None => Vec::new(),
        };
        Ok(Plan {
            change: change.clone(),
            from,
            target,
            moves,
        })
    }

    /// Plans `change` and keeps it as the proposal [`commit`](Self::commit) carries out.
    ///
    /// # Errors
    ///
    /// As [`plan`](Self::plan).
    pub fn propose(&mut self, change: Change) -> Result<Plan> {
        let plan = self.plan(&change)?;
        self.proposed = Some(change);
        Ok(plan)
    }

    /// Commits the proposal: it starts at once, or after the changes under way and queued.
    ///
    /// # Errors
    ///
    /// [`Error::NothingProposed`]; what [`plan`](Self::plan) says if the proposal no longer fits
    /// (another change was committed since).
    pub fn commit(&mut self, rate: u64) -> Result<Plan> {
        let change = self.proposed.clone().ok_or(Error::NothingProposed)?;
        let plan = self.plan(&change)?;
        self.proposed = None;
        self.queued.push_back(change);
        self.start_next(rate)?;
        Ok(plan)
    }

    /// Plans and commits `change` in one step.
    ///
    /// # Errors
    ///
    /// As [`plan`](Self::plan).
    pub fn carry_out(&mut self, change: Change, rate: u64) -> Result<Plan> {
        let plan = self.plan(&change)?;
        self.queued.push_back(change);
        self.start_next(rate)?;
        Ok(plan)
    }

    /// Gives `nodes` (ids or addresses) partitions: plans and commits the change in one step.
    /// Returns the table in force after it: the first table at once; otherwise the current one
    /// (the change runs partition by partition, see [`advance`](Self::advance)).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownNode`], and as [`plan`](Self::plan).
    pub fn add(&mut self, nodes: &[String]) -> Result<&PartitionTable> {
        let add = self.resolve_all(nodes)?;
        self.carry_out(
            Change {
                add,
                remove: Vec::new(),
            },
            crate::MoveLimits::default().rate,
        )?;
        Ok(self
            .table
            .as_ref()
            .expect("a committed change leaves a table"))
    }

    /// Starts the next queued change if none runs. A change that moves no data (the first
    /// table, or a new order of the same replicas) takes effect at once.
    pub(crate) fn start_next(&mut self, rate: u64) -> Result<()> {
        while self.transition.is_none() {
            let Some(change) = self.queued.pop_front() else {
                return Ok(());
            };
            // A queued change may no longer fit what the one before it did (a node it names
            // was given up on, say): it is dropped, with the reason, rather than block the rest.
            let plan = match self.plan_queued(&change) {
                Ok(plan) => plan,
                Err(e) => {
                    let epoch = self.table.as_ref().map_or(0, |t| t.epoch().0);
                    self.record_outcome(Outcome::dropped(&change, epoch, e.to_string()));
                    self.dropped.push_back(format!("{change}: {e}"));
                    while self.dropped.len() > MAX_DROPPED {
                        self.dropped.pop_front();
                    }
                    continue;
                }
            };
            for id in &change.add {
                if let Some(m) = self.members_mut().get_mut(id) {
                    m.state = MemberState::Active;
                }
            }
            for id in &change.remove {
                if let Some(m) = self.members_mut().get_mut(id) {
                    m.state = MemberState::Leaving;
                }
            }
            let number = self.next_change.max(1);
            self.next_change = number + 1;
            match self.table.clone() {
                Some(table) => {
                    let t = Transition::plan(number, change.to_string(), &table, plan.target, rate);
                    if t.moves.is_empty() {
                        self.record_outcome(Outcome::at_once(number, &change, &t.target));
                        self.table = Some(t.target);
                        self.release_leaving();
                    } else {
                        self.transition = Some(t);
                        self.running = Some(change);
                        self.notes.clear();
                    }
                }
                None => {
                    self.record_outcome(Outcome::at_once(number, &change, &plan.target));
                    self.table = Some(plan.target);
                }
            }
        }
        Ok(())
    }

    /// Plans a change taken from the queue (the nodes' states are not yet changed for it).
    fn plan_queued(&self, change: &Change) -> Result<Plan> {
        let mut probe = self.clone();
        probe.queued.clear();
        probe.plan(change)
    }

    /// Removes the members that were leaving: they hold nothing any more.
    pub(crate) fn release_leaving(&mut self) {
        self.members_mut()
            .retain(|_, m| m.state != MemberState::Leaving);
    }
}
