//! What the proxy enforces cannot be smuggled past it or made to leak: one test per class
//! of hole (see docs/security.md).

use std::time::Duration;

use mcp_test_support::assert_eventually;
use mcp_test_support::e2e::{self, Admin, McpHttp};
use mcp_test_support::mock::{Fault, MockServer};
use mcp_test_support::proxyd::Proxyd;
use mcp_test_support::tools;
use reqwest::StatusCode;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_proxyd");

/// A stdio upstream behind the proxy that reports every tool it runs in the proxy's log.
async fn logged_mock(proxyd: &Proxyd, name: &str, filter: Option<Value>) -> String {
    let admin = Admin::new(proxyd);
    let mut def = serde_json::to_value(tools::mock_stdio_def(name, &["echo"])).unwrap();
    def["logEnabled"] = json!(true);
    if let Some(f) = filter {
        def["toolFilter"] = f;
    }
    admin.register(def).await;
    admin.wait_connected(name).await;
    format!("{}/{name}/mcp", proxyd.url())
}

fn ran(proxyd: &Proxyd, tool: &str) -> bool {
    let needle = format!("got tools/call \\\"{tool}\\\"");
    let plain = format!("got tools/call \"{tool}\"");
    proxyd
        .log()
        .iter()
        .any(|l| l.contains(&needle) || l.contains(&plain))
}

/// A raw line feed between JSON tokens is legal JSON; written as is to a line-framed
/// transport it would carry a second, unseen message. It never leaves the proxy raw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_cannot_carry_another_one_into_a_stdio_upstream() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let url = logged_mock(
        &proxyd,
        "smuggle",
        Some(json!({"mode": "block", "list": ["blocked"]})),
    )
    .await;
    let mcp = McpHttp::new();
    let sid = mcp.open_session(&url, "2025-11-25").await;
    let inner = r#"{"jsonrpc":"2.0","id":99,"method":"tools/call","params":{"name":"blocked","arguments":{}}}"#;
    let carrier = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{{\"name\":\"echo\",\"arguments\":{{\"message\":\"carrier\"}},\"pad\":\n{inner}\n}}}}"
    );
    let started = std::time::Instant::now();
    let (status, body) = mcp.post_raw(&url, Some(&sid), &carrier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], 1, "{body}");
    assert_eq!(body["result"]["content"][0]["text"], "carrier", "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered, not left to time out"
    );
    assert_eventually!(Duration::from_secs(10), ran(&proxyd, "echo"));
    assert!(!ran(&proxyd, "blocked"), "the embedded message never ran");
}

/// The tool filter reads the name the upstream will read, or refuses the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_filter_cannot_be_passed_with_an_ambiguous_name() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let url = logged_mock(
        &proxyd,
        "filtered",
        Some(json!({"mode": "block", "list": ["big"]})),
    )
    .await;
    let mcp = McpHttp::new();
    let sid = mcp.open_session(&url, "2025-11-25").await;
    for params in [
        r#"{"name":"echo","name":"big","arguments":{"bytes":3}}"#,
        r#"{"name":["big"],"arguments":{}}"#,
        r#"{"n\u0061me":"big","arguments":{"bytes":3}}"#,
    ] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{params}}}"#);
        let (status, answer) = mcp.post_raw(&url, Some(&sid), &body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["error"]["code"], -32602, "{params}: {answer}");
    }
    // a plain call still works, and the blocked tool never ran
    let ok = json!({"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"echo","arguments":{"message":"fine"}}});
    let (_, _, answer) = mcp.post(&url, Some(&sid), &[], &ok).await;
    assert_eq!(answer["result"]["content"][0]["text"], "fine", "{answer}");
    assert_eventually!(Duration::from_secs(10), ran(&proxyd, "echo"));
    assert!(!ran(&proxyd, "big"));
}

/// A progress token spelled with a JSON escape is the same key: it is rewritten like
/// any other, so its progress comes back (in shared mode it would otherwise be lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escaped_progress_token_is_rewritten_and_its_progress_arrives() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    let mut def = serde_json::to_value(tools::everything_stdio_def("escaped")).unwrap();
    def["sessionMode"] = json!("shared");
    admin.register(def).await;
    admin.wait_connected("escaped").await;
    let mcp = McpHttp::new();
    let url = format!("{}/escaped/mcp", proxyd.url());
    let sid = mcp.open_session(&url, "2025-11-25").await;
    let body = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"trigger-long-running-operation","arguments":{"duration":0.3,"steps":3},"_meta":{"progress\u0054oken":"mine"}}}"#;
    let resp = mcp
        .http
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-session-id", &sid)
        .body(body)
        .send()
        .await
        .unwrap();
    let headers = resp.headers().clone();
    let msgs = e2e::messages(&headers, &resp.text().await.unwrap());
    let progress: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 3, "{msgs:?}");
    assert!(
        progress
            .iter()
            .all(|p| p["params"]["progressToken"] == "mine")
    );
    assert_eq!(msgs.last().unwrap()["id"], 3);
}

/// `{extra}` segments cannot climb out of the upstream's path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_path_segments_cannot_reach_other_paths_of_the_upstream() {
    let mock = MockServer::start(Fault::JsonResponses).await;
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    admin
        .register(
            json!({"name":"pathy","transport":"streamable-http","url":mock.url(),
            "headers":{"X-Api-Key":"secret-key-0123"}}),
        )
        .await;
    admin.wait_connected("pathy").await;
    let mcp = McpHttp::new();
    let init = McpHttp::initialize_body("2025-11-25");
    // Sent as written (an HTTP client library would resolve the dot segments itself).
    let addr = proxyd.url().trim_start_matches("http://").to_owned();
    for extra in [
        "..",
        "../../admin",
        "..%2F..%2Fadmin",
        "%2e%2e/x",
        "a/%2E%2E/b",
        "a%5cb",
        "a%2fb",
    ] {
        let path = format!("/pathy/stream/{extra}");
        let (status, body) = raw_post(&addr, &path, &init.to_string()).await;
        assert_eq!(status, 400, "{extra}: {body}");
        assert!(body.contains("invalid_path"), "{extra}: {body}");
    }
    let seen: Vec<String> = mock.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        seen.iter().all(|p| p == "/mcp"),
        "only the upstream's own path: {seen:?}"
    );
    // a plain extra segment still works
    let url = format!("{}/pathy/stream/tenant-7", proxyd.url());
    let (status, _, body) = mcp.post(&url, None, &[], &init).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// What a client reads when its upstream dies names the upstream and the kind of
/// failure, with a reference for the operator — not the child's stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_details_stay_in_the_log() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    let def = tools::mock_stdio_def("leaky", &["exit-mid-request"]);
    admin.register_def(&def).await;
    let mcp = McpHttp::new();
    let url = format!("{}/leaky/mcp", proxyd.url());
    let sid = mcp.open_session(&url, "2025-11-25").await;
    let call = json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x"}}});
    let answer = mcp.post_collect(&url, Some(&sid), &call).await;
    let error = &answer.last().unwrap()["error"];
    let message = error["message"].as_str().unwrap();
    assert_eq!(error["code"], -32000, "{error}");
    assert!(
        message.contains("leaky") && message.contains("exited"),
        "{message}"
    );
    assert!(
        !message.contains("crashing on purpose"),
        "no stderr: {message}"
    );
    let reference = error["data"]["ref"]
        .as_str()
        .expect("a reference")
        .to_owned();
    assert!(message.contains(&reference));
    assert_eventually!(
        Duration::from_secs(10),
        proxyd
            .log()
            .iter()
            .any(|l| l.contains(&reference) && l.contains("crashing on purpose"))
    );
}

/// `stdio_allowed_commands` holds where processes are spawned, whatever the
/// definition's origin (here: stored in Redis before the list was set), and env keys
/// that change what runs are refused while a list is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_allow_list_holds_at_spawn_time() {
    let redis = mcp_test_support::redis::RedisServer::start().await;
    let storage = ["--storage", "redis", "--redis-url"];
    let url = redis.url();
    let args: Vec<&str> = storage.iter().copied().chain([url.as_str()]).collect();
    {
        let open = Proxyd::start(BIN, &args).await.unwrap();
        let admin = Admin::new(&open);
        admin
            .register_connected(&tools::mock_stdio_def("older", &["echo"]))
            .await;
    }
    let only = r#"["/usr/bin/env"]"#;
    let strict = Proxyd::start_with_env(BIN, &args, &[("MCP_PROXY_STDIO_ALLOWED_COMMANDS", only)])
        .await
        .unwrap();
    let admin = Admin::new(&strict);
    assert_eventually!(Duration::from_secs(30), {
        let status = admin.status("older").await;
        status["state"] == "error"
            && status["lastError"]
                .as_str()
                .is_some_and(|e| e.contains("stdio_allowed_commands"))
    });
    let (status, body) = admin
        .send(
            reqwest::Method::POST,
            "/admin/mcps",
            Some(
                json!({"name":"sneaky","transport":"stdio","command":"/usr/bin/env",
                "env":{"PATH":"/tmp/evil","LD_PRELOAD":"/tmp/evil.so"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let fields: Vec<&str> = body["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert!(
        fields.contains(&"env.PATH") && fields.contains(&"env.LD_PRELOAD"),
        "{body}"
    );
}

/// Two POSTs with the same id in flight: the second is refused, the first keeps its
/// stream and gets its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_request_with_an_id_in_flight_is_refused() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let url = logged_mock(&proxyd, "dup", None).await;
    let mcp = McpHttp::new();
    let sid = mcp.open_session(&url, "2025-11-25").await;
    let first = json!({"jsonrpc":"2.0","id":"x","method":"tools/call","params":{
        "name":"ask","arguments":{"message":"first","wait_for":2}}});
    let again = json!({"jsonrpc":"2.0","id":"x","method":"tools/call","params":{
        "name":"echo","arguments":{"message":"again"}}});
    let release = json!({"jsonrpc":"2.0","id":"y","method":"tools/call","params":{
        "name":"ask","arguments":{"message":"release","wait_for":2}}});
    let (first_answer, ()) = tokio::join!(mcp.post_collect(&url, Some(&sid), &first), async {
        assert_eventually!(
            Duration::from_secs(10),
            proxyd.log().iter().any(|l| l.contains("holding ask first"))
        );
        let (status, _, body) = mcp.post(&url, Some(&sid), &[], &again).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["data"]["code"], "request_id_in_use", "{body}");
        let (status, _, body) = mcp.post(&url, Some(&sid), &[], &release).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    });
    let last = first_answer.last().unwrap();
    assert_eq!(last["id"], "x");
    assert_eq!(
        last["result"]["content"][0]["text"], "first",
        "{first_answer:?}"
    );
}

/// Without any server asking for credentials an unknown name is a plain 404 (with a
/// JSON-RPC body).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_are_404_when_nothing_is_protected() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let (status, _, body) = McpHttp::new()
        .post(
            &format!("{}/nosuch/mcp", proxyd.url()),
            None,
            &[],
            &McpHttp::initialize_body("2025-11-25"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["error"]["data"]["code"], "mcp_not_found", "{body}");
}

/// POSTs `body` to `path` exactly as written, over a fresh connection; the status and body.
async fn raw_post(addr: &str, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}
