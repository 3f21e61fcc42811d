//! The actor id rule (Riak's kv679): a replica created, restored or recovered takes the fresh
//! id it is offered; one whose state is the newest it wrote keeps its own.

use haze_crdt::{ActorId, OrSet, Scalar};
use haze_device::{Error, Loaded, MemStore, Replica, Save, Store};

fn open(store: MemStore, fresh: u64) -> Replica<MemStore> {
    Replica::open(store, ActorId::new(fresh)).unwrap()
}

#[test]
fn a_new_replica_takes_the_fresh_actor_and_keeps_it_while_its_state_is_the_newest() {
    let mut r = open(MemStore::new(), 1);
    assert_eq!(r.actor(), ActorId::new(1));
    r.counter_add("c", 1).unwrap();
    let r = open(r.into_store(), 2);
    assert_eq!(r.actor(), ActorId::new(1));
    let r = open(r.into_store(), 3);
    assert_eq!((r.actor(), r.len()), (ActorId::new(1), 1));
}

#[test]
fn a_restored_older_copy_takes_a_fresh_actor() {
    let mut r = open(MemStore::new(), 1);
    r.counter_add("c", 1).unwrap();
    let backup = r.store().saved().cloned();
    r.counter_add("c", 1).unwrap(); // after the backup: actor 1's second increment is out there
    let mut store = r.into_store();
    store.restore(backup);
    let restored = open(store, 2);
    assert_eq!(
        restored.actor(),
        ActorId::new(2),
        "an older copy must not reuse actor 1's dots"
    );
    // Its save count moved past the witness: reopening keeps the new actor.
    let again = open(restored.into_store(), 3);
    assert_eq!(again.actor(), ActorId::new(2));
}

#[test]
fn a_lost_state_starts_afresh() {
    let mut r = open(MemStore::new(), 1);
    r.counter_add("c", 1).unwrap();
    let mut store = r.into_store();
    store.lose();
    let lost = open(store, 2);
    assert_eq!((lost.actor(), lost.len()), (ActorId::new(2), 0));
}

/// A store that finds values but no metadata it can vouch for.
#[derive(Debug)]
struct Recovered(MemStore);

impl Store for Recovered {
    type Error = <MemStore as Store>::Error;

    fn load(&mut self) -> Result<Loaded, Self::Error> {
        let mut loaded = self.0.load()?;
        if let Some(saved) = &mut loaded.saved {
            saved.meta = None;
        }
        Ok(loaded)
    }

    fn save(&mut self, save: &Save<'_>) -> Result<(), Self::Error> {
        self.0.save(save)
    }
}

#[test]
fn a_recovered_state_keeps_its_values_and_takes_a_fresh_actor() {
    let mut r = open(MemStore::new(), 1);
    r.counter_add("c", 4).unwrap();
    let recovered = Replica::open(Recovered(r.into_store()), ActorId::new(2)).unwrap();
    assert_eq!(recovered.actor(), ActorId::new(2));
    assert_eq!(
        recovered
            .get_typed::<haze_crdt::PnCounter>("c")
            .unwrap()
            .unwrap()
            .value(),
        4
    );
}

#[test]
fn a_store_that_cannot_load_or_save_fails_the_open() {
    let mut store = MemStore::new();
    store.set_failing(true);
    let err = Replica::open(store, ActorId::new(1)).unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err}");
}

/// The kv679 story itself: with the old actor, the restored replica's next addition would
/// reuse a dot another replica saw removed, and vanish.
#[test]
fn an_addition_after_a_restore_does_not_vanish() {
    let mut phone = open(MemStore::new(), 1);
    phone.set_add("s", [Scalar::from("x")]).unwrap();
    let backup = phone.store().saved().cloned();
    phone.set_add("s", [Scalar::from("y")]).unwrap(); // dot (1, 2)
    let mut laptop = open(MemStore::new(), 9);
    laptop.merge("s", phone.get("s").unwrap().clone()).unwrap();
    laptop.set_remove("s", [Scalar::from("y")]).unwrap(); // (1, 2) seen and removed

    let mut store = phone.into_store();
    store.restore(backup);
    let mut phone = open(store, 2);
    phone.set_add("s", [Scalar::from("z")]).unwrap();
    laptop.merge("s", phone.get("s").unwrap().clone()).unwrap();
    let set: OrSet<Scalar> = laptop.get_typed("s").unwrap().unwrap();
    assert!(set.contains(&Scalar::from("z")), "{set:?}");
}
