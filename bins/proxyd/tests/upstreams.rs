//! `proxyd` with real upstreams: registration connects, discovery, tool calls through the
//! Admin API, automatic reconnect, giving up, and reviving with `/reconnect`.

use std::time::Duration;

use mcp_test_support::assert_eventually;
use mcp_test_support::proxyd::{ADMIN_TOKEN, Proxyd};
use mcp_test_support::tools::{self, EverythingMode, EverythingServer};
use mcp_transport::{McpClient, TransportOptions};
use mcp_types::mcp::Implementation;
use reqwest::StatusCode;
use serde_json::{Value, json};

use mcp_test_support::e2e::{self, Admin};

const BIN: &str = env!("CARGO_BIN_EXE_proxyd");

fn def_json(def: &mcp_types::McpDefinition) -> Value {
    serde_json::to_value(def).unwrap()
}

const LONG: Duration = Duration::from_secs(60);

/// A direct connection to server-everything over stdio, for comparison.
async fn direct_call(tool: &str, args: Value) -> Value {
    let def = tools::everything_stdio_def("direct");
    let (client, _events) = McpClient::connect(&def, &TransportOptions::default())
        .await
        .unwrap();
    client
        .initialize(Implementation::new("direct", "1"), json!({}))
        .await
        .unwrap();
    let params = json!({"name": tool, "arguments": args});
    let resp = client
        .request("tools/call", Some(mcp_types::jsonrpc::to_raw(&params)))
        .await
        .unwrap();
    let value: Value = resp.into_result().unwrap();
    client.close().await.unwrap();
    value
}

#[tokio::test]
async fn stdio_and_streamable_http_upstreams_serve_tools_through_the_admin_api() {
    let p = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&p);
    let http_server = EverythingServer::start(EverythingMode::StreamableHttp).await;
    admin
        .register(def_json(&tools::everything_stdio_def("every-stdio")))
        .await;
    admin
        .register(def_json(&http_server.def("every-http")))
        .await;
    for name in ["every-stdio", "every-http"] {
        assert_eventually!(LONG, admin.state(name).await == "connected");
        let s = admin.status(name).await;
        assert_eq!(s["protocolVersion"], "2025-11-25", "{s}");
        assert!(s["serverInfo"]["name"].is_string(), "{s}");
        assert!(s["toolCount"].as_u64().unwrap() >= 3, "{s}");
    }
    assert!(admin.status("every-stdio").await["pid"].is_u64());

    let (status, tools_body) = admin.send(reqwest::Method::GET, "/admin/tools", None).await;
    assert_eq!(status, StatusCode::OK);
    let tools_list = tools_body["tools"].as_array().unwrap();
    assert_eq!(
        tools_body["count"].as_u64().unwrap() as usize,
        tools_list.len()
    );
    for name in ["every-stdio", "every-http"] {
        let echo = tools_list
            .iter()
            .find(|t| t["name"] == "echo" && t["mcpName"] == name)
            .unwrap_or_else(|| panic!("echo of {name} missing: {tools_body}"));
        assert!(
            echo["inputSchema"]["properties"]["message"].is_object(),
            "{echo}"
        );
    }
    assert_eq!(tools_body["errors"], json!([]));

    for (tool, args) in [
        ("echo", json!({"message": "hello through the proxy"})),
        ("get-sum", json!({"a": 2, "b": 40})),
        ("get-structured-content", json!({"location": "Chicago"})),
    ] {
        let direct = direct_call(tool, args.clone()).await;
        for name in ["every-stdio", "every-http"] {
            let (status, body) = admin.call(name, tool, args.clone()).await;
            assert_eq!(status, StatusCode::OK, "{tool} on {name}: {body}");
            assert_eq!(body["result"], direct, "{tool} on {name}");
        }
    }
    let (_, sum) = admin
        .call("every-http", "get-sum", json!({"a": 2, "b": 40}))
        .await;
    assert!(
        sum["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("42"),
        "{sum}"
    );
    let (_, weather) = admin
        .call(
            "every-stdio",
            "get-structured-content",
            json!({"location": "Chicago"}),
        )
        .await;
    assert_eq!(
        weather["result"]["structuredContent"]["temperature"], 36,
        "{weather}"
    );

    let (status, body) = admin.call("every-stdio", "no-such-tool", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "tool_not_found");
    let (status, _) = admin.call("nobody", "echo", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, prompts) = admin
        .send(reqwest::Method::GET, "/admin/prompts", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(prompts["count"].as_u64().unwrap() > 0, "{prompts}");
    let (status, resources) = admin
        .send(reqwest::Method::GET, "/admin/resources", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(resources["count"].as_u64().unwrap() > 0, "{resources}");

    let (_, m) = admin
        .send(reqwest::Method::GET, "/admin/metrics", None)
        .await;
    assert_eq!(m["connected"], 2, "{m}");
    assert!(m["total_requests"].as_u64().unwrap() >= 6, "{m}");
}

#[tokio::test]
async fn tool_filter_hides_and_blocks_tools() {
    let p = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&p);
    let mut def = def_json(&tools::everything_stdio_def("filtered"));
    def["toolFilter"] = json!({"mode": "block", "list": ["get-sum"]});
    admin.register(def).await;
    assert_eventually!(LONG, admin.state("filtered").await == "connected");
    let (_, body) = admin.send(reqwest::Method::GET, "/admin/tools", None).await;
    let names: Vec<&str> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"echo") && !names.contains(&"get-sum"),
        "{names:?}"
    );
    let (status, body) = admin
        .call("filtered", "get-sum", json!({"a": 1, "b": 2}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "tool_blocked");
}

#[tokio::test]
async fn a_killed_stdio_child_is_respawned_without_admin_action() {
    let p = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&p);
    let mut def = def_json(&tools::everything_stdio_def("respawn"));
    def["reconnectDelay"] = json!("500ms");
    admin.register(def).await;
    assert_eventually!(LONG, admin.state("respawn").await == "connected");
    let pid = admin.status("respawn").await["pid"].as_u64().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eventually!(
        Duration::from_secs(10),
        admin.state("respawn").await == "error"
    );
    let s = admin.status("respawn").await;
    assert!(s["lastError"].as_str().unwrap().contains("exit"), "{s}");
    assert_eventually!(LONG, admin.state("respawn").await == "connected");
    let new_pid = admin.status("respawn").await["pid"].as_u64().unwrap();
    assert_ne!(pid, new_pid);
    let (status, body) = admin
        .call("respawn", "echo", json!({"message": "again"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn an_http_upstream_that_comes_back_on_the_same_port_is_reconnected() {
    let p = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&p);
    let port = tools::free_port();
    let server = EverythingServer::start_on(EverythingMode::StreamableHttp, port).await;
    let mut def = def_json(&server.def("flaky"));
    def["reconnectDelay"] = json!("300ms");
    def["healthCheckInterval"] = json!("1s");
    def["maxReconnects"] = json!(0);
    admin.register(def).await;
    assert_eventually!(LONG, admin.state("flaky").await == "connected");
    drop(server);
    assert_eventually!(LONG, admin.state("flaky").await == "error");
    let (status, body) = admin.call("flaky", "echo", json!({"message": "x"})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let _server = EverythingServer::start_on(EverythingMode::StreamableHttp, port).await;
    assert_eventually!(LONG, admin.state("flaky").await == "connected");
    let (status, body) = admin
        .call("flaky", "echo", json!({"message": "back"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn after_max_reconnects_it_rests_in_error_until_reconnect_is_asked() {
    let p = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&p);
    let port = tools::free_port();
    let url = format!("http://127.0.0.1:{port}/mcp");
    admin
        .register(
            json!({"name": "down", "transport": "streamable-http", "url": url,
                         "maxReconnects": 2, "reconnectDelay": "100ms", "timeout": "2s"}),
        )
        .await;
    assert_eventually!(LONG, admin.status("down").await["reconnectAttempts"] == 2);
    // Resting: no further attempts. An absence has no event to wait on, so this is a
    // window (ten reconnect delays) to catch one, not synchronisation.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = admin.status("down").await;
    assert_eq!(s["state"], "error", "{s}");
    assert_eq!(s["reconnectAttempts"], 2, "{s}");
    assert!(s["lastError"].as_str().unwrap().contains("down"), "{s}");

    let _server = EverythingServer::start_on(EverythingMode::StreamableHttp, port).await;
    // Again a window for an absence (a revival), five reconnect delays long.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        admin.state("down").await,
        "error",
        "does not revive by itself"
    );
    let (status, _) = admin
        .send(reqwest::Method::POST, "/admin/mcps/down/reconnect", None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eventually!(LONG, admin.state("down").await == "connected");
    let (status, _) = admin
        .send(reqwest::Method::POST, "/admin/mcps/ghost/reconnect", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_seed_echo_quick_start_is_an_error_that_says_why() {
    let p = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&p);
    admin
        .register(
            json!({"name":"echo-mcp","transport":"stdio","command":"echo","args":["hello world"]}),
        )
        .await;
    assert_eventually!(LONG, admin.state("echo-mcp").await == "error");
    let s = admin.status("echo-mcp").await;
    let err = s["lastError"].as_str().unwrap();
    assert!(err.contains("non-JSON") && err.contains("exited"), "{err}");
    // The proxy itself is fine.
    let (status, _) = admin.send(reqwest::Method::GET, "/admin/mcps", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = admin.call("echo-mcp", "anything", json!({})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}

#[tokio::test]
async fn delete_stops_the_child_and_put_replaces_the_connection() {
    let p = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&p);
    admin
        .register(def_json(&tools::everything_stdio_def("life")))
        .await;
    assert_eventually!(LONG, admin.state("life").await == "connected");
    let pid = admin.status("life").await["pid"].as_u64().unwrap();

    let mut changed = def_json(&tools::everything_stdio_def("life"));
    changed["description"] = json!("changed");
    let (status, body) = admin
        .send(reqwest::Method::PUT, "/admin/mcps/life", Some(changed))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eventually!(LONG, admin.state("life").await == "connected");
    let new_pid = admin.status("life").await["pid"].as_u64().unwrap();
    assert_ne!(pid, new_pid, "PUT starts a new connection");
    assert_eventually!(Duration::from_secs(15), !process_alive(pid));

    let (status, _) = admin
        .send(reqwest::Method::DELETE, "/admin/mcps/life", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eventually!(Duration::from_secs(15), !process_alive(new_pid));
}

fn process_alive(pid: u64) -> bool {
    // A zombie (exited, not yet reaped) counts as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[tokio::test]
async fn a_put_lets_a_call_in_flight_finish() {
    let p = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&p);
    admin
        .register(def_json(&tools::mock_stdio_def("busy", &["slow"])))
        .await;
    assert_eventually!(LONG, admin.state("busy").await == "connected");
    let call = admin.call("busy", "slow", json!({"ms": 2000}));
    let put = async {
        // The mock reports the call on stderr, which proxyd logs: it is in flight.
        e2e::log_line(&p, &["got tools/call", "slow"]).await;
        let mut changed = def_json(&tools::mock_stdio_def("busy", &["slow"]));
        changed["description"] = json!("reloaded while busy");
        admin
            .send(reqwest::Method::PUT, "/admin/mcps/busy", Some(changed))
            .await
    };
    let ((call_status, call_body), (put_status, _)) = tokio::join!(call, put);
    assert_eq!(put_status, StatusCode::OK);
    assert_eq!(
        call_status,
        StatusCode::OK,
        "the old connection finished the call: {call_body}"
    );
    assert!(
        call_body["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("completed"),
        "{call_body}"
    );
}

#[tokio::test]
async fn a_registration_on_one_replica_connects_on_the_other() {
    let redis = mcp_test_support::redis::RedisServer::start().await;
    let args = ["--storage", "redis", "--redis-url", &redis.url()];
    let a = Proxyd::start(BIN, &args).await.unwrap();
    let b = Proxyd::start(BIN, &args).await.unwrap();
    let (admin_a, admin_b) = (Admin::new(&a), Admin::new(&b));
    admin_a
        .register(def_json(&tools::everything_stdio_def("shared-def")))
        .await;
    // B hears of it through the store's change feed and runs its own connection.
    assert_eventually!(LONG, admin_b.state("shared-def").await == "connected");
    let (status, body) = admin_b
        .call("shared-def", "echo", json!({"message": "via b"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = admin_a
        .send(reqwest::Method::DELETE, "/admin/mcps/shared-def", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eventually!(
        Duration::from_secs(10),
        admin_b
            .call("shared-def", "echo", json!({"message": "gone"}))
            .await
            .0
            == StatusCode::NOT_FOUND
    );
}

async fn scrape(admin: &Admin) -> String {
    let resp = admin
        .http
        .get(format!("{}/metrics", admin.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    resp.text().await.unwrap()
}

fn series(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn prometheus_series_move_with_real_traffic() {
    let p = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&p);
    admin
        .register(def_json(&tools::everything_stdio_def("metered")))
        .await;
    assert_eventually!(LONG, admin.state("metered").await == "connected");
    let calls =
        r#"mcp_proxy_upstream_requests_total{upstream="metered",method="tools/call",outcome="ok"}"#;
    for _ in 0..2 {
        let (status, _) = admin.call("metered", "echo", json!({"message": "m"})).await;
        assert_eq!(status, StatusCode::OK);
    }
    let first = scrape(&admin).await;
    assert_eq!(series(&first, calls), Some(2.0), "{first}");
    assert_eq!(
        series(
            &first,
            r#"mcp_proxy_upstream_state{upstream="metered",state="connected"}"#
        ),
        Some(1.0)
    );
    let (status, _) = admin.call("metered", "echo", json!({"message": "m"})).await;
    assert_eq!(status, StatusCode::OK);
    let resp = admin
        .http
        .get(format!("{}/admin/mcps", admin.base))
        .bearer_auth("wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let second = scrape(&admin).await;
    assert_eq!(series(&second, calls), Some(3.0), "{second}");
    assert_eq!(
        series(
            &second,
            r#"mcp_proxy_auth_failures_total{reason="invalid_token"}"#
        ),
        Some(1.0),
        "{second}"
    );
    let out = series(
        &second,
        r#"mcp_proxy_http_body_bytes_total{direction="out"}"#,
    )
    .unwrap();
    let before = series(
        &first,
        r#"mcp_proxy_http_body_bytes_total{direction="out"}"#,
    )
    .unwrap();
    assert!(out > before, "{before} -> {out}");
    assert!(
        series(
            &second,
            r#"mcp_proxy_upstream_request_duration_seconds_count{upstream="metered",method="tools/call"}"#
        )
        .unwrap()
            >= 3.0
    );
    // Without a token it is refused, unless metrics_public is set.
    let resp = admin
        .http
        .get(format!("{}/metrics", admin.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let public = Proxyd::start_with_env(BIN, &[], &[("MCP_PROXY_METRICS_PUBLIC", "true")])
        .await
        .unwrap();
    let resp = admin
        .http
        .get(format!("{}/metrics", public.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_call_in_flight_at_sigterm_completes_before_exit() {
    let mut p = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&p);
    admin
        .register(def_json(&tools::mock_stdio_def("drain", &["slow"])))
        .await;
    assert_eventually!(LONG, admin.state("drain").await == "connected");
    let call = tokio::spawn(async move { admin.call("drain", "slow", json!({"ms": 2000})).await });
    e2e::log_line(&p, &["got tools/call", "slow"]).await;
    let exit = p.terminate(Duration::from_secs(20)).await.unwrap();
    assert!(exit.success(), "{exit:?}");
    let (status, body) = call.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("completed"),
        "{body}"
    );
    // New connections are refused once it stopped accepting.
    let refused = reqwest::Client::new()
        .get(format!("{}/healthz", p.url()))
        .send()
        .await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn active_sessions_are_counted_in_both_metrics_endpoints() {
    let p = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&p);
    admin
        .register(def_json(&tools::everything_stdio_def("counted")))
        .await;
    assert_eventually!(LONG, admin.state("counted").await == "connected");
    let mut via = mcp_types::McpDefinition::http(
        "via-proxy",
        mcp_types::TransportKind::StreamableHttp,
        format!("{}/counted/mcp", p.url()),
    );
    via.timeout = Duration::from_secs(30);
    let (client, _events) = McpClient::connect(&via, &TransportOptions::default())
        .await
        .unwrap();
    client
        .initialize(Implementation::new("counter", "1"), json!({}))
        .await
        .unwrap();
    let (_, m) = admin
        .send(reqwest::Method::GET, "/admin/metrics", None)
        .await;
    assert_eq!(m["active_sessions"], 1, "{m}");
    let text = scrape(&admin).await;
    assert_eq!(
        series(
            &text,
            r#"mcp_proxy_client_sessions{transport="streamable_http"}"#
        ),
        Some(1.0),
        "{text}"
    );
    client.close().await.unwrap();
    assert_eventually!(
        Duration::from_secs(10),
        admin
            .send(reqwest::Method::GET, "/admin/metrics", None)
            .await
            .1["active_sessions"]
            == 0
    );
}

#[tokio::test]
async fn each_client_request_gets_a_span_with_upstream_session_method_and_id() {
    let p = Proxyd::start_with_env(
        BIN,
        &["--log-format", "json"],
        &[("RUST_LOG", "info,mcp_proxy_core=debug")],
    )
    .await
    .unwrap();
    let admin = Admin::new(&p);
    admin
        .register(def_json(&tools::everything_stdio_def("traced")))
        .await;
    assert_eventually!(LONG, admin.state("traced").await == "connected");
    let mut via = mcp_types::McpDefinition::http(
        "via-proxy",
        mcp_types::TransportKind::StreamableHttp,
        format!("{}/traced/mcp", p.url()),
    );
    via.timeout = Duration::from_secs(30);
    let (client, _events) = McpClient::connect(&via, &TransportOptions::default())
        .await
        .unwrap();
    client
        .initialize(Implementation::new("tracer", "1"), json!({}))
        .await
        .unwrap();
    let params = json!({"name": "echo", "arguments": {"message": "traced"}});
    client
        .request("tools/call", Some(mcp_types::jsonrpc::to_raw(&params)))
        .await
        .unwrap();
    let found = |log: &[String]| {
        log.iter().any(|line| {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                return false;
            };
            let span = &v["span"];
            v["message"] == "answered"
                && span["name"] == "mcp_request"
                && span["upstream"] == "traced"
                && span["method"] == "tools/call"
                && span["session"].as_str().is_some_and(|s| !s.is_empty())
                && span["id"].is_string()
        })
    };
    assert_eventually!(Duration::from_secs(10), found(&p.log()));
}

#[tokio::test]
async fn a_put_lets_a_client_session_call_in_flight_finish() {
    let p = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&p);
    admin
        .register(def_json(&tools::mock_stdio_def("busy-session", &["slow"])))
        .await;
    assert_eventually!(LONG, admin.state("busy-session").await == "connected");
    let mut via = mcp_types::McpDefinition::http(
        "via-proxy",
        mcp_types::TransportKind::StreamableHttp,
        format!("{}/busy-session/mcp", p.url()),
    );
    via.timeout = Duration::from_secs(30);
    let (client, _events) = McpClient::connect(&via, &TransportOptions::default())
        .await
        .unwrap();
    client
        .initialize(Implementation::new("busy", "1"), json!({}))
        .await
        .unwrap();
    let params = json!({"name": "slow", "arguments": {"ms": 2000}});
    let call = client.request("tools/call", Some(mcp_types::jsonrpc::to_raw(&params)));
    let put = async {
        // The session's own child reports the call on stderr, which proxyd logs.
        e2e::log_line(&p, &["got tools/call", "slow"]).await;
        let mut changed = def_json(&tools::mock_stdio_def("busy-session", &["slow"]));
        changed["description"] = json!("reloaded while a session call runs");
        admin
            .send(
                reqwest::Method::PUT,
                "/admin/mcps/busy-session",
                Some(changed),
            )
            .await
    };
    let (result, (put_status, _)) = tokio::join!(call, put);
    assert_eq!(put_status, StatusCode::OK);
    let value: Value = result.unwrap().into_result().expect("the call finished");
    assert!(
        value["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("completed"),
        "{value}"
    );
}
