//! Every typed edit, applied to a replica in memory: what it does, what it refuses, and that
//! it is saved before it returns.

use haze_crdt::{
    ActorId, Dot, EnableWinsFlag, Field, GCounter, LwwRegister, Max, Min, MvRegister, OrSet,
    PnCounter, Scalar, TypedValue, Value, ValueKind, ValueMap,
};
use haze_device::{Edit, Error, MemStore, Replica};

pub fn replica(actor: u64) -> Replica<MemStore> {
    Replica::open(MemStore::new(), ActorId::new(actor)).unwrap()
}

fn get<T: TypedValue>(r: &Replica<MemStore>, key: &str) -> T {
    r.get_typed(key).unwrap().expect("the key is held")
}

fn uint(n: u64) -> Scalar {
    Scalar::UInt(n)
}

/// Reopens `r` from its store, with another fresh actor on offer.
fn reopen(r: Replica<MemStore>) -> Replica<MemStore> {
    Replica::open(r.into_store(), ActorId::new(0xdead)).unwrap()
}

#[test]
fn counters_add_and_subtract_per_actor() {
    let mut r = replica(1);
    r.apply("c", Edit::CounterAdd(5), 0).unwrap();
    let c = r.counter_add("c", -7).unwrap();
    assert_eq!(c.value(), -2);
    assert_eq!(c.increments().count_of(ActorId::new(1)), 5);
    r.apply("g", Edit::GCounterAdd(3), 0).unwrap();
    r.apply("g", Edit::GCounterAdd(4), 0).unwrap();
    assert_eq!(get::<GCounter>(&r, "g").value(), 7);
}

#[test]
fn a_counter_overflow_is_refused_and_changes_nothing() {
    let mut r = replica(1);
    r.apply("g", Edit::GCounterAdd(u64::MAX), 0).unwrap();
    let err = r.apply("g", Edit::GCounterAdd(1), 0).unwrap_err();
    assert_eq!(err, Error::Crdt(haze_crdt::Error::CounterOverflow));
    assert_eq!(get::<GCounter>(&r, "g").value(), u128::from(u64::MAX));
}

#[test]
fn sets_add_remove_and_clear_and_a_concurrent_add_wins() {
    let mut phone = replica(1);
    phone.set_add("s", [uint(1), uint(2), uint(3)]).unwrap();
    phone.set_remove("s", [uint(2)]).unwrap();
    let members: Vec<_> = get::<OrSet<Scalar>>(&phone, "s").iter().cloned().collect();
    assert_eq!(members, [uint(1), uint(3)]);

    let mut laptop = replica(2);
    laptop.merge("s", phone.get("s").unwrap().clone()).unwrap();
    laptop.set_add("s", [uint(1)]).unwrap(); // concurrent with the phone's clear
    phone.apply("s", Edit::SetClear, 0).unwrap();
    assert!(get::<OrSet<Scalar>>(&phone, "s").is_empty());
    phone.merge("s", laptop.get("s").unwrap().clone()).unwrap();
    let members: Vec<_> = get::<OrSet<Scalar>>(&phone, "s").iter().cloned().collect();
    assert_eq!(
        members,
        [uint(1)],
        "the laptop's add was concurrent: it wins"
    );
}

#[test]
fn a_register_write_after_seeing_another_wins_whatever_the_clocks_say() {
    let (mut fast, mut slow) = (replica(1), replica(2));
    let first = fast.register_set("r", "fast", 1_000_000).unwrap();
    slow.merge("r", fast.get("r").unwrap().clone()).unwrap();
    let second = slow.register_set("r", "slow", 5).unwrap(); // its clock is far behind
    assert!(second.stamp() > first.stamp());
    assert_eq!(second.get(), Some(&Scalar::from("slow")));
    // Concurrent writes: time, then actor, decide; both replicas agree after merging.
    let (mut a, mut b) = (replica(3), replica(4));
    a.register_set("r", "a", 10).unwrap();
    b.register_set("r", "b", 10).unwrap();
    let a_state = a.get("r").unwrap().clone();
    a.merge("r", b.get("r").unwrap().clone()).unwrap();
    b.merge("r", a_state).unwrap();
    assert_eq!(a.get("r"), b.get("r"));
    let r: LwwRegister<Scalar> = get(&a, "r");
    assert_eq!(
        r.get(),
        Some(&Scalar::from("b")),
        "equal times: the greater actor"
    );
}

#[test]
fn a_multi_value_register_keeps_concurrent_writes_until_one_has_seen_them() {
    let (mut a, mut b) = (replica(1), replica(2));
    a.apply("v", Edit::MvRegisterSet(uint(1)), 0).unwrap();
    b.apply("v", Edit::MvRegisterSet(uint(2)), 0).unwrap();
    a.merge("v", b.get("v").unwrap().clone()).unwrap();
    let both: Vec<_> = get::<MvRegister<Scalar>>(&a, "v")
        .values()
        .cloned()
        .collect();
    assert_eq!(both, [uint(1), uint(2)]);
    a.apply("v", Edit::MvRegisterSet(uint(3)), 0).unwrap();
    let one: Vec<_> = get::<MvRegister<Scalar>>(&a, "v")
        .values()
        .cloned()
        .collect();
    assert_eq!(one, [uint(3)]);
}

#[test]
fn a_flag_enables_disables_and_a_concurrent_enable_wins() {
    let (mut a, mut b) = (replica(1), replica(2));
    a.apply("f", Edit::FlagEnable, 0).unwrap();
    b.merge("f", a.get("f").unwrap().clone()).unwrap();
    b.apply("f", Edit::FlagDisable, 0).unwrap();
    assert!(!get::<EnableWinsFlag>(&b, "f").is_enabled());
    a.apply("f", Edit::FlagEnable, 0).unwrap(); // concurrent with b's disable
    b.merge("f", a.get("f").unwrap().clone()).unwrap();
    assert!(get::<EnableWinsFlag>(&b, "f").is_enabled());
}

#[test]
fn max_and_min_keep_the_extremes() {
    let mut r = replica(1);
    for n in [5, 9, 2] {
        r.apply("x", Edit::MaxSet(uint(n)), 0).unwrap();
        r.apply("n", Edit::MinSet(uint(n)), 0).unwrap();
    }
    assert_eq!(get::<Max<Scalar>>(&r, "x").get(), Some(&uint(9)));
    assert_eq!(get::<Min<Scalar>>(&r, "n").get(), Some(&uint(2)));
}

fn map_field<'a>(map: &'a ValueMap, key: &str, kind: ValueKind) -> Option<&'a Value> {
    map.get(&Field::new(key, kind))
}

#[test]
fn maps_edit_nested_fields_of_every_type_each_named_by_key_and_type() {
    let mut r = replica(1);
    let edits = [
        Edit::map_update("n", Edit::CounterAdd(2)),
        Edit::map_update("n", Edit::SetAdd(vec![uint(1)])), // another field: same key, a set
        Edit::map_update("done", Edit::FlagEnable),
        Edit::map_update("title", Edit::RegisterSet("milk".into())),
        Edit::map_update("votes", Edit::MvRegisterSet(uint(4))),
        Edit::map_update("best", Edit::MaxSet(uint(8))),
        Edit::map_update("sub", Edit::map_update("tags", Edit::SetAdd(vec![uint(7)]))),
    ];
    for edit in edits {
        r.apply("m", edit, 100).unwrap();
    }
    let Value::OrMap(map) = r.get("m").unwrap().clone() else {
        panic!("a map")
    };
    assert_eq!(map.len(), 7);
    let Some(Value::PnCounter(n)) = map_field(&map, "n", ValueKind::PnCounter) else {
        panic!("a counter field")
    };
    assert_eq!(n.value(), 2);
    assert!(
        matches!(map_field(&map, "done", ValueKind::Flag), Some(Value::Flag(f)) if f.is_enabled())
    );
    let Some(Value::OrMap(sub)) = map_field(&map, "sub", ValueKind::OrMap) else {
        panic!("a nested map")
    };
    assert!(
        matches!(map_field(sub, "tags", ValueKind::OrSet), Some(Value::OrSet(s)) if s.contains(&uint(7)))
    );

    r.apply("m", Edit::MapRemove(Field::new("done", ValueKind::Flag)), 0)
        .unwrap();
    let Value::OrMap(map) = r.get("m").unwrap() else {
        panic!("a map")
    };
    assert!(map_field(map, "done", ValueKind::Flag).is_none());
    assert_eq!(map.len(), 6);
}

#[test]
fn a_field_updated_concurrently_with_its_removal_survives() {
    let (mut a, mut b) = (replica(1), replica(2));
    a.apply("m", Edit::map_update("n", Edit::CounterAdd(1)), 0)
        .unwrap();
    b.merge("m", a.get("m").unwrap().clone()).unwrap();
    b.apply(
        "m",
        Edit::MapRemove(Field::new("n", ValueKind::PnCounter)),
        0,
    )
    .unwrap();
    a.apply("m", Edit::map_update("n", Edit::CounterAdd(1)), 0)
        .unwrap();
    b.merge("m", a.get("m").unwrap().clone()).unwrap();
    let Value::OrMap(map) = b.get("m").unwrap() else {
        panic!("a map")
    };
    assert!(
        map_field(map, "n", ValueKind::PnCounter).is_some(),
        "update wins"
    );
}

#[test]
fn maps_nested_too_deep_are_refused() {
    let mut r = replica(1);
    let mut edit = Edit::CounterAdd(1);
    for depth in 0.. {
        edit = Edit::map_update(Scalar::String(format!("level{depth}")), edit);
        if let Err(e) = r.apply("deep", edit.clone(), 0) {
            assert_eq!(
                e,
                Error::Crdt(haze_crdt::Error::TooDeep(haze_crdt::encode::MAX_DEPTH))
            );
            assert!(r.get("deep").is_none(), "nothing changed");
            return;
        }
        r = replica(1);
    }
}

#[test]
fn an_edit_of_another_type_is_refused_and_changes_nothing() {
    let mut r = replica(1);
    r.counter_add("c", 1).unwrap();
    let before = r.get("c").cloned();
    let err = r.set_add("c", [uint(1)]).unwrap_err();
    assert_eq!(
        err,
        Error::WrongType {
            expected: ValueKind::OrSet,
            found: ValueKind::PnCounter
        }
    );
    assert_eq!(r.get("c").cloned(), before);
    let err = r
        .merge("c", Value::from(OrSet::<Scalar>::new()))
        .unwrap_err();
    assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");
}

#[test]
fn a_state_claiming_this_actor_is_out_of_dots_is_refused_not_a_panic() {
    // A state merged from elsewhere says actor 1 made 2^63 - 1 additions: the next one would
    // mint a dot past what decodes (found in review of haze-client's replica).
    let mut worn = OrSet::<Scalar>::new();
    haze_crdt::Crdt::advance_causal_counter(&mut worn, ActorId::new(1), Dot::MAX_COUNTER);
    let mut r = replica(1);
    r.merge("s", Value::OrSet(worn.clone())).unwrap();
    let err = r.set_add("s", [uint(1)]).unwrap_err();
    assert_eq!(err, Error::Crdt(haze_crdt::Error::CounterOverflow));
    assert_eq!(
        r.get("s"),
        Some(&Value::OrSet(worn.clone())),
        "nothing changed"
    );
    // The same claim nested in a map's field.
    let mut map = ValueMap::new();
    map.update(ActorId::new(2), Field::new("s", ValueKind::OrSet), |v| {
        *v = Value::OrSet(worn);
        Ok::<(), haze_crdt::Error>(())
    })
    .unwrap();
    r.merge("m", Value::OrMap(map)).unwrap();
    let edit = Edit::map_update("s", Edit::SetAdd(vec![uint(1)]));
    let err = r.apply("m", edit, 0).unwrap_err();
    assert_eq!(err, Error::Crdt(haze_crdt::Error::CounterOverflow));
    // Other actors and other keys still edit.
    r.counter_add("c", 1).unwrap();
    replica(2).set_add("s", [uint(1)]).unwrap();
}

#[test]
fn every_edit_is_saved_before_it_returns() {
    let mut r = replica(1);
    r.counter_add("c", 3).unwrap();
    r.apply("m", Edit::map_update("t", Edit::RegisterSet(uint(1))), 50)
        .unwrap();
    r.apply("f", Edit::FlagEnable, 0).unwrap();
    let held: Vec<_> = r.keys().map(|k| (k.to_vec(), r.get(k).cloned())).collect();
    let r = reopen(r);
    let again: Vec<_> = r.keys().map(|k| (k.to_vec(), r.get(k).cloned())).collect();
    assert_eq!(held, again);
    assert_eq!(
        r.actor(),
        ActorId::new(1),
        "the newest state keeps its actor"
    );
}

#[test]
fn an_edit_whose_save_fails_is_undone() {
    let mut r = replica(1);
    r.counter_add("c", 1).unwrap();
    r.store_mut().set_failing(true);
    let err = r.counter_add("c", 1).unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err}");
    assert!(r.set_add("s", [uint(1)]).is_err());
    assert_eq!(
        get::<PnCounter>(&r, "c").value(),
        1,
        "the failed edit is undone"
    );
    assert!(
        r.get("s").is_none(),
        "a key created by a failed edit is gone"
    );
    r.store_mut().set_failing(false);
    r.counter_add("c", 1).unwrap();
    let r = reopen(r);
    assert_eq!(get::<PnCounter>(&r, "c").value(), 2);
}
