//! The official reference server (`@modelcontextprotocol/server-everything`) over all
//! three transports: handshake, paginated listing, tool calls, progress notifications and
//! a server→client sampling request answered by us.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use mcp_test_support::tools::{self, EverythingMode, EverythingServer};
use mcp_transport::{ClientEvent, CloseReason, McpClient, TransportOptions};
use mcp_types::jsonrpc::{codes, to_raw};
use mcp_types::mcp::{CallToolResult, Implementation, SUPPORTED_PROTOCOL_VERSIONS, methods};
use mcp_types::{ErrorObject, McpDefinition, Outcome};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const SCENARIO_DEADLINE: Duration = Duration::from_secs(90);

fn options() -> TransportOptions {
    TransportOptions {
        request_timeout: Some(Duration::from_secs(30)),
        connect_timeout: Some(Duration::from_secs(10)),
        ..TransportOptions::default()
    }
}

fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn call_tool(client: &McpClient, params: Value) -> anyhow::Result<CallToolResult> {
    let result: CallToolResult = client.call(methods::TOOLS_CALL, &params).await?;
    ensure!(result.is_error != Some(true), "tool failed: {result:?}");
    Ok(result)
}

/// Answers sampling requests, refuses others, forwards notifications (method, params);
/// returns the close reason.
async fn serve_events(
    client: McpClient,
    mut events: mcp_transport::ClientEvents,
    notes: mpsc::Sender<(String, Value)>,
) -> Option<CloseReason> {
    while let Some(event) = events.recv().await {
        match event {
            ClientEvent::Request(req) if req.method == "sampling/createMessage" => {
                let result = json!({
                    "role": "assistant",
                    "content": {"type": "text", "text": "sampled by the transport test"},
                    "model": "test-model",
                    "stopReason": "endTurn",
                });
                let _ = client
                    .respond(req.id, Outcome::Result(to_raw(&result)))
                    .await;
            }
            ClientEvent::Request(req) => {
                let error = ErrorObject::new(codes::METHOD_NOT_FOUND, "not supported by the test");
                let _ = client.respond(req.id, Outcome::Error(error)).await;
            }
            ClientEvent::Notification(n) => {
                let params: Value = n
                    .params
                    .as_deref()
                    .map(|p| serde_json::from_str(p.get()).unwrap_or_default())
                    .unwrap_or_default();
                let _ = notes.try_send((n.method, params));
            }
            ClientEvent::Closed(reason) => return Some(reason),
        }
    }
    None
}

/// The next notification of `method` (others are skipped).
async fn next_note(
    notes: &mut mpsc::Receiver<(String, Value)>,
    method: &str,
) -> anyhow::Result<Value> {
    loop {
        let (m, params) = tokio::time::timeout(Duration::from_secs(15), notes.recv())
            .await
            .with_context(|| format!("no {method} notification"))?
            .context("event handler ended")?;
        if m == method {
            return Ok(params);
        }
    }
}

async fn exercise(def: McpDefinition) -> anyhow::Result<()> {
    let (client, events) = McpClient::connect(&def, &options()).await?;
    let (notes_tx, mut notes) = mpsc::channel(256);
    let handler = tokio::spawn(serve_events(client.clone(), events, notes_tx));

    let init = client
        .initialize(
            Implementation::new("mcp-transport-tests", "0.0.0"),
            json!({"sampling": {}}),
        )
        .await?;
    ensure!(
        init.server_info.name == "mcp-servers/everything",
        "{init:?}"
    );
    ensure!(SUPPORTED_PROTOCOL_VERSIONS.contains(&init.protocol_version.as_str()));
    ensure!(
        init.capabilities.get("tools").is_some(),
        "no tools capability"
    );

    let tools = client.list_all(methods::TOOLS_LIST, "tools").await?;
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    for expected in [
        "echo",
        "get-sum",
        "trigger-long-running-operation",
        "trigger-sampling-request",
    ] {
        ensure!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }

    let echo = call_tool(
        &client,
        json!({"name": "echo", "arguments": {"message": "héllo"}}),
    )
    .await?;
    ensure!(text_of(&echo) == "Echo: héllo", "{echo:?}");
    let sum = call_tool(
        &client,
        json!({"name": "get-sum", "arguments": {"a": 2, "b": 40}}),
    )
    .await?;
    ensure!(text_of(&sum).contains("42"), "{sum:?}");

    let long = call_tool(
        &client,
        json!({
            "name": "trigger-long-running-operation",
            "arguments": {"duration": 0.6, "steps": 3},
            "_meta": {"progressToken": "progress-7"},
        }),
    )
    .await?;
    ensure!(text_of(&long).contains("completed"), "{long:?}");
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let note = next_note(&mut notes, methods::PROGRESS).await?;
        ensure!(note["progressToken"] == "progress-7", "{note}");
        seen.push(note["progress"].as_f64().unwrap_or_default());
    }
    ensure!(seen == [1.0, 2.0, 3.0], "progress {seen:?}");

    // Log messages are not tied to a request: over streamable HTTP they come on the GET
    // stream.
    call_tool(
        &client,
        json!({"name": "toggle-simulated-logging", "arguments": {}}),
    )
    .await?;
    let log = next_note(&mut notes, "notifications/message").await?;
    ensure!(
        log["data"].as_str().is_some_and(|d| d.contains("message")),
        "{log}"
    );
    call_tool(
        &client,
        json!({"name": "toggle-simulated-logging", "arguments": {}}),
    )
    .await?;

    let sampled = call_tool(
        &client,
        json!({"name": "trigger-sampling-request", "arguments": {"prompt": "hi", "maxTokens": 5}}),
    )
    .await?;
    ensure!(
        text_of(&sampled).contains("sampled by the transport test"),
        "{sampled:?}"
    );

    let unknown = client
        .request(
            methods::TOOLS_CALL,
            Some(to_raw(&json!({"name": "no-such-tool"}))),
        )
        .await?;
    match unknown.outcome {
        Outcome::Error(_) => {}
        Outcome::Result(r) if r.get().contains("\"isError\":true") => {}
        Outcome::Result(r) => bail!("unknown tool answered {}", r.get()),
    }

    client.close().await?;
    let reason = tokio::time::timeout(Duration::from_secs(10), handler)
        .await
        .context("no close event")??
        .context("events ended without a close event")?;
    ensure!(reason.is_local(), "closed for another reason: {reason}");
    ensure!(client.is_closed());
    Ok(())
}

async fn run(def: McpDefinition) {
    match tokio::time::timeout(SCENARIO_DEADLINE, exercise(def)).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => panic!("{err:#}"),
        Err(_) => panic!("scenario did not finish within {SCENARIO_DEADLINE:?}"),
    }
}

#[tokio::test]
async fn everything_over_stdio() {
    run(tools::everything_stdio_def("everything")).await;
}

#[tokio::test]
async fn everything_over_streamable_http() {
    let server = EverythingServer::start(EverythingMode::StreamableHttp).await;
    run(server.def("everything")).await;
}

#[tokio::test]
async fn everything_over_legacy_sse() {
    let server = EverythingServer::start(EverythingMode::Sse).await;
    run(server.def("everything")).await;
}
