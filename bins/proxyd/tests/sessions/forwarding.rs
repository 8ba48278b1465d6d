//! What reaches the upstream and what comes back: the `{extra}` path, passthrough headers
//! (never the client's token), and JSON-RPC batches.

use std::time::Duration;

use mcp_test_support::assert_eventually;
use mcp_test_support::e2e::{Admin, McpHttp};
use mcp_test_support::proxyd::Proxyd;
use mcp_test_support::tools;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{BIN, GLOBAL_TOKEN, proxyd_with_global_token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_path_and_passthrough_headers_reach_an_http_upstream_but_the_token_never_does() {
    use mcp_test_support::mock::{Fault, MockServer};
    let mock = MockServer::start(Fault::None).await;
    let proxyd = proxyd_with_global_token().await;
    let admin = Admin::new(&proxyd);
    let mut def = json!({"name": "mock", "transport": "streamable-http", "url": mock.url()});
    def["passthroughHeaders"] = json!(["X-Tenant"]);
    admin.register(def).await;
    let mcp = McpHttp::new();
    let url = format!("{}/mock/stream/tenant-a/v1", proxyd.url());
    let headers = vec![
        ("authorization".to_owned(), format!("Bearer {GLOBAL_TOKEN}")),
        ("x-tenant".to_owned(), "t1".to_owned()),
    ];
    let (s, h, body) = mcp
        .post(
            &url,
            None,
            &headers,
            &McpHttp::initialize_body("2025-06-18"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let sid = h["mcp-session-id"].to_str().unwrap().to_owned();
    let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}});
    let (s, _, body) = mcp.post(&url, Some(&sid), &headers, &call).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body["result"].is_object(), "{body}");
    let seen = mock.requests();
    let upstream_posts: Vec<_> = seen
        .iter()
        .filter(|r| r.method == "POST" && r.path.starts_with("/mcp/tenant-a/v1"))
        .collect();
    assert!(
        !upstream_posts.is_empty(),
        "the {{extra}} path is appended: {seen:?}"
    );
    assert!(
        upstream_posts
            .iter()
            .all(|r| r.header("x-tenant") == Some("t1"))
    );
    assert!(
        seen.iter().all(|r| !r
            .header("authorization")
            .unwrap_or("")
            .contains(GLOBAL_TOKEN)),
        "the client's token must never reach the upstream"
    );
    // the upstream ends its session: the client session ends with it
    mock.expire_sessions();
    let call = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{}}});
    let (s, _, body) = mcp.post(&url, Some(&sid), &headers, &call).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["error"]["code"], -32000, "{body}");
    let ping = json!({"jsonrpc":"2.0","id":3,"method":"ping"});
    assert_eventually!(
        Duration::from_secs(5),
        mcp.post(&url, Some(&sid), &headers, &ping).await.0 == StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_answered_on_2025_03_26_sessions_only() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    let def = tools::mock_stdio_def("echo", &["echo"]);
    admin.register_def(&def).await;
    let mcp = McpHttp::new();
    let url = format!("{}/echo/mcp", proxyd.url());
    let init_batch = json!([McpHttp::initialize_body("2025-03-26")]);
    let (s, _, body) = mcp.post(&url, None, &[], &init_batch).await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "initialize must not be batched: {body}"
    );
    let sid = mcp.open_session(&url, "2025-03-26").await;
    let batch = json!([
        {"jsonrpc":"2.0","id":1,"method":"ping"},
        {"jsonrpc":"2.0","method":"notifications/roots/list_changed"},
        {"jsonrpc":"2.0","id":"two","method":"tools/call","params":{"name":"echo","arguments":{"message":"batched"}}}
    ]);
    let answer = mcp.post_collect(&url, Some(&sid), &batch).await;
    let ids: Vec<&Value> = answer.iter().map(|m| &m["id"]).collect();
    assert_eq!(answer.len(), 2, "one response per request: {answer:?}");
    assert!(
        ids.contains(&&json!(1)) && ids.contains(&&json!("two")),
        "{answer:?}"
    );
    assert!(answer.iter().any(|m| m.to_string().contains("batched")));
    let notes = json!([{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}]);
    let (s, _, _) = mcp.post(&url, Some(&sid), &[], &notes).await;
    assert_eq!(s, StatusCode::ACCEPTED);
}
