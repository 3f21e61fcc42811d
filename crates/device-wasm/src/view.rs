//! Values as an app reads them: the read view handed to JavaScript.

use haze_crdt::{Scalar, Value};
use serde_json::{Value as Json, json};

/// The largest integer a JavaScript number holds exactly (2^53 - 1).
const SAFE: i128 = (1 << 53) - 1;

/// An integer as a JSON number where JavaScript holds it exactly, else as a decimal string
/// (never rounded).
fn integer(n: i128) -> Json {
    if (-SAFE..=SAFE).contains(&n) {
        json!(n as i64)
    } else {
        Json::String(n.to_string())
    }
}

/// A scalar as the app sees it: a string, an integer (see [`integer`]), or bytes as
/// `{"bytes": "hex"}`.
pub(crate) fn scalar_view(s: &Scalar) -> Json {
    match s {
        Scalar::String(text) => Json::String(text.clone()),
        Scalar::Int(n) => integer(i128::from(*n)),
        Scalar::UInt(n) => integer(i128::from(*n)),
        Scalar::Bytes(_) => serde_json::to_value(s).unwrap_or(Json::Null),
    }
}

/// Returns the read view of `value`: a counter's number, a set's members, a register's value
/// (`null` if never set), a multi-value register's values, a flag's boolean, a max or min
/// (`null` if empty), a map's fields as `[{"key", "type", "value"}]` (a map field is named by
/// its key and its type; nested maps nest).
pub fn read_view(value: &Value) -> Json {
    let opt = |s: Option<&Scalar>| s.map_or(Json::Null, scalar_view);
    match value {
        Value::GCounter(c) => integer(i128::try_from(c.value()).unwrap_or(i128::MAX)),
        Value::PnCounter(c) => integer(c.value()),
        Value::LwwRegister(r) => opt(r.get()),
        Value::MvRegister(r) => r.values().map(scalar_view).collect(),
        Value::OrSet(s) => s.iter().map(scalar_view).collect(),
        Value::Flag(f) => Json::Bool(f.is_enabled()),
        Value::Max(m) => opt(m.get()),
        Value::Min(m) => opt(m.get()),
        Value::OrMap(m) => (m.iter())
            .map(|(field, v)| json!({"key": scalar_view(&field.key), "type": field.kind, "value": read_view(v)}))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use haze_crdt::{ActorId, OrSet, PnCounter};

    use super::*;

    #[test]
    fn numbers_stay_exact_and_strings_plain() {
        let mut c = PnCounter::new();
        c.add(ActorId::new(1), i64::MAX).unwrap();
        assert_eq!(read_view(&Value::PnCounter(c)), json!(i64::MAX.to_string()));
        let mut s = OrSet::new();
        s.insert(ActorId::new(1), Scalar::from("milk"));
        s.insert(ActorId::new(1), Scalar::Int(-3));
        s.insert(ActorId::new(1), Scalar::Bytes(vec![0xca, 0xfe]));
        let view = read_view(&Value::OrSet(s));
        let members = view.as_array().unwrap();
        assert!(members.contains(&json!("milk")) && members.contains(&json!(-3)));
        assert!(members.contains(&json!({"bytes": "cafe"})), "{view}");
    }
}
