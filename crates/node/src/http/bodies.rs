//! Every JSON body the API reads or answers, as a type: the handlers parse and serialise these,
//! and the OpenAPI description (`openapi`) is generated from the same types, so the contract
//! cannot drift from the code.

use std::collections::BTreeMap;

use haze_crdt::{Scalar, Value, ValueKind};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{KnownFormat, RefOr, SchemaFormat};
use utoipa::{PartialSchema, ToSchema};

/// `POST /v1/keys/{key}/counter`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CounterBody {
    /// What to add (negative to subtract).
    pub(super) add: i64,
}

/// A member or register value: a plain JSON string, or a tagged scalar (`{"int": -1}`).
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum ScalarJson {
    Plain(String),
    Tagged(Scalar),
}

impl From<ScalarJson> for Scalar {
    fn from(s: ScalarJson) -> Scalar {
        match s {
            ScalarJson::Plain(text) => Scalar::String(text),
            ScalarJson::Tagged(s) => s,
        }
    }
}

impl PartialSchema for ScalarJson {
    fn schema() -> RefOr<Schema> {
        let tagged = ObjectBuilder::new()
            .description(Some(
                "A tagged scalar: one of {\"string\": S}, {\"int\": N}, {\"uint\": N}, {\"bytes\": BASE64}.",
            ))
            .min_properties(Some(1))
            .max_properties(Some(1));
        OneOfBuilder::new()
            .description(Some("A plain string, or a tagged scalar."))
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(tagged)
            .into()
    }
}

impl ToSchema for ScalarJson {
    fn name() -> std::borrow::Cow<'static, str> {
        "Scalar".into()
    }
}

/// `POST /v1/keys/{key}/set/add` and `/set/remove`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MembersBody {
    pub(super) members: Vec<ScalarJson>,
}

/// `POST /v1/keys/{key}/register`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RegisterBody {
    pub(super) value: ScalarJson,
}

/// A key's full state (a CRDT, as `GET` returns it in `state` and `merge` takes it): an object
/// naming its type and holding its parts (docs/http-api.md, "States").
pub(super) struct StateSchema;

impl PartialSchema for StateSchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some(
                "A full CRDT state, as GET answers it in `state` (docs/http-api.md, \"States\").",
            ))
            .into()
    }
}

impl ToSchema for StateSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "State".into()
    }
}

/// `POST /v1/keys/{key}/edit`: a typed edit of any type (`haze_device::Edit` as JSON).
pub(super) struct EditSchema;

impl PartialSchema for EditSchema {
    fn schema() -> RefOr<Schema> {
        let unit = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["set_clear", "flag_enable", "flag_disable"]));
        let one = ObjectBuilder::new()
            .description(Some(
                "One edit by name, with its argument: {\"counter_add\": N}, {\"set_add\": [..]}, \
                 {\"set_remove\": [..]}, {\"register_set\": S}, {\"mv_register_set\": S}, \
                 {\"max\": S}, {\"min\": S}, {\"map\": {\"field\": .., \"edit\": ..}}, \
                 {\"map_remove\": ..} (docs/http-api.md, \"Edits\").",
            ))
            .min_properties(Some(1))
            .max_properties(Some(1));
        OneOfBuilder::new()
            .description(Some(
                "An edit: a unit edit by name, or an object of one edit.",
            ))
            .item(unit)
            .item(one)
            .into()
    }
}

impl ToSchema for EditSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "Edit".into()
    }
}

/// `POST /v1/sync/digests`: the keys (the node answers the list's id with the digests), or a
/// list sent before, by its id (16 hex digits: a JavaScript number cannot hold 64 bits).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DigestsBody {
    #[serde(default)]
    pub(super) list: Option<String>,
    #[serde(default)]
    pub(super) keys: Option<Vec<String>>,
}

/// `POST /v1/sync/merge`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MergeBody {
    pub(super) items: Vec<MergeItem>,
}

/// A key's state to merge.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MergeItem {
    pub(super) key: String,
    #[schema(schema_with = StateSchema::schema)]
    pub(super) state: Value,
}

/// An error answer (docs/http-api.md, "Errors").
#[derive(Serialize, ToSchema)]
pub(super) struct ErrorBody<'a> {
    pub(super) error: ErrorDetail<'a>,
}

/// A stable code (`bad_request`, `type_mismatch`, `forbidden`, ...) and a message for people.
#[derive(Serialize, ToSchema)]
pub(super) struct ErrorDetail<'a> {
    pub(super) code: &'a str,
    pub(super) message: &'a str,
}

/// A key's state and its readable view.
#[derive(Serialize, ToSchema)]
pub(super) struct Envelope<'a> {
    pub(super) key: &'a str,
    /// The CRDT type (`pn_counter`, `or_set`, `lww_register`, `or_map`, ...).
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub(super) kind: ValueKind,
    /// What the state means: a counter's number (a string beyond 64 bits), a set's members, a
    /// register's value, a flag's boolean, a map's fields.
    pub(super) value: Json,
    #[schema(schema_with = StateSchema::schema)]
    pub(super) state: &'a Value,
}

/// `GET /v1/keys/{key}/digest`.
#[derive(Serialize, ToSchema)]
pub(super) struct DigestAnswer<'a> {
    pub(super) key: &'a str,
    /// The digest of the key's state, 16 hex digits; null without one.
    pub(super) digest: Option<String>,
}

/// `GET /health`.
#[derive(Serialize, ToSchema)]
pub(super) struct Health<'a> {
    /// `ok`, `disk_full` or `failed`.
    pub(super) status: &'a str,
    /// Why it is not `ok`.
    pub(super) reason: Option<&'a str>,
    /// The node's actor id (its writes' identity in the CRDTs).
    pub(super) actor: String,
    /// `sync`, or `periodic (N ms)`.
    pub(super) durability: String,
    /// The node's background tasks running, by name.
    pub(super) tasks: BTreeMap<String, usize>,
}

/// `POST /v1/sync/digests`'s answer: the list's id and a digest per key (null: no value), or
/// that the node does not know the list named (send the keys again).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(super) enum DigestsAnswer {
    Digests {
        list: String,
        digests: Vec<Option<String>>,
    },
    UnknownList {
        unknown_list: bool,
    },
}

/// `POST /v1/sync/merge`'s answer: each item's merged state, or its error, in order.
#[derive(Serialize, ToSchema)]
pub(super) struct MergeAnswer<'a> {
    pub(super) items: Vec<MergeOutcome<'a>>,
}

/// One item's outcome.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(super) enum MergeOutcome<'a> {
    Merged {
        #[schema(schema_with = StateSchema::schema)]
        state: &'a Value,
    },
    Failed {
        error: ErrorDetail<'a>,
    },
}

/// `POST /v1/sync`: a request or response of the binary protocol (its frame's body).
pub(super) struct BinaryBody;

impl PartialSchema for BinaryBody {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .description(Some(
                "The body of a frame of the binary protocol (docs/protocol.md).",
            ))
            .into()
    }
}

impl ToSchema for BinaryBody {
    fn name() -> std::borrow::Cow<'static, str> {
        "Frame".into()
    }
}
