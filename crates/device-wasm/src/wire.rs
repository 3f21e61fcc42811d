//! The JSON that crosses the boundary: sync messages out, the server's answers in (over HTTP
//! or the WebSocket: both shapes are read), the metadata IndexedDB keeps.

use haze_crdt::{ActorId, Value};
use haze_device::sync::{Answer, Message, Outgoing, Report, Step};
use haze_device::{LastSync, Meta};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::error::{Result, SdkError};

fn key_text(key: &[u8]) -> Result<&str> {
    std::str::from_utf8(key).map_err(|_| SdkError::new("invalid", "a key is not UTF-8"))
}

fn hex(n: u64) -> String {
    format!("{n:016x}")
}

/// Reads exactly 16 hex digits (`from_str_radix` alone would take a sign).
fn from_hex(h: &str) -> Option<u64> {
    let digits = h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit());
    digits.then(|| u64::from_str_radix(h, 16).ok()).flatten()
}

fn protocol(message: impl Into<String>) -> SdkError {
    SdkError::new("protocol", message)
}

/// A message as JSON: `{"id", "type": "digests", "list", "keys"?}` or
/// `{"id", "type": "merge", "items": [{"key", "state"}]}`. Without `id` and `type` it is the
/// body of `POST /v1/sync/digests` or `/merge`; with them, the WebSocket's request.
pub(crate) fn message_json(out: &Outgoing) -> Result<Json> {
    Ok(match &out.message {
        Message::Digests { list, keys } => {
            let mut m = json!({"id": out.id, "type": "digests", "list": hex(*list)});
            if let Some(keys) = keys {
                let keys: Vec<&str> = keys.iter().map(|k| key_text(k)).collect::<Result<_>>()?;
                m["keys"] = json!(keys);
            }
            m
        }
        Message::Merge { items } => {
            let items = (items.iter())
                .map(|(k, v)| Ok(json!({"key": key_text(k)?, "state": v})))
                .collect::<Result<Vec<_>>>()?;
            json!({"id": out.id, "type": "merge", "items": items})
        }
    })
}

/// A step as JSON: `{"send": [message, ...]}` or `{"done": report}`.
pub(crate) fn step_json(step: &Step) -> Result<String> {
    Ok(match step {
        Step::Send(out) => {
            let messages = out.iter().map(message_json).collect::<Result<Vec<_>>>()?;
            json!({ "send": messages })
        }
        Step::Done(report) => json!({ "done": report_json(report) }),
    }
    .to_string())
}

/// A report as JSON: `{"checked", "sent", "updated", "failed": [{"key", "code", "message"}]}`.
fn report_json(r: &Report) -> Json {
    let failed: Vec<Json> = (r.failed.iter())
        .map(|(key, e)| {
            let e = SdkError::from(e.clone());
            json!({"key": String::from_utf8_lossy(key), "code": e.code, "message": e.message})
        })
        .collect();
    json!({"checked": r.checked, "sent": r.sent, "updated": r.updated, "failed": failed})
}

/// One merged item of an answer: the merged state or the error the server gave.
#[derive(Deserialize)]
#[serde(untagged)]
enum Outcome {
    State { state: Value },
    Error { error: ErrorBody },
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
}

/// The answers' fields, from either transport; which ones are present says what it answers.
#[derive(Deserialize)]
struct AnswerJson {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    unknown_list: bool,
    digests: Option<Vec<Option<String>>>,
    items: Option<Vec<Json>>,
}

/// Reads a server's answer: `{"list", "digests": [hex | null]}`, `{"unknown_list": true}` (or
/// `{"type": "unknown_list"}`), `{"items": [{"state"} | {"error": {"code", "message"}}]}`.
///
/// # Errors
///
/// `protocol` for anything else, a digest that is not 16 hex digits, an item that is neither.
pub(crate) fn parse_answer(text: &str) -> Result<Answer> {
    let a: AnswerJson = serde_json::from_str(text)
        .map_err(|e| protocol(format!("an answer that is not JSON of the sync: {e}")))?;
    if a.unknown_list || a.kind.as_deref() == Some("unknown_list") {
        return Ok(Answer::UnknownList);
    }
    if let Some(digests) = a.digests {
        let parse = |d: Option<String>| match d {
            None => Ok(None),
            Some(h) => (from_hex(&h).map(Some))
                .ok_or_else(|| protocol(format!("digest {h:?} is not 16 hex digits"))),
        };
        return Ok(Answer::Digests(
            digests.into_iter().map(parse).collect::<Result<_>>()?,
        ));
    }
    if let Some(items) = a.items {
        let outcome = |item: Json| match serde_json::from_value::<Outcome>(item) {
            Ok(Outcome::State { state }) => Ok(Ok(state)),
            Ok(Outcome::Error { error }) => Ok(Err(format!("{}: {}", error.code, error.message))),
            Err(e) => Err(protocol(format!(
                "a merged item is neither a state nor an error: {e}"
            ))),
        };
        return Ok(Answer::Merged(
            items.into_iter().map(outcome).collect::<Result<_>>()?,
        ));
    }
    Err(protocol("an answer with no digests, items or unknown_list"))
}

/// The metadata as IndexedDB keeps it: `{"actor": "hex", "saves", "last_sync": {"at", "keys"}}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetaJson {
    actor: String,
    saves: u64,
    last_sync: Option<LastSyncJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LastSyncJson {
    at: u64,
    keys: u64,
}

/// The metadata as JSON.
pub(crate) fn meta_json(meta: &Meta) -> String {
    let m = MetaJson {
        actor: meta.actor.to_string(),
        saves: meta.saves,
        last_sync: meta.last_sync.map(|l| LastSyncJson {
            at: l.at,
            keys: l.keys,
        }),
    };
    serde_json::to_string(&m).unwrap_or_default()
}

/// Reads the metadata IndexedDB kept.
///
/// # Errors
///
/// `corrupt` if it is not what [`meta_json`] writes.
pub(crate) fn parse_meta(text: &str) -> Result<Meta> {
    let corrupt = |m: String| SdkError::new("corrupt", format!("the saved metadata: {m}"));
    let m: MetaJson = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    let actor = from_hex(&m.actor)
        .ok_or_else(|| corrupt(format!("actor {:?} is not 16 hex digits", m.actor)))?;
    Ok(Meta {
        actor: ActorId::new(actor),
        saves: m.saves,
        last_sync: m.last_sync.map(|l| LastSync {
            at: l.at,
            keys: l.keys,
        }),
    })
}

#[cfg(test)]
mod tests {
    use haze_crdt::GCounter;

    use super::*;

    #[test]
    fn answers_of_both_transports_are_read() {
        assert_eq!(
            parse_answer(r#"{"unknown_list":true}"#).unwrap(),
            Answer::UnknownList
        );
        assert_eq!(
            parse_answer(r#"{"id":3,"type":"unknown_list"}"#).unwrap(),
            Answer::UnknownList
        );
        let d = parse_answer(r#"{"list":"00000000000000ff","digests":["000000000000000a",null]}"#);
        assert_eq!(d.unwrap(), Answer::Digests(vec![Some(10), None]));
        let state = serde_json::to_string(&Value::from(GCounter::new())).unwrap();
        let text = format!(
            r#"{{"type":"merged","items":[{{"state":{state}}},{{"error":{{"code":"forbidden","message":"no"}}}}]}}"#
        );
        let Answer::Merged(items) = parse_answer(&text).unwrap() else {
            panic!()
        };
        assert_eq!(items[0], Ok(Value::from(GCounter::new())));
        assert_eq!(items[1], Err("forbidden: no".into()));
    }

    #[test]
    fn malformed_answers_are_protocol_errors() {
        for bad in [
            "",
            "[]",
            "{}",
            r#"{"digests":["xyz"]}"#,
            r#"{"digests":["+00000000000000a"]}"#,
            r#"{"items":[{"state":{"type":"nope"}}]}"#,
            r#"{"items":[{"oops":1}]}"#,
        ] {
            assert_eq!(parse_answer(bad).unwrap_err().code, "protocol", "{bad}");
        }
    }

    #[test]
    fn metadata_round_trips_and_damage_is_corrupt() {
        let meta = Meta {
            actor: ActorId::new(0xabc),
            saves: 9,
            last_sync: Some(LastSync { at: 5, keys: 2 }),
        };
        assert_eq!(parse_meta(&meta_json(&meta)).unwrap(), meta);
        for bad in ["{}", r#"{"actor":"zz","saves":1,"last_sync":null}"#, "null"] {
            assert_eq!(parse_meta(bad).unwrap_err().code, "corrupt", "{bad}");
        }
    }
}
