//! The browser's replica without the boundary: what the `#[wasm_bindgen]` classes call, in
//! plain Rust so that host tests reach every path (errors included).

use std::collections::BTreeMap;

use haze_crdt::{ActorId, Value};
use haze_device::sync::{Session, Step};
use haze_device::{Edit, Meta, Replica, Saved};

use crate::error::{Result, SdkError};
use crate::journal::{Changes, JournalStore};
use crate::view::read_view;
use crate::wire::{parse_answer, parse_meta, step_json};

/// What IndexedDB gave back at start, gathered key by key before the replica opens.
#[derive(Debug, Default)]
pub struct Snapshot {
    meta: Option<Meta>,
    values: BTreeMap<Vec<u8>, Value>,
}

impl Snapshot {
    /// Adds a key's saved state (the binary value encoding).
    ///
    /// # Errors
    ///
    /// `corrupt` if the bytes are not a value.
    pub fn put(&mut self, key: &str, state: &[u8]) -> Result<()> {
        let value = Value::decode(state)
            .map_err(|e| SdkError::new("corrupt", format!("the saved state of {key:?}: {e}")))?;
        self.values.insert(key.as_bytes().to_vec(), value);
        Ok(())
    }

    /// Sets the saved metadata (JSON, as [`Changes`] gave it).
    ///
    /// # Errors
    ///
    /// `corrupt` if it does not read.
    pub fn set_meta(&mut self, json: &str) -> Result<()> {
        self.meta = Some(parse_meta(json)?);
        Ok(())
    }

    fn into_saved(self) -> Option<Saved> {
        // Values without metadata are a state nobody can vouch for: the replica takes a fresh
        // actor id, as the core does for a recovered state.
        (self.meta.is_some() || !self.values.is_empty()).then_some(Saved {
            meta: self.meta,
            values: self.values,
        })
    }
}

/// A browser's replica: edits, reads, merges, and at most one sync session at a time.
#[derive(Debug)]
pub struct Device {
    replica: Replica<JournalStore>,
    session: Option<Session>,
}

fn bad_json(what: &str, e: serde_json::Error) -> SdkError {
    SdkError::new("invalid", format!("{what}: {e}"))
}

impl Device {
    /// Opens the replica saved in `snapshot`. `witnessed` is the save count recorded apart from
    /// IndexedDB (0 if none); `fresh_actor` (64 random bits) becomes the actor id unless the
    /// snapshot is provably the newest state this replica wrote (see `Replica::open`).
    ///
    /// # Errors
    ///
    /// `storage` if the store fails (the journal store never does).
    pub fn open(snapshot: Snapshot, witnessed: u64, fresh_actor: u64) -> Result<Device> {
        let store = JournalStore::new(snapshot.into_saved(), witnessed);
        Ok(Device {
            replica: Replica::open(store, ActorId::new(fresh_actor))?,
            session: None,
        })
    }

    /// Returns the actor id, as 16 hex digits.
    pub fn actor(&self) -> String {
        self.replica.actor().to_string()
    }

    /// Applies an edit, given as the core's edit JSON (`{"counter_add": 1}`,
    /// `{"map_update": {"key": {"string": "done"}, "edit": "flag_enable"}}`, ...), and returns
    /// the key's new read view. `now` is the caller's clock (milliseconds since the epoch).
    ///
    /// # Errors
    ///
    /// `invalid` for JSON that is not an edit; `type_mismatch` if the key holds another type;
    /// `refused` if the CRDT refuses. Nothing changes then.
    pub fn apply(&mut self, key: &str, edit: &str, now: u64) -> Result<String> {
        let edit: Edit = serde_json::from_str(edit).map_err(|e| bad_json("not an edit", e))?;
        Ok(read_view(self.replica.apply(key, edit, now)?).to_string())
    }

    /// Returns the read view of `key` as JSON, if held.
    pub fn view(&self, key: &str) -> Option<String> {
        self.replica.get(key).map(|v| read_view(v).to_string())
    }

    /// Returns the full state of `key` (the values' JSON, as `GET /v1/keys/KEY` gives
    /// `.state`), if held.
    pub fn state(&self, key: &str) -> Option<String> {
        (self.replica.get(key)).and_then(|v| serde_json::to_string(v).ok())
    }

    /// Returns the type of the value under `key` (`or_set`, `pn_counter`, ...), if held.
    pub fn kind(&self, key: &str) -> Option<String> {
        self.replica.get(key).map(|v| v.kind().to_string())
    }

    /// Returns the keys held, in order (keys are always UTF-8 here: they come from JavaScript
    /// strings and the server's JSON).
    pub fn keys(&self) -> Vec<String> {
        (self.replica.keys())
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    }

    /// Merges a full state (the values' JSON) into `key`, as the server pushed it; returns
    /// whether the local state changed.
    ///
    /// # Errors
    ///
    /// `invalid` for JSON that is not a valid state; `type_mismatch` if the key holds another
    /// type. Nothing changes then.
    pub fn merge(&mut self, key: &str, state: &str) -> Result<bool> {
        let value: Value = serde_json::from_str(state).map_err(|e| bad_json("not a state", e))?;
        Ok(self.replica.merge(key, value)?)
    }

    /// Starts a sync of every key held (dropping a sync in progress: that loses nothing) and
    /// returns its first step as JSON (`{"send": [...]}` or `{"done": report}`).
    ///
    /// # Errors
    ///
    /// `invalid` if a key is not UTF-8 (never, see [`keys`](Self::keys)).
    pub fn sync_start(&mut self, now: u64) -> Result<String> {
        let mut session = self.replica.sync(now);
        let step = session.start(&mut self.replica)?;
        self.session = Some(session);
        self.step(step)
    }

    /// Hands the answer (JSON, from either transport) to message `id` of the current sync, and
    /// returns the next step as JSON.
    ///
    /// # Errors
    ///
    /// `protocol` if there is no sync, the answer does not read, or does not fit its message:
    /// the sync is then dropped (what it merged stays), and the next one starts afresh.
    pub fn sync_receive(&mut self, id: u64, answer: &str) -> Result<String> {
        let mut session = (self.session.take())
            .ok_or_else(|| SdkError::new("protocol", "an answer with no sync in progress"))?;
        let step = parse_answer(answer)
            .and_then(|a| Ok(session.receive(&mut self.replica, id, a)?))
            .inspect_err(|_| {
                // Saves what the dropped sync merged (the journal store cannot fail).
                let _ = self.replica.save();
            })?;
        self.session = Some(session);
        self.step(step)
    }

    fn step(&mut self, step: Step) -> Result<String> {
        if matches!(step, Step::Done(_)) {
            self.session = None;
        }
        step_json(&step)
    }

    /// Returns whether a sync is in progress.
    pub fn syncing(&self) -> bool {
        self.session.is_some()
    }

    /// Returns the metadata as JSON (actor, saves, last complete sync).
    pub fn meta(&self) -> String {
        crate::wire::meta_json(self.replica.meta())
    }

    /// Takes what the saves since the last take changed, for IndexedDB.
    pub fn take_changes(&mut self) -> Changes {
        self.replica.store_mut().take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device::open(Snapshot::default(), 0, 1).unwrap()
    }

    #[test]
    fn bad_edits_and_states_are_typed_errors_and_change_nothing() {
        let mut d = device();
        assert_eq!(d.apply("k", "{\"nope\":1}", 0).unwrap_err().code, "invalid");
        assert_eq!(d.apply("k", "\"flag_enable\"", 0).unwrap(), "true");
        let err = d.apply("k", "{\"counter_add\":1}", 0).unwrap_err();
        assert_eq!(err.code, "type_mismatch");
        assert_eq!(
            d.merge("k", "{\"type\":\"nope\"}").unwrap_err().code,
            "invalid"
        );
        let counter = "{\"type\":\"g_counter\",\"counts\":{}}";
        assert_eq!(d.merge("k", counter).unwrap_err().code, "type_mismatch");
        assert_eq!(d.view("k").as_deref(), Some("true"));
        assert_eq!(d.kind("k").as_deref(), Some("flag"));
    }

    #[test]
    fn every_edit_type_applies_and_reads() {
        let mut d = device();
        let cases = [
            ("c", r#"{"counter_add":-2}"#, "-2"),
            ("g", r#"{"g_counter_add":5}"#, "5"),
            (
                "s",
                r#"{"set_add":[{"string":"a"},{"int":1}]}"#,
                r#"["a",1]"#,
            ),
            ("s", r#"{"set_remove":[{"int":1}]}"#, r#"["a"]"#),
            ("s", r#""set_clear""#, "[]"),
            ("r", r#"{"register_set":{"string":"x"}}"#, r#""x""#),
            ("mv", r#"{"mv_register_set":{"int":3}}"#, "[3]"),
            ("f", r#""flag_enable""#, "true"),
            ("f", r#""flag_disable""#, "false"),
            ("max", r#"{"max_set":{"int":9}}"#, "9"),
            ("min", r#"{"min_set":{"int":9}}"#, "9"),
            (
                "m",
                r#"{"map_update":{"key":{"string":"in"},"edit":{"map_update":{"key":{"string":"n"},"edit":{"counter_add":1}}}}}"#,
                r#"[{"key":"in","type":"or_map","value":[{"key":"n","type":"pn_counter","value":1}]}]"#,
            ),
            (
                "m",
                r#"{"map_remove":{"key":{"string":"in"},"type":"or_map"}}"#,
                "[]",
            ),
        ];
        for (key, edit, view) in cases {
            assert_eq!(d.apply(key, edit, 1).unwrap(), view, "{edit}");
        }
    }

    #[test]
    fn a_protocol_error_drops_the_sync_and_a_new_one_starts_afresh() {
        let mut d = device();
        assert_eq!(d.sync_receive(0, "{}").unwrap_err().code, "protocol");
        d.apply("k", "{\"counter_add\":1}", 0).unwrap();
        let step: serde_json::Value = serde_json::from_str(&d.sync_start(5).unwrap()).unwrap();
        assert_eq!(step["send"][0]["type"], "digests");
        assert!(
            step["send"][0].get("keys").is_none(),
            "the first asks by list id: {step}"
        );
        let err = d.sync_receive(0, r#"{"digests":[null,null]}"#).unwrap_err();
        assert_eq!(err.code, "protocol");
        assert!(!d.syncing());
        let step: serde_json::Value = serde_json::from_str(&d.sync_start(6).unwrap()).unwrap();
        let id = step["send"][0]["id"].as_u64().unwrap();
        let next = d.sync_receive(id, r#"{"unknown_list":true}"#).unwrap();
        let next: serde_json::Value = serde_json::from_str(&next).unwrap();
        assert_eq!(next["send"][0]["keys"], serde_json::json!(["k"]));
    }

    #[test]
    fn edits_and_states_nested_past_the_limits_are_refused_not_a_crash() {
        let mut d = device();
        for depth in [40, 200, 5_000] {
            let mut edit = String::from("\"flag_enable\"");
            for _ in 0..depth {
                edit = format!(r#"{{"map_update":{{"key":{{"int":1}},"edit":{edit}}}}}"#);
            }
            let err = d.apply("deep", &edit, 0).unwrap_err();
            assert!(["refused", "invalid"].contains(&err.code), "{depth}: {err}");
            let state = "{\"type\":\"or_map\",\"x\":".repeat(depth) + &"}".repeat(depth);
            assert_eq!(
                d.merge("deep", &state).unwrap_err().code,
                "invalid",
                "{depth}"
            );
        }
        assert_eq!(d.view("deep"), None);
    }

    #[test]
    fn a_snapshot_of_damaged_bytes_is_corrupt() {
        let mut s = Snapshot::default();
        assert_eq!(s.put("k", &[0xff]).unwrap_err().code, "corrupt");
        assert_eq!(s.set_meta("[]").unwrap_err().code, "corrupt");
    }
}
