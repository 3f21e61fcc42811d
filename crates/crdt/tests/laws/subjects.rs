//! How each type is driven by the law checker.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use haze_crdt::{
    EnableWinsFlag, Field, GCounter, LwwRegister, Max, Min, MvRegister, OrMap, OrSet, PnCounter,
    Scalar, TypedValue, Value, ValueKind, ValueMap,
};
use proptest::prelude::*;

use crate::checker::{Env, Subject};

/// A small domain of scalars of every type, so that operations collide often.
pub fn scalar() -> BoxedStrategy<Scalar> {
    prop_oneof![
        (0u64..4).prop_map(Scalar::UInt),
        (-2i64..2).prop_map(Scalar::Int),
        prop::sample::select(vec!["", "a", "b", "ab"]).prop_map(Scalar::from),
        prop::collection::vec(0u8..2, 0..2).prop_map(Scalar::Bytes),
    ]
    .boxed()
}

/// Amounts that are usually small and sometimes near `u64::MAX`, to reach overflow.
fn amount() -> BoxedStrategy<u64> {
    prop_oneof![4 => 0u64..5, 1 => Just(u64::MAX / 2), 1 => Just(u64::MAX)].boxed()
}

macro_rules! typed_value {
    () => {
        fn to_value(&self) -> Option<Value> {
            Some(self.clone().into_value())
        }
        fn from_value(value: Value) -> Option<Self> {
            Self::try_from_value(value).ok()
        }
    };
}

impl Subject for GCounter {
    type Op = u64;
    fn bottom() -> Self {
        GCounter::new()
    }
    fn op() -> BoxedStrategy<u64> {
        amount()
    }
    fn apply(&mut self, env: &mut Env, by: &u64) {
        let _ = self.increment(env.actor, *by); // an overflow changes nothing
    }
    typed_value!();
}

impl Subject for PnCounter {
    type Op = (bool, u64);
    fn bottom() -> Self {
        PnCounter::new()
    }
    fn op() -> BoxedStrategy<(bool, u64)> {
        (any::<bool>(), amount()).boxed()
    }
    fn apply(&mut self, env: &mut Env, &(up, by): &(bool, u64)) {
        let _ = if up {
            self.increment(env.actor, by)
        } else {
            self.decrement(env.actor, by)
        };
    }
    typed_value!();
}

/// A write at a physical time that may stand still or go backwards.
#[derive(Debug, Clone)]
pub struct TimedWrite {
    pub value: Scalar,
    pub millis: u64,
}

impl Subject for LwwRegister<Scalar> {
    type Op = TimedWrite;
    fn bottom() -> Self {
        LwwRegister::new()
    }
    fn op() -> BoxedStrategy<TimedWrite> {
        (scalar(), 0u64..4)
            .prop_map(|(value, millis)| TimedWrite { value, millis })
            .boxed()
    }
    fn apply(&mut self, env: &mut Env, op: &TimedWrite) {
        env.clock.set(op.millis);
        self.set(env.actor, op.value.clone(), &mut env.hlc, &env.clock);
    }
    typed_value!();
}

impl Subject for MvRegister<Scalar> {
    type Op = Scalar;
    fn bottom() -> Self {
        MvRegister::new()
    }
    fn op() -> BoxedStrategy<Scalar> {
        scalar()
    }
    fn apply(&mut self, env: &mut Env, value: &Scalar) {
        self.set(env.actor, value.clone());
    }
    typed_value!();
}

#[derive(Debug, Clone)]
pub enum SetOp<T> {
    Insert(T),
    Remove(T),
    Clear,
}

fn set_op<T: std::fmt::Debug + Clone + 'static>(item: BoxedStrategy<T>) -> BoxedStrategy<SetOp<T>> {
    prop_oneof![
        4 => item.clone().prop_map(SetOp::Insert),
        3 => item.prop_map(SetOp::Remove),
        1 => Just(SetOp::Clear),
    ]
    .boxed()
}

impl Subject for OrSet<Scalar> {
    type Op = SetOp<Scalar>;
    fn bottom() -> Self {
        OrSet::new()
    }
    fn op() -> BoxedStrategy<SetOp<Scalar>> {
        set_op(scalar())
    }
    fn apply(&mut self, env: &mut Env, op: &SetOp<Scalar>) {
        match op {
            SetOp::Insert(x) => {
                self.insert(env.actor, x.clone());
            }
            SetOp::Remove(x) => {
                self.remove(x);
            }
            SetOp::Clear => self.clear(),
        }
    }
    typed_value!();
}

#[derive(Debug, Clone)]
pub enum MapOp {
    Update { key: u64, op: SetOp<String> },
    Remove(u64),
}

impl Subject for OrMap<u64, OrSet<String>> {
    type Op = MapOp;
    fn bottom() -> Self {
        OrMap::new()
    }
    fn op() -> BoxedStrategy<MapOp> {
        let item =
            prop::sample::select(vec!["x".to_string(), "y".to_string(), "z".to_string()]).boxed();
        prop_oneof![
            3 => (0u64..3, set_op(item)).prop_map(|(key, op)| MapOp::Update { key, op }),
            1 => (0u64..3).prop_map(MapOp::Remove),
        ]
        .boxed()
    }
    fn apply(&mut self, env: &mut Env, op: &MapOp) {
        match op {
            MapOp::Update { key, op } => {
                let actor = env.actor;
                self.update(actor, *key, |set| match op {
                    SetOp::Insert(x) => {
                        set.insert(actor, x.clone());
                    }
                    SetOp::Remove(x) => {
                        set.remove(x);
                    }
                    SetOp::Clear => set.clear(),
                });
            }
            MapOp::Remove(key) => {
                self.remove(key);
            }
        }
    }
    typed_value!();
}

impl Subject for EnableWinsFlag {
    type Op = bool;
    fn bottom() -> Self {
        EnableWinsFlag::new()
    }
    fn op() -> BoxedStrategy<bool> {
        any::<bool>().boxed()
    }
    fn apply(&mut self, env: &mut Env, &enable: &bool) {
        if enable {
            self.enable(env.actor);
        } else {
            self.disable();
        }
    }
    typed_value!();
}

impl Subject for Max<u64> {
    type Op = u64;
    fn bottom() -> Self {
        Max::new()
    }
    fn op() -> BoxedStrategy<u64> {
        amount()
    }
    fn apply(&mut self, _: &mut Env, v: &u64) {
        self.set(*v);
    }
    typed_value!();
}

impl Subject for Min<i64> {
    type Op = i64;
    fn bottom() -> Self {
        Min::new()
    }
    fn op() -> BoxedStrategy<i64> {
        prop_oneof![-3i64..3, Just(i64::MIN), Just(i64::MAX)].boxed()
    }
    fn apply(&mut self, _: &mut Env, v: &i64) {
        self.set(*v);
    }
    typed_value!();
}

/// Operations on a `Value` map with fields of mixed types, nested two levels deep.
#[derive(Debug, Clone)]
pub enum ValueOp {
    Counter {
        key: Scalar,
        by: i64,
    },
    SetInsert {
        key: Scalar,
        item: Scalar,
    },
    SetRemove {
        key: Scalar,
        item: Scalar,
    },
    Register {
        key: Scalar,
        value: Scalar,
        millis: u64,
    },
    Flag {
        key: Scalar,
        enable: bool,
    },
    Nested {
        key: Scalar,
        inner: Box<ValueOp>,
    },
    Remove {
        key: Scalar,
        kind: ValueKind,
    },
}

fn field_key() -> BoxedStrategy<Scalar> {
    prop_oneof![(0u64..2).prop_map(Scalar::UInt), Just(Scalar::from("k"))].boxed()
}

fn value_op_leaf() -> BoxedStrategy<ValueOp> {
    prop_oneof![
        (field_key(), -3i64..3).prop_map(|(key, by)| ValueOp::Counter { key, by }),
        (field_key(), scalar()).prop_map(|(key, item)| ValueOp::SetInsert { key, item }),
        (field_key(), scalar()).prop_map(|(key, item)| ValueOp::SetRemove { key, item }),
        (field_key(), scalar(), 0u64..3).prop_map(|(key, value, millis)| ValueOp::Register {
            key,
            value,
            millis
        }),
        (field_key(), any::<bool>()).prop_map(|(key, enable)| ValueOp::Flag { key, enable }),
        (field_key(), prop::sample::select(ValueKind::ALL.to_vec()))
            .prop_map(|(key, kind)| ValueOp::Remove { key, kind }),
    ]
    .boxed()
}

fn apply_value_op(map: &mut ValueMap, env: &mut Env, op: &ValueOp) {
    let actor = env.actor;
    let mut update = |key: &Scalar, kind: ValueKind, f: &mut dyn FnMut(&mut Value, &mut Env)| {
        map.update(actor, Field::new(key.clone(), kind), |v| {
            f(v, env);
            Ok::<(), haze_crdt::Error>(())
        })
        .expect("a field keeps its type and nests two levels");
    };
    match op {
        ValueOp::Counter { key, by } => update(key, ValueKind::PnCounter, &mut |v, env| {
            if let Value::PnCounter(c) = v {
                c.add(env.actor, *by).expect("small amounts");
            }
        }),
        ValueOp::SetInsert { key, item } => update(key, ValueKind::OrSet, &mut |v, env| {
            if let Value::OrSet(s) = v {
                s.insert(env.actor, item.clone());
            }
        }),
        ValueOp::SetRemove { key, item } => update(key, ValueKind::OrSet, &mut |v, _| {
            if let Value::OrSet(s) = v {
                s.remove(item);
            }
        }),
        ValueOp::Register { key, value, millis } => {
            update(key, ValueKind::LwwRegister, &mut |v, env| {
                if let Value::LwwRegister(r) = v {
                    env.clock.set(*millis);
                    r.set(env.actor, value.clone(), &mut env.hlc, &env.clock);
                }
            })
        }
        ValueOp::Flag { key, enable } => update(key, ValueKind::Flag, &mut |v, env| {
            if let Value::Flag(f) = v {
                if *enable {
                    f.enable(env.actor);
                } else {
                    f.disable();
                }
            }
        }),
        ValueOp::Nested { key, inner } => update(key, ValueKind::OrMap, &mut |v, env| {
            if let Value::OrMap(m) = v {
                apply_value_op(m, env, inner);
            }
        }),
        ValueOp::Remove { key, kind } => {
            map.remove(&Field::new(key.clone(), *kind));
        }
    }
}

/// A `Value` holding a map, with the checked `Value::merge` as its join (a `Value` is not a
/// `Crdt` itself: its merge refuses mismatched types).
#[derive(Debug, Clone, PartialEq)]
pub struct MapValue(pub Value);

impl haze_crdt::Crdt for MapValue {
    fn merge_from(&mut self, other: Self) {
        self.0.merge(other.0).expect("both are maps");
    }
}

impl Subject for MapValue {
    type Op = ValueOp;
    fn bottom() -> Self {
        MapValue(Value::bottom(ValueKind::OrMap))
    }
    fn op() -> BoxedStrategy<ValueOp> {
        prop_oneof![
            3 => value_op_leaf(),
            1 => (field_key(), value_op_leaf()).prop_map(|(key, inner)| ValueOp::Nested { key, inner: Box::new(inner) }),
        ]
        .boxed()
    }
    fn apply(&mut self, env: &mut Env, op: &ValueOp) {
        if let Value::OrMap(map) = &mut self.0 {
            apply_value_op(map, env, op);
        }
    }
    fn to_value(&self) -> Option<Value> {
        Some(self.0.clone())
    }
    fn from_value(value: Value) -> Option<Self> {
        Some(MapValue(value))
    }
}

impl Subject for BTreeSet<u8> {
    type Op = u8;
    fn bottom() -> Self {
        BTreeSet::new()
    }
    fn op() -> BoxedStrategy<u8> {
        (0u8..8).boxed()
    }
    fn apply(&mut self, _: &mut Env, x: &u8) {
        self.insert(*x);
    }
}

impl Subject for HashSet<u8> {
    type Op = u8;
    fn bottom() -> Self {
        HashSet::new()
    }
    fn op() -> BoxedStrategy<u8> {
        (0u8..8).boxed()
    }
    fn apply(&mut self, _: &mut Env, x: &u8) {
        self.insert(*x);
    }
}

impl Subject for BTreeMap<u8, Max<u8>> {
    type Op = (u8, u8);
    fn bottom() -> Self {
        BTreeMap::new()
    }
    fn op() -> BoxedStrategy<(u8, u8)> {
        (0u8..3, any::<u8>()).boxed()
    }
    fn apply(&mut self, _: &mut Env, &(k, v): &(u8, u8)) {
        self.entry(k).or_default().set(v);
    }
}

impl Subject for HashMap<u8, Max<u8>> {
    type Op = (u8, u8);
    fn bottom() -> Self {
        HashMap::new()
    }
    fn op() -> BoxedStrategy<(u8, u8)> {
        (0u8..3, any::<u8>()).boxed()
    }
    fn apply(&mut self, _: &mut Env, &(k, v): &(u8, u8)) {
        self.entry(k).or_default().set(v);
    }
}

impl Subject for Option<Min<u8>> {
    type Op = u8;
    fn bottom() -> Self {
        None
    }
    fn op() -> BoxedStrategy<u8> {
        any::<u8>().boxed()
    }
    fn apply(&mut self, _: &mut Env, v: &u8) {
        self.get_or_insert_with(Min::new).set(*v);
    }
}

/// An operation on a one-replica set of small integers, or a merge of one of its old states.
#[derive(Debug, Clone)]
pub enum SetOpOrStale {
    Op(SetOp<u8>),
    Stale(prop::sample::Index),
}

impl SetOpOrStale {
    pub fn strategy() -> BoxedStrategy<SetOpOrStale> {
        prop_oneof![
            3 => set_op((0u8..6).boxed()).prop_map(SetOpOrStale::Op),
            1 => any::<prop::sample::Index>().prop_map(SetOpOrStale::Stale),
        ]
        .boxed()
    }
}
