//! Streamable HTTP against the in-process mock: JSON and SSE answers, session and version
//! headers, passthrough headers and path suffix, a cut stream resumed with
//! `Last-Event-ID`, a cut stream that cannot be resumed, session expiry, a server that
//! never answers, and an unreachable server.

use std::time::Duration;

use mcp_test_support::mock::{Fault, MockServer, SeenRequest};
use mcp_transport::{ClientEvent, ClientEvents, CloseKind, Error, McpClient, TransportOptions};
use mcp_types::jsonrpc::{codes, to_raw};
use mcp_types::mcp::{CallToolResult, Implementation, LATEST_PROTOCOL_VERSION, methods};
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
    McpDefinition::http("mock", TransportKind::StreamableHttp, url)
}

async fn started(def: &McpDefinition, opts: &TransportOptions) -> (McpClient, ClientEvents) {
    let (client, events) = within("connect", McpClient::connect(def, opts))
        .await
        .expect("connect");
    let init = within(
        "initialize",
        client.initialize(Implementation::new("tests", "0.0.0"), json!({})),
    )
    .await
    .expect("initialize");
    assert_eq!(init.server_info.name, "mock-http");
    assert_eq!(
        init.instructions.as_deref(),
        Some("a mock for transport tests")
    );
    (client, events)
}

async fn echo(client: &McpClient, message: &str) -> mcp_transport::Result<CallToolResult> {
    within(
        "tools/call",
        client.call(
            methods::TOOLS_CALL,
            &json!({"name": "echo", "arguments": {"message": message}}),
        ),
    )
    .await
}

fn posts_of<'a>(seen: &'a [SeenRequest], rpc: &str) -> Vec<&'a SeenRequest> {
    seen.iter()
        .filter(|r| r.method == "POST" && r.rpc_method.as_deref() == Some(rpc))
        .collect()
}

#[tokio::test]
async fn json_answers_with_session_and_version_headers_then_delete() {
    let mock = MockServer::start(Fault::JsonResponses).await;
    let (client, _events) = started(&def(mock.url()), &options()).await;
    let tools = within("list", client.list_all(methods::TOOLS_LIST, "tools"))
        .await
        .unwrap();
    assert_eq!(tools.len(), 2, "both pages: {tools:?}");
    let result = echo(&client, "json").await.unwrap();
    assert_eq!(result.content[0]["text"], "json");
    within("close", client.close()).await.unwrap();

    let seen = mock.requests();
    let init = posts_of(&seen, "initialize")[0];
    assert!(init.header("mcp-session-id").is_none());
    assert!(init.header("mcp-protocol-version").is_none());
    let accept = init.header("accept").unwrap();
    assert!(accept.contains("application/json") && accept.contains("text/event-stream"));
    assert_eq!(init.header("content-type"), Some("application/json"));
    for later in posts_of(&seen, "tools/call")
        .into_iter()
        .chain(posts_of(&seen, "notifications/initialized"))
    {
        assert!(
            later
                .header("mcp-session-id")
                .unwrap()
                .starts_with("session-")
        );
        assert_eq!(
            later.header("mcp-protocol-version"),
            Some(LATEST_PROTOCOL_VERSION)
        );
    }
    // The GET stream was tried (the mock answers 405, which is fine) and the session deleted.
    assert!(seen.iter().any(|r| r.method == "GET"), "{seen:?}");
    let delete = seen
        .iter()
        .find(|r| r.method == "DELETE")
        .expect("DELETE sent");
    assert!(delete.header("mcp-session-id").is_some());
}

#[tokio::test]
async fn sse_answers_deliver_every_message_and_carry_configured_headers() {
    let mock = MockServer::start(Fault::None).await;
    let mut def = def(mock.url());
    def.headers.insert("X-Api-Key".into(), "key-1".into());
    let mut opts = options();
    opts.extra_headers
        .insert("x-passthrough", "from-client".parse().unwrap());
    opts.path_suffix = Some("extra/seg".into());
    let (client, mut events) = started(&def, &opts).await;
    let result = echo(&client, "sse").await.unwrap();
    assert_eq!(result.content[0]["text"], "sse");
    let note = within("notification", events.recv()).await;
    assert!(
        matches!(&note, Some(ClientEvent::Notification(n)) if n.method == "notifications/message"),
        "{note:?}"
    );
    for req in mock.requests() {
        assert!(req.path.starts_with("/mcp/extra/seg"), "{}", req.path);
        assert_eq!(req.header("x-api-key"), Some("key-1"));
        assert_eq!(req.header("x-passthrough"), Some("from-client"));
    }
}

#[tokio::test]
async fn a_cut_stream_is_resumed_with_last_event_id() {
    let mock = MockServer::start(Fault::CutStreamResumable).await;
    let (client, _events) = started(&def(mock.url()), &options()).await;
    let result = echo(&client, "resumed").await.unwrap();
    assert_eq!(result.content[0]["text"], "resumed");
    let seen = mock.requests();
    let resume = seen
        .iter()
        .find(|r| r.method == "GET" && r.header("last-event-id").is_some())
        .expect("a GET with Last-Event-ID");
    assert!(resume.header("last-event-id").unwrap().starts_with("ev-"));
    assert!(resume.header("mcp-session-id").is_some());
}

#[tokio::test]
async fn a_cut_stream_without_ids_fails_its_request_at_once() {
    let mock = MockServer::start(Fault::CutStreamNoIds).await;
    let (client, _events) = started(&def(mock.url()), &options()).await;
    let err = echo(&client, "lost").await.unwrap_err();
    let Error::Rpc { error, .. } = &err else {
        panic!("expected a JSON-RPC error, got {err:?}");
    };
    assert_eq!(error.code, codes::CONNECTION_CLOSED);
    assert!(
        error.message.contains("response stream lost"),
        "{}",
        error.message
    );
    // The session itself is fine.
    let again = within("ping", client.request(methods::PING, None)).await;
    assert!(again.is_ok(), "{again:?}");
}

#[tokio::test]
async fn a_404_for_the_session_means_it_expired() {
    let mock = MockServer::start(Fault::JsonResponses).await;
    let (client, mut events) = started(&def(mock.url()), &options()).await;
    mock.expire_sessions();
    let err = echo(&client, "gone").await.unwrap_err();
    assert!(err.is_session_expired(), "{err:?}");
    assert!(err.is_retryable());
    assert!(
        err.to_string()
            .starts_with(r#"upstream "mock" (streamable-http): session expired"#),
        "{err}"
    );
    let closed = within("close event", async {
        loop {
            if let Some(ClientEvent::Closed(reason)) = events.recv().await {
                return reason;
            }
        }
    })
    .await;
    assert_eq!(closed.kind, CloseKind::SessionExpired);
    let after = within("request after expiry", client.request(methods::PING, None)).await;
    assert!(
        matches!(&after, Err(e) if e.is_session_expired()),
        "{after:?}"
    );
}

#[tokio::test]
async fn a_request_never_answered_times_out_and_is_cancelled() {
    let mock = MockServer::start(Fault::NeverAnswer).await;
    let (client, _events) = started(&def(mock.url()), &options()).await;
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
    let seen = mock.requests();
    assert_eq!(posts_of(&seen, methods::CANCELLED).len(), 1, "{seen:?}");
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_error_naming_the_upstream() {
    let port = mcp_test_support::tools::free_port();
    let def = def(format!("http://127.0.0.1:{port}/mcp"));
    let (client, _events) = McpClient::connect(&def, &options()).await.unwrap();
    let err = within(
        "initialize",
        client.initialize(Implementation::new("tests", "0.0.0"), json!({})),
    )
    .await
    .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            r#"upstream "mock" (streamable-http): POST http://127.0.0.1:{port}/mcp failed"#
        )),
        "{err}"
    );
}

/// A server that answers everything with a redirect to `location`.
async fn redirector(location: String) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = vec![0u8; 16 * 1024];
            let _ = conn.read(&mut buf).await;
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = conn.write_all(answer.as_bytes()).await;
        }
    });
    (format!("http://{addr}/mcp"), task)
}

#[tokio::test]
async fn redirects_to_another_origin_are_not_followed_and_carry_no_headers_there() {
    let mock = MockServer::start(Fault::JsonResponses).await;
    let (url, _server) = redirector(mock.url()).await;
    let mut def = def(url);
    def.headers.insert("X-Api-Key".into(), "secret-0123".into());
    let (client, _events) = McpClient::connect(&def, &options()).await.unwrap();
    let err = within(
        "initialize",
        client.initialize(Implementation::new("tests", "0.0.0"), json!({})),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("307"), "{err}");
    assert!(
        mock.requests().is_empty(),
        "the other origin saw nothing: {:?}",
        mock.requests()
    );
}
