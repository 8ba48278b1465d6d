//! Client sessions through a real `proxyd`: the official Python SDK client over legacy SSE
//! and streamable HTTP in front of server-everything (stdio and streamable HTTP upstreams),
//! the security and malformed-input status matrix, and shared-mode multiplexing.

use std::time::Duration;

use mcp_test_support::assert_eventually;
use mcp_test_support::e2e::{self, Admin, McpHttp, log_line, python_client, read_until};
use mcp_test_support::proxyd::Proxyd;
use mcp_test_support::tools::{self, EverythingMode, EverythingServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_proxyd");

const GLOBAL_TOKEN: &str = "global-proxy-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_through_both_transports_to_stdio_everything() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    admin
        .register(serde_json::to_value(tools::everything_stdio_def("ev")).unwrap())
        .await;
    admin.wait_connected("ev").await;
    let base = proxyd.url();
    python_client("streamable", &format!("{base}/ev/mcp"), None).await;
    python_client("sse", &format!("{base}/ev/sse"), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_through_both_transports_to_http_everything_with_a_global_token() {
    let upstream = EverythingServer::start(EverythingMode::StreamableHttp).await;
    let env = [(
        "MCP_PROXY_GLOBAL_AUTH_TOKENS",
        format!("[\"{GLOBAL_TOKEN}\"]"),
    )];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let proxyd = Proxyd::start_with_env(BIN, &[], &env).await.unwrap();
    let admin = Admin::new(&proxyd);
    admin
        .register(serde_json::to_value(upstream.def("evh")).unwrap())
        .await;
    admin.wait_connected("evh").await;
    let base = proxyd.url();
    python_client(
        "streamable",
        &format!("{base}/evh/stream"),
        Some(GLOBAL_TOKEN),
    )
    .await;
    python_client("sse", &format!("{base}/evh/sse"), Some(GLOBAL_TOKEN)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_through_both_transports_in_shared_mode() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    let mut def = serde_json::to_value(tools::everything_stdio_def("evs")).unwrap();
    def["sessionMode"] = json!("shared");
    admin.register(def).await;
    admin.wait_connected("evs").await;
    let base = proxyd.url();
    python_client("streamable", &format!("{base}/evs/mcp"), None).await;
    python_client("sse", &format!("{base}/evs/sse"), None).await;
}

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
async fn deleting_the_upstream_ends_its_sessions_and_a_dead_stdio_session_errors_in_flight() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    admin
        .register(serde_json::to_value(tools::mock_stdio_def("gone", &[])).unwrap())
        .await;
    let mcp = McpHttp::new();
    let url = format!("{}/gone/mcp", proxyd.url());
    let sid = mcp.open_session(&url, "2025-06-18").await;
    // a call in flight when the definition is deleted gets a json-rpc error, then 404
    let call = json!({"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":"hold","arguments":{}}});
    let pending = {
        let (mcp, url, sid, call) = (mcp.clone(), url.clone(), sid.clone(), call.clone());
        tokio::spawn(async move { mcp.post_collect(&url, Some(&sid), &call).await })
    };
    // the session's child reports the call on stderr, which proxyd logs: it is in flight
    log_line(&proxyd, &["got tools/call", "hold"]).await;
    let (s, _) = admin
        .send(reqwest::Method::DELETE, "/admin/mcps/gone", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let answer = tokio::time::timeout(Duration::from_secs(30), pending)
        .await
        .expect("the call in flight is answered")
        .unwrap();
    let response = answer
        .iter()
        .find(|m| m["id"] == 41)
        .unwrap_or_else(|| panic!("no response in {answer:?}"));
    assert_eq!(response["error"]["code"], -32000, "{response}");
    let ping = json!({"jsonrpc":"2.0","id":2,"method":"ping"});
    let (s, _, _) = mcp.post(&url, Some(&sid), &[], &ping).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_mode_keeps_identical_ids_and_progress_tokens_apart() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    let mut def = serde_json::to_value(tools::everything_stdio_def("shared")).unwrap();
    def["sessionMode"] = json!("shared");
    admin.register(def).await;
    let mcp = McpHttp::new();
    let url = format!("{}/shared/mcp", proxyd.url());
    let one = mcp.open_session(&url, "2025-11-25").await;
    let two = mcp.open_session(&url, "2025-06-18").await;
    let call = |msg: &str| {
        json!({"jsonrpc":"2.0","id":"same","method":"tools/call","params":{
            "name":"trigger-long-running-operation","arguments":{"duration":0.5,"steps":5},
            "_meta":{"progressToken":"tok","tag":msg}}})
    };
    let echo = |msg: &str| json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":msg}}});
    for _ in 0..3 {
        let (c1, c2, e1, e2) = (call("one"), call("two"), echo("from-one"), echo("from-two"));
        let (a, b, c, d) = tokio::join!(
            mcp.post_collect(&url, Some(&one), &c1),
            mcp.post_collect(&url, Some(&two), &c2),
            mcp.post_collect(&url, Some(&one), &e1),
            mcp.post_collect(&url, Some(&two), &e2),
        );
        for (msgs, who) in [(&a, "one"), (&b, "two")] {
            let progress: Vec<&Value> = msgs
                .iter()
                .filter(|m| m["method"] == "notifications/progress")
                .collect();
            assert_eq!(
                progress.len(),
                5,
                "session {who} gets exactly its own 5 progress notifications: {msgs:?}"
            );
            assert!(
                progress
                    .iter()
                    .all(|p| p["params"]["progressToken"] == "tok"),
                "{progress:?}"
            );
            let resp = msgs.last().unwrap();
            assert_eq!(resp["id"], "same", "{resp}");
            assert!(resp["result"].is_object(), "{resp}");
        }
        assert_eq!(c.last().unwrap()["id"], 7);
        assert!(c.last().unwrap().to_string().contains("from-one"));
        assert!(d.last().unwrap().to_string().contains("from-two"));
    }
    // one upstream process serves both: the primary connection plus one shared one
    let status = admin.status("shared").await;
    assert_eq!(status["state"], "connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_client_upstream_that_dies_mid_call_fails_the_call_then_the_session_is_gone() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    let def = tools::mock_stdio_def("dies", &["exit-mid-request"]);
    admin.register(serde_json::to_value(def).unwrap()).await;
    let mcp = McpHttp::new();
    let url = format!("{}/dies/mcp", proxyd.url());
    let sid = mcp.open_session(&url, "2025-06-18").await;
    let call = json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x"}}});
    let resp = mcp
        .request(&url, Some(&sid), &[])
        .body(call.to_string())
        .send()
        .await
        .unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let text = resp.text().await.unwrap();
    let answer = e2e::messages(&headers, &text);
    let response = answer.last().unwrap_or_else(|| {
        panic!(
            "no answer ({status}): {text:?}\n{}",
            proxyd.log().join("\n")
        )
    });
    assert_eq!(response["id"], 5, "{answer:?}");
    assert_eq!(response["error"]["code"], -32000, "{response}");
    let message = response["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("dies"),
        "the message names the upstream: {message}"
    );
    let ping = json!({"jsonrpc":"2.0","id":6,"method":"ping"});
    let (s, _, body) = mcp.post(&url, Some(&sid), &[], &ping).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    // a new session gets a new process
    let again = mcp.open_session(&url, "2025-06-18").await;
    assert_ne!(again, sid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cancellation_reaches_the_upstream_under_the_upstream_id() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    let def = tools::mock_stdio_def("hangs", &["hang"]);
    admin.register(serde_json::to_value(def).unwrap()).await;
    let mcp = McpHttp::new();
    let url = format!("{}/hangs/mcp", proxyd.url());
    let sid = mcp.open_session(&url, "2025-11-25").await;
    let (s, _, mut stream) = mcp.get_sse(&url, &[("mcp-session-id", &sid)]).await;
    assert_eq!(s, StatusCode::OK);
    let call = json!({"jsonrpc":"2.0","id":"mine","method":"tools/call","params":{"name":"echo","arguments":{}}});
    let pending = {
        let (mcp, url, sid) = (mcp.clone(), url.clone(), sid.clone());
        tokio::spawn(async move { mcp.post_collect(&url, Some(&sid), &call).await })
    };
    log_line(&proxyd, &["got tools/call", "echo"]).await;
    let cancel = json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"mine","reason":"changed my mind"}});
    let (s, _, _) = mcp.post(&url, Some(&sid), &[], &cancel).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    // the upstream reports the id it was cancelled under: the proxy's numeric id, not ours
    let seen = read_until(&mut stream, "cancelled ").await;
    let line = seen.lines().find(|l| l.contains("cancelled ")).unwrap();
    assert!(
        !line.contains("cancelled \\\"mine\\\""),
        "the client's id leaked upstream: {line}"
    );
    assert!(
        line.split("cancelled ")
            .nth(1)
            .unwrap()
            .starts_with(|c: char| c.is_ascii_digit()),
        "{line}"
    );
    pending.abort();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_post_stream_resumes_with_last_event_id() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    admin
        .register(serde_json::to_value(tools::everything_stdio_def("ev")).unwrap())
        .await;
    let mcp = McpHttp::new();
    let url = format!("{}/ev/mcp", proxyd.url());
    let sid = mcp.open_session(&url, "2025-11-25").await;
    let call = json!({"jsonrpc":"2.0","id":"r1","method":"tools/call","params":{
        "name":"trigger-long-running-operation","arguments":{"duration":1.5,"steps":5},
        "_meta":{"progressToken":7}}});
    let mut resp = mcp
        .http
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-session-id", &sid)
        .body(call.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let seen = read_until(&mut resp, "notifications/progress").await;
    assert!(
        seen.starts_with("id: "),
        "a priming event comes first: {seen}"
    );
    let last_id = seen
        .split("\n\n")
        .find(|e| e.contains("notifications/progress"))
        .and_then(|e| e.lines().find_map(|l| l.strip_prefix("id: ")))
        .unwrap()
        .to_owned();
    drop(resp); // the connection is lost; the request goes on
    let resumed = mcp
        .http
        .get(&url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .header("last-event-id", &last_id)
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), StatusCode::OK);
    let headers = resumed.headers().clone();
    let rest = e2e::messages(&headers, &resumed.text().await.unwrap());
    let progress: Vec<i64> = rest
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| m["params"]["progress"].as_i64().unwrap())
        .collect();
    assert!(
        !progress.contains(&1),
        "no replay of what was delivered: {rest:?}"
    );
    assert!(
        rest.iter()
            .all(|m| m["params"]["progressToken"].is_null() || m["params"]["progressToken"] == 7)
    );
    let last = rest.last().unwrap();
    assert_eq!(
        last["id"], "r1",
        "the response arrives on the resumed stream: {rest:?}"
    );
    assert!(last["result"].is_object());
}

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
    admin.register(serde_json::to_value(def).unwrap()).await;
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
async fn extra_path_and_passthrough_headers_reach_an_http_upstream_but_the_token_never_does() {
    use mcp_test_support::mock::{Fault, MockServer};
    let mock = MockServer::start(Fault::None).await;
    let env = [(
        "MCP_PROXY_GLOBAL_AUTH_TOKENS",
        format!("[\"{GLOBAL_TOKEN}\"]"),
    )];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let proxyd = Proxyd::start_with_env(BIN, &[], &env).await.unwrap();
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
    admin.register(serde_json::to_value(def).unwrap()).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscriptions_are_reference_counted() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    let mut def = serde_json::to_value(mcp_test_support::conformance::fixture_def("fx")).unwrap();
    def["sessionMode"] = json!("shared");
    admin.register(def).await;
    let mcp = McpHttp::new();
    let url = format!("{}/fx/mcp", proxyd.url());
    let a = mcp.open_session(&url, "2025-11-25").await;
    let b = mcp.open_session(&url, "2025-11-25").await;
    let req = |method: &str| json!({"jsonrpc":"2.0","id":9,"method":method,"params":{"uri":"test://watched-resource"}});
    // what reached the fixture shows up as its log message on the request's stream
    let reached = |msgs: &[Value], method: &str| {
        let last = msgs.last().unwrap();
        assert_eq!(last["result"], json!({}), "{msgs:?}");
        msgs.iter().any(|m| {
            m["params"]["data"]
                .as_str()
                .is_some_and(|d| d.starts_with(method))
        })
    };
    let sub = req("resources/subscribe");
    let unsub = req("resources/unsubscribe");
    let msgs = mcp.post_collect(&url, Some(&a), &sub).await;
    assert!(
        reached(&msgs, "resources/subscribe"),
        "the first subscriber subscribes upstream"
    );
    let msgs = mcp.post_collect(&url, Some(&b), &sub).await;
    assert!(
        !reached(&msgs, "resources/subscribe"),
        "the second one is answered by the proxy"
    );
    let msgs = mcp.post_collect(&url, Some(&a), &unsub).await;
    assert!(!reached(&msgs, "resources/unsubscribe"), "b still needs it");
    let msgs = mcp.post_collect(&url, Some(&b), &unsub).await;
    assert!(
        reached(&msgs, "resources/unsubscribe"),
        "the last one unsubscribes upstream"
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_event_streams_do_not_hold_up_shutdown() {
    // With a long drain deadline, only ending the sessions lets proxyd stop early.
    let mut proxyd = Proxyd::start_with_env(BIN, &[], &[("MCP_PROXY_SHUTDOWN_TIMEOUT", "120s")])
        .await
        .unwrap();
    let admin = Admin::new(&proxyd);
    admin
        .register(serde_json::to_value(tools::mock_stdio_def("echo", &["echo"])).unwrap())
        .await;
    let mcp = McpHttp::new();
    let base = proxyd.url();
    let (s, _, mut legacy) = mcp.get_sse(&format!("{base}/echo/sse"), &[]).await;
    assert_eq!(s, StatusCode::OK);
    read_until(&mut legacy, "endpoint").await;
    let sid = mcp
        .open_session(&format!("{base}/echo/mcp"), "2025-11-25")
        .await;
    let (s, _, _get) = mcp
        .get_sse(&format!("{base}/echo/mcp"), &[("mcp-session-id", &sid)])
        .await;
    assert_eq!(s, StatusCode::OK);
    let status = proxyd.terminate(Duration::from_secs(60)).await.unwrap();
    assert!(status.success(), "{status}");
    // the legacy stream ended instead of hanging
    let rest = tokio::time::timeout(Duration::from_secs(10), legacy.chunk()).await;
    assert!(matches!(rest, Ok(Ok(None)) | Ok(Err(_))), "{rest:?}");
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
