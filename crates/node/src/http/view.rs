//! The read view of a value: what an application sees (a number, members, a flag), beside the
//! full state.

use haze_crdt::{Scalar, Value};
use serde_json::{Value as Json, json};

fn scalar(s: &Scalar) -> Json {
    match s {
        Scalar::String(text) => Json::String(text.clone()),
        other => serde_json::to_value(other).expect("a scalar serialises"),
    }
}

/// A counter's value: a JSON number within 64 signed bits, a decimal string beyond, on either
/// side (JSON parsers differ past that; a string is never rounded).
fn number(n: i128) -> Json {
    match i64::try_from(n) {
        Ok(n) => json!(n),
        Err(_) => Json::String(n.to_string()),
    }
}

/// Returns what a read of `value` means: a counter's number, a set's members, a register's
/// value (strings plain, other scalars tagged), a flag's boolean, a map's fields.
pub fn read_view(value: &Value) -> Json {
    match value {
        Value::GCounter(c) => number(i128::try_from(c.value()).unwrap_or(i128::MAX)),
        Value::PnCounter(c) => number(c.value()),
        Value::LwwRegister(r) => r.get().map_or(Json::Null, scalar),
        Value::MvRegister(r) => Json::Array(r.values().map(scalar).collect()),
        Value::OrSet(s) => Json::Array(s.iter().map(scalar).collect()),
        Value::Flag(f) => Json::Bool(f.is_enabled()),
        Value::Max(m) => m.get().map_or(Json::Null, scalar),
        Value::Min(m) => m.get().map_or(Json::Null, scalar),
        Value::OrMap(m) => Json::Array(
            m.iter()
                .map(|(field, v)| json!({"key": scalar(&field.key), "type": field.kind, "value": read_view(v)}))
                .collect(),
        ),
    }
}
