//! Client sessions are bounded: idle ones expire, at a limit the least recently used
//! idle one makes room, and a session cannot have more requests in flight than allowed.

use std::time::Duration;

use mcp_test_support::assert_eventually;
use mcp_test_support::e2e::{Admin, McpHttp};
use mcp_test_support::proxyd::Proxyd;
use mcp_test_support::tools;
use reqwest::StatusCode;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_proxyd");

fn ping(id: u64) -> serde_json::Value {
    json!({"jsonrpc":"2.0","id":id,"method":"ping"})
}

/// The value of the first series starting with `series`.
async fn metric(proxyd: &Proxyd, series: &str) -> Option<f64> {
    let text = Admin::new(proxyd).metrics_text().await;
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_expire_but_not_while_a_stream_is_open() {
    let proxyd = Proxyd::start_with_env(BIN, &[], &[("MCP_PROXY_SESSION_IDLE_TIMEOUT", "1s")])
        .await
        .unwrap();
    let admin = Admin::new(&proxyd);
    admin
        .register_connected(&tools::mock_stdio_def("idle", &["echo"]))
        .await;
    let mcp = McpHttp::new();
    let url = format!("{}/idle/mcp", proxyd.url());
    let quiet = mcp.open_session(&url, "2025-11-25").await;
    let watching = mcp.open_session(&url, "2025-11-25").await;
    let (s, _, stream) = mcp
        .get_sse(&url, &[("mcp-session-id", watching.as_str())])
        .await;
    assert_eq!(s, StatusCode::OK);
    // Watched through the metrics: a request to the session would keep it active.
    let expired = r#"mcp_proxy_client_sessions_ended_total{reason="expired"}"#;
    assert_eventually!(
        Duration::from_secs(15),
        metric(&proxyd, expired).await == Some(1.0)
    );
    let (s, _, _) = mcp.post(&url, Some(&quiet), &[], &ping(1)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "an expired session is gone");
    let (s, _, body) = mcp.post(&url, Some(&watching), &[], &ping(2)).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "a session with an open stream stays: {body}"
    );
    drop(stream);
    // the stream is gone: now it expires too
    assert_eventually!(
        Duration::from_secs(15),
        metric(&proxyd, expired).await == Some(2.0)
    );
    let (s, _, _) = mcp.post(&url, Some(&watching), &[], &ping(3)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_limit_the_least_recently_used_idle_session_makes_room() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    let mut def = serde_json::to_value(tools::mock_stdio_def("two", &["echo"])).unwrap();
    def["maxSessions"] = json!(2);
    def["logEnabled"] = json!(true);
    // one upstream process for every session, so one session's call releases another's
    def["sessionMode"] = json!("shared");
    admin.register(def).await;
    admin.wait_connected("two").await;
    let mcp = McpHttp::new();
    let url = format!("{}/two/mcp", proxyd.url());
    let old = mcp.open_session(&url, "2025-11-25").await;
    let busy = mcp.open_session(&url, "2025-11-25").await;
    // `old` is used after `busy` was opened, so `busy` is the least recently used …
    let (s, _, _) = mcp.post(&url, Some(&old), &[], &ping(1)).await;
    assert_eq!(s, StatusCode::OK);
    // … but it has a request in flight, so it is not idle: `old` goes instead.
    let hold = json!({"jsonrpc":"2.0","id":"h","method":"tools/call","params":{
        "name":"ask","arguments":{"message":"held","wait_for":2}}});
    let held = tokio::spawn({
        let (mcp, url, busy) = (mcp.clone(), url.clone(), busy.clone());
        async move { mcp.post_collect(&url, Some(&busy), &hold).await }
    });
    assert_eventually!(
        Duration::from_secs(10),
        proxyd.log().iter().any(|l| l.contains("holding ask held"))
    );
    let third = mcp.open_session(&url, "2025-11-25").await;
    let (s, _, _) = mcp.post(&url, Some(&old), &[], &ping(2)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "the idle one was evicted");
    let release = json!({"jsonrpc":"2.0","id":"r","method":"tools/call","params":{
        "name":"ask","arguments":{"message":"release","wait_for":2}}});
    let (s, _, _) = mcp.post(&url, Some(&third), &[], &release).await;
    assert_eq!(s, StatusCode::OK);
    let answer = held.await.unwrap();
    assert_eq!(
        answer.last().unwrap()["result"]["content"][0]["text"],
        "held"
    );
    assert_eq!(
        metric(
            &proxyd,
            r#"mcp_proxy_client_sessions_ended_total{reason="evicted"}"#
        )
        .await,
        Some(1.0)
    );
    // with nobody idle, the limit holds
    let hold_a = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
        "name":"ask","arguments":{"message":"a","wait_for":3}}});
    let hold_b = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
        "name":"ask","arguments":{"message":"b","wait_for":3}}});
    let a = tokio::spawn({
        let (mcp, url, s) = (mcp.clone(), url.clone(), busy.clone());
        async move { mcp.post_collect(&url, Some(&s), &hold_a).await }
    });
    let b = tokio::spawn({
        let (mcp, url, s) = (mcp.clone(), url.clone(), third.clone());
        async move { mcp.post_collect(&url, Some(&s), &hold_b).await }
    });
    assert_eventually!(Duration::from_secs(10), {
        let log = proxyd.log();
        log.iter().any(|l| l.contains("holding ask a"))
            && log.iter().any(|l| l.contains("holding ask b"))
    });
    let (s, _, body) = mcp
        .post(&url, None, &[], &McpHttp::initialize_body("2025-11-25"))
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["data"]["code"], "too_many_sessions", "{body}");
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cannot_have_more_requests_in_flight_than_allowed() {
    let proxyd = Proxyd::start_with_env(BIN, &[], &[("MCP_PROXY_MAX_INFLIGHT_PER_SESSION", "1")])
        .await
        .unwrap();
    let admin = Admin::new(&proxyd);
    let mut def = serde_json::to_value(tools::mock_stdio_def("narrow", &["echo"])).unwrap();
    def["logEnabled"] = json!(true);
    def["sessionMode"] = json!("shared");
    admin.register(def).await;
    admin.wait_connected("narrow").await;
    let mcp = McpHttp::new();
    let url = format!("{}/narrow/mcp", proxyd.url());
    let sid = mcp.open_session(&url, "2025-11-25").await;
    let hold = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
        "name":"ask","arguments":{"message":"one","wait_for":2}}});
    let held = tokio::spawn({
        let (mcp, url, sid) = (mcp.clone(), url.clone(), sid.clone());
        async move { mcp.post_collect(&url, Some(&sid), &hold).await }
    });
    assert_eventually!(
        Duration::from_secs(10),
        proxyd.log().iter().any(|l| l.contains("holding ask one"))
    );
    let second = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{
        "name":"echo","arguments":{"message":"two"}}});
    let (s, _, body) = mcp.post(&url, Some(&sid), &[], &second).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["id"], 2);
    assert_eq!(body["error"]["code"], -32000, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too many requests in flight"),
        "{body}"
    );
    // a ping is answered by the proxy itself, whatever is in flight
    let (s, _, body) = mcp.post(&url, Some(&sid), &[], &ping(3)).await;
    assert_eq!((s, &body["result"]), (StatusCode::OK, &json!({})), "{body}");
    // releasing the held call needs another session (this one is full)
    let other = mcp.open_session(&url, "2025-11-25").await;
    let release = json!({"jsonrpc":"2.0","id":9,"method":"tools/call","params":{
        "name":"ask","arguments":{"message":"release","wait_for":2}}});
    let (s, _, _) = mcp.post(&url, Some(&other), &[], &release).await;
    assert_eq!(s, StatusCode::OK);
    let answer = held.await.unwrap();
    assert_eq!(
        answer.last().unwrap()["result"]["content"][0]["text"],
        "one"
    );
}
