//! The Admin API over real HTTP, against an in-memory store.

use std::sync::Arc;

use mcp_proxy_core::{Manager, ManagerConfig, TransportConnector};
use mcp_proxy_http::security::{IpSet, TokenSet};
use mcp_proxy_http::{App, HttpConfig, serve};
use mcp_store::{MemoryStore, Store};
use mcp_types::Secret;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "test-admin-token-0123456789";

struct Server {
    base: String,
    http: reqwest::Client,
    store: Arc<MemoryStore>,
    stop: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start_with(tweak: impl FnOnce(&mut HttpConfig)) -> Server {
    start_full(tweak, ManagerConfig::default()).await
}

async fn start_full(tweak: impl FnOnce(&mut HttpConfig), manager: ManagerConfig) -> Server {
    let token = Secret::new(TOKEN);
    let mut cfg = HttpConfig {
        admin_tokens: TokenSet::new([&token]),
        admin_allow_ips: IpSet::parse(&["127.0.0.1", "::1", "10.0.0.0/8"]).unwrap(),
        trusted_proxies: IpSet::parse(&["127.0.0.1"]).unwrap(),
        ..HttpConfig::default()
    };
    tweak(&mut cfg);
    let store = Arc::new(MemoryStore::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let dyn_store = store.clone() as Arc<dyn Store>;
    let manager = Manager::new(
        dyn_store.clone(),
        Arc::new(TransportConnector::default()),
        manager,
    );
    manager.start().await;
    let app = App::new(cfg, dyn_store, manager);
    tokio::spawn(serve(listener, app, stop.clone().cancelled_owned()));
    Server {
        base,
        http: reqwest::Client::new(),
        store,
        stop,
    }
}

async fn start() -> Server {
    start_with(|_| {}).await
}

impl Server {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
    }

    async fn post(&self, body: Value) -> (StatusCode, Value) {
        let resp = self
            .req(reqwest::Method::POST, "/admin/mcps")
            .json(&body)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    async fn call(&self, method: reqwest::Method, path: &str) -> (StatusCode, Value) {
        let resp = self.req(method, path).send().await.unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }
}

fn echo_def(name: &str) -> Value {
    json!({"name": name, "transport": "stdio", "command": "echo", "args": ["hello world"]})
}

#[tokio::test]
async fn register_list_fetch_update_delete() {
    let s = start().await;
    let resp = s
        .req(reqwest::Method::POST, "/admin/mcps")
        .json(&echo_def("echo-mcp"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()["location"], "/admin/mcps/echo-mcp");
    let created: Value = resp.json().await.unwrap();
    assert_eq!(created["definition"]["name"], "echo-mcp");
    assert_eq!(created["definition"]["timeout"], "30s");
    // Registration starts the upstream at once.
    assert_eq!(created["status"]["state"], "connecting");
    let created_at = created["definition"]["createdAt"].clone();
    assert!(created_at.is_string(), "{created}");

    let (status, list) = s.call(reqwest::Method::GET, "/admin/mcps").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["count"], 1);
    assert_eq!(list["mcps"][0]["definition"]["name"], "echo-mcp");

    let (status, one) = s.call(reqwest::Method::GET, "/admin/mcps/echo-mcp").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["definition"]["args"], json!(["hello world"]));

    let mut changed = echo_def("echo-mcp");
    changed["description"] = json!("says hello");
    changed["createdAt"] = json!("2001-01-01T00:00:00Z");
    let resp = s
        .req(reqwest::Method::PUT, "/admin/mcps/echo-mcp")
        .json(&changed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let updated: Value = resp.json().await.unwrap();
    assert_eq!(updated["definition"]["description"], "says hello");
    assert_eq!(
        updated["definition"]["createdAt"], created_at,
        "server-set, kept"
    );

    let resp = s
        .req(reqwest::Method::DELETE, "/admin/mcps/echo-mcp")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let (status, body) = s.call(reqwest::Method::GET, "/admin/mcps/echo-mcp").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "mcp_not_found");
    assert!(body["error"].as_str().unwrap().contains("echo-mcp"));
    let (status, _) = s
        .call(reqwest::Method::DELETE, "/admin/mcps/echo-mcp")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn missing_or_wrong_token_is_401_and_disallowed_ip_is_403() {
    let s = start().await;
    let url = format!("{}/admin/mcps", s.base);
    let resp = s.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "unauthorized");

    let resp = s.http.get(&url).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // 127.0.0.1 is a trusted proxy: the client is the right-most untrusted hop.
    let resp = s
        .http
        .get(&url)
        .bearer_auth(TOKEN)
        .header("x-forwarded-for", "10.9.9.9, 203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("203.0.113.9"),
        "{body}"
    );

    // A disallowed address is refused even with no token: 403 before 401.
    let resp = s
        .http
        .get(&url)
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    let resp = s
        .http
        .get(&url)
        .bearer_auth(TOKEN)
        .header("x-forwarded-for", "10.1.2.3")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // Unknown admin paths do not answer 404 to strangers.
    let resp = s
        .http
        .get(format!("{}/admin/secret-things", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let s = start_with(|c| c.trusted_proxies = IpSet::default()).await;
    let resp = s
        .req(reqwest::Method::GET, "/admin/mcps")
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "peer 127.0.0.1 is the client"
    );
}

#[tokio::test]
async fn invalid_definition_reports_every_field() {
    let s = start().await;
    let (status, body) = s
        .post(
            json!({"name": "bad name", "transport": "sse", "command": "x",
                     "timeout": "1ms", "allowedIPs": ["nope"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_request");
    let fields: Vec<&str> = body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in ["name", "url", "command", "timeout", "allowedIPs[0]"] {
        assert!(fields.contains(&f), "{f} missing in {body}");
    }
    assert!(s.store.list().await.unwrap().is_empty(), "nothing stored");
}

#[tokio::test]
async fn wrong_types_are_reported_with_every_other_failing_field() {
    let s = start().await;
    let fields = |body: &Value| -> Vec<String> {
        body["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, body) = s
        .post(json!({"name": "bad one", "transport": "bogus"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(fields(&body), ["transport", "name"], "{body}");
    let (status, body) = s
        .post(
            json!({"name": 7, "transport": "sse", "url": "ftp://x", "timeout": [],
                     "maxSessions": 0, "colour": 1, "allowedIPs": ["nope"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let got = fields(&body);
    for f in [
        "name",
        "url",
        "timeout",
        "maxSessions",
        "colour",
        "allowedIPs[0]",
    ] {
        assert!(got.iter().any(|g| g == f), "{f} missing in {body}");
    }
    assert!(s.store.list().await.unwrap().is_empty(), "nothing stored");
}

#[tokio::test]
async fn shape_errors_and_malformed_json_are_400_with_a_position() {
    let s = start().await;
    let (status, body) = s
        .post(json!({"name": "a", "transport": "stdio", "command": "x", "colour": 1}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{body}"
    );

    let (status, body) = s
        .post(json!({"name": "a", "transport": "carrier-pigeon", "command": "x"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["details"][0]["field"], "transport", "{body}");

    let resp = s
        .req(reqwest::Method::POST, "/admin/mcps")
        .header("content-type", "application/json")
        .body("{\"name\": \"a\",\n \"transport\": }")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "invalid_json");
    assert_eq!(body["details"]["line"], 2);
    assert!(
        body["error"].as_str().unwrap().contains("line 2 column"),
        "{body}"
    );

    let resp = s
        .req(reqwest::Method::POST, "/admin/mcps")
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn duplicate_is_409_and_oversized_body_is_413() {
    let s = start_with(|c| c.max_body_bytes = 64 * 1024).await;
    assert_eq!(s.post(echo_def("dup")).await.0, StatusCode::CREATED);
    let (status, body) = s.post(echo_def("dup")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "already_exists");

    let mut big = echo_def("big");
    big["description"] = json!("x".repeat(100 * 1024));
    let (status, body) = s.post(big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["code"], "payload_too_large");
    assert_eq!(body["details"]["limit"], 64 * 1024);

    // A chunked body without Content-Length is cut off at the limit too.
    let chunks =
        futures_util::stream::iter((0..40).map(|_| Ok::<_, std::io::Error>(vec![b' '; 4096])));
    let resp = s
        .req(reqwest::Method::POST, "/admin/mcps")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(s.store.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn secrets_are_redacted_and_redacted_values_are_kept_on_put() {
    let s = start().await;
    let def = json!({"name": "web", "transport": "streamable-http", "url": "http://127.0.0.1:9/mcp",
                     "headers": {"X-Api-Key": "key-abcdef"}, "authTokens": ["client-token-xyz"]});
    let (status, body) = s.post(def).await;
    assert_eq!(status, StatusCode::CREATED);
    let text = body.to_string();
    assert!(
        !text.contains("key-abcdef") && !text.contains("client-token-xyz"),
        "{text}"
    );
    assert_eq!(body["definition"]["headers"]["X-Api-Key"], "***");

    // Round-trip the redacted form with one change: the secrets must survive.
    let mut edited = body["definition"].clone();
    edited["description"] = json!("edited");
    let resp = s
        .req(reqwest::Method::PUT, "/admin/mcps/web")
        .json(&edited)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let stored = s.store.get("web").await.unwrap().unwrap();
    assert_eq!(stored.headers["X-Api-Key"].expose(), "key-abcdef");
    assert_eq!(stored.auth_tokens[0].expose(), "client-token-xyz");
    assert_eq!(stored.description.as_deref(), Some("edited"));
}

#[tokio::test]
async fn etag_and_if_match_guard_concurrent_edits() {
    let s = start().await;
    let (status, _) = s.post(echo_def("e")).await;
    assert_eq!(status, StatusCode::CREATED);
    let resp = s
        .req(reqwest::Method::GET, "/admin/mcps/e")
        .send()
        .await
        .unwrap();
    let read = resp.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        read,
        format!("\"{}\"", body["definition"]["version"]),
        "{body}"
    );
    let put = |tag: &str, description: &str| {
        let mut def = echo_def("e");
        def["description"] = json!(description);
        s.req(reqwest::Method::PUT, "/admin/mcps/e")
            .header("if-match", tag)
            .json(&def)
            .send()
    };
    // Two editors read the same version; the first to write wins...
    let first = put(&read, "first editor").await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let now = first.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(now, read);
    // ...and the second is told, instead of silently undoing the first.
    let second = put(&read, "second editor").await.unwrap();
    assert_eq!(second.status(), StatusCode::PRECONDITION_FAILED);
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["code"], "precondition_failed");
    assert_eq!(body["details"]["etag"], now.as_str(), "{body}");
    let stored = s.store.get("e").await.unwrap().unwrap();
    assert_eq!(stored.description.as_deref(), Some("first editor"));
    assert_eq!(
        put("*", "any version").await.unwrap().status(),
        StatusCode::OK
    );
    // A tag that cannot be ours (weak, unquoted) matches nothing: refused, not let through.
    assert_eq!(
        put("W/\"1\", nonsense", "x").await.unwrap().status(),
        StatusCode::PRECONDITION_FAILED
    );
    let delete = |tag: String| {
        s.req(reqwest::Method::DELETE, "/admin/mcps/e")
            .header("if-match", tag)
            .send()
    };
    assert_eq!(
        delete(now).await.unwrap().status(),
        StatusCode::PRECONDITION_FAILED
    );
    assert!(s.store.get("e").await.unwrap().is_some());
    let current = s
        .req(reqwest::Method::GET, "/admin/mcps/e")
        .send()
        .await
        .unwrap();
    let tag = current.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(delete(tag).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert!(s.store.get("e").await.unwrap().is_none());
}

#[tokio::test]
async fn put_checks_the_name_and_existence() {
    let s = start().await;
    let resp = s
        .req(reqwest::Method::PUT, "/admin/mcps/ghost")
        .json(&echo_def("ghost"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(s.post(echo_def("real")).await.0, StatusCode::CREATED);
    let resp = s
        .req(reqwest::Method::PUT, "/admin/mcps/real")
        .json(&echo_def("other"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["details"][0]["field"], "name");
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405_with_allow() {
    let s = start().await;
    let (status, body) = s.call(reqwest::Method::GET, "/nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
    let resp = s
        .req(reqwest::Method::PATCH, "/admin/mcps/x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "GET, PUT, DELETE");
    let resp = s
        .http
        .post(format!("{}/healthz", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "GET");
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let s = start().await;
    let resp = s
        .http
        .get(format!("{}/healthz", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert!(body["uptimeSeconds"].is_u64());
    let resp = s
        .http
        .get(format!("{}/readyz", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    assert_eq!(s.post(echo_def("m1")).await.0, StatusCode::CREATED);
    let (status, m) = s.call(reqwest::Method::GET, "/admin/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(m["total_clients"], 1);
    let states: u64 = ["connected", "connecting", "errored", "disconnected"]
        .iter()
        .map(|k| m[k].as_u64().unwrap())
        .sum();
    assert_eq!(states, 1, "{m}");
    assert_eq!(
        m["max_connections"],
        mcp_proxy_core::DEFAULT_MAX_CONNECTIONS
    );
}

#[tokio::test]
async fn max_connections_caps_definitions() {
    let config = ManagerConfig {
        max_connections: 1,
        ..ManagerConfig::default()
    };
    let s = start_full(|_| {}, config).await;
    assert_eq!(s.post(echo_def("one")).await.0, StatusCode::CREATED);
    let (status, body) = s.post(echo_def("two")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "max_connections_reached");
}

#[tokio::test]
async fn stdio_allowed_commands_restricts_programs() {
    let config = ManagerConfig {
        stdio_allowed_commands: vec!["npx".into()],
        ..ManagerConfig::default()
    };
    let s = start_full(|_| {}, config).await;
    let (status, body) = s.post(echo_def("e")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["details"][0]["field"], "command", "{body}");
}

#[tokio::test]
async fn an_empty_admin_allow_list_closes_the_admin_api_and_nothing_else() {
    let s = start_with(|c| c.admin_allow_ips = IpSet::default()).await;
    let (status, body) = s.call(reqwest::Method::GET, "/admin/mcps").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "forbidden");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("admin_allow_ips is empty"),
        "{body}"
    );
    let (status, _) = s.post(echo_def("e")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "writes too");
    let health = s
        .http
        .get(format!("{}/healthz", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        health.status(),
        StatusCode::OK,
        "the rest of the proxy is served"
    );
}

#[tokio::test]
async fn foreign_host_header_is_refused_on_loopback() {
    let s = start().await;
    let resp = s
        .req(reqwest::Method::GET, "/admin/mcps")
        .header("host", "attacker.example:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

/// Found by schemathesis: a well-formed body whose enum field has the wrong type was
/// reported as malformed JSON (`invalid_json` with a column) instead of naming the field.
#[tokio::test]
async fn wrong_typed_enum_fields_are_invalid_request_naming_the_field() {
    let s = start().await;
    for (field, value) in [
        ("sessionMode", json!({})),
        ("sessionMode", Value::Null),
        ("transport", json!([null, null])),
        ("toolFilter", json!({"mode": 0})),
    ] {
        let mut def = json!({"name": "a", "transport": "stdio", "command": "x"});
        def[field] = value.clone();
        let (status, body) = s.post(def).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}={value}: {body}");
        assert_eq!(body["code"], "invalid_request", "{field}={value}: {body}");
        let named = body["details"][0]["field"].as_str().unwrap();
        assert!(named.starts_with(field), "{field}={value}: {body}");
    }
}
