//! What a client is refused and how: tokens, addresses, origins, session rules, malformed
//! input, limits and blocked tools, each with its status and JSON-RPC error.

use mcp_test_support::e2e::{Admin, McpHttp};
use mcp_test_support::proxyd::Proxyd;
use mcp_test_support::tools;
use reqwest::StatusCode;
use serde_json::json;

use crate::BIN;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_and_malformed_input_get_the_right_status() {
    // a small body limit, so the oversized body below is sent whole before the 413
    let proxyd = Proxyd::start_with_env(BIN, &[], &[("MCP_PROXY_MAX_BODY_BYTES", "65536")])
        .await
        .unwrap();
    let admin = Admin::new(&proxyd);
    let mut a = serde_json::to_value(tools::everything_stdio_def("a")).unwrap();
    a["authTokens"] = json!(["token-of-a-0123456789"]);
    let mut b = serde_json::to_value(tools::everything_stdio_def("b")).unwrap();
    b["authTokens"] = json!(["token-of-b-0123456789"]);
    let mut c = serde_json::to_value(tools::everything_stdio_def("c")).unwrap();
    c["allowedIPs"] = json!(["10.0.0.0/8"]);
    let mut d = serde_json::to_value(tools::everything_stdio_def("d")).unwrap();
    d["requireAuth"] = json!(true);
    for def in [a, b, c, d] {
        admin.register(def).await;
    }
    admin
        .register(serde_json::to_value(tools::everything_stdio_def("open")).unwrap())
        .await;
    let base = proxyd.url();
    let mcp = McpHttp::new();
    let init = McpHttp::initialize_body("2025-06-18");

    // tokens: missing, wrong, another server's, the right one
    let (s, h, body) = mcp.post(&format!("{base}/a/mcp"), None, &[], &init).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        h.get("www-authenticate")
            .is_some_and(|v| v.to_str().unwrap().starts_with("Bearer"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing bearer token"),
        "{body}"
    );
    assert_eq!(body["error"]["code"], -32600, "a json-rpc error: {body}");
    let bearer = |t: &str| vec![("authorization".to_owned(), format!("Bearer {t}"))];
    let (s, _, body) = mcp
        .post(&format!("{base}/a/mcp"), None, &bearer("nope"), &init)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["message"], "invalid bearer token");
    let (s, _, _) = mcp
        .post(
            &format!("{base}/a/mcp"),
            None,
            &bearer("token-of-b-0123456789"),
            &init,
        )
        .await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "a token of server b does not open server a"
    );
    let (s, _, _) = mcp.get_sse(&format!("{base}/a/sse"), &[]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "legacy sse is guarded too");
    let (s, h, body) = mcp
        .post(
            &format!("{base}/a/mcp"),
            None,
            &bearer("token-of-a-0123456789"),
            &init,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(h.get("mcp-session-id").is_some());
    // requireAuth without any token configured: nobody gets in
    let (s, _, _) = mcp
        .post(&format!("{base}/d/mcp"), None, &bearer("anything"), &init)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // an address outside allowedIPs
    let (s, _, body) = mcp.post(&format!("{base}/c/mcp"), None, &[], &init).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1"),
        "{body}"
    );

    // a browser origin that is not allowed; an allowed one
    let evil = vec![("origin".to_owned(), "http://evil.example.com".to_owned())];
    let (s, _, body) = mcp
        .post(&format!("{base}/open/mcp"), None, &evil, &init)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("origin"),
        "{body}"
    );
    let local = vec![("origin".to_owned(), "http://localhost:3000".to_owned())];
    let (s, h, body) = mcp
        .post(&format!("{base}/open/mcp"), None, &local, &init)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let sid = h["mcp-session-id"].to_str().unwrap().to_owned();

    // session rules
    let ping = json!({"jsonrpc":"2.0","id":2,"method":"ping"});
    let (s, _, body) = mcp
        .post(&format!("{base}/open/mcp"), None, &[], &ping)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["data"]["code"], "session_required", "{body}");
    let (s, _, body) = mcp
        .post(
            &format!("{base}/open/mcp"),
            Some("0123456789abcdef"),
            &[],
            &ping,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["data"]["code"], "session_not_found", "{body}");
    let (s, _, body) = mcp
        .post(&format!("{base}/open/mcp"), Some(&sid), &[], &ping)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["result"], json!({}));
    let badver = vec![("mcp-protocol-version".to_owned(), "1999-01-01".to_owned())];
    let (s, _, body) = mcp
        .post(&format!("{base}/open/mcp"), Some(&sid), &badver, &ping)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["error"]["data"]["code"], "unsupported_protocol_version",
        "{body}"
    );
    // malformed json, a batch on 2025-06-18
    let (s, body) = mcp
        .post_raw(&format!("{base}/open/mcp"), Some(&sid), "{\"jsonrpc\": ")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["data"]["code"], "invalid_json", "{body}");
    assert_eq!(body["error"]["code"], -32700, "{body}");
    let batch = json!([ping, {"jsonrpc":"2.0","id":3,"method":"ping"}]);
    let (s, _, body) = mcp
        .post(&format!("{base}/open/mcp"), Some(&sid), &[], &batch)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["error"]["data"]["code"], "batch_not_supported",
        "{body}"
    );
    // an oversized body: 413 with a json-rpc error
    let big = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\",\"params\":{{\"x\":\"{}\"}}}}",
        "x".repeat(70_000)
    );
    let (s, body) = mcp
        .post_raw(&format!("{base}/open/mcp"), Some(&sid), &big)
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], -32600, "{body}");
    // notifications → 202; wrong accept → 406; wrong content type → 415
    let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    let (s, _, _) = mcp
        .post(&format!("{base}/open/mcp"), Some(&sid), &[], &note)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let url = format!("{base}/open/mcp");
    let ping_text = ping.to_string();
    let s = mcp
        .post_typed(
            &url,
            &sid,
            "application/json",
            "application/json",
            &ping_text,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_ACCEPTABLE);
    let both = "application/json, text/event-stream";
    let s = mcp
        .post_typed(&url, &sid, both, "text/plain", &ping_text)
        .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // one GET stream per session
    let (s, _, first) = mcp
        .get_sse(&format!("{base}/open/mcp"), &[("mcp-session-id", &sid)])
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = mcp
        .get_sse(&format!("{base}/open/mcp"), &[("mcp-session-id", &sid)])
        .await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "a second standalone stream is refused"
    );
    drop(first);
    // unsupported method → 405 with Allow
    let r = mcp
        .http
        .put(format!("{base}/open/mcp"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.headers().get("allow").is_some());
    // DELETE ends the session: 404 afterwards
    let r = mcp
        .http
        .delete(format!("{base}/open/mcp"))
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (s, _, _) = mcp
        .post(&format!("{base}/open/mcp"), Some(&sid), &[], &ping)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // legacy: unknown session id → 404, missing → 400; stdio has no {extra}; unknown mcp 404
    let r = mcp
        .http
        .post(format!("{base}/open/message?sessionId=nope"))
        .json(&ping)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = mcp
        .http
        .post(format!("{base}/open/message"))
        .json(&ping)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (s, _, _) = mcp
        .post(&format!("{base}/open/stream/x"), None, &[], &init)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // an unknown name answers like a protected one (some servers here ask for tokens),
    // so the answer does not tell which names exist
    let (s, _, body) = mcp
        .post(&format!("{base}/nosuch/mcp"), None, &[], &init)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
}

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
    let list = json!({"jsonrpc":"2.0","id":"l","method":"tools/list"});
    let (s, _, body) = mcp.post(&url, Some(&sid), &[], &list).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let names: Vec<&str> = body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"echo") && !names.contains(&"get-sum"),
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
        .register(serde_json::to_value(tools::mock_stdio_def("many", &["echo"])).unwrap())
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
