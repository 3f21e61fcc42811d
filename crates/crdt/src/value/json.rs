//! The JSON view of a `Value`, for humans and HTTP: the whole state, so it round-trips.
//!
//! ```json
//! {"type": "or_set",
//!  "seen": {"00000000000000a1": 2},
//!  "entries": [{"value": {"string": "milk"}, "dots": [{"actor": "00000000000000a1", "counter": 2}]}]}
//! ```
//!
//! Parsing checks the same invariants as the binary decoder (dots inside the causal context,
//! no duplicates, no zero counts, bounded nesting) but accepts any order of array entries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Field, Scalar, Value, ValueMap};
use crate::clock::{ActorId, Dot, DotSet, HlcTimestamp, VersionVector};
use crate::encode::MAX_DEPTH;
use crate::error::DecodeError;
use crate::register::Stamp;
use crate::{EnableWinsFlag, GCounter, LwwRegister, Max, Min, MvRegister, OrSet, PnCounter};

/// A version vector as a JSON object `{"<actor>": count}`. Parsing refuses an actor listed
/// twice instead of keeping the last.
#[derive(Default)]
struct VvJson(BTreeMap<ActorId, u64>);

impl Serialize for VvJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for VvJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = VvJson;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object from actor ids to counts")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<VvJson, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((actor, count)) = map.next_entry::<ActorId, u64>()? {
                    if out.insert(actor, count).is_some() {
                        return Err(serde::de::Error::custom(format!(
                            "actor {actor} is listed twice"
                        )));
                    }
                }
                Ok(VvJson(out))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ValueJson {
    GCounter {
        counts: VvJson,
    },
    PnCounter {
        increments: VvJson,
        decrements: VvJson,
    },
    LwwRegister {
        entry: Option<LwwJson>,
    },
    MvRegister {
        seen: VvJson,
        values: Vec<MvJson>,
    },
    OrSet {
        seen: VvJson,
        entries: Vec<SetEntryJson>,
    },
    OrMap {
        seen: VvJson,
        entries: Vec<MapEntryJson>,
    },
    Flag {
        seen: VvJson,
        dots: Vec<Dot>,
    },
    Max {
        value: Option<Scalar>,
    },
    Min {
        value: Option<Scalar>,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LwwJson {
    millis: u64,
    logical: u16,
    actor: ActorId,
    value: Scalar,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MvJson {
    dot: Dot,
    value: Scalar,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetEntryJson {
    value: Scalar,
    dots: Vec<Dot>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MapEntryJson {
    key: Scalar,
    values: Vec<MapValueJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MapValueJson {
    dot: Dot,
    value: ValueJson,
}

fn vv_json(vv: &VersionVector) -> VvJson {
    VvJson(vv.iter().collect())
}

fn dots_json(dots: &DotSet) -> Vec<Dot> {
    dots.as_slice().to_vec()
}

impl From<&Value> for ValueJson {
    fn from(value: &Value) -> Self {
        match value {
            Value::GCounter(c) => ValueJson::GCounter {
                counts: vv_json(c.counts()),
            },
            Value::PnCounter(c) => ValueJson::PnCounter {
                increments: vv_json(c.increments().counts()),
                decrements: vv_json(c.decrements().counts()),
            },
            Value::LwwRegister(r) => ValueJson::LwwRegister {
                entry: r.entry().map(|(stamp, v)| LwwJson {
                    millis: stamp.time.millis(),
                    logical: stamp.time.logical(),
                    actor: stamp.actor,
                    value: v.clone(),
                }),
            },
            Value::MvRegister(r) => ValueJson::MvRegister {
                seen: vv_json(r.seen()),
                values: r
                    .entries()
                    .iter()
                    .map(|(dot, v)| MvJson {
                        dot: *dot,
                        value: v.clone(),
                    })
                    .collect(),
            },
            Value::OrSet(s) => ValueJson::OrSet {
                seen: vv_json(s.seen()),
                entries: s
                    .entries()
                    .map(|(v, d)| SetEntryJson {
                        value: v.clone(),
                        dots: dots_json(d),
                    })
                    .collect(),
            },
            Value::OrMap(m) => ValueJson::OrMap {
                seen: vv_json(m.seen()),
                entries: m
                    .entries()
                    .map(|(f, values)| MapEntryJson {
                        key: f.key.clone(),
                        values: values
                            .iter()
                            .map(|(dot, v)| MapValueJson {
                                dot: *dot,
                                value: v.into(),
                            })
                            .collect(),
                    })
                    .collect(),
            },
            Value::Flag(f) => ValueJson::Flag {
                seen: vv_json(f.seen()),
                dots: f.dots().map(dots_json).unwrap_or_default(),
            },
            Value::Max(m) => ValueJson::Max {
                value: m.get().cloned(),
            },
            Value::Min(m) => ValueJson::Min {
                value: m.get().cloned(),
            },
        }
    }
}

fn invalid(what: &'static str) -> DecodeError {
    DecodeError::InvalidState(what)
}

/// Checks a version vector whose counts are at most `max_count`.
fn vv_from(VvJson(json): VvJson, max_count: u64) -> Result<VersionVector, DecodeError> {
    if json.values().any(|&n| n == 0) {
        return Err(invalid("a version vector holds no zero counts"));
    }
    if json.values().any(|&n| n > max_count) {
        return Err(invalid(
            "a causal context counts at most 2^63 - 1 updates per actor",
        ));
    }
    Ok(VersionVector::from_sorted(json.into_iter().collect()))
}

/// Sorts dots and checks that they are distinct and inside the causal context.
fn dots_from(mut dots: Vec<Dot>, seen: &VersionVector) -> Result<Vec<Dot>, DecodeError> {
    dots.sort_unstable();
    if dots.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid("a dot is listed twice"));
    }
    if dots.iter().any(|&d| d.counter == 0 || !seen.contains(d)) {
        return Err(invalid("a dot is outside the causal context"));
    }
    Ok(dots)
}

fn live_dots(dots: Vec<Dot>, seen: &VersionVector) -> Result<DotSet, DecodeError> {
    DotSet::from_sorted(dots_from(dots, seen)?).ok_or(invalid("a live entry has at least one dot"))
}

fn distinct<K: Ord, V>(
    entries: Vec<(K, V)>,
    what: &'static str,
) -> Result<BTreeMap<K, V>, DecodeError> {
    let n = entries.len();
    let map = BTreeMap::from_iter(entries);
    if map.len() == n {
        Ok(map)
    } else {
        Err(invalid(what))
    }
}

impl ValueJson {
    fn into_value(self, depth: usize) -> Result<Value, DecodeError> {
        // `depth` maps enclose this value; a map here would be level `depth + 1`.
        if matches!(self, ValueJson::OrMap { .. }) && depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep(MAX_DEPTH));
        }
        Ok(match self {
            ValueJson::GCounter { counts } => {
                Value::GCounter(GCounter::from_counts(vv_from(counts, u64::MAX)?))
            }
            ValueJson::PnCounter {
                increments,
                decrements,
            } => Value::PnCounter(PnCounter::from_parts(
                GCounter::from_counts(vv_from(increments, u64::MAX)?),
                GCounter::from_counts(vv_from(decrements, u64::MAX)?),
            )),
            ValueJson::LwwRegister { entry } => Value::LwwRegister(match entry {
                None => LwwRegister::new(),
                Some(e) => {
                    if e.millis > HlcTimestamp::MAX.millis() {
                        return Err(invalid("a timestamp's millis are at most 2^47 - 1"));
                    }
                    let stamp = Stamp {
                        time: HlcTimestamp::new(e.millis, e.logical),
                        actor: e.actor,
                    };
                    LwwRegister::with_stamp(stamp, e.value)
                }
            }),
            ValueJson::MvRegister { seen, values } => {
                let seen = vv_from(seen, Dot::MAX_COUNTER)?;
                let dots = dots_from(values.iter().map(|v| v.dot).collect(), &seen)?;
                debug_assert_eq!(dots.len(), values.len());
                let values = distinct(
                    values.into_iter().map(|v| (v.dot, v.value)).collect(),
                    "a dot is listed twice",
                )?;
                Value::MvRegister(MvRegister::from_parts(seen, values.into_iter().collect()))
            }
            ValueJson::OrSet { seen, entries } => {
                let seen = vv_from(seen, Dot::MAX_COUNTER)?;
                let entries: Result<Vec<_>, _> = entries
                    .into_iter()
                    .map(|e| Ok((e.value, live_dots(e.dots, &seen)?)))
                    .collect();
                Value::OrSet(OrSet::from_parts(
                    seen,
                    distinct(entries?, "a set element is listed twice")?,
                ))
            }
            ValueJson::OrMap { seen, entries } => {
                let seen = vv_from(seen, Dot::MAX_COUNTER)?;
                let entries: Result<Vec<_>, DecodeError> = entries
                    .into_iter()
                    .map(|e| {
                        let dots = dots_from(e.values.iter().map(|v| v.dot).collect(), &seen)?;
                        let mut values = Vec::with_capacity(e.values.len());
                        for v in e.values {
                            values.push((v.dot, v.value.into_value(depth + 1)?));
                        }
                        values.sort_unstable_by_key(|(dot, _)| *dot);
                        let kind = values
                            .first()
                            .ok_or(invalid("a live entry has at least one dot"))?
                            .1
                            .kind();
                        if values.iter().any(|(_, v)| v.kind() != kind) {
                            return Err(invalid("the values of one map field have one type"));
                        }
                        debug_assert_eq!(dots.len(), values.len());
                        Ok((Field { key: e.key, kind }, values))
                    })
                    .collect();
                Value::OrMap(ValueMap::from_parts(
                    seen,
                    distinct(entries?, "a map field is listed twice")?,
                ))
            }
            ValueJson::Flag { seen, dots } => {
                let seen = vv_from(seen, Dot::MAX_COUNTER)?;
                let dots = DotSet::from_sorted(dots_from(dots, &seen)?);
                Value::Flag(EnableWinsFlag::from_parts(seen, dots))
            }
            ValueJson::Max { value } => Value::Max(value.map_or_else(Max::new, Max::of)),
            ValueJson::Min { value } => Value::Min(value.map_or_else(Min::new, Min::of)),
        })
    }
}

impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ValueJson::from(self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ValueJson::deserialize(deserializer)?
            .into_value(0)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_an_or_set() {
        let mut s = OrSet::new();
        s.insert(ActorId::new(0xa1), Scalar::from("milk"));
        let v = Value::OrSet(s);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(
            json,
            r#"{"type":"or_set","seen":{"00000000000000a1":1},"entries":[{"value":{"string":"milk"},"dots":[{"actor":"00000000000000a1","counter":1}]}]}"#
        );
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), v);
    }

    #[test]
    fn json_with_a_dot_outside_the_context_is_refused() {
        let json = r#"{"type":"or_set","seen":{},"entries":[{"value":{"int":1},"dots":[{"actor":"0000000000000001","counter":1}]}]}"#;
        let err = serde_json::from_str::<Value>(json).unwrap_err().to_string();
        assert!(err.contains("outside the causal context"), "{err}");
    }

    #[test]
    fn unknown_fields_aliased_actors_and_repeated_actors_are_refused() {
        assert!(serde_json::from_str::<Value>(r#"{"type":"max","value":null}"#).is_ok());
        assert!(serde_json::from_str::<Value>(r#"{"type":"max","value":null,"extra":1}"#).is_err());
        let repeated =
            r#"{"type":"g_counter","counts":{"0000000000000001":1,"0000000000000001":2}}"#;
        let err = serde_json::from_str::<Value>(repeated)
            .unwrap_err()
            .to_string();
        assert!(err.contains("listed twice"), "{err}");
        assert!(
            serde_json::from_str::<Value>(r#"{"type":"g_counter","counts":{"01":1}}"#).is_err()
        );
    }

    #[test]
    fn unknown_types_and_duplicates_are_refused() {
        assert!(serde_json::from_str::<Value>(r#"{"type":"hyperloglog"}"#).is_err());
        let dup = r#"{"type":"or_set","seen":{"0000000000000001":2},"entries":[
            {"value":{"int":1},"dots":[{"actor":"0000000000000001","counter":1}]},
            {"value":{"int":1},"dots":[{"actor":"0000000000000001","counter":2}]}]}"#;
        assert!(serde_json::from_str::<Value>(dup).is_err());
    }
}
