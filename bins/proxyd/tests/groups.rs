//! One endpoint for many servers: the built-in group of every upstream on `/mcp`, and
//! groups ("virtual servers") from the Admin API.

#[path = "sessions/support.rs"]
mod support;

use std::time::Duration;

use mcp_test_support::assert_eventually;
use mcp_test_support::mock::{Fault, MockServer};
use mcp_test_support::proxyd::Proxyd;
use mcp_test_support::tools;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Admin, BIN, McpHttp};

fn call(id: u64, name: &str, args: Value) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":name,"arguments":args}})
}

async fn tool_names(mcp: &McpHttp, url: &str, sid: &str) -> Vec<String> {
    let list = json!({"jsonrpc":"2.0","id":100,"method":"tools/list"});
    let (s, _, body) = mcp.post(url, Some(sid), &[], &list).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_mcp_serves_every_upstream_under_prefixed_names() {
    let mock = MockServer::start(Fault::JsonResponses).await;
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    for name in ["alpha", "beta"] {
        let mut def = serde_json::to_value(tools::mock_stdio_def(name, &["echo"])).unwrap();
        def["logEnabled"] = json!(true);
        admin.register(def).await;
        admin.wait_connected(name).await;
    }
    admin
        .register(json!({"name":"web","transport":"streamable-http","url":mock.url()}))
        .await;
    admin.wait_connected("web").await;
    let mcp = McpHttp::new();
    let url = format!("{}/mcp", proxyd.url());
    let sid = mcp.open_session(&url, "2025-11-25").await;
    let names = tool_names(&mcp, &url, &sid).await;
    assert_eq!(
        names,
        [
            "alpha__echo",
            "alpha__big",
            "beta__echo",
            "beta__big",
            "web__echo",
            "web__slow"
        ],
        "every member, in order, prefixed"
    );
    let (_, _, answer) = mcp
        .post(
            &url,
            Some(&sid),
            &[],
            &call(1, "beta__echo", json!({"message": "to beta"})),
        )
        .await;
    assert_eq!(answer["id"], 1);
    assert_eq!(
        answer["result"]["content"][0]["text"], "to beta",
        "{answer}"
    );
    assert_eventually!(Duration::from_secs(10), {
        proxyd
            .log()
            .iter()
            .any(|l| l.contains("beta") && l.contains("got tools/call") && l.contains("echo"))
    });
    let (_, _, answer) = mcp
        .post(
            &url,
            Some(&sid),
            &[],
            &call(2, "web__echo", json!({"message": "to web"})),
        )
        .await;
    assert_eq!(answer["result"]["content"][0]["text"], "to web", "{answer}");
    let (_, _, answer) = mcp
        .post(&url, Some(&sid), &[], &call(3, "nobody__echo", json!({})))
        .await;
    assert_eq!(answer["error"]["code"], -32602, "{answer}");

    // a new upstream: the group's sessions hear that the catalog changed
    let (s, _, mut stream) = mcp.get_sse(&url, &[("mcp-session-id", sid.as_str())]).await;
    assert_eq!(s, StatusCode::OK);
    admin
        .register(serde_json::to_value(tools::mock_stdio_def("gamma", &["echo"])).unwrap())
        .await;
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !seen.contains("notifications/tools/list_changed") {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("list_changed in time")
            .unwrap()
            .expect("stream open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eventually!(
        Duration::from_secs(10),
        tool_names(&mcp, &url, &sid)
            .await
            .contains(&"gamma__echo".to_owned())
    );
}
