//! The replica's store in a browser: the state IndexedDB gave at start, and a journal of what
//! each save changed, which JavaScript writes to IndexedDB (the core cannot wait for it: its
//! saves are synchronous, IndexedDB's are not).

use std::collections::BTreeMap;
use std::convert::Infallible;

use haze_device::{Loaded, Meta, Save, Saved, Store};

/// What the saves since the last [`JournalStore::take`] changed: the newest metadata and the
/// newest state of every changed key. Writing it in one IndexedDB transaction makes those
/// saves durable together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The metadata of the last save (`None`: no save since the last take).
    pub meta: Option<Meta>,
    /// The changed keys, each with its state in the binary value encoding.
    pub states: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Changes {
    /// Returns whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.meta.is_none() && self.states.is_empty()
    }

    /// The save count of the metadata, as a JavaScript number (0 if none).
    pub fn meta_saves(&self) -> f64 {
        self.meta.as_ref().map_or(0.0, |m| m.saves as f64)
    }
}

/// A [`Store`] that loads what it was given and records saves instead of writing them.
#[derive(Debug, Default)]
pub struct JournalStore {
    loaded: Option<Loaded>,
    pending: Changes,
}

impl JournalStore {
    /// Returns a store whose load gives `saved`, with `witnessed_saves` (the save count
    /// JavaScript recorded apart from IndexedDB: a state with fewer saves is an older copy).
    pub fn new(saved: Option<Saved>, witnessed_saves: u64) -> JournalStore {
        JournalStore {
            loaded: Some(Loaded {
                saved,
                witnessed_saves,
            }),
            pending: Changes::default(),
        }
    }

    /// Takes the changes recorded since the last take.
    pub fn take(&mut self) -> Changes {
        std::mem::take(&mut self.pending)
    }
}

impl Store for JournalStore {
    type Error = Infallible;

    /// Gives the state it was made with once; a second load finds nothing (the replica loads
    /// once, at open, and the state is not kept twice in memory).
    fn load(&mut self) -> Result<Loaded, Infallible> {
        Ok(self.loaded.take().unwrap_or_default())
    }

    fn save(&mut self, save: &Save<'_>) -> Result<(), Infallible> {
        self.pending.meta = Some(save.meta.clone());
        for (key, value) in &save.changed {
            self.pending.states.insert(key.to_vec(), value.encode());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use haze_crdt::{ActorId, Scalar};
    use haze_device::Replica;

    use super::*;

    #[test]
    fn each_take_holds_the_keys_saved_since_the_last_one() {
        let mut replica = Replica::open(JournalStore::default(), ActorId::new(7)).unwrap();
        let opened = replica.store_mut().take();
        assert_eq!(opened.meta.as_ref().map(|m| m.saves), Some(1));
        assert!(opened.states.is_empty());
        replica.set_add("list", [Scalar::from("milk")]).unwrap();
        replica.counter_add("visits", 1).unwrap();
        replica.counter_add("visits", 1).unwrap();
        let changes = replica.store_mut().take();
        assert_eq!(changes.meta.unwrap().saves, 4);
        let keys: Vec<&[u8]> = changes.states.keys().map(Vec::as_slice).collect();
        assert_eq!(keys, [b"list".as_slice(), b"visits"]);
        let visits = haze_crdt::Value::decode(&changes.states[b"visits".as_slice()]).unwrap();
        assert_eq!(Some(&visits), replica.get("visits"));
        assert!(replica.store_mut().take().is_empty());
    }
}
