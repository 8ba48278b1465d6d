//! How sessions and their calls end: a deleted or dead upstream, a cancellation, a lost
//! stream resumed, shutdown with streams open.

use std::time::Duration;

use mcp_test_support::e2e::{self, Admin, McpHttp, log_line, read_until};
use mcp_test_support::proxyd::Proxyd;
use mcp_test_support::tools;
use reqwest::StatusCode;
use serde_json::json;

use crate::BIN;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_upstream_ends_its_sessions_and_a_dead_stdio_session_errors_in_flight() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    admin
        .register_def(&tools::mock_stdio_def("gone", &[]))
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
async fn a_per_client_upstream_that_dies_mid_call_fails_the_call_then_the_session_is_gone() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    let def = tools::mock_stdio_def("dies", &["exit-mid-request"]);
    admin.register_def(&def).await;
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
    admin.register_def(&def).await;
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
async fn a_dropped_post_stream_resumes_with_last_event_id() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    admin.register_def(&tools::everything_stdio_def("ev")).await;
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
async fn open_event_streams_do_not_hold_up_shutdown() {
    // With a long drain deadline, only ending the sessions lets proxyd stop early.
    let mut proxyd = Proxyd::start_with_env(BIN, &[], &[("MCP_PROXY_SHUTDOWN_TIMEOUT", "120s")])
        .await
        .unwrap();
    let admin = Admin::new(&proxyd);
    admin
        .register_def(&tools::mock_stdio_def("echo", &["echo"]))
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
