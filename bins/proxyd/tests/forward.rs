//! The forward path of client sessions: exact routing of what an upstream sends while
//! serving a request (shared mode, two clients), the protocol version a per-client
//! upstream session is opened with, and the counting of client-session traffic.

use mcp_test_support::e2e::{Admin, McpHttp};
use mcp_test_support::mock::{Fault, MockServer};
use mcp_test_support::proxyd::Proxyd;
use mcp_test_support::tools;
use reqwest::StatusCode;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_proxyd");

fn ask(id: &str, message: &str) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{
        "name":"ask","arguments":{"message":message,"wait_for":2}}})
}

/// The log messages (`data`) in the answer to one POST, and its final result text.
fn logs_and_result(msgs: &[Value]) -> (Vec<String>, String) {
    let logs = msgs
        .iter()
        .filter(|m| m["method"] == "notifications/message")
        .map(|m| m["params"]["data"].as_str().unwrap_or_default().to_owned())
        .collect();
    let last = msgs.last().cloned().unwrap_or(Value::Null);
    let text = last["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (logs, text)
}

/// Over streamable HTTP the upstream says which request a message belongs to (it sends
/// it on that request's stream), so it reaches exactly that client — even while another
/// client's request, sent later, is in flight on the same shared connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_http_upstream_messages_reach_the_client_whose_request_they_came_with() {
    let mock = MockServer::start(Fault::None).await;
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    admin
        .register(
            json!({"name":"shared-http","transport":"streamable-http","url":mock.url(),
            "sessionMode":"shared","healthCheckEnabled":false}),
        )
        .await;
    admin.wait_connected("shared-http").await;
    let mcp = McpHttp::new();
    let url = format!("{}/shared-http/mcp", proxyd.url());
    let a = mcp.open_session(&url, "2025-11-25").await;
    let b = mcp.open_session(&url, "2025-11-25").await;
    // The mock holds both calls until the second arrives, then answers each on its own
    // stream: a log line naming it, then the result. a's call is the older one.
    let (ask_a, ask_b) = (ask("x", "for-a"), ask("x", "for-b"));
    let (from_a, from_b) = tokio::join!(mcp.post_collect(&url, Some(&a), &ask_a), async {
        // b's call goes out once a's is registered upstream: wait on the mock, not a clock.
        let seen = || {
            mock.requests()
                .iter()
                .filter(|r| r.rpc_method.as_deref() == Some("tools/call"))
                .count()
        };
        mcp_test_support::assert_eventually!(std::time::Duration::from_secs(10), seen() == 1);
        mcp.post_collect(&url, Some(&b), &ask_b).await
    });
    assert_eq!(
        logs_and_result(&from_a),
        (vec!["asked: for-a".to_owned()], "for-a".to_owned()),
        "{from_a:?}"
    );
    assert_eq!(
        logs_and_result(&from_b),
        (vec!["asked: for-b".to_owned()], "for-b".to_owned()),
        "{from_b:?}"
    );
}

/// stdio says nothing about which request a message belongs to: it goes to the request
/// sent most recently that is still in flight, one order for the whole connection (see
/// docs/sessions.md). The mock answers newest first, each with its log line while its
/// own request is the newest one left, so each client gets its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_stdio_upstream_messages_follow_the_connection_wide_order() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    let mut def = serde_json::to_value(tools::mock_stdio_def("shared-stdio", &[])).unwrap();
    def["sessionMode"] = json!("shared");
    def["healthCheckEnabled"] = json!(false);
    def["logEnabled"] = json!(true);
    admin.register(def).await;
    admin.wait_connected("shared-stdio").await;
    let mcp = McpHttp::new();
    let url = format!("{}/shared-stdio/mcp", proxyd.url());
    let a = mcp.open_session(&url, "2025-11-25").await;
    let b = mcp.open_session(&url, "2025-11-25").await;
    let (ask_a, ask_b) = (ask("same", "for-a"), ask("same", "for-b"));
    let (from_a, from_b) = tokio::join!(mcp.post_collect(&url, Some(&a), &ask_a), async {
        // b's call is sent once a's has reached the upstream (its stderr says so).
        mcp_test_support::assert_eventually!(
            std::time::Duration::from_secs(10),
            proxyd.log().iter().any(|l| l.contains("holding ask for-a"))
        );
        mcp.post_collect(&url, Some(&b), &ask_b).await
    });
    assert_eq!(
        logs_and_result(&from_a),
        (vec!["asked: for-a".to_owned()], "for-a".to_owned()),
        "{from_a:?}"
    );
    assert_eq!(
        logs_and_result(&from_b),
        (vec!["asked: for-b".to_owned()], "for-b".to_owned()),
        "{from_b:?}"
    );
}

/// A per-client upstream session speaks the protocol version its client negotiated; the
/// primary connection keeps the newest. And traffic of client sessions is counted like
/// Admin API calls: Prometheus, `/admin/metrics` and the upstream's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_client_session_speaks_its_clients_version_and_is_counted() {
    let mock = MockServer::start(Fault::JsonResponses).await;
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    admin
        .register(
            json!({"name":"versioned","transport":"streamable-http","url":mock.url(),
            "healthCheckEnabled":false}),
        )
        .await;
    admin.wait_connected("versioned").await;
    let mcp = McpHttp::new();
    let url = format!("{}/versioned/mcp", proxyd.url());
    let sid = mcp.open_session(&url, "2025-03-26").await;
    for n in 0..3 {
        let call = json!({"jsonrpc":"2.0","id":n,"method":"tools/call","params":{
            "name":"echo","arguments":{"message":format!("m{n}")}}});
        let (s, _, answer) = mcp.post(&url, Some(&sid), &[], &call).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            answer["result"]["content"][0]["text"],
            format!("m{n}"),
            "{answer}"
        );
    }
    let unknown = json!({"jsonrpc":"2.0","id":9,"method":"no/such","params":{}});
    let (_, _, refused) = mcp.post(&url, Some(&sid), &[], &unknown).await;
    assert_eq!(refused["error"]["code"], -32601, "{refused}");

    let calls: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|r| r.rpc_method.as_deref() == Some("tools/call"))
        .collect();
    assert_eq!(calls.len(), 3);
    for call in &calls {
        assert_eq!(
            call.header("mcp-protocol-version"),
            Some("2025-03-26"),
            "{call:?}"
        );
    }
    let primary = mock
        .requests()
        .into_iter()
        .find(|r| r.rpc_method.as_deref() == Some("tools/list"))
        .expect("discovery ran on the primary connection");
    assert_eq!(primary.header("mcp-protocol-version"), Some("2025-11-25"));

    let status = admin.status("versioned").await;
    assert_eq!(status["totalRequests"], 4, "{status}");
    assert_eq!(status["totalErrors"], 1, "{status}");
    assert!(
        status["avgResponseTime"].is_string() || status["avgResponseTime"].is_number(),
        "{status}"
    );
    let (_, snapshot) = admin
        .send(reqwest::Method::GET, "/admin/metrics", None)
        .await;
    assert_eq!(snapshot["total_requests"], 4, "{snapshot}");
    assert_eq!(snapshot["total_errors"], 1, "{snapshot}");
    let text = admin.metrics_text().await;
    let series = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    assert_eq!(
        series(
            r#"mcp_proxy_upstream_requests_total{upstream="versioned",method="tools/call",outcome="ok"}"#
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        series(
            r#"mcp_proxy_upstream_requests_total{upstream="versioned",method="other",outcome="error"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        series(r#"mcp_proxy_http_requests_total{route="/{name}/mcp",method="POST",status="200"}"#)
            .is_some_and(|n| n >= 4.0),
        "per-route counters: {text}"
    );
}
