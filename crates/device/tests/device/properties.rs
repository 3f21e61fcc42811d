//! Two or three replicas in memory and a store: random offline edits of every type (and the
//! store's own, as another client's online), device-to-device merges, clocks that jump,
//! restarts (saved or crashed), backups restored (the kv679 case), and syncs in random order
//! whose answers come back in random order, with edits made between the steps, cut at a random
//! step (before the store got a message, or after it merged and before the answer came).
//!
//! After every step each place's every state shows exactly the edits the model says it has
//! seen (model.rs), and no state moved down except by a crash or a restore. After healing
//! (everyone fetches what it lacks and syncs, twice), every replica equals the store, shows
//! every surviving edit, and, when no edit was lost to a restore, equals the join of every
//! state any edit produced: a replica that saw every edit.

use std::collections::{BTreeMap, BTreeSet};

use haze_crdt::{ActorId, LwwRegister, Scalar, TypedValue, Value};
use haze_device::sync::{Message, Outgoing, Session, Step};
use haze_device::{Edit, MemStore, Replica, Saved};
use proptest::prelude::*;

use crate::model::{Model, Op, Place, Seen, show};
use crate::script::{BULK_KEYS, Choice, KEYS, Plan, StepKind, concrete, step};
use crate::server::Server;

/// `older` is below `newer` in the lattice.
fn below(older: &Value, newer: &Value) -> bool {
    let mut merged = newer.clone();
    merged.merge(older.clone()).is_ok() && merged == *newer
}

struct World {
    server: Server,
    devices: Vec<Option<Replica<MemStore>>>,
    now: Vec<u64>,
    model: Model,
    /// The join of every state an edit produced, by key.
    reference: BTreeMap<Vec<u8>, Value>,
    backups: Vec<Option<(Option<Saved>, Seen)>>,
    next_actor: u64,
}

impl World {
    fn device(&self, who: usize) -> &Replica<MemStore> {
        self.devices[who]
            .as_ref()
            .expect("a device is always open between steps")
    }

    fn device_mut(&mut self, who: usize) -> &mut Replica<MemStore> {
        self.devices[who]
            .as_mut()
            .expect("a device is always open between steps")
    }

    fn state(&self, place: Place, key: &[u8]) -> Option<Value> {
        match place {
            Place::Replica(who) => self.device(who).get(key).cloned(),
            Place::Store => self.server.get(key),
        }
    }

    fn places(&self) -> Vec<Place> {
        let mut places: Vec<Place> = (0..self.devices.len()).map(Place::Replica).collect();
        places.push(Place::Store);
        places
    }

    /// Applies an edit at `place` and records it.
    fn edit(&mut self, place: Place, key: &str, choice: Choice) -> Result<(), TestCaseError> {
        let (edit, mut op) = concrete(key, choice);
        let saw: Vec<_> = match &op {
            Op::Write { .. } => self.writes_seen(place, key.as_bytes()),
            _ => Vec::new(),
        };
        let state = match place {
            Place::Replica(who) => {
                let now = self.now[who];
                let saves = self.device(who).meta().saves;
                let state = self.device_mut(who).apply(key, edit, now).unwrap().clone();
                prop_assert!(self.device(who).meta().saves > saves, "an edit saves");
                state
            }
            Place::Store => self.server.replica.apply(key, edit, 5_000).unwrap().clone(),
        };
        if let Op::Write { stamp, .. } = &mut op {
            *stamp = LwwRegister::<Scalar>::try_from_value(state.clone())
                .unwrap()
                .stamp()
                .expect("a register just written has a stamp");
            for seen in saw {
                prop_assert!(*stamp > seen, "a write after seeing {seen:?} got {stamp:?}");
            }
        }
        self.model.record(place, key.as_bytes(), op);
        if let Place::Replica(who) = place {
            self.model.saved(who);
        }
        let joined = self.reference.entry(key.as_bytes().to_vec());
        joined
            .or_insert_with(|| Value::bottom(state.kind()))
            .merge(state)
            .unwrap();
        Ok(())
    }

    fn writes_seen(&self, place: Place, key: &[u8]) -> Vec<haze_crdt::Stamp> {
        let state = self.state(place, key);
        state
            .and_then(|v| LwwRegister::<Scalar>::try_from_value(v).ok()?.stamp())
            .into_iter()
            .collect()
    }

    /// `who` merges a state of `key` holding `edits`, saving if it changed.
    fn merged(&mut self, who: usize, key: &[u8], value: Value, edits: &BTreeSet<usize>) {
        self.device_mut(who).merge(key, value).unwrap();
        self.model.merge(Place::Replica(who), key, edits);
        if !self.device(who).has_unsaved() {
            self.model.saved(who);
        }
    }

    /// Reopens `who` from its store, offering a fresh actor; returns the offer.
    fn reopen(&mut self, who: usize) -> u64 {
        let store = self.devices[who].take().unwrap().into_store();
        self.next_actor += 1;
        let replica = Replica::open(store, ActorId::new(self.next_actor)).unwrap();
        self.devices[who] = Some(replica);
        self.next_actor
    }

    /// Queues a step's messages with what each merge message holds; returns the report if done.
    fn queue(
        &self,
        who: usize,
        step: Step,
        flight: &mut Vec<(Outgoing, Seen)>,
    ) -> Option<haze_device::sync::Report> {
        match step {
            Step::Done(report) => Some(report),
            Step::Send(out) => {
                let seen = self.model.seen(Place::Replica(who));
                for o in out {
                    let mut holds = Seen::new();
                    if let Message::Merge { items } = &o.message {
                        for (key, _) in items {
                            holds.insert(key.clone(), seen[key].clone());
                        }
                    }
                    flight.push((o, holds));
                }
                None
            }
        }
    }

    fn sync(&mut self, who: usize, plan: &Plan) -> Result<(), TestCaseError> {
        let me = Place::Replica(who);
        let mut sync: Session = self.device(who).sync(self.now[who]);
        let mut flight = Vec::new();
        let step = sync.start(self.device_mut(who)).unwrap();
        let mut done = self.queue(who, step, &mut flight);
        let (mut n, mut edited) = (0, false);
        while done.is_none() {
            for &(at, key, choice) in &plan.edits {
                if at == n {
                    self.edit(me, KEYS[key], choice)?;
                    edited = true;
                }
            }
            if plan.cut == Some((n, false)) {
                return self.interrupted(who, plan.crash);
            }
            prop_assert!(!flight.is_empty(), "a sync waits with nothing in flight");
            let pick = plan
                .order
                .get(n % plan.order.len().max(1))
                .copied()
                .unwrap_or(0);
            let (out, holds) = flight.remove(usize::from(pick) % flight.len());
            let answer = self.server.answer(&out.message);
            let mut answered = Vec::new();
            for (key, edits) in &holds {
                self.model.merge(Place::Store, key, edits);
                answered.push((key.clone(), self.model.seen(Place::Store)[key].clone()));
            }
            if plan.cut == Some((n, true)) {
                return self.interrupted(who, plan.crash);
            }
            let step = sync.receive(self.device_mut(who), out.id, answer).unwrap();
            for (key, edits) in &answered {
                self.model.merge(me, key, edits);
            }
            done = self.queue(who, step, &mut flight);
            n += 1;
        }
        let report = done.expect("the loop ends when done");
        prop_assert!(report.failed.is_empty(), "{report:?}");
        self.model.saved(who);
        if !edited {
            for key in sync.keys() {
                let (mine, theirs) = (self.state(me, key), self.server.get(key));
                prop_assert_eq!(mine, theirs, "a complete sync leaves both equal");
            }
        }
        Ok(())
    }

    fn interrupted(&mut self, who: usize, crash: bool) -> Result<(), TestCaseError> {
        let actor = self.device(who).actor();
        if crash {
            self.reopen(who);
            let store = self.model.durable(who);
            self.model.reopened(who, store);
            prop_assert_eq!(self.device(who).actor(), actor, "a crash keeps the actor");
        } else {
            self.device_mut(who).save().unwrap();
            self.model.saved(who);
        }
        Ok(())
    }

    fn run(&mut self, step: &StepKind) -> Result<(), TestCaseError> {
        match *step {
            StepKind::Edit { who, key, choice } => {
                self.edit(Place::Replica(who), KEYS[key], choice)?;
            }
            StepKind::Online { key, choice } => self.edit(Place::Store, KEYS[key], choice)?,
            StepKind::Sync { who, ref plan } => self.sync(who, plan)?,
            StepKind::Fetch { who, key } => {
                let key = KEYS[key].as_bytes();
                if let Some(state) = self.server.get(key) {
                    let edits = self.model.seen(Place::Store)[key].clone();
                    self.merged(who, key, state, &edits);
                }
            }
            StepKind::Share { from, to, key } => {
                let key = KEYS[key].as_bytes();
                if let Some(state) = self.device(from).get(key).cloned() {
                    let edits = self.model.seen(Place::Replica(from))[key].clone();
                    self.merged(to, key, state, &edits);
                }
            }
            StepKind::Clock { who, now } => self.now[who] = now,
            StepKind::Restart { who, crash } => self.interrupted(who, crash)?,
            StepKind::Backup { who } => {
                let saved = self.device(who).store().saved().cloned();
                self.backups[who] = Some((saved, self.model.durable(who)));
            }
            StepKind::Restore { who } => {
                let Some((saved, seen)) = self.backups[who].clone() else {
                    return Ok(());
                };
                let (actor, saves) = (self.device(who).actor(), self.device(who).meta().saves);
                let older = saved
                    .as_ref()
                    .and_then(|s| s.meta.as_ref())
                    .map(|m| m.saves);
                self.device_mut(who).store_mut().restore(saved);
                let offered = self.reopen(who);
                let expect = if older < Some(saves) {
                    ActorId::new(offered)
                } else {
                    actor
                };
                prop_assert_eq!(
                    self.device(who).actor(),
                    expect,
                    "kv679: an older copy is a new actor"
                );
                self.model.reopened(who, seen);
            }
            StepKind::Bulk { who } => {
                for i in 0..BULK_KEYS {
                    let key = format!("b{i:03}");
                    let now = self.now[who];
                    let state = self
                        .device_mut(who)
                        .apply(&key, Edit::CounterAdd(1), now)
                        .unwrap()
                        .clone();
                    self.model
                        .record(Place::Replica(who), key.as_bytes(), Op::Count(1));
                    let joined = self.reference.entry(key.into_bytes());
                    joined
                        .or_insert_with(|| Value::bottom(state.kind()))
                        .merge(state)
                        .unwrap();
                }
                self.model.saved(who);
            }
        }
        Ok(())
    }

    /// Takes `step` and checks every place's every state against the model.
    fn step(&mut self, step: &StepKind) -> Result<(), TestCaseError> {
        let before: Vec<BTreeMap<Vec<u8>, Value>> = (self.places().into_iter())
            .map(|p| {
                (self.model.keys(p).into_iter())
                    .filter_map(|k| Some((k.clone(), self.state(p, &k)?)))
                    .collect()
            })
            .collect();
        self.run(step)?;
        let reverted = match *step {
            StepKind::Restore { who } | StepKind::Restart { who, crash: true } => Some(who),
            StepKind::Sync { who, ref plan } if plan.crash && plan.cut.is_some() => Some(who),
            _ => None,
        };
        for (place, before) in self.places().into_iter().zip(&before) {
            if let Place::Replica(who) = place {
                let held: Vec<Vec<u8>> = self.device(who).keys().map(<[u8]>::to_vec).collect();
                prop_assert_eq!(
                    held,
                    self.model.keys(place),
                    "{:?}'s keys after {:?}",
                    place,
                    step
                );
            }
            for key in self.model.keys(place) {
                let now = self.state(place, &key);
                if let Some(old) = before.get(&key)
                    && reverted
                        != Some(match place {
                            Place::Replica(who) => who,
                            Place::Store => usize::MAX,
                        })
                {
                    let up = now.as_ref().is_some_and(|now| below(old, now));
                    prop_assert!(up, "{place:?} moved {key:?} down after {step:?}");
                }
                prop_assert_eq!(
                    now.map(|v| show(&key, &v)),
                    self.model.expected(place, &key),
                    "{:?} at {:?} (right: the model) after {:?}",
                    String::from_utf8_lossy(&key),
                    place,
                    step
                );
            }
        }
        Ok(())
    }

    fn heal(&mut self) -> Result<(), TestCaseError> {
        let complete = Plan {
            order: Vec::new(),
            cut: None,
            edits: Vec::new(),
            crash: false,
        };
        for _ in 0..2 {
            for who in 0..self.devices.len() {
                for (k, key) in KEYS.iter().enumerate() {
                    if self.device(who).get(key).is_none()
                        && self.server.get(key.as_bytes()).is_some()
                    {
                        self.step(&StepKind::Fetch { who, key: k })?;
                    }
                }
                self.step(&StepKind::Sync {
                    who,
                    plan: complete.clone(),
                })?;
            }
        }
        let survivors: BTreeSet<usize> = self
            .model
            .seen(Place::Store)
            .into_values()
            .flatten()
            .collect();
        let lost = self.model.all_ops() > survivors.len();
        for key in self
            .server
            .replica
            .keys()
            .map(<[u8]>::to_vec)
            .collect::<Vec<_>>()
        {
            let stored = self.server.get(&key).unwrap();
            for who in 0..self.devices.len() {
                let state = self.device(who).get(&key).cloned();
                // Bulk keys are not fetched: a replica that never held one may lack it.
                if state.is_some() || key[0] != b'b' {
                    prop_assert_eq!(
                        state.as_ref(),
                        Some(&stored),
                        "replica {} converged on {:?}",
                        who,
                        key
                    );
                }
            }
            if key[0] == b'r'
                && let Some(stamp) = LwwRegister::<Scalar>::try_from_value(stored.clone())
                    .unwrap()
                    .stamp()
            {
                let latest = self
                    .model
                    .winner_is_causally_latest(&key, stamp, &survivors);
                prop_assert!(latest.is_ok(), "{}", latest.unwrap_err());
            }
            if !lost {
                prop_assert_eq!(
                    Some(show(&key, &stored)),
                    Some(self.model.expected_in_the_end(&key))
                );
                prop_assert_eq!(
                    Some(&stored),
                    self.reference.get(&key),
                    "{:?} is the join of every edit",
                    key
                );
            }
        }
        Ok(())
    }
}

fn run(clocks: Vec<u64>, steps: Vec<StepKind>) -> Result<(), TestCaseError> {
    let devices = (0..clocks.len())
        .map(|i| Some(Replica::open(MemStore::new(), ActorId::new(i as u64 + 1)).unwrap()))
        .collect();
    let mut world = World {
        server: Server::new(),
        devices,
        backups: vec![None; clocks.len()],
        now: clocks,
        model: Model::default(),
        reference: BTreeMap::new(),
        next_actor: 100,
    };
    for step in &steps {
        world.step(step)?;
    }
    world.heal()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("HAZE_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128),
        ..ProptestConfig::default()
    })]

    #[test]
    fn replicas_converge_on_every_edit_through_interrupted_syncs(
        (clocks, steps) in (2usize..=3).prop_flat_map(|replicas| (
            prop::collection::vec(0u64..10_000, replicas),
            prop::collection::vec(step(replicas), 1..40),
        )),
    ) {
        run(clocks, steps)?;
    }
}
