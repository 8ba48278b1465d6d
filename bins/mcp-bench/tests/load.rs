//! `mcp-bench` against real servers: the project's in-process mock upstream (streamable
//! HTTP with SSE and JSON answers, legacy SSE, faults) and the `mock-stdio` fixture.

use std::time::Duration;

use mcp_test_support::mock::{Fault, MockServer};
use mcp_test_support::tools;
use serde_json::Value;

/// Runs the binary with `args` (bounded), returning its exit success, its JSON and its
/// standard error.
async fn bench(args: &[&str]) -> (bool, Value, String) {
    // `--json` first: `--stdio CMD…` takes the rest of the line.
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-bench"))
        .arg("--json")
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("mcp-bench finished within 60 s")
        .expect("mcp-bench ran");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.success(), json, stderr)
}

fn methods(mock: &MockServer, verb: &str) -> Vec<String> {
    mock.requests()
        .into_iter()
        .filter(|r| r.method == verb)
        .map(|r| r.rpc_method.unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn streamable_http_sse_and_json_answers() {
    for fault in [Fault::None, Fault::JsonResponses] {
        let mock = MockServer::start(fault).await;
        let (ok, r, err) = bench(&[
            &mock.url(),
            "--sessions",
            "3",
            "--calls",
            "20",
            "--warmup",
            "2",
            "--payload",
            "1000",
            "--protocol-version",
            "2025-06-18",
            "--label",
            "row=mock",
        ])
        .await;
        assert!(ok, "{fault:?}: {err} {r}");
        assert_eq!(r["calls"], 60, "{fault:?}: {r}");
        assert_eq!(r["errors"], 0, "{fault:?}: {r}");
        assert_eq!(r["warmup_calls"], 6);
        assert_eq!(r["latency"]["count"], 60);
        assert_eq!(r["negotiated_version"], "2025-06-18");
        assert_eq!(r["labels"]["row"], "mock");
        let posts = methods(&mock, "POST");
        assert_eq!(posts.iter().filter(|m| *m == "initialize").count(), 3);
        assert_eq!(
            posts
                .iter()
                .filter(|m| *m == "notifications/initialized")
                .count(),
            3
        );
        assert_eq!(posts.iter().filter(|m| *m == "tools/call").count(), 66);
        // Every session is ended, and every call names its session and the negotiated
        // version.
        assert_eq!(methods(&mock, "DELETE").len(), 3);
        for req in mock
            .requests()
            .iter()
            .filter(|r| r.rpc_method.as_deref() == Some("tools/call"))
        {
            assert!(req.header("mcp-session-id").is_some());
            assert_eq!(req.header("mcp-protocol-version"), Some("2025-06-18"));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_sse_and_idle_sessions() {
    let mock = MockServer::start(Fault::None).await;
    let (ok, r, err) = bench(&[&mock.sse_url(), "--sessions", "2", "--duration", "300ms"]).await;
    assert!(ok, "{err} {r}");
    assert_eq!(r["transport"], "sse");
    assert_eq!(r["errors"], 0, "{r}");
    assert!(r["calls"].as_u64().unwrap() > 0, "{r}");
    assert!(r["duration_s"].as_f64().unwrap() >= 0.3, "{r}");

    let me = std::process::id().to_string();
    let (ok, r, err) = bench(&[&mock.sse_url(), "--idle-sessions", "5", "--watch-pid", &me]).await;
    assert!(ok, "{err} {r}");
    assert_eq!(r["mode"], "idle");
    assert_eq!(r["sessions_opened"], 5);
    assert!(r["watched"]["rss_kib_after"].as_u64().unwrap() > 0, "{r}");
    assert!(r["watched"]["kib_per_session"].is_number(), "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stdio_ceiling_with_several_callers_on_one_pipe() {
    let mock = tools::mock_stdio();
    let mock = mock.to_str().unwrap();
    let (ok, r, err) = bench(&["--sessions", "4", "--calls", "50", "--stdio", mock, "echo"]).await;
    assert!(ok, "{err} {r}");
    assert_eq!(r["transport"], "stdio");
    assert_eq!(r["calls"], 200, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_are_counted_with_their_reason() {
    // An answer that never comes: every call times out, and the run still ends.
    let mock = MockServer::start(Fault::NeverAnswer).await;
    let (ok, r, _) = bench(&[&mock.url(), "--calls", "2", "--timeout", "200ms"]).await;
    assert!(!ok, "a run with no successful call fails");
    assert_eq!(r["errors"], 2, "{r}");
    let msg = r["error_samples"][0]["message"].as_str().unwrap();
    assert!(msg.contains("timed out after 200ms"), "{msg}");

    // A stream cut before the response.
    let mock = MockServer::start(Fault::CutStreamNoIds).await;
    let (_, r, _) = bench(&[&mock.url(), "--calls", "1"]).await;
    assert_eq!(r["errors"], 1, "{r}");
    let msg = r["error_samples"][0]["message"].as_str().unwrap();
    assert!(msg.contains("event stream"), "{msg}");

    // Nobody listening: a clear error, no JSON, a non-zero exit.
    let port = tools::free_port();
    let (ok, r, err) = bench(&[&format!("http://127.0.0.1:{port}/mcp"), "--calls", "1"]).await;
    assert!(!ok && r.is_null());
    assert!(err.contains("cannot connect to 127.0.0.1"), "{err}");

    // A stdio server that dies on the call.
    let mock = tools::mock_stdio();
    let (ok, r, _) = bench(&[
        "--calls",
        "3",
        "--stdio",
        mock.to_str().unwrap(),
        "exit-mid-request",
    ])
    .await;
    assert!(!ok);
    assert_eq!(
        r["errors"], 1,
        "the session stops once the server is gone: {r}"
    );
    let samples = r["error_samples"].to_string();
    assert!(samples.contains("the stdio server is gone"), "{samples}");
    assert!(
        samples.contains("a session ended during the run"),
        "{samples}"
    );
}
