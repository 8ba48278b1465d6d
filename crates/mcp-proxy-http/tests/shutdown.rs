//! The session hub owns the tasks the HTTP layer spawns for its clients: at shutdown a
//! 2026-07-28 client's open `subscriptions/listen` stream still gets its `complete`
//! result, and `SessionHub::wait` returns only once the relay that sends it is over.

use std::sync::Arc;
use std::time::Duration;

use mcp_proxy_core::{Manager, ManagerConfig, TransportConnector};
use mcp_proxy_http::{App, HttpConfig, serve};
use mcp_store::{MemoryStore, Store};
use mcp_test_support::assert_eventually;
use mcp_types::ConnectionState;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const MODERN: &str = "2026-07-28";

/// Reads the response body until `what` shows up in it (or the body ends); all read.
async fn read_until(resp: &mut reqwest::Response, text: &mut String, what: &str) {
    while !text.contains(what) {
        match tokio::time::timeout(Duration::from_secs(10), resp.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(Ok(None)) => return,
            Ok(Err(e)) => panic!("the listen stream broke: {e}"),
            Err(_) => panic!("nothing more within 10s; so far: {text}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_completes_an_open_listen_and_waits_for_its_relay() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let manager = Manager::new(
        store.clone(),
        Arc::new(TransportConnector::default()),
        ManagerConfig::default(),
    );
    manager.start().await;
    manager
        .register(mcp_test_support::tools::mock_stdio_def("mock", &[]))
        .await
        .unwrap();
    assert_eventually!(
        Duration::from_secs(30),
        manager
            .upstream("mock")
            .is_some_and(|u| u.state() == ConnectionState::Connected)
    );
    let app = App::new(HttpConfig::default(), store, manager.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mock/mcp", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let served = tokio::spawn(serve(listener, app.clone(), stop.clone().cancelled_owned()));

    let listen = json!({"jsonrpc": "2.0", "id": "sub", "method": "subscriptions/listen",
        "params": {"notifications": {"toolsListChanged": true}, "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}}}});
    let mut resp = reqwest::Client::new()
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "subscriptions/listen")
        .body(listen.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    let mut text = String::new();
    read_until(
        &mut resp,
        &mut text,
        "notifications/subscriptions/acknowledged",
    )
    .await;
    assert!(
        text.contains("notifications/subscriptions/acknowledged"),
        "{text}"
    );

    app.sessions().shutdown();
    read_until(&mut resp, &mut text, "\"resultType\":\"complete\"").await;
    let last = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d.trim()).ok())
        .next_back()
        .unwrap_or_else(|| panic!("no message on the stream: {text}"));
    assert_eq!(last["id"], "sub", "{text}");
    assert_eq!(last["result"]["resultType"], "complete", "{text}");
    assert!(
        app.sessions().wait(Duration::from_secs(10)).await,
        "the hub's tasks, the listen's relay among them, ended"
    );

    stop.cancel();
    served.await.unwrap().unwrap();
    assert!(manager.shutdown(Duration::from_secs(10)).await);
}
