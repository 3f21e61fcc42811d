//! Random offline and online edits of every type a replica edits (counters, sets, registers)
//! on 2–4 replicas, device-to-device merges, wall clocks that jump, random sync orders, and
//! syncs whose connection is cut part-way (at any byte of any frame, either way: cut.rs).
//!
//! After every step, every state it touched is checked against a model of which edits each
//! place has seen (model.rs): nothing lost, nothing invented, values as the types' semantics
//! say. No replica moves down; a cut sync leaves each key as some prefix of the exchange would
//! (untouched, merged by the node, or merged both ways); a sync that completes leaves the
//! replica and the store equal. After healing, every place holds every edit ever made.

use std::collections::BTreeMap;
use std::sync::Arc;

use haze_client::{Client, ClientConfig, Error, Replica, Scalar};
use haze_crdt::{ActorId, ManualClock, Value};
use haze_testkit::TestNode;
use proptest::prelude::*;

use crate::cut::{Cut, CutDial};
use crate::harness::{NODE_ACTOR, scratch_dir, start_node};
use crate::model::{Model, Op, Place, Shown, name, show};
use crate::script::{BULK_KEYS, Edit, Step, bulk_key, step};

/// `older` is below `newer` in the lattice: merging it into `newer` changes nothing.
fn below(older: &Value, newer: &Value) -> bool {
    let mut merged = newer.clone();
    merged.merge(older.clone()).is_ok() && merged == *newer
}

/// The node, the replicas and the model of what each has seen.
struct World {
    node: TestNode,
    client: Client,
    devices: Vec<Replica>,
    clocks: Vec<Arc<ManualClock>>,
    model: Model,
    _dir: tempfile::TempDir,
}

impl World {
    fn state(&self, place: Place, key: &[u8]) -> Option<Value> {
        match place {
            Place::Replica(i) => self.devices[i].get(key).cloned(),
            Place::Node => self.node.get(key),
        }
    }

    fn states(&self, place: Place, keys: &[Vec<u8>]) -> BTreeMap<Vec<u8>, Value> {
        (keys.iter())
            .filter_map(|k| Some((k.clone(), self.state(place, k)?)))
            .collect()
    }

    /// Applies `edit` at `place` (a replica offline, or the node) and records it in the model.
    async fn edit(&mut self, place: Place, edit: &Edit) -> Result<(), TestCaseError> {
        let key = edit.key();
        let (device, actor) = match place {
            Place::Replica(i) => {
                let actor = self.devices[i].actor().get();
                (Some(&mut self.devices[i]), actor)
            }
            Place::Node => (None, NODE_ACTOR),
        };
        let client = &self.client;
        let op = match *edit {
            Edit::Count { delta, .. } => {
                match device {
                    Some(d) => d.counter_add(key, delta).map(drop).unwrap(),
                    None => client.counter_add(key, delta).await.map(drop).unwrap(),
                }
                Op::Count { actor, delta }
            }
            Edit::Add { member, .. } => {
                let members = [Scalar::UInt(member)];
                match device {
                    Some(d) => d.set_add(key, members).map(drop).unwrap(),
                    None => client.set_add(key, members).await.map(drop).unwrap(),
                }
                Op::Add { actor, member }
            }
            Edit::Remove { member, .. } => {
                let covers = self.model.adds_of(place, key.as_bytes(), member);
                let members = [Scalar::UInt(member)];
                match device {
                    Some(d) => d.set_remove(key, members).map(drop).unwrap(),
                    None => client.set_remove(key, members).await.map(drop).unwrap(),
                }
                Op::Remove { covers }
            }
            Edit::Write { value, .. } => {
                let saw = self.model.writes(place, key.as_bytes());
                let register = match device {
                    Some(d) => d.register_set(key, Scalar::UInt(value)).unwrap(),
                    None => client.register_set(key, Scalar::UInt(value)).await.unwrap(),
                };
                let stamp = register
                    .stamp()
                    .expect("a register just written has a stamp");
                for (id, seen) in &saw {
                    prop_assert!(
                        stamp > *seen,
                        "{place} wrote {key} at {stamp:?} after seeing write {id} at {seen:?}: a \
                         causally later write must win"
                    );
                }
                let saw = saw.into_keys().collect();
                Op::Write { value, stamp, saw }
            }
        };
        self.model.record(place, key.as_bytes(), op);
        Ok(())
    }

    /// Replica `who` syncs every key it holds; with `cut`, over a connection cut there.
    async fn sync(&mut self, who: usize, cut: Option<Cut>) -> Result<(), TestCaseError> {
        let me = Place::Replica(who);
        let keys = self.model.keys(me);
        let Some(cut) = cut else {
            let synced = self.devices[who].sync(&self.client).await;
            prop_assert!(synced.is_ok(), "a sync failed: {synced:?}");
            for key in &keys {
                self.model.merge(Place::Node, me, key);
                self.model.merge(me, Place::Node, key);
            }
            return self.converged(who, &keys, "a complete sync");
        };
        let (mine, theirs) = (self.states(me, &keys), self.states(Place::Node, &keys));
        let (total, open) = self.node.connections();
        let dial = Arc::new(CutDial::new(cut));
        let config = ClientConfig {
            dial: dial.clone(),
            ..ClientConfig::default()
        };
        let cut_client = Client::lazy(&self.node.addr.to_string(), config);
        let synced = self.devices[who].sync(&cut_client).await;
        drop(cut_client);
        // The node finishes what it received (a merge request that arrived whole commits).
        self.node.settle(total + dial.dials(), open).await;
        match &synced {
            Ok(_) => self.converged(who, &keys, "a sync that succeeded despite the cut")?,
            Err(e) => prop_assert!(
                dial.was_cut() && matches!(e, Error::Connect { .. } | Error::ConnectionLost(_)),
                "a sync cut at {cut:?} failed with {e:?}"
            ),
        }
        // Each key is as a prefix of the exchange leaves it: untouched, merged by the node, or
        // merged both ways. The replica keeps everything it had either way.
        for key in &keys {
            let now = self.state(me, key);
            let kept = now.as_ref().is_some_and(|now| below(&mine[key], now));
            prop_assert!(
                kept,
                "a sync cut at {cut:?} lost local edits of {}: {:?} became {now:?}",
                name(key),
                mine[key]
            );
            let node_merged = self.state(Place::Node, key).as_ref() != theirs.get(key);
            let replica_merged = now.as_ref() != Some(&mine[key]);
            if node_merged || replica_merged {
                self.model.merge(Place::Node, me, key);
            }
            if replica_merged {
                self.model.merge(me, Place::Node, key);
            }
        }
        Ok(())
    }

    /// Checks that replica `who` and the node hold the same states of `keys`.
    fn converged(&self, who: usize, keys: &[Vec<u8>], after: &str) -> Result<(), TestCaseError> {
        for key in keys {
            let (mine, theirs) = (self.state(Place::Replica(who), key), self.node.get(key));
            prop_assert_eq!(
                &mine,
                &theirs,
                "after {}, replica {} and the node differ on {}",
                after,
                who,
                name(key)
            );
        }
        Ok(())
    }

    async fn run(&mut self, step: &Step) -> Result<(), TestCaseError> {
        match *step {
            Step::Edit { who, ref edit } => self.edit(Place::Replica(who), edit).await?,
            Step::Online { ref edit } => self.edit(Place::Node, edit).await?,
            Step::Sync { who, cut } => self.sync(who, cut).await?,
            Step::Fetch { who, ref key } => {
                self.devices[who].fetch(&self.client, key).await.unwrap();
                let key = key.as_bytes();
                self.model.merge(Place::Replica(who), Place::Node, key);
            }
            Step::Share { from, to, key } => {
                if let Some(state) = self.devices[from].get(key).cloned() {
                    self.devices[to].merge(key, state).unwrap();
                }
                let key = key.as_bytes();
                self.model
                    .merge(Place::Replica(to), Place::Replica(from), key);
            }
            Step::Clock { who, millis } => self.clocks[who].set(millis),
            Step::Bulk { who } => {
                let actor = self.devices[who].actor().get();
                for i in 0..BULK_KEYS {
                    self.devices[who].counter_add(bulk_key(i), 1).unwrap();
                    let op = Op::Count { actor, delta: 1 };
                    self.model
                        .record(Place::Replica(who), bulk_key(i).as_bytes(), op);
                }
            }
        }
        Ok(())
    }

    /// Takes `step` and checks every state it may have changed.
    async fn step(&mut self, step: &Step) -> Result<(), TestCaseError> {
        let touched = self.touches(step);
        let before: Vec<_> = (touched.iter())
            .map(|(place, keys)| self.states(*place, keys))
            .collect();
        self.run(step).await?;
        for ((place, keys), before) in touched.iter().zip(&before) {
            self.check(*place, keys, before, step)?;
        }
        Ok(())
    }

    /// The places and keys `step` may change.
    fn touches(&self, step: &Step) -> Vec<(Place, Vec<Vec<u8>>)> {
        let one = |key: &str| vec![key.as_bytes().to_vec()];
        match *step {
            Step::Edit { who, ref edit } => vec![(Place::Replica(who), one(edit.key()))],
            Step::Online { ref edit } => vec![(Place::Node, one(edit.key()))],
            Step::Sync { who, .. } => {
                let keys = self.model.keys(Place::Replica(who));
                vec![(Place::Replica(who), keys.clone()), (Place::Node, keys)]
            }
            Step::Fetch { who, ref key } => vec![(Place::Replica(who), one(key))],
            Step::Share { to, key, .. } => vec![(Place::Replica(to), one(key))],
            Step::Clock { .. } => vec![],
            Step::Bulk { who } => {
                let keys = (0..BULK_KEYS).map(|i| bulk_key(i).into_bytes()).collect();
                vec![(Place::Replica(who), keys)]
            }
        }
    }

    /// Checks the states of `keys` at `place`: none moved down from `before`, and each shows
    /// exactly the edits the model says `place` has seen.
    fn check(
        &self,
        place: Place,
        keys: &[Vec<u8>],
        before: &BTreeMap<Vec<u8>, Value>,
        step: &Step,
    ) -> Result<(), TestCaseError> {
        if let Place::Replica(i) = place {
            let held: Vec<Vec<u8>> = self.devices[i].keys().map(<[u8]>::to_vec).collect();
            prop_assert_eq!(
                held,
                self.model.keys(place),
                "{}'s keys after {:?}",
                place,
                step
            );
        }
        for key in keys {
            let now = self.state(place, key);
            if let Some(old) = before.get(key) {
                let up = now.as_ref().is_some_and(|now| below(old, now));
                prop_assert!(up, "{place} moved {} down after {step:?}", name(key));
            }
            prop_assert_eq!(
                now.map(|v| show(key, &v)),
                self.model.expected(place, key),
                "{} at {} (the model, right, says which edits it has seen) after {:?}",
                name(key),
                place,
                step
            );
        }
        Ok(())
    }

    /// Every replica fetches what it lacks and syncs, twice: then every place must hold every
    /// edit ever made, and they all hold the same states.
    async fn heal(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..2 {
            for who in 0..self.devices.len() {
                let me = Place::Replica(who);
                for key in self.model.all_keys() {
                    if !self.model.holds(me, &key) && self.model.holds(Place::Node, &key) {
                        let key = String::from_utf8(key).expect("the test's keys are text");
                        self.step(&Step::Fetch { who, key }).await?;
                    }
                }
                self.step(&Step::Sync { who, cut: None }).await?;
            }
        }
        for key in self.model.all_keys() {
            let stored = self.node.get(&key);
            let shown = stored.as_ref().map(|v| show(&key, v));
            let expected = self.model.expected_in_the_end(&key);
            let name = name(&key);
            // The guarantees, one by one; then the whole state shown, per actor too.
            match (&shown, &expected) {
                (Some(Shown::Counter { value, .. }), Shown::Counter { value: sum, .. }) => {
                    prop_assert_eq!(
                        value,
                        sum,
                        "counter {}: its value, and the sum of every addition made anywhere",
                        name
                    );
                }
                (Some(Shown::Set { members, .. }), Shown::Set { members: live, .. }) => {
                    prop_assert_eq!(
                        members,
                        live,
                        "set {}: its members, and those added and not removed by a replica that \
                         had seen that addition",
                        name
                    );
                }
                (Some(Shown::Register(Some((stamp, _)))), Shown::Register(_)) => {
                    let latest = self.model.winner_is_causally_latest(&key, *stamp);
                    prop_assert!(latest.is_ok(), "{}", latest.unwrap_err());
                }
                _ => {}
            }
            prop_assert_eq!(shown, Some(expected), "{} holds every edit made", name);
            for who in 0..self.devices.len() {
                let state = self.state(Place::Replica(who), &key);
                prop_assert_eq!(&state, &stored, "replica {} converged on {}", who, name);
            }
        }
        Ok(())
    }
}

/// Runs `steps` on as many replicas as there are `clocks` (their wall clocks' start).
fn run(clocks: Vec<u64>, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let node = start_node().await;
        let client = node.client().await;
        let dir = scratch_dir();
        let clocks: Vec<_> = (clocks.into_iter())
            .map(|t| Arc::new(ManualClock::new(t)))
            .collect();
        let devices = (clocks.iter().enumerate())
            .map(|(i, clock)| {
                let path = dir.path().join(format!("r{i}"));
                Replica::open(&path, ActorId::new(i as u64 + 1), clock.clone()).unwrap()
            })
            .collect();
        let mut world = World {
            node,
            client,
            devices,
            clocks,
            model: Model::default(),
            _dir: dir,
        };
        for step in &steps {
            world.step(step).await?;
        }
        world.heal().await
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("HAZE_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn replicas_and_the_store_converge_without_losing_an_edit(
        (clocks, steps) in (2usize..=4).prop_flat_map(|replicas| (
            prop::collection::vec(0u64..10_000, replicas),
            prop::collection::vec(step(replicas), 1..40),
        )),
    ) {
        run(clocks, steps)?;
    }
}
