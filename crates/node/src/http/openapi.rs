//! The API's OpenAPI description, generated from the handlers' `#[utoipa::path]` attributes and
//! the types of the bodies they parse and answer (`bodies`), served at `/v1/openapi.json`. CI
//! checks a live node against it with schemathesis (scripts/api-fuzz.sh): every status, content
//! type and body a generated request gets must be one described here.

use std::sync::OnceLock;

use utoipa::OpenApi;

use super::bodies::{
    BinaryBody, CounterBody, DigestAnswer, DigestsAnswer, DigestsBody, EditSchema, Envelope,
    ErrorBody, ErrorDetail, Health, MembersBody, MergeAnswer, MergeBody, MergeItem, MergeOutcome,
    RegisterBody, ScalarJson, StateSchema,
};
use super::{api, sync, ws};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Haze node HTTP API",
        version = "1",
        description = "A node's HTTP/JSON API (docs/http-api.md is the prose). Generated from the \
                       code that serves it. With tokens required, every route takes \
                       `Authorization: Bearer TOKEN`: 401 without a valid one, 403 for a key \
                       outside its prefixes or a right it lacks."
    ),
    paths(
        api::health,
        api::metrics,
        serve,
        api::get_value,
        api::digest,
        api::merge,
        api::counter,
        api::set_add,
        api::set_remove,
        api::register,
        api::edit,
        sync::digests,
        sync::merge,
        sync::binary,
        ws::upgrade,
    ),
    components(schemas(
        CounterBody,
        ScalarJson,
        MembersBody,
        RegisterBody,
        StateSchema,
        EditSchema,
        DigestsBody,
        MergeBody,
        MergeItem,
        ErrorBody,
        ErrorDetail,
        Envelope,
        DigestAnswer,
        Health,
        DigestsAnswer,
        MergeAnswer,
        MergeOutcome,
        BinaryBody,
    ))
)]
struct ApiDoc;

/// The description as JSON, built once.
fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI description serialises")
    })
}

/// `GET /v1/openapi.json`.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    responses((status = 200, description = "This description.", content_type = "application/json", body = Object))
)]
pub(super) async fn serve() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_and_its_answers_are_described_from_their_types() {
        // (That every route is described is checked against the router in the node's tests.)
        let doc: serde_json::Value = serde_json::from_str(json()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let counter = &paths["/v1/keys/{key}/counter"]["post"];
        let body = &counter["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(
            body["$ref"], "#/components/schemas/CounterBody",
            "{counter}"
        );
        let schema = &doc["components"]["schemas"]["CounterBody"];
        assert_eq!(schema["required"][0], "add", "{schema}");
        assert_eq!(schema["additionalProperties"], false, "{schema}");
        for code in ["200", "400", "401", "403", "409", "413", "422", "503"] {
            assert!(
                counter["responses"].get(code).is_some(),
                "counter: no {code} in {}",
                counter["responses"]
            );
        }
    }
}
