//! Legacy HTTP+SSE against the in-process mock: endpoint discovery, messages, a lost
//! stream, an unknown session, a server that never answers, a URL that is not a stream.

use std::time::Duration;

use mcp_test_support::mock::{Fault, MockServer};
use mcp_transport::{ClientEvent, CloseKind, Error, McpClient, TransportOptions};
use mcp_types::jsonrpc::to_raw;
use mcp_types::mcp::{CallToolResult, Implementation, methods};
use mcp_types::{McpDefinition, TransportKind};
use serde_json::json;

fn options() -> TransportOptions {
    TransportOptions {
        request_timeout: Some(Duration::from_secs(300)),
        connect_timeout: Some(Duration::from_secs(10)),
        ..TransportOptions::default()
    }
}

async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish in time"))
}

fn def(url: String) -> McpDefinition {
    let mut def = McpDefinition::http("legacy", TransportKind::Sse, url);
    def.headers
        .insert("Authorization".into(), "Bearer upstream-token".into());
    def
}

async fn started(mock: &MockServer) -> (McpClient, mcp_transport::ClientEvents) {
    let (client, events) = within(
        "connect",
        McpClient::connect(&def(mock.sse_url()), &options()),
    )
    .await
    .expect("connect");
    within(
        "initialize",
        client.initialize(Implementation::new("tests", "0.0.0"), json!({})),
    )
    .await
    .expect("initialize");
    (client, events)
}

#[tokio::test]
async fn messages_flow_through_the_announced_endpoint() {
    let mock = MockServer::start(Fault::None).await;
    let (client, _events) = started(&mock).await;
    let tools = within("list", client.list_all(methods::TOOLS_LIST, "tools"))
        .await
        .unwrap();
    assert_eq!(tools.len(), 2);
    let result: CallToolResult = within(
        "call",
        client.call(
            methods::TOOLS_CALL,
            &json!({"name": "echo", "arguments": {"message": "legacy"}}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(result.content[0]["text"], "legacy");
    let seen = mock.requests();
    assert!(
        seen.iter()
            .any(|r| r.method == "GET" && r.header("accept") == Some("text/event-stream"))
    );
    for req in &seen {
        assert_eq!(req.header("authorization"), Some("Bearer upstream-token"));
        if req.method == "POST" {
            assert!(
                req.path.starts_with("/message?sessionId=legacy-"),
                "{}",
                req.path
            );
        }
    }
    within("close", client.close()).await.unwrap();
}

#[tokio::test]
async fn a_lost_stream_closes_the_connection_and_fails_pending_requests() {
    let mock = MockServer::start(Fault::NeverAnswer).await;
    let (client, mut events) = started(&mock).await;
    let pending = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .request(methods::TOOLS_CALL, Some(to_raw(&json!({"name": "echo"}))))
                .await
        })
    };
    // Wait until the call reached the mock, then cut the stream.
    within("call posted", async {
        while !mock
            .requests()
            .iter()
            .any(|r| r.rpc_method.as_deref() == Some("tools/call"))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    mock.cut_sse_streams();
    let err = within("pending request", pending)
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::Closed { .. }), "{err:?}");
    assert!(err.to_string().contains("event stream"), "{err}");
    let reason = within("close event", async {
        loop {
            if let Some(ClientEvent::Closed(reason)) = events.recv().await {
                return reason;
            }
        }
    })
    .await;
    assert_eq!(reason.kind, CloseKind::StreamLost);
}

#[tokio::test]
async fn an_unknown_session_is_reported_as_expired() {
    let mock = MockServer::start(Fault::None).await;
    let (client, _events) = started(&mock).await;
    mock.expire_sessions();
    let err = within("ping", client.request(methods::PING, None))
        .await
        .unwrap_err();
    assert!(err.is_session_expired(), "{err:?}");
}

#[tokio::test]
async fn a_request_never_answered_times_out() {
    let mock = MockServer::start(Fault::NeverAnswer).await;
    let (client, _events) = started(&mock).await;
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
}

#[tokio::test]
async fn a_url_that_is_not_an_event_stream_is_refused() {
    let mock = MockServer::start(Fault::None).await;
    let err = within("connect", McpClient::connect(&def(mock.url()), &options()))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(r#"upstream "legacy" (sse): GET http://"#),
        "{text}"
    );
    assert!(text.contains("400"), "{text}");
}
