//! What a client is refused beyond the status matrix: addresses behind a trusted proxy,
//! blocked tools, session limits.

use mcp_test_support::e2e::{Admin, McpHttp};
use mcp_test_support::proxyd::Proxyd;
use mcp_test_support::tools;
use reqwest::StatusCode;
use serde_json::json;

use crate::BIN;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_ips_see_the_client_behind_a_trusted_proxy() {
    let proxyd = Proxyd::start_with_env(
        BIN,
        &[],
        &[("MCP_PROXY_TRUSTED_PROXIES", "[\"127.0.0.1\"]")],
    )
    .await
    .unwrap();
    let admin = Admin::new(&proxyd);
    let mut def = serde_json::to_value(tools::mock_stdio_def("ipd", &["echo"])).unwrap();
    def["allowedIPs"] = json!(["203.0.113.0/24"]);
    admin.register(def).await;
    let mcp = McpHttp::new();
    let url = format!("{}/ipd/mcp", proxyd.url());
    let init = McpHttp::initialize_body("2025-06-18");
    let (s, _, body) = mcp.post(&url, None, &[], &init).await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "the proxy itself is not the client: {body}"
    );
    let via = |ip: &str| vec![("x-forwarded-for".to_owned(), ip.to_owned())];
    let (s, _, body) = mcp.post(&url, None, &via("203.0.113.7"), &init).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, _, body) = mcp
        .post(&url, None, &via("203.0.113.7, 198.51.100.1"), &init)
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "the right-most untrusted hop counts: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_filter_hides_and_refuses_blocked_tools() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    let mut def = serde_json::to_value(tools::everything_stdio_def("filtered")).unwrap();
    def["toolFilter"] = json!({"mode": "block", "list": ["get-sum"]});
    admin.register(def).await;
    let mcp = McpHttp::new();
    let url = format!("{}/filtered/mcp", proxyd.url());
    let sid = mcp.open_session(&url, "2025-11-25").await;
    let names = mcp.tool_names(&url, &sid).await;
    assert!(
        names.iter().any(|n| n == "echo") && !names.iter().any(|n| n == "get-sum"),
        "{names:?}"
    );
    let call = json!({"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"get-sum","arguments":{"a":1,"b":2}}});
    let (s, _, body) = mcp.post(&url, Some(&sid), &[], &call).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["id"], "c");
    assert_eq!(body["error"]["code"], -32602, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("blocked"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_limits_are_enforced_per_upstream_and_globally() {
    let proxyd = Proxyd::start_with_env(BIN, &[], &[("MCP_PROXY_MAX_SESSIONS", "3")])
        .await
        .unwrap();
    let admin = Admin::new(&proxyd);
    let mut one = serde_json::to_value(tools::mock_stdio_def("one", &["echo"])).unwrap();
    one["maxSessions"] = json!(1);
    admin.register(one).await;
    admin
        .register_def(&tools::mock_stdio_def("many", &["echo"]))
        .await;
    let mcp = McpHttp::new();
    let base = proxyd.url();
    let init = McpHttp::initialize_body("2025-06-18");
    // Sessions that hold a stream open are not idle: none can be evicted to make room.
    let busy = |sid: String, url: String| {
        let mcp = mcp.clone();
        async move {
            let (s, _, stream) = mcp.get_sse(&url, &[("mcp-session-id", sid.as_str())]).await;
            assert_eq!(s, StatusCode::OK);
            stream
        }
    };
    let first = mcp
        .open_session(&format!("{base}/one/mcp"), "2025-06-18")
        .await;
    let first_stream = busy(first.clone(), format!("{base}/one/mcp")).await;
    let (s, _, body) = mcp.post(&format!("{base}/one/mcp"), None, &[], &init).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["data"]["code"], "too_many_sessions", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max sessions (1)"),
        "{body}"
    );
    // ending a session frees its place
    let r = mcp
        .http
        .delete(format!("{base}/one/mcp"))
        .header("mcp-session-id", &first)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    drop(first_stream);
    let one = mcp
        .open_session(&format!("{base}/one/mcp"), "2025-06-18")
        .await;
    // the global max_sessions (3) counts every upstream
    let a = mcp
        .open_session(&format!("{base}/many/mcp"), "2025-06-18")
        .await;
    let b = mcp
        .open_session(&format!("{base}/many/mcp"), "2025-06-18")
        .await;
    let _streams = (
        busy(one, format!("{base}/one/mcp")).await,
        busy(a, format!("{base}/many/mcp")).await,
        busy(b, format!("{base}/many/mcp")).await,
    );
    let (s, _, body) = mcp
        .post(&format!("{base}/many/mcp"), None, &[], &init)
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_sessions (3)"),
        "{body}"
    );
}
