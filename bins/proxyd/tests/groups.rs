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

/// The pids of `pid`'s children whose command line contains `needle`.
fn children_running(pid: u32, needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in children
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
        {
            let cmd = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmd).contains(needle) {
                out.push(child);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_uses_three_members_of_different_transports_through_slash_mcp() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mock = MockServer::start(Fault::JsonResponses).await;
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    admin
        .register(serde_json::to_value(tools::everything_stdio_def("ev")).unwrap())
        .await;
    admin
        .register(serde_json::to_value(tools::server_time_def("time")).unwrap())
        .await;
    admin
        .register(json!({"name":"web","transport":"streamable-http","url":mock.url()}))
        .await;
    for name in ["ev", "time", "web"] {
        admin.wait_connected(name).await;
    }
    let root = tools::workspace_root();
    let mut child = tokio::process::Command::new(root.join(".tools/venv/bin/python"))
        .arg(root.join("tests/python/group_client.py"))
        .arg(format!("{}/mcp", proxyd.url()))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let primary = admin.status("ev").await["pid"].as_u64().map(|p| p as u32);
    let proxyd_pid = proxyd.pid().unwrap();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
            .await
            .expect("the python client goes on")
            .unwrap();
        let Some(line) = line else { break };
        seen.push(line.clone());
        if line == "KILL" {
            // ev's upstream session of this client: a server-everything child that is not
            // the primary connection's
            let theirs: Vec<u32> = children_running(proxyd_pid, "server-everything")
                .into_iter()
                .filter(|p| Some(*p) != primary)
                .collect();
            assert_eq!(
                theirs.len(),
                1,
                "one session process for the client: {theirs:?}"
            );
            let killed = tokio::process::Command::new("kill")
                .args(["-KILL", &theirs[0].to_string()])
                .status()
                .await
                .unwrap();
            assert!(killed.success());
            // the proxy has seen it die (the next use then opens a fresh session)
            let pid = format!("Some({})", theirs[0]);
            assert_eventually!(
                Duration::from_secs(10),
                proxyd
                    .log()
                    .iter()
                    .any(|l| l.contains("stdio upstream closed") && l.contains(&pid))
            );
            stdin.write_all(b"go\n").await.unwrap();
        }
    }
    let status = child.wait().await.unwrap();
    let mut stderr = String::new();
    use tokio::io::AsyncReadExt;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert!(
        status.success() && seen.iter().any(|l| l == "all ok"),
        "python group client failed: {status}\n{}\n{stderr}\nproxyd:\n{}",
        seen.join("\n"),
        proxyd.log().join("\n")
    );
}
