//! What each type means, beyond the laws: add wins, counts add up, causally later writes win.

use std::collections::BTreeSet;

use haze_crdt::{
    ActorId, Crdt, EnableWinsFlag, Error, GCounter, Hlc, LwwRegister, ManualClock, Max, Min,
    MvRegister, OrMap, OrSet, PnCounter, Scalar, Value, ValueKind,
};
use proptest::prelude::*;

use crate::checker::{self, Env, Script, Step, Subject};
use crate::subjects::{SetOp, scalar};

const PHONE: ActorId = ActorId::new(0xf0);
const LAPTOP: ActorId = ActorId::new(0x1a);

fn state_after<S: Subject>(script: &Script<S::Op>) -> S {
    checker::run::<S>(script)
        .0
        .into_iter()
        .fold(S::bottom(), S::merge)
}

proptest! {
    #![proptest_config(checker::config())]

    #[test]
    fn or_set_concurrent_add_and_remove_keeps_the_element(
        script in checker::script::<OrSet<Scalar>>(3, 20),
        item in scalar(),
    ) {
        let base: OrSet<Scalar> = state_after(&script);
        let mut remover = base.clone();
        remover.remove(&item);
        let mut adder = base;
        adder.insert(PHONE, item.clone());
        prop_assert!(remover.clone().merge(adder.clone()).contains(&item));
        prop_assert!(adder.merge(remover).contains(&item));
    }

    #[test]
    fn or_set_on_one_replica_behaves_like_a_set_even_with_stale_merges(
        ops in prop::collection::vec(crate::subjects::SetOpOrStale::strategy(), 0..40),
    ) {
        let mut set = OrSet::new();
        let mut model = BTreeSet::new();
        let mut snapshots = vec![set.clone()];
        for op in ops {
            match op {
                crate::subjects::SetOpOrStale::Op(SetOp::Insert(x)) => { set.insert(PHONE, x); model.insert(x); }
                crate::subjects::SetOpOrStale::Op(SetOp::Remove(x)) => { set.remove(&x); model.remove(&x); }
                crate::subjects::SetOpOrStale::Op(SetOp::Clear) => { set.clear(); model.clear(); }
                // Merging an old copy of our own state changes nothing: removes stay removed.
                crate::subjects::SetOpOrStale::Stale(i) => set.merge_from(snapshots[i.index(snapshots.len())].clone()),
            }
            snapshots.push(set.clone());
            prop_assert_eq!(set.iter().copied().collect::<BTreeSet<u8>>(), model.clone());
        }
    }

    #[test]
    fn counters_count_every_successful_update_exactly_once(
        case in checker::convergence_case::<PnCounter>(),
        ops in prop::collection::vec((0usize..4, -5i64..5), 0..40),
    ) {
        let _ = case; // the delivery order is irrelevant to the total; exercised in the laws
        let mut replicas: Vec<PnCounter> = (0..4).map(|_| PnCounter::new()).collect();
        let mut expected = 0i128;
        for (k, &(i, delta)) in ops.iter().enumerate() {
            replicas[i].add(ActorId::new(i as u64), delta).unwrap();
            expected += i128::from(delta);
            let next = (i + k) % 4;
            let message = replicas[i].clone();
            replicas[next].merge_from(message.clone());
            replicas[next].merge_from(message); // a duplicate
        }
        let total = replicas.into_iter().fold(PnCounter::new(), PnCounter::merge);
        prop_assert_eq!(total.value(), expected);
    }

    #[test]
    fn mv_register_keeps_every_concurrent_write_until_one_replaces_them(
        script in checker::script::<MvRegister<Scalar>>(3, 20),
        writes in prop::collection::btree_set(0u64..100, 1..6),
    ) {
        let base: MvRegister<Scalar> = state_after(&script);
        let replicas: Vec<MvRegister<Scalar>> = writes.iter().map(|&w| {
            let mut r = base.clone();
            r.set(ActorId::new(1_000 + w), Scalar::UInt(w));
            r
        }).collect();
        let mut merged = replicas.into_iter().fold(MvRegister::new(), MvRegister::merge);
        let seen: BTreeSet<u64> = merged.values().map(|v| match v { Scalar::UInt(u) => *u, _ => unreachable!() }).collect();
        prop_assert_eq!(&seen, &writes);
        merged.set(PHONE, Scalar::from("resolved"));
        prop_assert_eq!(merged.values().collect::<Vec<_>>(), [&Scalar::from("resolved")]);
    }

    #[test]
    fn lww_register_a_causally_later_write_wins_whatever_the_clocks(
        times in prop::collection::vec(0u64..1_000_000, 1..10),
    ) {
        // Writers take turns, each after syncing the previous state; their clocks are random.
        let mut reg = LwwRegister::new();
        for (i, &t) in times.iter().enumerate() {
            let mut on_device = reg.clone();
            on_device.set(ActorId::new(i as u64 % 3), i, &mut Hlc::new(), &ManualClock::new(t));
            reg.merge_from(on_device);
            prop_assert_eq!(reg.get(), Some(&i));
        }
    }

    #[test]
    fn enable_wins_over_a_concurrent_disable(script in checker::script::<EnableWinsFlag>(3, 20)) {
        let base: EnableWinsFlag = state_after(&script);
        let mut off = base.clone();
        off.disable();
        let mut on = base;
        on.enable(LAPTOP);
        prop_assert!(off.merge(on).is_enabled());
    }

    #[test]
    fn or_map_update_wins_over_a_concurrent_remove(script in checker::script::<OrMap<u64, OrSet<String>>>(3, 20), key in 0u64..3) {
        let base: OrMap<u64, OrSet<String>> = state_after(&script);
        let mut remover = base.clone();
        remover.remove(&key);
        let mut updater = base.clone();
        updater.update(LAPTOP, key, |s| s.insert(LAPTOP, "new".to_string()));
        let merged = remover.clone().merge(updater);
        prop_assert!(merged.get(&key).is_some_and(|s| s.contains(&"new".to_string())));
        // And a remove that saw every update wins over the old state.
        prop_assert!(!remover.merge(base).contains_key(&key));
    }

    #[test]
    fn or_map_a_fresh_nested_insert_survives_any_merge_with_a_state_that_did_not_see_it(
        script in checker::script::<OrMap<u64, OrSet<String>>>(3, 30),
        pick in any::<prop::sample::Index>(),
        key in 0u64..3,
        remove_first in any::<bool>(),
    ) {
        let (finals, history) = checker::run::<OrMap<u64, OrSet<String>>>(&script);
        let mut x = finals[0].clone();
        let actor = Env::new(0).actor; // replica 0's own actor
        if remove_first {
            x.remove(&key);
        }
        x.update(actor, key, |s| s.insert(actor, "fresh".to_string()));
        let y = history[pick.index(history.len())].clone();
        for merged in [x.clone().merge(y.clone()), y.merge(x)] {
            prop_assert!(merged.get(&key).is_some_and(|s| s.contains(&"fresh".to_string())));
        }
    }

    #[test]
    fn max_and_min_keep_the_extremes(values in prop::collection::vec(any::<i64>(), 1..20)) {
        let max = values.iter().map(|&v| Max::of(v)).fold(Max::new(), Max::merge);
        let min = values.iter().rev().map(|&v| Min::of(v)).fold(Min::new(), Min::merge);
        prop_assert_eq!(max.get(), values.iter().max());
        prop_assert_eq!(min.get(), values.iter().min());
    }
}

#[test]
fn value_merge_of_another_type_is_refused_and_changes_nothing() {
    let mut counter = GCounter::new();
    counter.increment(PHONE, 2).unwrap();
    let mut stored = Value::from(counter);
    let before = stored.clone();
    let err = stored
        .merge(Value::from(OrSet::<String>::new()))
        .unwrap_err();
    assert_eq!(
        err,
        Error::TypeMismatch {
            stored: ValueKind::GCounter,
            given: ValueKind::OrSet
        }
    );
    assert_eq!(stored, before);
    assert_eq!(
        err.to_string(),
        "type mismatch: the stored value is a g_counter, the given value is a or_set"
    );
}

#[test]
fn typed_conversion_refuses_the_wrong_type_and_the_wrong_leaf() {
    let value = Value::from(PnCounter::new());
    assert!(matches!(
        GCounter::try_from(value),
        Err(Error::TypeMismatch { .. })
    ));
    let mut ints = OrSet::new();
    ints.insert(PHONE, 3i64);
    assert!(matches!(
        OrSet::<String>::try_from(Value::from(ints)),
        Err(Error::ScalarMismatch { .. })
    ));
}

#[test]
fn fields_of_different_types_under_one_key_coexist() {
    let mut map = haze_crdt::ValueMap::new();
    let env = Env::new(0);
    for kind in [ValueKind::PnCounter, ValueKind::OrSet] {
        map.update(env.actor, haze_crdt::Field::new("k", kind), |_| {
            Ok::<(), Error>(())
        })
        .unwrap();
    }
    assert_eq!(map.len(), 2);
    let value = Value::OrMap(map);
    assert_eq!(Value::decode(&value.encode()).unwrap(), value);
}

#[test]
fn a_value_map_refuses_a_field_of_the_wrong_type_and_nesting_past_the_limit() {
    let actor = Env::new(0).actor;
    let mut map = haze_crdt::ValueMap::new();
    let field = haze_crdt::Field::new("k", ValueKind::GCounter);
    let err = map.update(actor, field, |v| {
        *v = Value::bottom(ValueKind::Flag);
        Ok::<(), Error>(())
    });
    assert_eq!(
        err,
        Err(Error::TypeMismatch {
            stored: ValueKind::GCounter,
            given: ValueKind::Flag
        })
    );
    assert!(map.is_empty());

    // Build maps nested exactly MAX_DEPTH levels: they encode and decode.
    let max = haze_crdt::encode::MAX_DEPTH;
    let nested = |levels: usize| {
        let mut value = Value::bottom(ValueKind::OrMap);
        for _ in 1..levels {
            let mut outer = haze_crdt::ValueMap::new();
            outer
                .update(actor, haze_crdt::Field::new("in", ValueKind::OrMap), |v| {
                    *v = value.clone();
                    Ok::<(), Error>(())
                })
                .map(|_| Value::OrMap(outer))
                .map(|v| value = v)?;
        }
        Ok::<Value, Error>(value)
    };
    let deepest = nested(max).unwrap();
    assert_eq!(deepest.depth(), max);
    assert_eq!(Value::decode(&deepest.encode()).unwrap(), deepest);
    let json = serde_json::to_string(&deepest).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), deepest);
    // One level more is refused when building it.
    assert_eq!(nested(max + 1), Err(Error::TooDeep(max)));
}

#[test]
fn scripts_of_length_zero_are_bottom() {
    let script: Script<u64> = Script {
        replicas: 2,
        steps: vec![Step::Sync { from: 0, to: 1 }],
    };
    assert_eq!(state_after::<GCounter>(&script), GCounter::new());
}

#[test]
fn a_refused_field_update_leaves_the_map_as_it_was() {
    let count = |by: i64| {
        move |v: &mut Value| match v {
            Value::PnCounter(c) => c.add(PHONE, by),
            other => panic!("a counter field holds {other:?}"),
        }
    };
    let counter = haze_crdt::Field::new("n", ValueKind::PnCounter);
    let mut map = haze_crdt::ValueMap::new();
    map.update(PHONE, counter.clone(), count(5)).unwrap();
    let before = map.clone();
    // Changed, then refused: nothing of the change stays (nor the causal counter it drew).
    let refused = map.update(PHONE, counter.clone(), |v| {
        count(1)(v)?;
        Err::<(), Error>(Error::CounterOverflow)
    });
    assert_eq!(refused, Err(Error::CounterOverflow));
    assert_eq!(map, before);
    // Left as another type: refused.
    let retyped = map.update(PHONE, counter.clone(), |v| {
        *v = Value::bottom(ValueKind::OrSet);
        Ok::<(), Error>(())
    });
    assert!(matches!(retyped, Err(Error::TypeMismatch { .. })));
    assert_eq!(map, before);
    // A field absent stays absent.
    let absent = haze_crdt::Field::new("m", ValueKind::PnCounter);
    let refused = map.update(PHONE, absent, |_| Err::<(), Error>(Error::CounterOverflow));
    assert_eq!(refused, Err(Error::CounterOverflow));
    assert_eq!(map, before);
    // And an accepted update still counts.
    map.update(PHONE, counter.clone(), count(2)).unwrap();
    assert_eq!(
        map.get(&counter),
        Some(&Value::PnCounter({
            let mut c = PnCounter::new();
            c.add(PHONE, 7).unwrap();
            c
        }))
    );
}
