//! How a change ended: whether it did what was asked (every node added is active, every node
//! removed was released), and if not, what it did not do and why. A change whose moves were
//! rolled back (a receiving node down and no other to take its place) ends without doing all
//! it was asked; one whose moves were re-planned (another receiver, another source) may still
//! have. Both are said here, kept with the state, shown in the status, logged, and what
//! `haze cluster … --wait` reports.

use haze_ring::{NodeId, PartitionTable, Transition};

use crate::{Change, ControllerState};

/// Outcomes remembered (and shown in the status), newest last.
const MAX_OUTCOMES: usize = 8;
/// Distinct notes kept in one outcome.
pub(crate) const MAX_NOTES: usize = 8;

/// How a change ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    /// Its number (0: a queued change dropped before it started).
    pub change: u64,
    /// What was asked (`add n4; remove n2`).
    pub description: String,
    /// The nodes it was to add.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<NodeId>,
    /// The nodes it was to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<NodeId>,
    /// The table's epoch when it ended (0: none).
    pub epoch: u64,
    /// Whether it did what was asked: every node to add holds partitions, every node to remove
    /// was released.
    pub done: bool,
    /// What it did not do, and why (empty when `done`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Partitions whose move was rolled back: they kept their replicas.
    #[serde(default)]
    pub rolled_back: usize,
    /// Partitions whose move was re-planned: another receiving node or source.
    #[serde(default)]
    pub replanned: usize,
    /// Why, each reason once (the moves' notes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Outcome {
    /// A change done as asked with no move (the first table, a new order of the same replicas).
    pub(crate) fn at_once(change: u64, asked: &Change, table: &PartitionTable) -> Outcome {
        Outcome {
            change,
            description: asked.to_string(),
            add: asked.add.clone(),
            remove: asked.remove.clone(),
            epoch: table.epoch().0,
            done: true,
            problems: Vec::new(),
            rolled_back: 0,
            replanned: 0,
            notes: Vec::new(),
        }
    }

    /// A queued change dropped before it started, because `reason`.
    pub(crate) fn dropped(asked: &Change, epoch: u64, reason: String) -> Outcome {
        Outcome {
            change: 0,
            description: asked.to_string(),
            add: asked.add.clone(),
            remove: asked.remove.clone(),
            epoch,
            done: false,
            problems: vec![format!("it was dropped before it started: {reason}")],
            rolled_back: 0,
            replanned: 0,
            notes: Vec::new(),
        }
    }

    /// How change `t`, asked as `asked`, ended with `table` in force (every move done);
    /// `noted`: the notes its moves had on the way (a move's note goes when it streams
    /// again).
    pub(crate) fn of(
        asked: &Change,
        t: &Transition,
        table: &PartitionTable,
        noted: &[String],
    ) -> Outcome {
        let placed = table.nodes();
        let load = table.load();
        let rolled: Vec<_> = t
            .moves
            .iter()
            .filter(|m| m.note.is_some() && m.after == m.before)
            .collect();
        // Planned more than once: its first start counts one.
        let replanned = t
            .moves
            .iter()
            .filter(|m| m.attempts > 1 && m.after != m.before)
            .count();
        let mut notes: Vec<String> = Vec::new();
        for note in noted
            .iter()
            .chain(t.moves.iter().filter_map(|m| m.note.as_ref()))
        {
            if !notes.contains(note) && notes.len() < MAX_NOTES {
                notes.push(note.clone());
            }
        }
        // Why the moves of `node` were rolled back, each reason once.
        let why = |node: NodeId| {
            let mut reasons: Vec<&str> = Vec::new();
            let mut n = 0;
            for m in rolled
                .iter()
                .filter(|m| m.before.contains(&node) || m.after.contains(&node))
            {
                n += 1;
                if let Some(note) = m.note.as_deref()
                    && !reasons.contains(&note)
                {
                    reasons.push(note);
                }
            }
            if n == 0 {
                String::new()
            } else {
                format!(
                    ": {n} of its partitions' moves were rolled back ({})",
                    reasons.join("; ")
                )
            }
        };
        let mut problems = Vec::new();
        for &id in &asked.remove {
            if placed.contains(&id) {
                problems.push(format!(
                    "{id} was not released: it stays active with {} partitions{}",
                    load.get(&id).copied().unwrap_or(0),
                    why(id)
                ));
            }
        }
        for &id in &asked.add {
            if !placed.contains(&id) {
                problems.push(format!(
                    "{id} was not added: it holds no partition and goes back to standby{}",
                    why(id)
                ));
            }
        }
        if problems.is_empty() && !rolled.is_empty() {
            // Done as asked, but not everything moved where it was planned.
            notes.insert(
                0,
                format!(
                    "{} partitions kept their replicas (rolled back)",
                    rolled.len()
                ),
            );
        }
        Outcome {
            change: t.change,
            description: t.description.clone(),
            add: asked.add.clone(),
            remove: asked.remove.clone(),
            epoch: table.epoch().0,
            done: problems.is_empty(),
            problems,
            rolled_back: rolled.len(),
            replanned,
            notes,
        }
    }

    /// One line for people: `change 3 (remove n4): done at epoch 7` or `… NOT done: …`.
    pub fn summary(&self) -> String {
        let name = if self.change == 0 {
            format!("change ({})", self.description)
        } else {
            format!("change {} ({})", self.change, self.description)
        };
        if self.done {
            let mut line = format!("{name}: done at epoch {}", self.epoch);
            if self.rolled_back + self.replanned > 0 {
                line.push_str(&format!(
                    " ({} partitions rolled back, {} re-planned)",
                    self.rolled_back, self.replanned
                ));
            }
            line
        } else {
            format!("{name}: NOT done: {}", self.problems.join("; "))
        }
    }
}

impl ControllerState {
    /// Keeps the notes the moves of the change under way have now (each once, the first few).
    pub(crate) fn keep_notes(&mut self, t: &Transition) {
        for note in t.moves.iter().filter_map(|m| m.note.as_ref()) {
            if !self.notes.contains(note) && self.notes.len() < MAX_NOTES {
                self.notes.push(note.clone());
            }
        }
    }

    /// Returns how the last changes ended, oldest first.
    pub fn outcomes(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter()
    }

    pub(crate) fn record_outcome(&mut self, outcome: Outcome) {
        self.outcomes.push_back(outcome);
        while self.outcomes.len() > MAX_OUTCOMES {
            self.outcomes.pop_front();
        }
    }
}

/// Logs what changed from `before` to `after` that an operator must hear of: moves re-planned
/// or rolled back (by reason, with how many partitions), and changes that ended (a warning for
/// one that did not do what was asked).
pub(crate) fn log_news(before: &ControllerState, after: &ControllerState) {
    if let Some(t) = &after.transition {
        let old = before.transition.as_ref().filter(|o| o.change == t.change);
        let mut news: Vec<(&str, usize)> = Vec::new();
        for m in &t.moves {
            let Some(note) = m.note.as_deref() else {
                continue;
            };
            let known = old
                .and_then(|o| o.moves.iter().find(|p| p.partition == m.partition))
                .and_then(|p| p.note.as_deref());
            if known == Some(note) {
                continue;
            }
            match news.iter_mut().find(|(n, _)| *n == note) {
                Some((_, count)) => *count += 1,
                None => news.push((note, 1)),
            }
        }
        for (note, partitions) in news {
            tracing::warn!(change = t.change, partitions, "{note}");
        }
    }
    let last = before.outcomes.back();
    let skip = last
        .and_then(|last| after.outcomes.iter().rposition(|o| o == last))
        .map_or(0, |i| i + 1);
    for outcome in after.outcomes.iter().skip(skip) {
        if outcome.done {
            tracing::info!(change = outcome.change, "{}", outcome.summary());
        } else {
            tracing::warn!(change = outcome.change, "{}", outcome.summary());
        }
    }
}
