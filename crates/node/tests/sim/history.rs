//! What the workload tried and what it was told (Jepsen's history): every write attempted with
//! its outcome, and every read with what it found. The checks hold both bounds: every
//! acknowledged write is present, and nothing is present that was not attempted; a counter is
//! within `[acknowledged, acknowledged + unknown]`.

use std::collections::{BTreeMap, BTreeSet};

use haze_client::Error;

/// What a write's client was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Told {
    /// Acknowledged: it must be present, once, forever.
    Ok,
    /// Refused, or never sent: it must not be applied.
    Failed,
    /// Timed out, connection lost, or a replica failed mid-way: it may or may not be applied,
    /// but at most once.
    Unknown,
}

impl Told {
    pub fn of<T>(result: &Result<T, Error>) -> Told {
        match result {
            Ok(_) => Told::Ok,
            Err(e) if e.is_indeterminate() => Told::Unknown,
            Err(_) => Told::Failed,
        }
    }
}

/// The increments of one counter, by what their clients were told.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    pub ok: u64,
    pub failed: u64,
    pub unknown: u64,
}

impl Tally {
    /// The values the counter may hold: every acknowledged increment, and at most every
    /// unknown one besides.
    pub fn bounds(&self) -> (i128, i128) {
        (
            i128::from(self.ok),
            i128::from(self.ok) + i128::from(self.unknown),
        )
    }
}

/// Reads and what they found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reads {
    /// Reads answered.
    pub ok: u64,
    /// Reads that failed (no replica answered in time).
    pub failed: u64,
    /// Answered reads of a key with acknowledged writes that found nothing.
    pub not_found: u64,
    /// Answered reads that missed a write acknowledged before they started.
    pub stale: u64,
    /// Answered reads that found what was never written: a counter above every increment
    /// attempted, a set member never added.
    pub phantom: u64,
}

/// The workload's history.
#[derive(Debug, Default)]
pub struct History {
    /// Every set addition attempted: (key, member) → what its client was told.
    pub adds: BTreeMap<(String, String), Told>,
    /// Every counter's increments.
    pub counters: BTreeMap<String, Tally>,
    pub reads: Reads,
}

impl History {
    pub fn add(&mut self, key: String, member: String, told: Told) {
        self.adds.insert((key, member), told);
    }

    pub fn increment(&mut self, key: String, told: Told) {
        let tally = self.counters.entry(key).or_default();
        match told {
            Told::Ok => tally.ok += 1,
            Told::Failed => tally.failed += 1,
            Told::Unknown => tally.unknown += 1,
        }
    }

    /// How many writes got each answer: (acknowledged, failed, unknown).
    pub fn writes(&self) -> (u64, u64, u64) {
        let mut out = (0, 0, 0);
        for told in self.adds.values() {
            match told {
                Told::Ok => out.0 += 1,
                Told::Failed => out.1 += 1,
                Told::Unknown => out.2 += 1,
            }
        }
        for t in self.counters.values() {
            out.0 += t.ok;
            out.1 += t.failed;
            out.2 += t.unknown;
        }
        out
    }

    /// Checks a read of counter `key` that found `value` (`None`: nothing), taken after every
    /// write so far was answered.
    pub fn read_counter(&mut self, key: &str, value: Option<i128>) {
        let (low, high) = self.counters.get(key).copied().unwrap_or_default().bounds();
        self.check_read(low > 0, value.is_none(), value.unwrap_or(0) < low);
        self.reads.phantom += u64::from(value.unwrap_or(0) > high);
    }

    /// Checks a read of set `key` that found `members` (`None`: nothing).
    pub fn read_set(&mut self, key: &str, members: Option<&BTreeSet<String>>) {
        let acked: Vec<&String> = self.acked_members(key).collect();
        let empty = BTreeSet::new();
        let found = members.unwrap_or(&empty);
        let missed = acked.iter().any(|m| !found.contains(*m));
        let phantom = found.iter().any(|m| {
            !matches!(
                self.adds.get(&(key.to_string(), m.clone())),
                Some(Told::Ok | Told::Unknown)
            )
        });
        self.check_read(!acked.is_empty(), members.is_none(), missed);
        self.reads.phantom += u64::from(phantom);
    }

    fn check_read(&mut self, expected: bool, absent: bool, missed: bool) {
        self.reads.ok += 1;
        if expected && absent {
            self.reads.not_found += 1;
        } else if missed {
            self.reads.stale += 1;
        }
    }

    /// The members of set `key` whose additions were acknowledged.
    pub fn acked_members<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.adds
            .iter()
            .filter(move |((k, _), told)| k == key && **told == Told::Ok)
            .map(|((_, m), _)| m)
    }

    /// Every set key attempted.
    pub fn set_keys(&self) -> BTreeSet<&String> {
        self.adds.keys().map(|(k, _)| k).collect()
    }
}

/// What one replica's final copy of the workload's keys breaks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Breaches {
    /// Acknowledged writes missing (a set member, or increments below the count).
    pub lost: u64,
    /// Values nobody wrote: members never attempted or whose addition was refused, counters
    /// above every acknowledged and unknown increment (an increment applied twice).
    pub phantom: u64,
    /// The first breach found, described (for the replay).
    pub example: Option<String>,
}

impl std::ops::AddAssign for Breaches {
    fn add_assign(&mut self, other: Breaches) {
        self.lost += other.lost;
        self.phantom += other.phantom;
        self.example = self.example.take().or(other.example);
    }
}

/// Checks one replica's final set `key` against the history.
pub fn check_set(history: &History, key: &str, members: &BTreeSet<String>) -> Breaches {
    let lost = history
        .acked_members(key)
        .filter(|m| !members.contains(*m))
        .count() as u64;
    let phantoms: Vec<(&String, Option<&Told>)> = members
        .iter()
        .map(|m| (m, history.adds.get(&(key.to_string(), m.clone()))))
        .filter(|(_, told)| !matches!(told, Some(Told::Ok | Told::Unknown)))
        .collect();
    let missing = history.acked_members(key).find(|m| !members.contains(*m));
    let example = match (missing, phantoms.first()) {
        (Some(m), _) => Some(format!("{key} lacks acknowledged member {m}")),
        (None, Some((m, told))) => Some(format!("{key} holds member {m}, whose add was {told:?}")),
        (None, None) => None,
    };
    Breaches {
        lost,
        phantom: phantoms.len() as u64,
        example,
    }
}

/// Checks one replica's final counter `key` (its value) against the history.
pub fn check_counter(history: &History, key: &str, value: i128) -> Breaches {
    let (low, high) = history
        .counters
        .get(key)
        .copied()
        .unwrap_or_default()
        .bounds();
    Breaches {
        lost: u64::try_from(low - value).unwrap_or(0),
        phantom: u64::try_from(value - high).unwrap_or(0),
        example: (value < low || value > high)
            .then(|| format!("{key} is {value}, outside [{low}, {high}]")),
    }
}
