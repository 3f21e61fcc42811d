//! The HTTP/JSON API: reads, merges, typed operations, errors as statuses, health, metrics.

use haze_node::NodeConfig;
use haze_storage::StoreConfig;
use haze_testkit::TestNode;
use serde_json::Value as Json;

use crate::harness::http;

fn json(body: &str) -> Json {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn typed_operations_reads_and_merges_over_http() {
    let node = TestNode::start(NodeConfig::default()).await;
    let (status, body) = http(
        node.http,
        "POST",
        "/v1/keys/visits/counter",
        r#"{"add": 3}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["value"], 3);
    let (status, body) = http(
        node.http,
        "POST",
        "/v1/keys/list/set/add",
        r#"{"members": ["milk", {"int": 2}]}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json(&body)["value"],
        serde_json::json!(["milk", {"int": 2}])
    );
    let (status, body) = http(
        node.http,
        "POST",
        "/v1/keys/title/register",
        r#"{"value": "Groceries"}"#,
    )
    .await;
    assert_eq!(
        (status, json(&body)["value"].clone()),
        (200, serde_json::json!("Groceries"))
    );

    // The state from a read merges back in unchanged.
    let (status, body) = http(node.http, "GET", "/v1/keys/list", "").await;
    assert_eq!(status, 200);
    let state = json(&body)["state"].to_string();
    let (status, merged) = http(node.http, "POST", "/v1/keys/list/merge", &state).await;
    assert_eq!((status, json(&merged)["state"].to_string()), (200, state));

    let (status, body) = http(node.http, "GET", "/v1/keys/list/digest", "").await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["digest"].as_str().map(str::len), Some(16));
    node.stop().await;
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn errors_map_to_statuses_with_a_json_body() {
    let config = NodeConfig {
        store: StoreConfig {
            max_value_bytes: 300,
            ..StoreConfig::default()
        },
        ..NodeConfig::default()
    };
    let node = TestNode::start(config).await;
    http(node.http, "POST", "/v1/keys/n/counter", r#"{"add": 1}"#).await;
    let cases = [
        ("GET", "/v1/keys/missing", "", 404, "not_found"),
        ("POST", "/v1/keys/n/merge", "{not json", 400, "bad_request"),
        (
            "POST",
            "/v1/keys/n/merge",
            r#"{"type": "hyperloglog"}"#,
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/keys/n/counter",
            r#"{"add": "three"}"#,
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/keys/n/set/add",
            r#"{"members": ["x"]}"#,
            409,
            "type_mismatch",
        ),
        (
            "POST",
            "/v1/keys/s/set/add",
            &format!(r#"{{"members": ["{}"]}}"#, "x".repeat(400)),
            413,
            "value_too_large",
        ),
        ("GET", "/nowhere", "", 404, "not_found"),
    ];
    for (method, path, body, status, code) in cases {
        let (got, response) = http(node.http, method, path, body).await;
        assert_eq!(got, status, "{method} {path}: {response}");
        assert_eq!(json(&response)["error"]["code"], code, "{method} {path}");
    }
    let huge = "x".repeat(5 * 1024 * 1024);
    let (status, response) = http(node.http, "POST", "/v1/keys/n/merge", &huge).await;
    assert_eq!(status, 413, "{response}");
    let (_, body) = http(node.http, "GET", "/v1/keys/s", "").await;
    assert_eq!(
        json(&body)["error"]["code"],
        "not_found",
        "a refused write stores nothing"
    );
    node.stop().await;
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn health_and_metrics_report_the_node() {
    let node = TestNode::start(NodeConfig::default()).await;
    let client = node.client().await;
    client.counter_add("k", 1).await.unwrap();
    let (status, body) = http(node.http, "GET", "/health", "").await;
    assert_eq!(
        (status, json(&body)["status"].clone()),
        (200, serde_json::json!("ok"))
    );
    let (status, text) = http(node.http, "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    for needle in [
        "haze_requests_total{kind=\"op\",outcome=\"ok\"} 1",
        "haze_request_duration_seconds_bucket{kind=\"op\",le=\"+Inf\"} 1",
        "haze_storage_commits_total 1",
        "haze_storage_commit_duration_seconds_count 1",
        "haze_storage_commit_writes_bucket{le=\"1\"} 1",
        "haze_connections_open 1",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    node.stop().await;
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn silent_and_slowloris_http_clients_are_timed_out() {
    use tokio::io::AsyncWriteExt;
    let node = TestNode::start(crate::harness::short_timeouts()).await;
    let mut silent = tokio::net::TcpStream::connect(node.http).await.unwrap();
    assert!(
        crate::harness::is_closed(&mut silent).await,
        "a connection that sends nothing is closed"
    );
    let mut slow = tokio::net::TcpStream::connect(node.http).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap(); // and never finishes
    assert!(
        crate::harness::is_closed(&mut slow).await,
        "a header that never ends is cut off"
    );
    let (status, _) = http(node.http, "GET", "/health", "").await;
    assert_eq!(status, 200, "others are served");
    node.stop().await;
}

/// Where HTTP answers and the docs disagreed, tried as a client would: a malformed chunked body
/// is malformed (400), not too large; a counter past 64 bits is a decimal string on either side;
/// a key longer than any URI answers 414 (docs/http-api.md), a long key under it 413.
#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn http_answers_agree_with_the_docs_at_the_edges() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let node = TestNode::start(NodeConfig::default()).await;

    let mut stream = tokio::net::TcpStream::connect(node.http).await.unwrap();
    stream
        .write_all(
            b"POST /v1/keys/k/register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
              Connection: close\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("bad_request"), "{answer}");

    let (_, body) = http(
        node.http,
        "POST",
        "/v1/keys/low/counter",
        &format!("{{\"add\": {}}}", i64::MIN),
    )
    .await;
    assert_eq!(json(&body)["value"], Json::from(i64::MIN));
    let (_, body) = http(node.http, "POST", "/v1/keys/low/counter", r#"{"add": -1}"#).await;
    assert_eq!(json(&body)["value"], "-9223372036854775809");
    let (_, _) = http(
        node.http,
        "POST",
        "/v1/keys/high/counter",
        &format!("{{\"add\": {}}}", i64::MAX),
    )
    .await;
    let (_, body) = http(node.http, "POST", "/v1/keys/high/counter", r#"{"add": 1}"#).await;
    assert_eq!(json(&body)["value"], "9223372036854775808");

    let (status, body) = http(
        node.http,
        "GET",
        &format!("/v1/keys/{}", "k".repeat(2000)),
        "",
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("key_too_large"), "{body}");
    let (status, _) = http(
        node.http,
        "GET",
        &format!("/v1/keys/{}", "k".repeat(100_000)),
        "",
    )
    .await;
    assert_eq!(status, 414);
    node.stop().await;
}

/// Every node serves the API's OpenAPI description, and it names every route the router has
/// (a route added without its description fails here; schemathesis checks the shapes in CI).
#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn the_openapi_description_is_served_and_covers_every_route() {
    let node = TestNode::start(NodeConfig::default()).await;
    let (status, body) = http(node.http, "GET", "/v1/openapi.json", "").await;
    assert_eq!(status, 200);
    let spec = json(&body);
    assert_eq!(spec["openapi"], "3.1.0");
    let routes = [
        "/health",
        "/metrics",
        "/v1/openapi.json",
        "/v1/keys/{key}",
        "/v1/keys/{key}/digest",
        "/v1/keys/{key}/merge",
        "/v1/keys/{key}/counter",
        "/v1/keys/{key}/set/add",
        "/v1/keys/{key}/set/remove",
        "/v1/keys/{key}/register",
        "/v1/keys/{key}/edit",
        "/v1/sync/digests",
        "/v1/sync/merge",
        "/v1/sync",
        "/v1/ws",
    ];
    for route in routes {
        assert!(
            spec["paths"].get(route).is_some(),
            "{route} is not described"
        );
    }
    node.stop().await;
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_web_folder_is_served_beside_the_api_and_nothing_outside_it() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web");
    std::fs::create_dir_all(web.join("js")).unwrap();
    std::fs::write(web.join("index.html"), "<h1>list</h1>").unwrap();
    std::fs::write(web.join("js/app.js"), "export {};").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "not served").unwrap();
    let config = NodeConfig {
        web_root: Some(web),
        ..NodeConfig::default()
    };
    let node = TestNode::start(config).await;
    let (status, body) = http(node.http, "GET", "/", "").await;
    assert_eq!((status, body.as_str()), (200, "<h1>list</h1>"));
    let (status, body) = http(node.http, "GET", "/js/app.js", "").await;
    assert_eq!((status, body.as_str()), (200, "export {};"));
    for outside in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/js/../../secret.txt",
    ] {
        let (status, body) = http(node.http, "GET", outside, "").await;
        assert!(!body.contains("not served"), "{outside}: {status} {body}");
    }
    // The API's paths stay the API's: an unknown one is its JSON 404, not a file lookup.
    let (status, body) = http(node.http, "GET", "/v1/nothing", "").await;
    assert_eq!(
        (status, json(&body)["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = http(node.http, "GET", "/health", "").await;
    assert_eq!(status, 200);
    node.stop().await;
}
