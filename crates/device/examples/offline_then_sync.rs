//! Two devices edit offline and sync through a store that answers in memory: the whole core,
//! with no I/O. `cargo run -p haze-device --example offline_then_sync`; `scripts/build-wasm.sh`
//! also links it for wasm32-unknown-unknown, which proves the core links there.

use std::collections::BTreeMap;

use haze_crdt::digest::key_digest;
use haze_crdt::{ActorId, OrSet, Scalar, Value};
use haze_device::sync::{Answer, Message, Step};
use haze_device::{Edit, Error, MemStore, Replica};

/// The store: states by key, merged as a node merges them (it remembers no key list).
#[derive(Default)]
struct Store(BTreeMap<Vec<u8>, Value>);

impl Store {
    fn answer(&mut self, message: Message) -> Answer {
        match message {
            Message::Digests { keys: None, .. } => Answer::UnknownList,
            Message::Digests {
                keys: Some(keys), ..
            } => Answer::Digests(
                (keys.iter())
                    .map(|k| Some(key_digest(k, &self.0.get(k)?.encode())))
                    .collect(),
            ),
            Message::Merge { items } => Answer::Merged(
                (items.into_iter())
                    .map(|(key, value)| match self.0.get_mut(&key) {
                        Some(held) => match held.merge(value) {
                            Ok(()) => Ok(held.clone()),
                            Err(e) => Err(e.to_string()),
                        },
                        None => Ok(self.0.entry(key).or_insert(value).clone()),
                    })
                    .collect(),
            ),
        }
    }
}

/// Syncs `device` with `store`, answering each message as it is sent.
fn sync(device: &mut Replica<MemStore>, store: &mut Store, now: u64) -> Result<usize, Error> {
    let mut session = device.sync(now);
    let mut queue = Vec::new();
    let mut step = session.start(device)?;
    loop {
        match step {
            Step::Done(report) => return Ok(report.updated),
            Step::Send(out) => queue.extend(out),
        }
        let next = queue.remove(0);
        let answer = store.answer(next.message);
        step = session.receive(device, next.id, answer)?;
    }
}

fn main() -> Result<(), Error> {
    let mut store = Store::default();
    let mut phone = Replica::open(MemStore::new(), ActorId::new(0x9f1c_2e07_b3a5_0d41))?;
    let mut laptop = Replica::open(MemStore::new(), ActorId::new(0x4ab2_91f0_6c3d_e852))?;
    phone.set_add("list", [Scalar::from("milk"), Scalar::from("eggs")])?;
    sync(&mut phone, &mut store, 1_000)?;
    laptop.merge("list", store.0[b"list".as_slice()].clone())?;

    phone.set_remove("list", [Scalar::from("milk")])?; // offline, concurrently:
    laptop.set_add("list", [Scalar::from("milk"), Scalar::from("bread")])?;
    laptop.apply("todo:1", Edit::map_update("done", Edit::FlagEnable), 2_000)?;
    for _ in 0..2 {
        sync(&mut phone, &mut store, 3_000)?;
        sync(&mut laptop, &mut store, 3_000)?;
    }
    let list: OrSet<Scalar> = phone.get_typed("list")?.unwrap_or_default();
    let items: Vec<String> = list.iter().map(ToString::to_string).collect();
    assert_eq!(
        items,
        ["bread", "eggs", "milk"],
        "the laptop's add of milk wins"
    );
    assert_eq!(phone.get("list"), laptop.get("list"));
    Ok(())
}
