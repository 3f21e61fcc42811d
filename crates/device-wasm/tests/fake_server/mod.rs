//! A node's sync endpoints in memory, speaking the JSON of `POST /v1/sync/digests` and
//! `/v1/sync/merge` (docs/http-api.md), for tests that drive the bindings' sync.

use std::collections::BTreeMap;

use haze_crdt::Value;
use haze_crdt::digest::key_digest;
use serde_json::{Value as Json, json};

/// The store: values by key, and the key lists it was sent (by id), as a node keeps them.
#[derive(Debug, Default)]
pub(crate) struct FakeServer {
    pub(crate) values: BTreeMap<String, Value>,
    lists: BTreeMap<String, Vec<String>>,
}

impl FakeServer {
    /// Answers one message of a step (`{"id", "type", ...}`) with the HTTP body a node gives.
    pub(crate) fn answer(&mut self, message: &Json) -> String {
        match message["type"].as_str() {
            Some("digests") => self.digests(message),
            Some("merge") => self.merge(message),
            other => panic!("not a sync message: {other:?}"),
        }
    }

    fn digests(&mut self, m: &Json) -> String {
        let list = m["list"].as_str().expect("a list id").to_owned();
        if let Some(keys) = m["keys"].as_array() {
            let keys: Vec<String> = keys
                .iter()
                .map(|k| k.as_str().unwrap().to_owned())
                .collect();
            let bytes: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
            assert_eq!(list, format!("{:016x}", haze_device::sync::list_id(&bytes)));
            self.lists.insert(list.clone(), keys);
        }
        let Some(keys) = self.lists.get(&list) else {
            return json!({"unknown_list": true}).to_string();
        };
        let digests: Vec<Option<String>> = (keys.iter())
            .map(|k| {
                let v = self.values.get(k)?;
                Some(format!("{:016x}", key_digest(k.as_bytes(), &v.encode())))
            })
            .collect();
        json!({"list": list, "digests": digests}).to_string()
    }

    fn merge(&mut self, m: &Json) -> String {
        let items: Vec<Json> = (m["items"].as_array().expect("items").iter())
            .map(|item| {
                let key = item["key"].as_str().unwrap().to_owned();
                let given: Value = serde_json::from_value(item["state"].clone()).unwrap();
                let merged = match self.values.remove(&key) {
                    None => given,
                    Some(mut v) => match v.merge(given) {
                        Ok(()) => v,
                        Err(e) => {
                            self.values.insert(key, v);
                            let error = json!({"code": "type_mismatch", "message": e.to_string()});
                            return json!({ "error": error });
                        }
                    },
                };
                self.values.insert(key, merged.clone());
                json!({ "state": merged })
            })
            .collect();
        json!({ "items": items }).to_string()
    }
}
