//! One endpoint for many servers: the built-in group of every upstream on `/mcp`, and
//! groups ("virtual servers") from the Admin API: CRUD and validation, merged catalogs,
//! `failMode`, hot reload, two replicas on one Redis, and the conformance suite through a
//! group.

use std::time::Duration;

use mcp_test_support::assert_eventually;
use mcp_test_support::conformance::suite;
use mcp_test_support::e2e::{Admin, McpHttp, read_until};
use mcp_test_support::mock::{Fault, MockServer};
use mcp_test_support::proxyd::Proxyd;
use mcp_test_support::tools;
use reqwest::StatusCode;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_proxyd");

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
    let names = mcp.tool_names(&url, &sid).await;
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
    let answer = mcp
        .call_tool(&url, &sid, 1, "beta__echo", json!({"message": "to beta"}))
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
    let answer = mcp
        .call_tool(&url, &sid, 2, "web__echo", json!({"message": "to web"}))
        .await;
    assert_eq!(answer["result"]["content"][0]["text"], "to web", "{answer}");
    let answer = mcp
        .call_tool(&url, &sid, 3, "nobody__echo", json!({}))
        .await;
    assert_eq!(answer["error"]["code"], -32602, "{answer}");

    // a new upstream: the group's sessions hear that the catalog changed
    let (s, _, mut stream) = mcp.get_sse(&url, &[("mcp-session-id", sid.as_str())]).await;
    assert_eq!(s, StatusCode::OK);
    admin
        .register_def(&tools::mock_stdio_def("gamma", &["echo"]))
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
        mcp.tool_names(&url, &sid)
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
    admin.register_def(&tools::everything_stdio_def("ev")).await;
    admin.register_def(&tools::server_time_def("time")).await;
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

// ---------------------------------------------------------------------------------------
// Groups from the Admin API.

/// Creates a group, asserting 201; the entry.
async fn create_group(admin: &Admin, group: Value) -> Value {
    let (s, _, body) = admin
        .request(reqwest::Method::POST, "/admin/groups", Some(group), None)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    body
}

/// Replaces a group, asserting 200; the entry.
async fn put_group(admin: &Admin, group: Value) -> Value {
    let path = format!("/admin/groups/{}", group["name"].as_str().unwrap());
    let (s, _, body) = admin
        .request(reqwest::Method::PUT, &path, Some(group), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body
}

async fn group_entry(admin: &Admin, name: &str) -> Value {
    let (s, _, body) = admin
        .request(
            reqwest::Method::GET,
            &format!("/admin/groups/{name}"),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body
}

/// `/admin/tools?group=NAME`: the names, and the whole listing.
async fn group_tools(admin: &Admin, group: &str) -> (Vec<String>, Value) {
    let (s, body) = admin
        .send(
            reqwest::Method::GET,
            &format!("/admin/tools?group={group}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let names = body["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    (names, body)
}

fn field_names(body: &Value) -> Vec<String> {
    body["details"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

async fn register_mock(admin: &Admin, name: &str, tags: &[&str]) {
    let mut def = serde_json::to_value(tools::mock_stdio_def(name, &["echo"])).unwrap();
    def["tags"] = json!(tags);
    admin.register(def).await;
    admin.wait_connected(name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_created_read_replaced_and_deleted_with_every_failing_field_reported() {
    use reqwest::Method;
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    register_mock(&admin, "alpha", &[]).await;

    // every failing field at once, wrong types included
    let bad = json!({"name": "bad one", "members": "alpha", "prefix": "sometimes",
        "separator": "::", "failMode": 1, "colour": true, "overrides": {"nodot": {}},
        "allowedIPs": ["nope"]});
    let body = admin
        .refused(
            Method::POST,
            "/admin/groups",
            Some(bad),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
    let fields = field_names(&body);
    for f in [
        "name",
        "members",
        "prefix",
        "separator",
        "failMode",
        "colour",
        "overrides.nodot",
        "allowedIPs[0]",
    ] {
        assert!(fields.iter().any(|x| x == f), "{f} missing from {body}");
    }
    let resp = admin
        .http
        .post(format!("{}/admin/groups", admin.base))
        .bearer_auth(mcp_test_support::proxyd::ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "invalid_json");

    // one namespace with the definitions
    let body = admin
        .refused(
            Method::POST,
            "/admin/groups",
            Some(json!({"name": "alpha"})),
            None,
            StatusCode::CONFLICT,
            "already_exists",
        )
        .await;
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("share one namespace"),
        "{body}"
    );

    // created: an unknown member and an override for a missing tool are valid, and reported
    let (s, headers, created) = admin
        .request(
            Method::POST,
            "/admin/groups",
            Some(json!({"name": "team", "members": ["alpha", "ghost"],
            "overrides": {"alpha.nothing": {"hidden": true}},
            "authTokens": ["team-token-0123456789"], "createdAt": "2001-01-01T00:00:00Z"})),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(headers["location"], "/admin/groups/team");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, format!("\"{}\"", created["group"]["version"]));
    let token = created["group"]["authTokens"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        token.starts_with("***:") && !token.contains("team-token"),
        "{created}"
    );
    assert_ne!(
        created["group"]["createdAt"], "2001-01-01T00:00:00Z",
        "server-set"
    );
    assert_eq!(created["readOnly"], false);
    assert_eq!(created["authRequired"], true);
    let status = &created["status"];
    assert_eq!(status["members"][0]["name"], "alpha");
    assert_eq!(status["members"][0]["present"], true);
    assert_eq!(
        status["members"][1],
        json!({"name": "ghost", "present": false})
    );
    assert_eq!(status["unknownOverrides"], json!(["alpha.nothing"]));
    assert_eq!(status["tools"], 2, "{created}");

    // the name is taken for definitions too, and a second group
    admin
        .refused(
            Method::POST,
            "/admin/mcps",
            Some(serde_json::to_value(tools::mock_stdio_def("team", &[])).unwrap()),
            None,
            StatusCode::CONFLICT,
            "already_exists",
        )
        .await;
    let (s, _, _) = admin
        .request(
            Method::POST,
            "/admin/groups",
            Some(json!({"name": "team"})),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);

    // the listing shows the built-in group, read-only
    let (s, _, list) = admin
        .request(Method::GET, "/admin/groups", None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = list["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["group"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mcp", "team"], "{list}");
    assert_eq!(list["count"], 2);
    assert_eq!(list["groups"][0]["readOnly"], true);
    let (s, headers, builtin) = admin
        .request(Method::GET, "/admin/groups/mcp", None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        headers.get("etag").is_none(),
        "the built-in group is not stored"
    );
    assert_eq!(builtin["status"]["members"][0]["name"], "alpha");
    for method in [Method::PUT, Method::DELETE] {
        admin
            .refused(
                method,
                "/admin/groups/mcp",
                Some(json!({"name": "mcp"})),
                None,
                StatusCode::CONFLICT,
                "read_only",
            )
            .await;
    }

    // the group's endpoint asks for its token
    let mcp = McpHttp::new();
    let url = format!("{}/team/mcp", proxyd.url());
    let (s, _, _) = mcp
        .post(&url, None, &[], &McpHttp::initialize_body("2025-11-25"))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let auth = [(
        "authorization".to_owned(),
        "Bearer team-token-0123456789".to_owned(),
    )];
    mcp.open_session_with(&url, "2025-11-25", &auth).await;

    // PUT: the name must match, the version must be the one read
    let mut edit = created["group"].clone();
    edit["name"] = json!("other");
    let (s, _, body) = admin
        .request(Method::PUT, "/admin/groups/team", Some(edit), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let mut edit = created["group"].clone();
    edit["description"] = json!("the team's tools");
    let (s, _, body) = admin
        .request(
            Method::PUT,
            "/admin/groups/team",
            Some(edit.clone()),
            Some("\"1\""),
        )
        .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED, "{body}");
    assert_eq!(body["details"]["etag"], etag.as_str());
    admin
        .refused(
            Method::PUT,
            "/admin/groups/nobody",
            Some(json!({"name": "nobody"})),
            None,
            StatusCode::NOT_FOUND,
            "group_not_found",
        )
        .await;
    let (s, headers, updated) = admin
        .request(Method::PUT, "/admin/groups/team", Some(edit), Some(&etag))
        .await;
    assert_eq!(s, StatusCode::OK, "{updated}");
    let new_etag = headers["etag"].to_str().unwrap().to_owned();
    assert_ne!(new_etag, etag);
    assert_eq!(updated["group"]["description"], "the team's tools");
    assert_eq!(updated["group"]["createdAt"], created["group"]["createdAt"]);
    assert_eq!(
        updated["group"]["authTokens"][0],
        token.as_str(),
        "the handle kept the token"
    );
    mcp.open_session_with(&url, "2025-11-25", &auth).await;

    // DELETE
    let (s, _, _) = admin
        .request(Method::DELETE, "/admin/groups/team", None, Some(&etag))
        .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED);
    let (s, _, _) = admin
        .request(Method::DELETE, "/admin/groups/team", None, Some(&new_etag))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    admin
        .refused(
            Method::GET,
            "/admin/groups/team",
            None,
            None,
            StatusCode::NOT_FOUND,
            "group_not_found",
        )
        .await;
    let (s, _, _) = admin
        .request(Method::DELETE, "/admin/groups/team", None, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = mcp
        .post(&url, None, &auth, &McpHttp::initialize_body("2025-11-25"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no longer served");
    // the name is free for a definition now
    admin
        .register_def(&tools::mock_stdio_def("team", &["echo"]))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_merge_members_by_name_and_tag_under_prefixes_overrides_filters_and_strict_names() {
    let mock = MockServer::start(Fault::JsonResponses).await;
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    register_mock(&admin, "alpha", &[]).await;
    register_mock(&admin, "beta", &["extra"]).await;
    admin
        .register(json!({"name":"web","transport":"streamable-http","url":mock.url()}))
        .await;
    admin.wait_connected("web").await;
    let mcp = McpHttp::new();

    // a member by name and one by tag; on-collision prefixes only the shared names
    create_group(
        &admin,
        json!({"name": "g1", "members": ["alpha"], "memberTags": ["extra"]}),
    )
    .await;
    let (names, listing) = group_tools(&admin, "g1").await;
    assert_eq!(
        names,
        ["alpha__echo", "alpha__big", "beta__echo", "beta__big"],
        "{listing}"
    );
    assert_eq!(listing["tools"][2]["mcpName"], "beta");
    assert_eq!(listing["tools"][2]["originalName"], "echo");
    let url = format!("{}/g1/mcp", proxyd.url());
    let sid = mcp.open_session(&url, "2025-11-25").await;
    assert_eq!(mcp.tool_names(&url, &sid).await, names);
    let answer = mcp
        .call_tool(&url, &sid, 1, "beta__echo", json!({"message": "to beta"}))
        .await;
    assert_eq!(
        answer["result"]["content"][0]["text"], "to beta",
        "{answer}"
    );

    // never: a shared name is served to neither, and reported
    let mut g1 = group_entry(&admin, "g1").await["group"].clone();
    g1["prefix"] = json!("never");
    let entry = put_group(&admin, g1).await;
    let collisions = &entry["status"]["collisions"];
    assert_eq!(collisions.as_array().unwrap().len(), 2, "{entry}");
    assert_eq!(
        collisions[0],
        json!({"kind": "tool", "name": "big", "origins": ["alpha.big", "beta.big"]})
    );
    let (names, listing) = group_tools(&admin, "g1").await;
    assert!(names.is_empty(), "{listing}");
    let errors = listing["errors"].to_string();
    assert!(
        errors.contains("left out") && errors.contains("beta.echo"),
        "{listing}"
    );

    // always with a separator, a rename with a new description, a hidden tool, a filter
    create_group(
        &admin,
        json!({"name": "g2", "members": ["alpha", "web"], "prefix": "always", "separator": "-",
            "overrides": {"alpha.echo": {"name": "say", "description": "Says it back", "title": "Say"},
                          "web.slow": {"hidden": true}},
            "toolFilter": {"mode": "block", "list": ["alpha-big"]}}),
    )
    .await;
    let (names, listing) = group_tools(&admin, "g2").await;
    assert_eq!(names, ["say", "web-echo"], "{listing}");
    assert_eq!(listing["tools"][0]["originalName"], "echo");
    let url = format!("{}/g2/mcp", proxyd.url());
    let sid = mcp.open_session(&url, "2025-11-25").await;
    let list = json!({"jsonrpc":"2.0","id":7,"method":"tools/list"});
    let (_, _, body) = mcp.post(&url, Some(&sid), &[], &list).await;
    assert_eq!(
        body["result"]["tools"][0]["description"], "Says it back",
        "{body}"
    );
    assert_eq!(body["result"]["tools"][0]["title"], "Say", "{body}");
    let answer = mcp
        .call_tool(&url, &sid, 2, "say", json!({"message": "said"}))
        .await;
    assert_eq!(answer["result"]["content"][0]["text"], "said", "{answer}");
    for (id, hidden) in [(3, "web-slow"), (4, "alpha-big"), (5, "echo")] {
        let answer = mcp.call_tool(&url, &sid, id, hidden, json!({})).await;
        assert_eq!(answer["error"]["code"], -32602, "{hidden}: {answer}");
    }

    // strictNames: names within ^[A-Za-z0-9_-]{1,64}$, shortened deterministically
    let long = format!("m{}", "x".repeat(59));
    register_mock(&admin, &long, &[]).await;
    for (bad, field) in [
        (
            json!({"name": "g3", "strictNames": true, "separator": "."}),
            "separator",
        ),
        (
            json!({"name": "g3", "strictNames": true, "overrides": {"alpha.echo": {"name": "say.it"}}}),
            "overrides.alpha.echo.name",
        ),
    ] {
        let (s, _, body) = admin
            .request(reqwest::Method::POST, "/admin/groups", Some(bad), None)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            field_names(&body).contains(&field.to_owned()),
            "{field}: {body}"
        );
    }
    create_group(
        &admin,
        json!({"name": "g3", "members": [long], "prefix": "always", "strictNames": true}),
    )
    .await;
    let (names, _) = group_tools(&admin, "g3").await;
    assert_eq!(names.len(), 2);
    for n in &names {
        assert!(
            n.len() <= 64
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "{n}"
        );
    }
    assert_ne!(names[0], names[1]);
    let url = format!("{}/g3/mcp", proxyd.url());
    let sid = mcp.open_session(&url, "2025-11-25").await;
    let answer = mcp
        .call_tool(&url, &sid, 6, &names[0], json!({"message": "long way"}))
        .await;
    assert_eq!(
        answer["result"]["content"][0]["text"], "long way",
        "{answer}"
    );
    // the same names again after a change that does not touch them
    let mut g3 = group_entry(&admin, "g3").await["group"].clone();
    g3["description"] = json!("described");
    put_group(&admin, g3).await;
    assert_eq!(group_tools(&admin, "g3").await.0, names);

    // the built-in group and unknown ones
    let (names, _) = group_tools(&admin, "mcp").await;
    assert!(names.contains(&"web__echo".to_owned()), "{names:?}");
    admin
        .refused(
            reqwest::Method::GET,
            "/admin/tools?group=nope",
            None,
            None,
            StatusCode::NOT_FOUND,
            "group_not_found",
        )
        .await;
    let (s, _) = admin
        .send(reqwest::Method::GET, "/admin/tools?group=", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_mode_closed_makes_a_group_unavailable_while_a_member_is_down_and_open_leaves_it_out()
{
    let mock = MockServer::start(Fault::JsonResponses).await;
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    register_mock(&admin, "alpha", &[]).await;
    let web = json!({"name": "web", "transport": "streamable-http", "url": mock.url(),
        "reconnectDelay": "100ms"});
    admin.register(web.clone()).await;
    admin.wait_connected("web").await;
    for (name, mode) in [("closed", "closed"), ("open", "open")] {
        let entry = create_group(
            &admin,
            json!({"name": name, "members": ["alpha", "web"], "failMode": mode}),
        )
        .await;
        assert_eq!(entry["status"]["available"], true, "{entry}");
    }
    let mcp = McpHttp::new();
    let closed_url = format!("{}/closed/mcp", proxyd.url());
    let open_url = format!("{}/open/mcp", proxyd.url());
    let closed = mcp.open_session(&closed_url, "2025-11-25").await;
    let open = mcp.open_session(&open_url, "2025-11-25").await;
    let both = ["alpha__echo", "big", "web__echo", "slow"];
    assert_eq!(mcp.tool_names(&closed_url, &closed).await, both);

    // web goes down: pointed where nothing listens
    let mut down = web.clone();
    down["url"] = json!("http://127.0.0.1:9/mcp");
    let (s, body) = admin
        .send(reqwest::Method::PUT, "/admin/mcps/web", Some(down))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eventually!(
        Duration::from_secs(20),
        admin.state("web").await != "connected"
    );
    assert_eventually!(
        Duration::from_secs(10),
        group_entry(&admin, "closed").await["status"]["available"] == false
    );
    let entry = group_entry(&admin, "closed").await;
    let web_member = &entry["status"]["members"][1];
    assert_eq!(web_member["name"], "web");
    assert_ne!(web_member["state"], "connected", "{entry}");
    let list = json!({"jsonrpc":"2.0","id":9,"method":"tools/list"});
    let (_, _, answer) = mcp.post(&closed_url, Some(&closed), &[], &list).await;
    let message = answer["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    assert!(
        message.contains("unavailable") && message.contains("failMode: closed"),
        "{answer}"
    );
    let (s, _, answer) = mcp
        .post(
            &closed_url,
            None,
            &[],
            &McpHttp::initialize_body("2025-11-25"),
        )
        .await;
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("unavailable")),
        "{s} {answer}"
    );
    let (names, listing) = group_tools(&admin, "closed").await;
    assert!(names.is_empty(), "{listing}");
    assert!(
        listing["errors"].to_string().contains("failMode: closed"),
        "{listing}"
    );

    // open: the member is left out (no collision left, so no prefix) and its tools answer
    // a clear error
    assert_eventually!(
        Duration::from_secs(10),
        mcp.tool_names(&open_url, &open).await == ["echo", "big"]
    );
    let answer = mcp.call_tool(&open_url, &open, 10, "slow", json!({})).await;
    let message = answer["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    assert!(message.contains("members down now: web"), "{answer}");

    // back: both groups serve both members again, in the sessions they had
    let (s, body) = admin
        .send(reqwest::Method::PUT, "/admin/mcps/web", Some(web))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    admin.wait_connected("web").await;
    assert_eventually!(
        Duration::from_secs(10),
        mcp.tool_names(&closed_url, &closed).await == both
    );
    assert_eq!(mcp.tool_names(&open_url, &open).await, both);
    assert_eq!(
        group_entry(&admin, "closed").await["status"]["available"],
        true
    );

    // a named member that does not exist keeps a closed group unavailable
    create_group(
        &admin,
        json!({"name": "waiting", "members": ["alpha", "later"], "failMode": "closed"}),
    )
    .await;
    assert_eq!(
        group_entry(&admin, "waiting").await["status"]["available"],
        false
    );
    register_mock(&admin, "later", &[]).await;
    assert_eventually!(
        Duration::from_secs(10),
        group_entry(&admin, "waiting").await["status"]["available"] == true
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_changes_the_catalog_live_and_the_groups_sessions_hear_of_it() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    register_mock(&admin, "alpha", &[]).await;
    create_group(
        &admin,
        json!({"name": "live", "members": ["alpha"], "prefix": "never"}),
    )
    .await;
    let mcp = McpHttp::new();
    let url = format!("{}/live/mcp", proxyd.url());
    let sid = mcp.open_session(&url, "2025-11-25").await;
    assert_eq!(mcp.tool_names(&url, &sid).await, ["echo", "big"]);
    let (s, _, mut stream) = mcp.get_sse(&url, &[("mcp-session-id", sid.as_str())]).await;
    assert_eq!(s, StatusCode::OK);

    // an override edited: the session lives on and is told
    let mut live = group_entry(&admin, "live").await["group"].clone();
    live["overrides"] = json!({"alpha.echo": {"name": "shout"}, "alpha.big": {"hidden": true}});
    put_group(&admin, live.clone()).await;
    read_until(&mut stream, "notifications/tools/list_changed").await;
    assert_eq!(mcp.tool_names(&url, &sid).await, ["shout"]);
    let answer = mcp
        .call_tool(&url, &sid, 1, "shout", json!({"message": "loud"}))
        .await;
    assert_eq!(answer["result"]["content"][0]["text"], "loud", "{answer}");
    let answer = mcp.call_tool(&url, &sid, 2, "echo", json!({})).await;
    assert_eq!(
        answer["error"]["code"], -32602,
        "the old name is gone: {answer}"
    );

    // a member added through a tag, also live
    register_mock(&admin, "beta", &["more"]).await;
    live["memberTags"] = json!(["more"]);
    put_group(&admin, live.clone()).await;
    assert_eventually!(
        Duration::from_secs(10),
        mcp.tool_names(&url, &sid).await == ["shout", "echo", "big"]
    );

    // new auth rules end the sessions opened under the old ones
    live["authTokens"] = json!(["live-token-0123456789"]);
    put_group(&admin, live).await;
    let auth = [(
        "authorization".to_owned(),
        "Bearer live-token-0123456789".to_owned(),
    )];
    let list = json!({"jsonrpc":"2.0","id":3,"method":"tools/list"});
    assert_eventually!(Duration::from_secs(10), {
        let (s, _, _) = mcp.post(&url, Some(&sid), &auth, &list).await;
        s == StatusCode::NOT_FOUND
    });
    let fresh = mcp.open_session_with(&url, "2025-11-25", &auth).await;
    let (_, _, body) = mcp.post(&url, Some(&fresh), &auth, &list).await;
    assert_eq!(
        body["result"]["tools"].as_array().map(Vec::len),
        Some(3),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_redis_serve_each_others_groups() {
    let redis = mcp_test_support::redis::RedisServer::start().await;
    let args = ["--storage", "redis", "--redis-url", &redis.url()];
    let a = Proxyd::start(BIN, &args).await.unwrap();
    let b = Proxyd::start(BIN, &args).await.unwrap();
    let (admin_a, admin_b) = (Admin::new(&a), Admin::new(&b));
    register_mock(&admin_a, "alpha", &[]).await;
    admin_b.wait_connected("alpha").await;

    let created = create_group(
        &admin_a,
        json!({"name": "shared", "members": ["alpha"], "prefix": "always"}),
    )
    .await;
    // b serves it: through its store and on its MCP endpoint
    let seen = group_entry(&admin_b, "shared").await;
    assert_eq!(seen["group"]["version"], created["group"]["version"]);
    let mcp = McpHttp::new();
    let url_b = format!("{}/shared/mcp", b.url());
    assert_eventually!(Duration::from_secs(10), {
        let (s, _, _) = mcp
            .post(&url_b, None, &[], &McpHttp::initialize_body("2025-11-25"))
            .await;
        s == StatusCode::OK
    });
    let sid = mcp.open_session(&url_b, "2025-11-25").await;
    assert_eq!(
        mcp.tool_names(&url_b, &sid).await,
        ["alpha__echo", "alpha__big"]
    );

    // one namespace across replicas: b cannot take the name for a definition or a group
    let (s, body) = admin_b
        .send(
            reqwest::Method::POST,
            "/admin/mcps",
            Some(serde_json::to_value(tools::mock_stdio_def("shared", &[])).unwrap()),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    let (s, _, _) = admin_b
        .request(
            reqwest::Method::POST,
            "/admin/groups",
            Some(json!({"name": "alpha"})),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);

    // a change on b reaches a's sessions live
    let url_a = format!("{}/shared/mcp", a.url());
    let sid_a = mcp.open_session(&url_a, "2025-11-25").await;
    let (_, _, mut stream) = mcp
        .get_sse(&url_a, &[("mcp-session-id", sid_a.as_str())])
        .await;
    let mut change = seen["group"].clone();
    change["overrides"] = json!({"alpha.big": {"hidden": true}});
    let updated = put_group(&admin_b, change).await;
    read_until(&mut stream, "notifications/tools/list_changed").await;
    assert_eq!(mcp.tool_names(&url_a, &sid_a).await, ["alpha__echo"]);
    // an edit from a stale read on a is refused
    let (s, _, _) = admin_a
        .request(
            reqwest::Method::PUT,
            "/admin/groups/shared",
            Some(created["group"].clone()),
            Some(&format!("\"{}\"", created["group"]["version"])),
        )
        .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED);

    // deleted on a: b stops serving it and ends its sessions
    let (s, _, _) = admin_a
        .request(
            reqwest::Method::DELETE,
            "/admin/groups/shared",
            None,
            Some(&format!("\"{}\"", updated["group"]["version"])),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let list = json!({"jsonrpc":"2.0","id":3,"method":"tools/list"});
    assert_eventually!(Duration::from_secs(10), {
        let (s, _, _) = mcp.post(&url_b, Some(&sid), &[], &list).await;
        s == StatusCode::NOT_FOUND
    });
    let (s, _, _) = admin_b
        .request(reqwest::Method::GET, "/admin/groups/shared", None, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// The conformance suite through a group of one member with `prefix: never` passes every
/// scenario the member's own endpoint passes (the fixture with the names the scenarios call).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_one_member_with_prefix_never_passes_the_conformance_the_member_passes() {
    let dir = tempfile::tempdir().unwrap();
    let (member_dir, group_dir) = (dir.path().join("member"), dir.path().join("group"));
    for d in [&member_dir, &group_dir] {
        std::fs::create_dir_all(d).unwrap();
    }
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    let def = mcp_test_support::conformance::fixture_def("fixture");
    admin.register_connected(&def).await;
    create_group(
        &admin,
        json!({"name": "one", "members": ["fixture"], "prefix": "never"}),
    )
    .await;
    // `localhost`, as dns-rebinding-protection requires a localhost URL.
    let base = proxyd.url().replace("127.0.0.1", "localhost");
    let (member, member_summary) =
        suite::conformance(&format!("{base}/fixture/mcp"), &member_dir).await;
    let (group, group_summary) = suite::conformance(&format!("{base}/one/mcp"), &group_dir).await;
    let regressions: Vec<&String> = member
        .iter()
        .filter(|(scenario, passed)| **passed && !group.get(*scenario).copied().unwrap_or(false))
        .map(|(scenario, _)| scenario)
        .collect();
    assert!(
        regressions.is_empty(),
        "scenarios the member passes but the group does not: {regressions:?}\n\
         member:{member_summary}\ngroup:{group_summary}"
    );
    assert!(
        member.values().filter(|p| **p).count() >= 30,
        "the member passes too little for the comparison to prove much:{member_summary}"
    );
}
