//! A reference model of the property test: for every place (each replica, the store) and key,
//! the set of edits that place has seen. A state is what its edits make of it by the types'
//! semantics, computed here independently of the CRDTs' own representations:
//!
//! * a counter is the sum of its additions (and, per actor, of its increments and decrements);
//! * a set holds every member with an addition seen that no seen removal took out; a removal
//!   takes out exactly the additions of its member its replica had seen (add wins);
//! * a register holds the write with the greatest stamp seen, and every write's stamp is
//!   greater than those of the writes its writer had seen (a causally later write wins).
//!
//! Moving states around is a union of the sets: a fetch, a device-to-device merge, each side of
//! a sync.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use haze_crdt::{LwwRegister, OrSet, PnCounter, Scalar, Stamp, TypedValue, Value};

/// An edit's index in [`Model::ops`].
pub type OpId = usize;

/// One edit, made by a replica or by the node (another client, online).
#[derive(Debug, Clone)]
pub enum Op {
    /// A counter addition by `actor`.
    Count { actor: u64, delta: i64 },
    /// A set addition of `member` by `actor`.
    Add { actor: u64, member: u64 },
    /// A set removal: takes out the additions of its member its replica had seen, `covers`.
    Remove { covers: BTreeSet<OpId> },
    /// A register write of `value`, stamped `stamp` (as the writer reported it: the stamp names
    /// the writer), made after seeing the writes `saw`.
    Write {
        value: u64,
        stamp: Stamp,
        saw: BTreeSet<OpId>,
    },
}

/// Where states are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    Replica(usize),
    Node,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Replica(i) => write!(f, "replica {i}"),
            Place::Node => f.write_str("the node"),
        }
    }
}

/// The type of a key, told by its name: `c…` and `f…` are counters, `s…` sets, `r…`
/// registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Set,
    Register,
}

pub fn kind(key: &[u8]) -> Kind {
    match key.first() {
        Some(b'c' | b'f') => Kind::Counter,
        Some(b's') => Kind::Set,
        Some(b'r') => Kind::Register,
        _ => panic!("the test names every key by its type: {key:?}"),
    }
}

/// What a state shows of the edits in it: the model's expectation and the real state are
/// compared in this form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    /// The value, and per actor the sum of its increments and of its decrements (which says
    /// exactly which of its additions the state holds: each actor's additions arrive in order).
    Counter {
        value: i128,
        increments: BTreeMap<u64, u64>,
        decrements: BTreeMap<u64, u64>,
    },
    /// The members, and per actor the number of its additions seen (which of them, likewise).
    Set {
        members: BTreeSet<Scalar>,
        seen: BTreeMap<u64, u64>,
    },
    /// The winning write's stamp and value.
    Register(Option<(Stamp, Scalar)>),
}

/// Shows a real state. A value of another type than its name says is a bug: panics.
pub fn show(key: &[u8], value: &Value) -> Shown {
    fn typed<T: TypedValue>(key: &[u8], value: &Value) -> T {
        T::try_from_value(value.clone())
            .unwrap_or_else(|e| panic!("{} holds a {:?}: {e}", name(key), value.kind()))
    }
    fn counts(vv: &haze_crdt::VersionVector) -> BTreeMap<u64, u64> {
        vv.iter()
            .filter(|(_, n)| *n > 0)
            .map(|(a, n)| (a.get(), n))
            .collect()
    }
    match kind(key) {
        Kind::Counter => {
            let c: PnCounter = typed(key, value);
            Shown::Counter {
                value: c.value(),
                increments: counts(c.increments().counts()),
                decrements: counts(c.decrements().counts()),
            }
        }
        Kind::Set => {
            let s: OrSet<Scalar> = typed(key, value);
            Shown::Set {
                members: s.iter().cloned().collect(),
                seen: counts(s.seen()),
            }
        }
        Kind::Register => {
            let r: LwwRegister<Scalar> = typed(key, value);
            Shown::Register(r.into_entry())
        }
    }
}

pub fn name(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

/// The edits made, and which each place has seen.
#[derive(Debug, Default)]
pub struct Model {
    ops: Vec<(Vec<u8>, Op)>,
    seen: BTreeMap<Place, BTreeMap<Vec<u8>, BTreeSet<OpId>>>,
}

impl Model {
    /// The keys `place` holds (it has seen at least one edit of them).
    pub fn keys(&self, place: Place) -> Vec<Vec<u8>> {
        self.seen
            .get(&place)
            .map(|keys| keys.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Every key edited anywhere.
    pub fn all_keys(&self) -> BTreeSet<Vec<u8>> {
        self.ops.iter().map(|(k, _)| k.clone()).collect()
    }

    pub fn holds(&self, place: Place, key: &[u8]) -> bool {
        self.seen
            .get(&place)
            .is_some_and(|keys| keys.contains_key(key))
    }

    fn seen_at(&self, place: Place, key: &[u8]) -> impl Iterator<Item = (OpId, &Op)> {
        self.seen
            .get(&place)
            .and_then(|keys| keys.get(key))
            .into_iter()
            .flatten()
            .map(|&id| (id, &self.ops[id].1))
    }

    /// Records an edit made at `place`.
    pub fn record(&mut self, place: Place, key: &[u8], op: Op) {
        self.ops.push((key.to_vec(), op));
        let id = self.ops.len() - 1;
        let keys = self.seen.entry(place).or_default();
        keys.entry(key.to_vec()).or_default().insert(id);
    }

    /// The additions of `member` that `place` has seen: what a removal there takes out.
    pub fn adds_of(&self, place: Place, key: &[u8], member: u64) -> BTreeSet<OpId> {
        self.seen_at(place, key)
            .filter(|(_, op)| matches!(op, Op::Add { member: m, .. } if *m == member))
            .map(|(id, _)| id)
            .collect()
    }

    /// The writes `place` has seen, with their stamps.
    pub fn writes(&self, place: Place, key: &[u8]) -> BTreeMap<OpId, Stamp> {
        self.seen_at(place, key)
            .filter_map(|(id, op)| match op {
                Op::Write { stamp, .. } => Some((id, *stamp)),
                _ => None,
            })
            .collect()
    }

    /// `to` merges the state of `key` held by `from` (if it holds one).
    pub fn merge(&mut self, to: Place, from: Place, key: &[u8]) {
        let Some(theirs) = self.seen.get(&from).and_then(|keys| keys.get(key)).cloned() else {
            return;
        };
        let keys = self.seen.entry(to).or_default();
        keys.entry(key.to_vec()).or_default().extend(theirs);
    }

    /// What the state of `key` at `place` must show, if `place` holds it.
    pub fn expected(&self, place: Place, key: &[u8]) -> Option<Shown> {
        self.holds(place, key)
            .then(|| self.shown(key, &self.seen_at(place, key).collect::<Vec<_>>()))
    }

    /// What every state of `key` must show once every edit reached it.
    pub fn expected_in_the_end(&self, key: &[u8]) -> Shown {
        let all: Vec<_> = (self.ops.iter().enumerate())
            .filter(|(_, (k, _))| k == key)
            .map(|(id, (_, op))| (id, op))
            .collect();
        self.shown(key, &all)
    }

    fn shown(&self, key: &[u8], ops: &[(OpId, &Op)]) -> Shown {
        match kind(key) {
            Kind::Counter => {
                let (mut value, mut increments, mut decrements) =
                    (0i128, BTreeMap::new(), BTreeMap::new());
                for (_, op) in ops {
                    let Op::Count { actor, delta } = op else {
                        unreachable!("counters are only counted")
                    };
                    value += i128::from(*delta);
                    let side = if *delta > 0 {
                        &mut increments
                    } else {
                        &mut decrements
                    };
                    if *delta != 0 {
                        *side.entry(*actor).or_default() += delta.unsigned_abs();
                    }
                }
                Shown::Counter {
                    value,
                    increments,
                    decrements,
                }
            }
            Kind::Set => {
                let removed: BTreeSet<OpId> = (ops.iter())
                    .filter_map(|(_, op)| match op {
                        Op::Remove { covers, .. } => Some(covers),
                        _ => None,
                    })
                    .flatten()
                    .copied()
                    .collect();
                let (mut members, mut seen) = (BTreeSet::new(), BTreeMap::new());
                for (id, op) in ops {
                    if let Op::Add { actor, member } = op {
                        *seen.entry(*actor).or_default() += 1;
                        if !removed.contains(id) {
                            members.insert(Scalar::UInt(*member));
                        }
                    }
                }
                Shown::Set { members, seen }
            }
            Kind::Register => Shown::Register(
                (ops.iter())
                    .filter_map(|(_, op)| match op {
                        Op::Write { stamp, value, .. } => Some((*stamp, Scalar::UInt(*value))),
                        _ => None,
                    })
                    .max(),
            ),
        }
    }

    /// Checks that the write `key` ends with is one no other write had seen: the latest
    /// causally (the stamps guarantee it when every write outstamps what its writer saw).
    pub fn winner_is_causally_latest(&self, key: &[u8], winner: Stamp) -> Result<(), String> {
        let writes = (self.ops.iter().enumerate()).filter(|(_, (k, _))| k == key);
        let winning = writes.clone().find_map(|(id, (_, op))| match op {
            Op::Write { stamp, .. } if *stamp == winner => Some(id),
            _ => None,
        });
        let Some(id) = winning else {
            return Err(format!("{}: {winner:?} was never written", name(key)));
        };
        for (later, (_, op)) in writes {
            if let Op::Write { saw, .. } = op
                && saw.contains(&id)
            {
                return Err(format!(
                    "{}: the winning write {id} was seen by the later write {later}, which lost",
                    name(key)
                ));
            }
        }
        Ok(())
    }
}
