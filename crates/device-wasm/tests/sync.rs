//! The bindings' classes driven as the SDK drives them: edits offline, persisted through
//! `Changes` into a pretend IndexedDB, reopened from a `Snapshot`, synced with a fake node.
//! Run on the host (`cargo test`) and in headless Chromium (`scripts/test-sdk.sh`).

mod fake_server;

use std::collections::BTreeMap;

use fake_server::FakeServer;
use haze_device_wasm::{Replica, Snapshot};
use serde_json::{Value as Json, json};
#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test;

#[cfg(target_family = "wasm")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// What IndexedDB would hold for one replica: its metadata, its states, and the save count
/// recorded apart (localStorage).
#[derive(Debug, Default, Clone)]
struct Idb {
    meta: Option<String>,
    states: BTreeMap<String, Vec<u8>>,
    witnessed: f64,
}

impl Idb {
    fn open(&self, random: u8) -> Replica {
        let mut snapshot = Snapshot::new();
        for (key, state) in &self.states {
            snapshot.put(key, state).unwrap();
        }
        if let Some(meta) = &self.meta {
            snapshot.set_meta(meta).unwrap();
        }
        let mut replica = Replica::open(snapshot, self.witnessed, &[random; 8]).unwrap();
        self.clone().persist_into(&mut replica);
        replica
    }

    /// Writes what the replica's saves changed, as the SDK does after every call.
    fn persist(&mut self, replica: &mut Replica) {
        let changes = replica.take_changes();
        for i in 0..changes.length() {
            self.states
                .insert(changes.key(i).unwrap(), changes.state(i).unwrap());
        }
        if let Some(meta) = changes.meta() {
            self.meta = Some(meta);
            self.witnessed = changes.saves();
        }
    }

    fn persist_into(mut self, replica: &mut Replica) {
        self.persist(replica);
    }
}

fn edit(replica: &mut Replica, idb: &mut Idb, key: &str, edit: Json) -> Json {
    let view = replica
        .apply(key, &edit.to_string(), 1_764_000_000_000.0)
        .unwrap();
    idb.persist(replica);
    serde_json::from_str(&view).unwrap()
}

/// Runs a sync to the end against `server`; returns the report.
fn sync(replica: &mut Replica, idb: &mut Idb, server: &mut FakeServer) -> Json {
    let mut step: Json =
        serde_json::from_str(&replica.sync_start(1_764_000_000_000.0).unwrap()).unwrap();
    let mut queue: Vec<Json> = Vec::new();
    loop {
        if let Some(done) = step.get("done") {
            idb.persist(replica);
            return done.clone();
        }
        queue.extend(step["send"].as_array().unwrap().iter().cloned());
        let message = queue.remove(0);
        let answer = server.answer(&message);
        let id = message["id"].as_f64().unwrap();
        step = serde_json::from_str(&replica.sync_receive(id, &answer).unwrap()).unwrap();
    }
}

fn view(replica: &Replica, key: &str) -> Json {
    serde_json::from_str(&replica.view(key).unwrap()).unwrap()
}

#[cfg_attr(target_family = "wasm", wasm_bindgen_test)]
#[cfg_attr(not(target_family = "wasm"), test)]
fn two_replicas_edit_offline_and_converge_through_the_server() {
    let mut server = FakeServer::default();
    let (mut idb_a, mut idb_b) = (Idb::default(), Idb::default());
    let mut a = idb_a.open(1);
    let mut b = idb_b.open(2);
    assert_ne!(a.actor(), b.actor());

    edit(
        &mut a,
        &mut idb_a,
        "list",
        json!({"set_add": [{"string": "milk"}]}),
    );
    edit(&mut a, &mut idb_a, "visits", json!({"counter_add": 1}));
    let done = json!({"map_update": {"key": {"string": "done"}, "edit": "flag_enable"}});
    edit(&mut a, &mut idb_a, "item:milk", done);
    edit(
        &mut b,
        &mut idb_b,
        "list",
        json!({"set_add": [{"string": "eggs"}]}),
    );
    edit(&mut b, &mut idb_b, "visits", json!({"counter_add": 2}));

    // A reload of each keeps its offline edits and its actor id.
    let actor_a = a.actor();
    let mut a = idb_a.open(9);
    assert_eq!(a.actor(), actor_a);
    assert_eq!(view(&a, "visits"), json!(1));

    let report = sync(&mut a, &mut idb_a, &mut server);
    assert_eq!(
        (report["checked"].clone(), report["sent"].clone()),
        (json!(3), json!(3))
    );
    sync(&mut b, &mut idb_b, &mut server);
    let report = sync(&mut a, &mut idb_a, &mut server);
    assert_eq!(report["updated"], json!(2), "{report}");
    // b lacked item:milk: a sync covers the keys a replica holds, so b picks it up from a push.
    let pushed = serde_json::to_string(&server.values["item:milk"]).unwrap();
    assert!(b.merge("item:milk", &pushed).unwrap());
    idb_b.persist(&mut b);

    for r in [&a, &b] {
        assert_eq!(view(r, "visits"), json!(3));
        let mut list: Vec<String> = serde_json::from_value(view(r, "list")).unwrap();
        list.sort();
        assert_eq!(list, ["eggs", "milk"]);
        assert_eq!(
            view(r, "item:milk"),
            json!([{"key": "done", "type": "flag", "value": true}])
        );
        assert_eq!(r.keys(), ["item:milk", "list", "visits"]);
    }
    assert_eq!(a.state("list"), b.state("list"));

    // What was persisted along the way reopens to the same state.
    let b2 = idb_b.open(3);
    assert_eq!(b2.state("list"), b.state("list"));
    assert_eq!(b2.actor(), b.actor());
    // A second sync sends nothing: the digests agree.
    let report = sync(&mut a, &mut idb_a, &mut server);
    assert_eq!(report["sent"], json!(0));
}

#[cfg_attr(target_family = "wasm", wasm_bindgen_test)]
#[cfg_attr(not(target_family = "wasm"), test)]
fn an_older_copy_of_the_saved_state_takes_a_fresh_actor() {
    let mut idb = Idb::default();
    let mut a = idb.open(1);
    let older = idb.clone();
    edit(&mut a, &mut idb, "visits", json!({"counter_add": 1}));
    // IndexedDB restored from before the edit, while the witness in localStorage remains.
    let restored = Idb {
        witnessed: idb.witnessed,
        ..older
    };
    let again = restored.open(7);
    assert_ne!(again.actor(), a.actor());
    assert_eq!(again.actor(), "0707070707070707");
}

/// Errors cross the boundary as thrown JSON: only where there is a JavaScript to throw to.
#[cfg(target_family = "wasm")]
#[wasm_bindgen_test]
fn untrusted_input_gives_typed_errors() {
    let code = |e: wasm_bindgen::JsValue| -> String {
        let json: Json = serde_json::from_str(&e.as_string().unwrap()).unwrap();
        json["code"].as_str().unwrap().to_owned()
    };
    let mut snapshot = Snapshot::new();
    assert_eq!(
        code(snapshot.put("k", &[0xff, 0x00]).unwrap_err()),
        "corrupt"
    );
    assert_eq!(code(snapshot.set_meta("{").unwrap_err()), "corrupt");
    assert_eq!(
        code(Replica::open(Snapshot::new(), 0.0, &[1]).unwrap_err()),
        "invalid"
    );
    let mut r = Replica::open(Snapshot::new(), 0.0, &[1; 8]).unwrap();
    assert_eq!(
        code(r.apply("k", "{\"nope\":1}", 0.0).unwrap_err()),
        "invalid"
    );
    assert_eq!(
        code(r.apply("k", "\"flag_enable\"", -1.0).unwrap_err()),
        "invalid"
    );
    r.apply("k", "\"flag_enable\"", 0.0).unwrap();
    assert_eq!(
        code(r.apply("k", "{\"counter_add\":1}", 0.0).unwrap_err()),
        "type_mismatch"
    );
    assert_eq!(
        code(r.merge("k", "{\"type\":\"nope\"}").unwrap_err()),
        "invalid"
    );
    assert_eq!(code(r.sync_receive(0.0, "{}").unwrap_err()), "protocol");
    r.sync_start(0.0).unwrap();
    assert_eq!(
        code(r.sync_receive(0.0, "{\"digests\":[]}").unwrap_err()),
        "protocol"
    );
    assert!(!r.syncing());
}
