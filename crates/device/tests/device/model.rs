//! A reference model of the property test: for every place (each replica, the store) and key,
//! the set of edits that place has seen, and, for each replica, the set its store holds. A
//! state is what its edits make of it by the types' semantics, computed here independently of
//! the CRDTs' representations:
//!
//! * a counter is the sum of its additions;
//! * a set holds every member with an addition no seen removal (or clear) had seen (add wins);
//! * a last-writer-wins register holds the seen write with the greatest stamp, and no write
//!   that saw it may have lost (a causally later write wins);
//! * a multi-value register holds the seen writes no other seen write had seen;
//! * a flag is on if an enable no seen disable had seen is seen (enable wins);
//! * max and min hold the extremes of the values set;
//! * a map's counter field `n` (never removed) is the sum of its additions; the map's other
//!   fields are checked by convergence alone.
//!
//! Seen sets grow by union when a place merges another's state, so they are causally closed:
//! an edit that saw another carries it wherever it goes.

use std::collections::{BTreeMap, BTreeSet};

use haze_crdt::{
    EnableWinsFlag, Field, GCounter, LwwRegister, Max, Min, MvRegister, OrSet, PnCounter, Scalar,
    Stamp, TypedValue, Value, ValueKind,
};

pub type OpId = usize;
pub type Seen = BTreeMap<Vec<u8>, BTreeSet<OpId>>;

#[derive(Debug, Clone)]
pub enum Op {
    Count(i64),
    Add(u64),
    Remove(u64),
    Clear,
    Write {
        value: u64,
        stamp: Stamp,
    },
    MvWrite(u64),
    Enable,
    Disable,
    Max(u64),
    Min(u64),
    /// A map edit: its nested counter's addition (0 for edits of other fields).
    Map(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    Replica(usize),
    Store,
}

/// What a state shows of its edits: the real state and the model's expectation are compared
/// in this form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    Counter(i128),
    Set(BTreeSet<u64>),
    Register(Option<u64>),
    Values(Vec<u64>),
    Flag(bool),
    Extreme(Option<u64>),
    MapCount(i128),
}

fn uint(s: &Scalar) -> u64 {
    match s {
        Scalar::UInt(n) => *n,
        other => panic!("the test writes only uints: {other:?}"),
    }
}

fn typed<T: TypedValue>(value: &Value) -> T {
    T::try_from_value(value.clone()).expect("each key holds the type its name says")
}

/// Shows a real state; its key's first letter says its type.
pub fn show(key: &[u8], value: &Value) -> Shown {
    match key[0] {
        b'c' | b'b' => Shown::Counter(typed::<PnCounter>(value).value()),
        b'g' => Shown::Counter(typed::<GCounter>(value).value() as i128),
        b's' => Shown::Set(typed::<OrSet<Scalar>>(value).iter().map(uint).collect()),
        b'r' => Shown::Register(typed::<LwwRegister<Scalar>>(value).get().map(uint)),
        b'v' => {
            let mut values: Vec<u64> = (typed::<MvRegister<Scalar>>(value).values())
                .map(uint)
                .collect();
            values.sort_unstable();
            Shown::Values(values)
        }
        b'f' => Shown::Flag(typed::<EnableWinsFlag>(value).is_enabled()),
        b'x' => Shown::Extreme(typed::<Max<Scalar>>(value).get().map(uint)),
        b'n' => Shown::Extreme(typed::<Min<Scalar>>(value).get().map(uint)),
        b'm' => {
            let Value::OrMap(map) = value else {
                panic!("m is a map")
            };
            let n = match map.get(&Field::new("n", ValueKind::PnCounter)) {
                Some(Value::PnCounter(c)) => c.value(),
                _ => 0,
            };
            Shown::MapCount(n)
        }
        other => panic!("no type is named {}", other as char),
    }
}

#[derive(Debug, Default, Clone)]
pub struct Model {
    ops: Vec<(Vec<u8>, Op, BTreeSet<OpId>)>,
    seen: BTreeMap<Place, Seen>,
    /// What each replica's store holds.
    durable: BTreeMap<usize, Seen>,
}

impl Model {
    pub fn seen(&self, place: Place) -> Seen {
        self.seen.get(&place).cloned().unwrap_or_default()
    }

    pub fn keys(&self, place: Place) -> Vec<Vec<u8>> {
        self.seen(place).into_keys().collect()
    }

    pub fn all_ops(&self) -> usize {
        self.ops.len()
    }

    /// Records an edit made at `place`; returns its id.
    pub fn record(&mut self, place: Place, key: &[u8], op: Op) -> OpId {
        let id = self.ops.len();
        let keys = self.seen.entry(place).or_default();
        let seen = keys.entry(key.to_vec()).or_default();
        self.ops.push((key.to_vec(), op, seen.clone()));
        seen.insert(id);
        id
    }

    /// `place` merges a state of `key` that holds the edits `edits`.
    pub fn merge(&mut self, place: Place, key: &[u8], edits: &BTreeSet<OpId>) {
        let keys = self.seen.entry(place).or_default();
        keys.entry(key.to_vec()).or_default().extend(edits);
    }

    /// Replica `who` saved everything it holds.
    pub fn saved(&mut self, who: usize) {
        self.durable.insert(who, self.seen(Place::Replica(who)));
    }

    /// Replica `who` reopened from its store (after a crash, a restore).
    pub fn reopened(&mut self, who: usize, store: Seen) {
        self.seen.insert(Place::Replica(who), store.clone());
        self.durable.insert(who, store);
    }

    pub fn durable(&self, who: usize) -> Seen {
        self.durable.get(&who).cloned().unwrap_or_default()
    }

    /// What the state of `key` must show at `place`, if `place` holds it.
    pub fn expected(&self, place: Place, key: &[u8]) -> Option<Shown> {
        let ids = self.seen.get(&place)?.get(key)?;
        Some(self.shown(key, ids))
    }

    /// What every state of `key` must show once every edit reached it.
    pub fn expected_in_the_end(&self, key: &[u8]) -> Shown {
        let all = (self.ops.iter().enumerate())
            .filter(|(_, (k, _, _))| k == key)
            .map(|(id, _)| id)
            .collect();
        self.shown(key, &all)
    }

    fn shown(&self, key: &[u8], ids: &BTreeSet<OpId>) -> Shown {
        let ops: Vec<(OpId, &Op, &BTreeSet<OpId>)> = (ids.iter())
            .map(|&id| (id, &self.ops[id].1, &self.ops[id].2))
            .collect();
        // Whether some seen op matching `by` had seen op `id`.
        let covered = |id: OpId, by: &dyn Fn(&Op) -> bool| {
            ops.iter().any(|(_, op, saw)| by(op) && saw.contains(&id))
        };
        match key[0] {
            b'c' | b'b' | b'g' => Shown::Counter(
                (ops.iter())
                    .map(|(_, op, _)| match op {
                        Op::Count(d) => i128::from(*d),
                        other => panic!("a counter counts: {other:?}"),
                    })
                    .sum(),
            ),
            b's' => Shown::Set(
                (ops.iter())
                    .filter_map(|(id, op, _)| match op {
                        Op::Add(m) => {
                            let removes = |o: &Op| {
                                matches!(o, Op::Clear) || matches!(o, Op::Remove(r) if r == m)
                            };
                            (!covered(*id, &removes)).then_some(*m)
                        }
                        _ => None,
                    })
                    .collect(),
            ),
            b'r' => Shown::Register(
                (ops.iter())
                    .filter_map(|(_, op, _)| match op {
                        Op::Write { value, stamp } => Some((*stamp, *value)),
                        _ => None,
                    })
                    .max()
                    .map(|(_, value)| value),
            ),
            b'v' => {
                let mut values: Vec<u64> = (ops.iter())
                    .filter_map(|(id, op, _)| match op {
                        Op::MvWrite(v) => {
                            (!covered(*id, &|o| matches!(o, Op::MvWrite(_)))).then_some(*v)
                        }
                        _ => None,
                    })
                    .collect();
                values.sort_unstable();
                Shown::Values(values)
            }
            b'f' => Shown::Flag(ops.iter().any(|(id, op, _)| {
                matches!(op, Op::Enable) && !covered(*id, &|o| matches!(o, Op::Disable))
            })),
            b'x' => Shown::Extreme(
                (ops.iter())
                    .filter_map(|(_, op, _)| match op {
                        Op::Max(v) => Some(*v),
                        _ => None,
                    })
                    .max(),
            ),
            b'n' => Shown::Extreme(
                (ops.iter())
                    .filter_map(|(_, op, _)| match op {
                        Op::Min(v) => Some(*v),
                        _ => None,
                    })
                    .min(),
            ),
            b'm' => Shown::MapCount(
                (ops.iter())
                    .map(|(_, op, _)| match op {
                        Op::Map(d) => i128::from(*d),
                        other => panic!("a map is edited by map edits: {other:?}"),
                    })
                    .sum(),
            ),
            other => panic!("no type is named {}", other as char),
        }
    }

    /// Checks that the write `key` ends with was seen by no other write among `surviving` (the
    /// edits not lost to a restore): the latest causally.
    pub fn winner_is_causally_latest(
        &self,
        key: &[u8],
        winner: Stamp,
        surviving: &BTreeSet<OpId>,
    ) -> Result<(), String> {
        let writes = (self.ops.iter().enumerate())
            .filter(|(id, (k, _, _))| k == key && surviving.contains(id));
        let Some(id) = writes.clone().find_map(|(id, (_, op, _))| {
            matches!(op, Op::Write { stamp, .. } if *stamp == winner).then_some(id)
        }) else {
            return Err(format!("{winner:?} was never written"));
        };
        match writes
            .filter(|(_, (_, op, saw))| matches!(op, Op::Write { .. }) && saw.contains(&id))
            .map(|(later, _)| later)
            .next()
        {
            Some(later) => Err(format!("write {id} won, but write {later} had seen it")),
            None => Ok(()),
        }
    }
}
