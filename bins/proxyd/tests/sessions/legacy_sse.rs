//! The legacy HTTP+SSE transport: the endpoint event, and a lost stream ending its session.

use std::time::Duration;

use mcp_test_support::assert_eventually;
use mcp_test_support::e2e::{Admin, McpHttp, log_line, read_until};
use mcp_test_support::proxyd::Proxyd;
use mcp_test_support::tools;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::BIN;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_endpoint_uri_carries_the_base_url_path() {
    let proxyd = Proxyd::start_with_env(
        BIN,
        &[],
        &[("MCP_PROXY_BASE_URL", "http://127.0.0.1:9/prefix/")],
    )
    .await
    .unwrap();
    let admin = Admin::new(&proxyd);
    let def = tools::mock_stdio_def("echo", &["echo"]);
    admin.register_def(&def).await;
    let mcp = McpHttp::new();
    let (s, h, mut sse) = mcp
        .get_sse(&format!("{}/echo/sse", proxyd.url()), &[])
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "text/event-stream");
    let first = read_until(&mut sse, "\n\n").await;
    assert!(
        first.starts_with("event: endpoint\ndata: /prefix/echo/message?sessionId="),
        "{first}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_legacy_sse_stream_ends_the_session_and_cancels_its_upstream_requests() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    let mut def = serde_json::to_value(tools::mock_stdio_def("hangs", &["hang"])).unwrap();
    def["sessionMode"] = json!("shared");
    admin.register(def).await;
    let mcp = McpHttp::new();
    let base = proxyd.url();
    // a streamable observer on the same shared upstream sees what the upstream logs
    let observer = mcp
        .open_session(&format!("{base}/hangs/mcp"), "2025-11-25")
        .await;
    let (_, _, mut log) = mcp
        .get_sse(
            &format!("{base}/hangs/mcp"),
            &[("mcp-session-id", &observer)],
        )
        .await;
    // the legacy client
    let (s, _, mut sse) = mcp.get_sse(&format!("{base}/hangs/sse"), &[]).await;
    assert_eq!(s, StatusCode::OK);
    let first = read_until(&mut sse, "\n\n").await;
    assert!(
        first.starts_with("event: endpoint\ndata: /hangs/message?sessionId="),
        "{first}"
    );
    let endpoint = first
        .lines()
        .nth(1)
        .unwrap()
        .trim_start_matches("data: ")
        .to_owned();
    let post = |body: Value| {
        let (mcp, url) = (mcp.clone(), format!("{base}{endpoint}"));
        async move {
            mcp.http
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        post(McpHttp::initialize_body("2024-11-05")).await,
        StatusCode::ACCEPTED
    );
    read_until(&mut sse, "\"protocolVersion\":\"2024-11-05\"").await;
    let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}});
    assert_eq!(post(call).await, StatusCode::ACCEPTED);
    log_line(&proxyd, &["got tools/call", "echo"]).await;
    drop(sse);
    read_until(&mut log, "cancelled ").await;
    // the session is gone
    let ping = json!({"jsonrpc":"2.0","id":2,"method":"ping"});
    assert_eventually!(
        Duration::from_secs(5),
        post(ping.clone()).await == StatusCode::NOT_FOUND
    );
}
