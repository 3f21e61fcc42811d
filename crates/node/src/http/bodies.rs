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

/// The `{key}` of a key's routes.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(
    dead_code,
    reason = "read by utoipa only: axum's `Path<String>` parses the key"
)]
pub(super) struct KeyPath {
    /// The key (UTF-8, at most the node's key limit, 1 KiB by default).
    key: String,
}

/// Answers of the same kind shared by several routes, for their `#[utoipa::path]`.
type Answers = BTreeMap<String, RefOr<utoipa::openapi::Response>>;

/// Responses whose body is an [`ErrorBody`], by status.
fn errors(list: &[(u16, &str)]) -> Answers {
    list.iter()
        .map(|(status, description)| (status.to_string(), json_answer(description, "ErrorBody")))
        .collect()
}

/// A response with a JSON body of the component schema `schema`.
fn json_answer(description: &str, schema: &str) -> RefOr<utoipa::openapi::Response> {
    let content = utoipa::openapi::ContentBuilder::new()
        .schema(Some(utoipa::openapi::Ref::from_schema_name(schema)))
        .build();
    utoipa::openapi::ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
        .into()
}

/// 200 with the key's [`Envelope`]: every read and write of a key.
pub(super) struct StateAnswer;

impl utoipa::IntoResponses for StateAnswer {
    fn responses() -> Answers {
        [(
            "200".to_string(),
            json_answer("The key's state and its readable view.", "Envelope"),
        )]
        .into()
    }
}

/// The errors any request can meet: a malformed one, tokens, limits, availability.
pub(super) struct CommonErrors;

impl utoipa::IntoResponses for CommonErrors {
    fn responses() -> Answers {
        errors(&[
            (400, "A malformed request: a bad key, body or JSON."),
            (
                401,
                "No token, or one unknown, expired or revoked (with tokens required).",
            ),
            (
                403,
                "A key outside the token's prefixes, or a right the token lacks.",
            ),
            (413, "A key, value or body over the node's limit."),
            (
                503,
                "Unavailable: not enough replicas answered, the disk is full, or the node is \
                 overloaded or outside its cluster.",
            ),
        ])
    }
}

/// The errors only a write meets.
pub(super) struct WriteErrors;

impl utoipa::IntoResponses for WriteErrors {
    fn responses() -> Answers {
        errors(&[
            (409, "The key holds a value of another type."),
            (
                422,
                "Refused: a register stamped too far ahead of the node's clock, or an operation \
                 the value cannot take.",
            ),
        ])
    }
}

/// 404: no value under the key.
pub(super) struct NotFound;

impl utoipa::IntoResponses for NotFound {
    fn responses() -> Answers {
        errors(&[(404, "No value under the key.")])
    }
}
