//! The store a test's replicas sync with: a replica of its own (so it can edit too, as another
//! client would online) that answers the sync's messages as a node does, remembering the key
//! lists it was sent.

use std::collections::BTreeMap;

use haze_crdt::digest::key_digest;
use haze_crdt::{ActorId, Value};
use haze_device::sync::{Answer, Message, list_id};
use haze_device::{MemStore, Replica};

pub const SERVER_ACTOR: u64 = 0x5e7e;

#[derive(Debug)]
pub struct Server {
    pub replica: Replica<MemStore>,
    lists: BTreeMap<u64, Vec<Vec<u8>>>,
}

impl Server {
    pub fn new() -> Server {
        Server {
            replica: Replica::open(MemStore::new(), ActorId::new(SERVER_ACTOR)).unwrap(),
            lists: BTreeMap::new(),
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<Value> {
        self.replica.get(key).cloned()
    }

    fn digests(&self, keys: &[Vec<u8>]) -> Answer {
        Answer::Digests(
            keys.iter()
                .map(|k| Some(key_digest(k, &self.replica.get(k)?.encode())))
                .collect(),
        )
    }

    /// Forgets every key list (a node restarted, or evicted them).
    pub fn forget_lists(&mut self) {
        self.lists.clear();
    }

    /// Answers `message` as a node would.
    pub fn answer(&mut self, message: &Message) -> Answer {
        match message {
            Message::Digests { list, keys: None } => match self.lists.get(list) {
                Some(keys) => self.digests(&keys.clone()),
                None => Answer::UnknownList,
            },
            Message::Digests {
                list,
                keys: Some(keys),
            } => {
                assert_eq!(*list, list_id(keys), "a list is named by its keys");
                self.lists.insert(*list, keys.clone());
                self.digests(keys)
            }
            Message::Merge { items } => Answer::Merged(
                (items.iter())
                    .map(
                        |(key, value)| match self.replica.merge(key, value.clone()) {
                            Ok(_) => Ok(self.get(key).expect("just merged")),
                            Err(e) => Err(e.to_string()),
                        },
                    )
                    .collect(),
            ),
        }
    }
}
