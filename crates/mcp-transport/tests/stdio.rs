//! stdio against a third-party server (`mcp-server-time`) and the `mock-stdio` fixture:
//! clean environment, pagination, child crashes, garbage, oversized messages, servers
//! that never answer, graceful and forced shutdown.

use std::time::Duration;

use mcp_test_support::tools;
use mcp_transport::{ClientEvent, ClientEvents, CloseKind, Error, McpClient, TransportOptions};
use mcp_types::McpDefinition;
use mcp_types::jsonrpc::to_raw;
use mcp_types::mcp::{CallToolResult, Implementation, methods};
use serde_json::{Value, json};

/// Generous: tests bound themselves with `within`, so a request that fails "at once"
/// cannot be confused with one that waited for its deadline.
fn options() -> TransportOptions {
    TransportOptions {
        request_timeout: Some(Duration::from_secs(300)),
        connect_timeout: Some(Duration::from_secs(30)),
        shutdown_grace: Duration::from_millis(300),
        ..TransportOptions::default()
    }
}

async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish in time"))
}

fn me() -> Implementation {
    Implementation::new("mcp-transport-tests", "0.0.0")
}

async fn start(def: &McpDefinition, opts: &TransportOptions) -> (McpClient, ClientEvents) {
    within("connect", McpClient::connect(def, opts))
        .await
        .expect("connect")
}

async fn started(def: &McpDefinition) -> (McpClient, ClientEvents) {
    let (client, events) = start(def, &options()).await;
    within("initialize", client.initialize(me(), json!({})))
        .await
        .expect("initialize");
    (client, events)
}

async fn next_close(events: &mut ClientEvents) -> mcp_transport::CloseReason {
    within("close event", async {
        loop {
            match events.recv().await {
                Some(ClientEvent::Closed(reason)) => return reason,
                Some(_) => {}
                None => panic!("events ended without a close event"),
            }
        }
    })
    .await
}

fn text_of(result: &CallToolResult) -> String {
    result.content[0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn mcp_server_time_tells_the_time() {
    let (client, _events) = started(&tools::server_time_def("time")).await;
    let tools = within("list", client.list_all(methods::TOOLS_LIST, "tools"))
        .await
        .unwrap();
    assert!(
        tools.iter().any(|t| t["name"] == "get_current_time"),
        "{tools:?}"
    );
    let result: CallToolResult = within(
        "call",
        client.call(
            methods::TOOLS_CALL,
            &json!({"name": "get_current_time", "arguments": {"timezone": "UTC"}}),
        ),
    )
    .await
    .unwrap();
    assert!(text_of(&result).contains("UTC"), "{result:?}");
    within("close", client.close()).await.unwrap();
}

#[tokio::test]
async fn child_gets_a_clean_environment_plus_its_own() {
    let mut def = tools::everything_stdio_def("env");
    def.env.insert("MCP_TEST_TOKEN".into(), "tok-123".into());
    let (client, _events) = started(&def).await;
    let result: CallToolResult = within(
        "get-env",
        client.call(
            methods::TOOLS_CALL,
            &json!({"name": "get-env", "arguments": {}}),
        ),
    )
    .await
    .unwrap();
    let env: Value = serde_json::from_str(&text_of(&result)).expect("get-env returns JSON");
    assert_eq!(env["MCP_TEST_TOKEN"], "tok-123");
    assert!(env.get("PATH").is_some(), "{env}");
    // Set by cargo for this test process: must not leak into the child.
    assert!(env.get("CARGO_MANIFEST_DIR").is_none(), "{env}");
    within("close", client.close()).await.unwrap();
}

#[tokio::test]
async fn list_all_follows_next_cursor() {
    let (client, _events) = started(&tools::mock_stdio_def("mock", &["echo"])).await;
    let tools = within("list", client.list_all(methods::TOOLS_LIST, "tools"))
        .await
        .unwrap();
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["echo", "big"]);
    assert!(client.transport().pid().is_some());
}

#[tokio::test]
async fn child_exiting_mid_request_fails_the_request_at_once() {
    let (client, mut events) =
        started(&tools::mock_stdio_def("crash", &["exit-mid-request"])).await;
    let err = within(
        "request on a dying child",
        client.call::<_, Value>(methods::TOOLS_CALL, &json!({"name": "echo"})),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Closed { .. }), "{err:?}");
    assert!(text.starts_with(r#"upstream "crash" (stdio): "#), "{text}");
    assert!(text.contains("exited with status 3"), "{text}");
    assert!(
        text.contains("crashing on purpose"),
        "stderr missing: {text}"
    );
    assert!(err.is_retryable());
    let reason = next_close(&mut events).await;
    assert_eq!(reason.kind, CloseKind::Exited);
    // Later requests fail at once too.
    let again = within("request after close", client.request(methods::PING, None)).await;
    assert!(matches!(again, Err(Error::Closed { .. })), "{again:?}");
}

#[tokio::test]
async fn a_program_that_prints_garbage_and_exits_is_reported() {
    let def = McpDefinition::stdio("echo", "echo", &["hello"]);
    let (client, mut events) = start(&def, &options()).await;
    let err = within("initialize", client.initialize(me(), json!({})))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(
            r#"the program does not speak MCP over stdio: it printed non-JSON on stdout ("hello") and exited with status 0"#
        ),
        "{text}"
    );
    assert!(next_close(&mut events).await.message.contains("non-JSON"));
}

#[tokio::test]
async fn garbage_lines_are_skipped_and_the_session_goes_on() {
    let (client, _events) = started(&tools::mock_stdio_def("garbage", &["garbage"])).await;
    let result: CallToolResult = within(
        "call",
        client.call(
            methods::TOOLS_CALL,
            &json!({"name": "echo", "arguments": {"message": "still here"}}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(text_of(&result), "still here");
}

#[tokio::test]
async fn a_two_mebibyte_message_is_accepted_under_the_default_limit() {
    let (client, mut events) = started(&tools::mock_stdio_def("big", &["big"])).await;
    let note = within("big notification", events.recv()).await;
    let Some(ClientEvent::Notification(note)) = note else {
        panic!("expected the big notification, got {note:?}");
    };
    assert!(note.params.unwrap().get().len() > 2 << 20);
    let result: CallToolResult = within(
        "big result",
        client.call(
            methods::TOOLS_CALL,
            &json!({"name": "big", "arguments": {"bytes": 3 << 20}}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(text_of(&result).len(), 3 << 20);
}

#[tokio::test]
async fn a_message_over_the_limit_closes_the_connection_cleanly() {
    let opts = TransportOptions {
        max_message_bytes: 1 << 20,
        ..options()
    };
    let (client, mut events) = start(&tools::mock_stdio_def("big", &["big"]), &opts).await;
    let err = within("initialize", client.initialize(me(), json!({})))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("larger than the limit of 1048576 bytes"),
        "{err}"
    );
    let reason = next_close(&mut events).await;
    assert_eq!(reason.kind, CloseKind::Protocol, "{reason}");
}

#[tokio::test]
async fn a_request_that_is_never_answered_times_out_and_is_cancelled() {
    let (client, mut events) = started(&tools::mock_stdio_def("hang", &["hang"])).await;
    let err = within(
        "timed-out request",
        client.request_with_timeout(
            methods::TOOLS_CALL,
            Some(to_raw(&json!({"name": "echo"}))),
            Duration::from_millis(300),
        ),
    )
    .await
    .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(
        err.to_string(),
        r#"upstream "hang" (stdio): tools/call timed out after 300ms"#
    );
    // The fixture reports the `notifications/cancelled` it received.
    let note = within("cancel report", events.recv()).await;
    let Some(ClientEvent::Notification(note)) = note else {
        panic!("expected a notification, got {note:?}");
    };
    assert!(note.params.unwrap().get().contains("cancelled 2"));
}

#[tokio::test]
async fn a_silent_server_makes_initialize_time_out() {
    let opts = TransportOptions {
        request_timeout: Some(Duration::from_millis(300)),
        ..options()
    };
    let (client, _events) = start(&tools::mock_stdio_def("silent", &["silent"]), &opts).await;
    let err = within("initialize", client.initialize(me(), json!({})))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
}

#[tokio::test]
async fn close_stops_a_well_behaved_child_by_closing_stdin() {
    let (client, mut events) = started(&tools::mock_stdio_def("mock", &["echo"])).await;
    let pid = client.transport().pid().unwrap();
    within("close", client.close()).await.unwrap();
    let reason = next_close(&mut events).await;
    assert_eq!(
        reason.message,
        "closed by the proxy; the process exited with status 0"
    );
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

#[tokio::test]
async fn close_escalates_to_sigterm_then_sigkill() {
    let term = McpDefinition::stdio("sleepy", "sleep", &["1000"]);
    let (client, mut events) = start(&term, &options()).await;
    within("close", client.close()).await.unwrap();
    let reason = next_close(&mut events).await;
    assert!(reason.message.ends_with("exited on signal 15"), "{reason}");

    let stubborn = McpDefinition::stdio("stubborn", "sh", &["-c", "trap '' TERM; sleep 1000"]);
    let (client, mut events) = start(&stubborn, &options()).await;
    within("close", client.close()).await.unwrap();
    let reason = next_close(&mut events).await;
    assert!(reason.message.ends_with("exited on signal 9"), "{reason}");
}

#[tokio::test]
async fn a_missing_program_is_a_clear_spawn_error() {
    let def = McpDefinition::stdio("nope", "/nonexistent/mcp-server", &[]);
    let err = McpClient::connect(&def, &options()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(r#"upstream "nope" (stdio): cannot start "/nonexistent/mcp-server": "#),
        "{text}"
    );
    assert!(!err.is_retryable());
}
