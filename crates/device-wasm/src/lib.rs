//! Browser bindings of the Haze device core ([`haze_device`]) for the JavaScript SDK
//! (`sdk/js`, built by `scripts/build-sdk.sh`).
//!
//! The boundary is JSON strings and byte arrays: the JavaScript side owns every browser API
//! (IndexedDB, `fetch`, the WebSocket, the clock and `crypto.getRandomValues`) and this crate
//! owns the CRDTs and the sync state machine.
//!
//! * [`Snapshot`] — what IndexedDB saved, gathered key by key; [`Replica::open`] opens it.
//! * [`Replica`] — edits (the core's edit JSON), read views, full states, merges of pushed
//!   states, and the sync session: [`sync_start`](Replica::sync_start) gives messages as JSON,
//!   [`sync_receive`](Replica::sync_receive) takes each answer.
//! * [`Changes`] — what the saves since the last [`take_changes`](Replica::take_changes)
//!   changed: JavaScript writes them to IndexedDB in one transaction after every edit.
//!
//! A failed call throws a string: the JSON `{"code", "message"}` of an [`SdkError`], which
//! the SDK turns into a `HazeError`. Untrusted input (server JSON, IndexedDB contents) gives
//! such an error, never a panic. The logic lives in plain Rust ([`Device`]) so host tests
//! reach it; the classes here only convert.
//!
//! ```
//! use haze_device_wasm::{Device, SnapshotData};
//!
//! # fn main() -> Result<(), haze_device_wasm::SdkError> {
//! // Nothing saved yet: the 64 random bits become the actor id.
//! let mut device = Device::open(SnapshotData::default(), 0, 0x9f1c_2e07_b3a5_0d41)?;
//! let view = device.apply("list", r#"{"set_add": [{"string": "milk"}]}"#, 1_764_133_200_000)?;
//! assert_eq!(view, r#"["milk"]"#);
//! // What to write to IndexedDB before the edit is acknowledged: the key and the metadata.
//! let changes = device.take_changes();
//! assert!(changes.meta.is_some() && changes.states.contains_key(b"list".as_slice()));
//! // A sync starts with a digest request naming the key list by its id.
//! let step = device.sync_start(1_764_133_260_000)?;
//! assert!(step.starts_with(r#"{"send":[{"id":0,"list":"#), "{step}");
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! * `device` — [`Device`], [`Snapshot`]: the replica and its session.
//! * `journal` — [`JournalStore`]: the core's store, recording each save's changes.
//! * `wire` — the sync's JSON, both transports' answers, the metadata's JSON.
//! * `view` — the read view of a value.
//! * `error` — [`SdkError`].
#![deny(missing_docs)]

mod device;
mod error;
mod journal;
mod view;
mod wire;

pub use device::{Device, Snapshot as SnapshotData};
pub use error::SdkError;
pub use journal::{Changes as ChangeSet, JournalStore};
pub use view::read_view;

use wasm_bindgen::prelude::*;

/// An error as thrown to JavaScript: its JSON.
fn throw(e: SdkError) -> JsValue {
    JsValue::from_str(&e.to_json())
}

/// A JavaScript number as a `u64` (times, save counts, message ids): JavaScript hands them as
/// doubles.
fn whole(n: f64, what: &str) -> Result<u64, JsValue> {
    if n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_991.0 {
        Ok(n as u64)
    } else {
        Err(throw(SdkError::new(
            "invalid",
            format!("{what} {n} is not a whole number"),
        )))
    }
}

/// What IndexedDB saved, gathered before the replica opens.
#[wasm_bindgen]
#[derive(Debug, Default)]
pub struct Snapshot(device::Snapshot);

#[wasm_bindgen]
impl Snapshot {
    /// Returns an empty snapshot (a new replica, or one whose state is lost).
    #[wasm_bindgen(constructor)]
    pub fn new() -> Snapshot {
        Snapshot::default()
    }

    /// Adds a key's saved state (bytes as [`Changes::state`] gave them). Throws `corrupt`.
    pub fn put(&mut self, key: &str, state: &[u8]) -> Result<(), JsValue> {
        self.0.put(key, state).map_err(throw)
    }

    /// Sets the saved metadata (as [`Changes::meta`] gave it). Throws `corrupt`.
    #[wasm_bindgen(js_name = setMeta)]
    pub fn set_meta(&mut self, json: &str) -> Result<(), JsValue> {
        self.0.set_meta(json).map_err(throw)
    }
}

/// A browser's replica of some keys.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Replica(Device);

#[wasm_bindgen]
impl Replica {
    /// Opens the replica in `snapshot`. `witnessed`: the save count recorded apart from
    /// IndexedDB (0 if none); `random`: 8 bytes from `crypto.getRandomValues`, the actor id if
    /// the state cannot be proven the newest this replica wrote.
    pub fn open(snapshot: Snapshot, witnessed: f64, random: &[u8]) -> Result<Replica, JsValue> {
        let bytes: [u8; 8] = random
            .try_into()
            .map_err(|_| throw(SdkError::new("invalid", "an actor id needs 8 random bytes")))?;
        let witnessed = whole(witnessed, "the witnessed save count")?;
        let device = Device::open(snapshot.0, witnessed, u64::from_le_bytes(bytes));
        Ok(Replica(device.map_err(throw)?))
    }

    /// The actor id, as 16 hex digits.
    #[wasm_bindgen(getter)]
    pub fn actor(&self) -> String {
        self.0.actor()
    }

    /// Applies an edit (the core's edit JSON) at time `now` (ms); returns the key's read view.
    /// Throws `invalid`, `type_mismatch` or `refused`; nothing changes then.
    pub fn apply(&mut self, key: &str, edit: &str, now: f64) -> Result<String, JsValue> {
        let now = whole(now, "the time")?;
        self.0.apply(key, edit, now).map_err(throw)
    }

    /// The read view of `key` as JSON, or `undefined`.
    pub fn view(&self, key: &str) -> Option<String> {
        self.0.view(key)
    }

    /// The full state of `key` as JSON (as `GET /v1/keys/KEY` gives `.state`), or `undefined`.
    pub fn state(&self, key: &str) -> Option<String> {
        self.0.state(key)
    }

    /// The type of the value under `key`, or `undefined`.
    pub fn kind(&self, key: &str) -> Option<String> {
        self.0.kind(key)
    }

    /// The keys held, in order.
    pub fn keys(&self) -> Vec<String> {
        self.0.keys()
    }

    /// Merges a full state (JSON) into `key`; returns whether it changed anything. Throws
    /// `invalid` or `type_mismatch`; nothing changes then.
    pub fn merge(&mut self, key: &str, state: &str) -> Result<bool, JsValue> {
        self.0.merge(key, state).map_err(throw)
    }

    /// Starts a sync of every key (dropping one in progress); returns `{"send": [messages]}`
    /// or `{"done": report}` as JSON.
    #[wasm_bindgen(js_name = syncStart)]
    pub fn sync_start(&mut self, now: f64) -> Result<String, JsValue> {
        let now = whole(now, "the time")?;
        self.0.sync_start(now).map_err(throw)
    }

    /// Hands the answer (JSON) to message `id`; returns the next step as JSON. Throws
    /// `protocol` (the sync is dropped).
    #[wasm_bindgen(js_name = syncReceive)]
    pub fn sync_receive(&mut self, id: f64, answer: &str) -> Result<String, JsValue> {
        let id = whole(id, "the message id")?;
        self.0.sync_receive(id, answer).map_err(throw)
    }

    /// Whether a sync is in progress.
    #[wasm_bindgen(getter)]
    pub fn syncing(&self) -> bool {
        self.0.syncing()
    }

    /// The metadata as JSON.
    pub fn meta(&self) -> String {
        self.0.meta()
    }

    /// Takes what the saves since the last take changed: write it to IndexedDB.
    #[wasm_bindgen(js_name = takeChanges)]
    pub fn take_changes(&mut self) -> Changes {
        let c = self.0.take_changes();
        let saves = c.meta_saves();
        let (keys, states) = c.states.into_iter().unzip();
        Changes {
            meta: c.meta.map(|m| wire::meta_json(&m)),
            saves,
            keys,
            states,
        }
    }
}

/// What some saves changed: the metadata and each changed key's state.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Changes {
    meta: Option<String>,
    saves: f64,
    keys: Vec<Vec<u8>>,
    states: Vec<Vec<u8>>,
}

#[wasm_bindgen]
impl Changes {
    /// The metadata to keep (JSON), or `undefined` if nothing was saved.
    #[wasm_bindgen(getter)]
    pub fn meta(&self) -> Option<String> {
        self.meta.clone()
    }

    /// The save count of that metadata (0 if none): record it apart once the write completes.
    #[wasm_bindgen(getter)]
    pub fn saves(&self) -> f64 {
        self.saves
    }

    /// How many keys changed.
    #[wasm_bindgen(getter)]
    pub fn length(&self) -> usize {
        self.keys.len()
    }

    /// The `i`th changed key.
    pub fn key(&self, i: usize) -> Option<String> {
        (self.keys.get(i)).map(|k| String::from_utf8_lossy(k).into_owned())
    }

    /// The `i`th changed key's state (the binary value encoding).
    pub fn state(&self, i: usize) -> Option<Vec<u8>> {
        self.states.get(i).cloned()
    }
}
