//! The property test's script: the steps, the edits each key's type allows, and their
//! strategies.

use haze_crdt::{ActorId, Field, Scalar, ValueKind};
use haze_device::Edit;
use proptest::prelude::*;

use crate::model::Op;

/// The keys edited, one per type, named by its first letter (model.rs).
pub const KEYS: [&str; 9] = ["c", "g", "s", "r", "v", "f", "x", "n", "m"];
/// Counters a bulk edit adds to: more than a merge batch (256), so syncs send two.
pub const BULK_KEYS: usize = 270;

/// An edit of a key, made concrete by the key's type.
#[derive(Debug, Clone, Copy)]
pub struct Choice {
    pub sel: u8,
    pub n: u64,
}

#[derive(Debug, Clone)]
pub struct Plan {
    /// Which message in flight is answered at each step (cycled).
    pub order: Vec<u8>,
    /// Cut at this step: before the store gets the message (`false`), or after it merged and
    /// before its answer arrives (`true`).
    pub cut: Option<(usize, bool)>,
    /// Edits the replica makes before a step.
    pub edits: Vec<(usize, usize, Choice)>,
    /// After a cut, the device crashes (reopens without saving) instead of saving.
    pub crash: bool,
}

#[derive(Debug, Clone)]
pub enum StepKind {
    Edit {
        who: usize,
        key: usize,
        choice: Choice,
    },
    Online {
        key: usize,
        choice: Choice,
    },
    Sync {
        who: usize,
        plan: Plan,
    },
    Fetch {
        who: usize,
        key: usize,
    },
    Share {
        from: usize,
        to: usize,
        key: usize,
    },
    Clock {
        who: usize,
        now: u64,
    },
    Restart {
        who: usize,
        crash: bool,
    },
    Backup {
        who: usize,
    },
    Restore {
        who: usize,
    },
    Bulk {
        who: usize,
    },
}

fn uint(n: u64) -> Scalar {
    Scalar::UInt(n)
}

/// The edit `choice` makes of `key`, and its model op (a register write's stamp is filled in
/// once made).
pub fn concrete(key: &str, c: Choice) -> (Edit, Op) {
    let d = (c.n % 7) as i64 - 3;
    let m = c.n % 4;
    match key.as_bytes()[0] {
        b'c' | b'b' => (Edit::CounterAdd(d), Op::Count(d)),
        b'g' => (Edit::GCounterAdd(m), Op::Count(m as i64)),
        b's' => match c.sel % 5 {
            0 | 1 => (Edit::SetAdd(vec![uint(m)]), Op::Add(m)),
            2 | 3 => (Edit::SetRemove(vec![uint(m)]), Op::Remove(m)),
            _ => (Edit::SetClear, Op::Clear),
        },
        b'r' => {
            let stamp = haze_crdt::Stamp {
                time: haze_crdt::HlcTimestamp::new(0, 0),
                actor: ActorId::new(0),
            };
            let value = c.n % 3;
            (Edit::RegisterSet(uint(value)), Op::Write { value, stamp })
        }
        b'v' => (Edit::MvRegisterSet(uint(c.n % 3)), Op::MvWrite(c.n % 3)),
        b'f' if c.sel.is_multiple_of(2) => (Edit::FlagEnable, Op::Enable),
        b'f' => (Edit::FlagDisable, Op::Disable),
        b'x' => (Edit::MaxSet(uint(c.n % 100)), Op::Max(c.n % 100)),
        b'n' => (Edit::MinSet(uint(c.n % 100)), Op::Min(c.n % 100)),
        b'm' => {
            let edit = match c.sel % 8 {
                0 | 1 => return (Edit::map_update("n", Edit::CounterAdd(d)), Op::Map(d)),
                2 => Edit::map_update("t", Edit::RegisterSet(uint(m))),
                3 => Edit::map_update("d", Edit::FlagEnable),
                4 => Edit::map_update("d", Edit::FlagDisable),
                5 => Edit::map_update("sub", Edit::map_update("tags", Edit::SetAdd(vec![uint(m)]))),
                6 => Edit::map_update(
                    "sub",
                    Edit::map_update("tags", Edit::SetRemove(vec![uint(m)])),
                ),
                _ => Edit::MapRemove(match m {
                    0 => Field::new("d", ValueKind::Flag),
                    1 => Field::new("t", ValueKind::LwwRegister),
                    _ => Field::new("sub", ValueKind::OrMap),
                }),
            };
            (edit, Op::Map(0))
        }
        other => panic!("no type is named {}", other as char),
    }
}

fn choice() -> impl Strategy<Value = Choice> {
    (any::<u8>(), any::<u64>()).prop_map(|(sel, n)| Choice { sel, n })
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        prop::collection::vec(any::<u8>(), 0..6),
        prop::option::of((0usize..8, any::<bool>())),
        prop::collection::vec((0usize..6, 0..KEYS.len(), choice()), 0..3),
        any::<bool>(),
    )
        .prop_map(|(order, cut, edits, crash)| Plan {
            order,
            cut,
            edits,
            crash,
        })
}

pub fn step(replicas: usize) -> impl Strategy<Value = StepKind> {
    let who = 0..replicas;
    let key = 0..KEYS.len();
    prop_oneof![
        10 => (who.clone(), key.clone(), choice()).prop_map(|(who, key, choice)| StepKind::Edit { who, key, choice }),
        2 => (key.clone(), choice()).prop_map(|(key, choice)| StepKind::Online { key, choice }),
        5 => (who.clone(), plan()).prop_map(|(who, plan)| StepKind::Sync { who, plan }),
        1 => (who.clone(), key.clone()).prop_map(|(who, key)| StepKind::Fetch { who, key }),
        1 => (who.clone(), who.clone(), key).prop_map(|(from, to, key)| StepKind::Share { from, to, key }),
        1 => (who.clone(), 0u64..10_000).prop_map(|(who, now)| StepKind::Clock { who, now }),
        1 => (who.clone(), any::<bool>()).prop_map(|(who, crash)| StepKind::Restart { who, crash }),
        1 => who.clone().prop_map(|who| StepKind::Backup { who }),
        1 => who.clone().prop_map(|who| StepKind::Restore { who }),
        1 => who.prop_map(|who| StepKind::Bulk { who }),
    ]
}
