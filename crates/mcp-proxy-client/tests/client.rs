//! Every `ProxyClient` method against a real `proxyd` with real upstreams
//! (server-everything under Node, mcp-server-time under Python).

use std::time::Duration;

use mcp_proxy_client::{Error, ProxyClient};
use mcp_test_support::proxyd::{ADMIN_TOKEN, Proxyd, proxyd_binary};
use mcp_test_support::tools;
use mcp_types::{ConnectionState, McpDefinition, TransportKind};
use serde_json::json;

const CONNECT: Duration = Duration::from_secs(60);

async fn proxy() -> (Proxyd, ProxyClient) {
    let p = Proxyd::start(proxyd_binary(), &[]).await.unwrap();
    let c = ProxyClient::try_new(&p.url(), ADMIN_TOKEN, Duration::from_secs(30)).unwrap();
    (p, c)
}

#[tokio::test]
async fn definitions_round_trip_with_typed_errors() {
    let (_p, c) = proxy().await;
    let health = c.health().await.unwrap();
    assert_eq!(health.status, "ok");
    c.ready().await.unwrap();

    let mut def = tools::server_time_def("time");
    def.env.insert("TZ_HINT".into(), "secret-value-1".into());
    let created = c.register(&def).await.unwrap();
    assert_eq!(created.definition.name, "time");
    assert_eq!(
        created.definition.env["TZ_HINT"].expose(),
        "***",
        "secrets come back redacted"
    );

    match c.register(&def).await.unwrap_err() {
        Error::AlreadyExists { message, .. } => assert!(message.contains("time"), "{message}"),
        other => panic!("{other:?}"),
    }

    let mut bad = McpDefinition::new("bad", TransportKind::StreamableHttp);
    bad.url = Some("ftp://nowhere".into());
    bad.command = Some(mcp_types::CommandSpec::Program("x".into()));
    match c.register(&bad).await.unwrap_err() {
        Error::Invalid { fields, .. } => {
            let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
            assert!(
                names.contains(&"url") && names.contains(&"command"),
                "{names:?}"
            );
        }
        other => panic!("{other:?}"),
    }

    assert_eq!(c.get("time").await.unwrap().definition.name, "time");
    let listed = c.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].definition.name, "time");

    def.description = Some("clock".into());
    let updated = c.update(&def).await.unwrap();
    assert_eq!(updated.definition.description.as_deref(), Some("clock"));

    let err = c.get("nobody").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(err.code(), Some("mcp_not_found"));
    assert!(
        err.to_string()
            .starts_with("GET /admin/mcps/nobody: not found"),
        "{err}"
    );
    assert!(matches!(
        c.update(&McpDefinition::stdio("nobody", "x", &[])).await,
        Err(Error::NotFound { .. })
    ));

    assert!(c.deregister("time").await.unwrap(), "removed");
    assert!(!c.deregister("time").await.unwrap(), "absent is fine");
    assert!(c.list().await.unwrap().is_empty());

    let intruder = ProxyClient::try_new(
        c.base_url().as_str(),
        "wrong-token-0123456789",
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(matches!(
        intruder.list().await,
        Err(Error::Unauthorized { .. })
    ));
    // No admin token is needed for liveness.
    intruder.health().await.unwrap();
}

#[tokio::test]
async fn live_calls_reach_real_upstreams() {
    let (_p, c) = proxy().await;
    c.register(&tools::everything_stdio_def("every"))
        .await
        .unwrap();
    c.register(&tools::server_time_def("time")).await.unwrap();
    let entries = c
        .wait_for_connections(&["every", "time"], CONNECT)
        .await
        .unwrap();
    assert_eq!(entries.len(), 2);
    assert!(
        entries
            .iter()
            .all(|e| e.status.state == ConnectionState::Connected)
    );

    let tools = c.list_tools().await.unwrap();
    assert!(tools.errors.is_empty(), "{:?}", tools.errors);
    let echo = tools
        .items
        .iter()
        .find(|t| t.name == "echo")
        .expect("echo listed");
    assert_eq!(echo.mcp_name, "every");
    assert!(echo.input_schema["properties"]["message"].is_object());
    assert!(
        tools
            .items
            .iter()
            .any(|t| t.name == "get_current_time" && t.mcp_name == "time")
    );

    let prompts = c.list_prompts().await.unwrap();
    assert!(
        prompts
            .items
            .iter()
            .any(|p| p.mcp_name == "every" && p.name().is_some())
    );
    let resources = c.list_resources().await.unwrap();
    assert!(resources.items.iter().any(|r| r.mcp_name == "every"));

    let r = c
        .call_tool(
            "every",
            "echo",
            Some(json!({"message": "hi from the engine"})),
        )
        .await
        .unwrap();
    assert!(!r.is_error);
    assert!(r.text().contains("hi from the engine"), "{r:?}");
    let r = c
        .call_tool(
            "every",
            "get-structured-content",
            Some(json!({"location": "Chicago"})),
        )
        .await
        .unwrap();
    assert_eq!(r.structured_content.unwrap()["temperature"], 36);
    // A tool that fails is a successful call whose result says so.
    let r = c
        .call_tool(
            "time",
            "get_current_time",
            Some(json!({"timezone": "Not/AZone"})),
        )
        .await
        .unwrap();
    assert!(r.is_error, "{r:?}");

    let err = c
        .call_tool("every", "no-such-tool", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("tool_not_found"), "{err}");
    assert!(
        c.call_tool("ghost", "echo", None)
            .await
            .unwrap_err()
            .is_not_found()
    );

    let m = c.metrics().await.unwrap();
    assert_eq!(m.total_clients, 2);
    assert_eq!(m.connected, 2);
    assert!(m.total_requests >= 3, "{m:?}");

    c.reconnect("time").await.unwrap();
    c.wait_for_connections(&["time"], CONNECT).await.unwrap();
    assert!(c.reconnect("ghost").await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn waiting_times_out_naming_each_pending_mcp_and_its_last_error() {
    let (_p, c) = proxy().await;
    c.register(&tools::server_time_def("time")).await.unwrap();
    // Nothing listens there: every connect attempt fails.
    let closed = format!("http://127.0.0.1:{}/mcp", tools::free_port());
    let mut dead = McpDefinition::http("dead", TransportKind::StreamableHttp, closed);
    dead.reconnect_delay = Duration::from_millis(100);
    c.register(&dead).await.unwrap();
    c.wait_for_connections(&["time"], CONNECT).await.unwrap();

    let err = c
        .wait_for_connections(&["time", "dead", "ghost"], Duration::from_secs(3))
        .await
        .unwrap_err();
    let Error::NotConnected { pending, .. } = &err else {
        panic!("{err:?}");
    };
    let names: Vec<_> = pending.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["dead", "ghost"], "the connected one is not pending");
    let dead_error = pending[0]
        .last_error
        .clone()
        .expect("the failed connect is reported");
    assert!(!dead_error.is_empty());
    assert_eq!(pending[1].last_error.as_deref(), Some("not registered"));
    let text = err.to_string();
    println!("{text}");
    assert!(
        text.contains("\"dead\"") && text.contains(&dead_error),
        "{text}"
    );
    assert!(
        text.contains("\"ghost\" (unknown, last error: not registered)"),
        "{text}"
    );
}
