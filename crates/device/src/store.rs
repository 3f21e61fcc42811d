//! Where a replica keeps its state: a small trait, and a store in memory.

use std::collections::BTreeMap;
use std::fmt;

use haze_crdt::{ActorId, Value};

/// What a replica knows about itself besides its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The actor id its edits are made with: it belongs to this copy of the state (see
    /// [`Replica::open`](crate::Replica::open) for when it is replaced).
    pub actor: ActorId,
    /// How many times the state was saved, this save included: a copy with fewer saves than
    /// the store has witnessed is an older copy that came back.
    pub saves: u64,
    /// The last complete sync of every key, if the store keeps it.
    pub last_sync: Option<LastSync>,
}

/// When the replica last completed a sync of every key it held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastSync {
    /// The caller's time (milliseconds) when that sync started: every edit made before it
    /// reached the store, and the replica holds every state the store had for its keys then.
    pub at: u64,
    /// The keys it compared.
    pub keys: u64,
}

/// A replica's state as a store gives it back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Saved {
    /// The metadata saved with the values, or `None` if the store found values it cannot vouch
    /// for (recovered from a partial copy): the replica then takes a fresh actor id.
    pub meta: Option<Meta>,
    /// Every key's state.
    pub values: BTreeMap<Vec<u8>, Value>,
}

/// What [`Store::load`] finds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Loaded {
    /// The saved state, or `None` if there is none (a new replica, or one whose state is lost).
    pub saved: Option<Saved>,
    /// The most saves the store has witnessed, kept apart from the state (haze-client's file
    /// store keeps it in a companion file): a state with fewer saves is an older copy.
    pub witnessed_saves: u64,
}

/// One save: the replica's metadata and the keys that changed since the last save.
#[derive(Debug)]
pub struct Save<'a> {
    /// The metadata, its save count already advanced.
    pub meta: &'a Meta,
    /// The keys whose states changed since the last successful save, with their states.
    pub changed: Vec<(&'a [u8], &'a Value)>,
    /// Every key's state, for a store that writes the whole replica at once (one file).
    pub all: &'a BTreeMap<Vec<u8>, Value>,
}

/// Durable storage of one replica.
///
/// A save is one unit: the metadata and the changed keys become durable together, or the save
/// fails and none of it counts (the replica then undoes the edit that asked for it). The save
/// count of [`Meta::saves`] must also be witnessed apart from the state (see
/// [`Loaded::witnessed_saves`]), after the state is durable: a crash in between leaves the
/// state ahead of its witness, which is safe.
pub trait Store {
    /// Why the store failed, for the user.
    type Error: fmt::Display;

    /// Reads everything kept.
    ///
    /// # Errors
    ///
    /// The store's error; a damaged state is an error, never silently replaced.
    fn load(&mut self) -> Result<Loaded, Self::Error>;

    /// Makes `save` durable.
    ///
    /// # Errors
    ///
    /// The store's error: then nothing of `save` may have become durable in a way a later
    /// [`load`](Self::load) trusts as newer than the last successful save.
    fn save(&mut self, save: &Save<'_>) -> Result<(), Self::Error>;
}

/// A store in memory: for tests, simulations and a browser that persists elsewhere. Its state
/// can be lost, restored from an older copy, or made to fail, as a disk's can.
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    saved: Option<Saved>,
    witnessed: u64,
    failing: bool,
}

/// The error of a [`MemStore`] made to fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the memory store was told to fail")]
pub struct MemStoreFailure;

impl MemStore {
    /// Returns an empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// Returns what a [`load`](Store::load) would give: the state saved last.
    pub fn saved(&self) -> Option<&Saved> {
        self.saved.as_ref()
    }

    /// Makes every save fail (a full disk), or work again.
    pub fn set_failing(&mut self, failing: bool) {
        self.failing = failing;
    }

    /// Loses the state (a deleted file); the witness of its saves remains.
    pub fn lose(&mut self) {
        self.saved = None;
    }

    /// Puts back an older copy of the state (a restored backup); the witness remains.
    pub fn restore(&mut self, older: Option<Saved>) {
        self.saved = older;
    }
}

impl Store for MemStore {
    type Error = MemStoreFailure;

    fn load(&mut self) -> Result<Loaded, MemStoreFailure> {
        Ok(Loaded {
            saved: self.saved.clone(),
            witnessed_saves: self.witnessed,
        })
    }

    fn save(&mut self, save: &Save<'_>) -> Result<(), MemStoreFailure> {
        if self.failing {
            return Err(MemStoreFailure);
        }
        // Applies the changed keys only (not `all`), so a key the replica forgot to report
        // shows up as a difference after a reload.
        let saved = self.saved.get_or_insert_with(Saved::default);
        saved.meta = Some(save.meta.clone());
        for (key, value) in &save.changed {
            saved.values.insert(key.to_vec(), (*value).clone());
        }
        self.witnessed = self.witnessed.max(save.meta.saves);
        Ok(())
    }
}
