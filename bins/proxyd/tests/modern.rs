//! MCP 2026-07-28 clients on the same endpoints as 2025 ones: stateless requests over a
//! 2025 upstream, the revision's errors, `server/discover`, `subscriptions/listen`; the
//! official Python (2.3.0) and TypeScript (v2, 2.4.0) clients in front of both eras.

use mcp_test_support::conformance;
use mcp_test_support::e2e::{self, Admin};
use mcp_test_support::proxyd::Proxyd;
use mcp_test_support::tools;
use reqwest::StatusCode;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_proxyd");

const MODERN: &str = "2026-07-28";

fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
    })
}

/// The standard headers a 2026-07-28 client sends beside `MCP-Protocol-Version`:
/// `Mcp-Method` always, `Mcp-Name` for the named methods, from the body.
fn mirrored(body: &Value) -> Vec<(&'static str, String)> {
    let method = body["method"].as_str().unwrap_or_default().to_owned();
    let name = match method.as_str() {
        "tools/call" | "prompts/get" => body["params"]["name"].as_str(),
        "resources/read" => body["params"]["uri"].as_str(),
        _ => None,
    };
    let mut out = vec![("mcp-method", method.clone())];
    if let Some(n) = name {
        out.push(("mcp-name", n.to_owned()));
    }
    out
}

/// POSTs `body` with `headers`; when they name a protocol version, the standard headers
/// they leave out are added from the body, as a 2026-07-28 client does.
async fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut all: Vec<(&str, String)> = headers.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    if headers.iter().any(|(k, _)| *k == "mcp-protocol-version") {
        for (k, v) in mirrored(body) {
            if !headers.iter().any(|(h, _)| *h == k) {
                all.push((k, v));
            }
        }
    }
    let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
    post_exact(url, &all, body).await
}

/// POSTs `body` with exactly `headers`.
async fn post_exact(
    url: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.body(body.to_string()).send().await.unwrap();
    let (s, h) = (resp.status(), resp.headers().clone());
    (s, h, resp.text().await.unwrap())
}

fn last_json(headers: &reqwest::header::HeaderMap, text: &str) -> Value {
    e2e::messages(headers, text)
        .last()
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_requests_are_served_statelessly_and_checked_like_the_revision_says() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    admin
        .register_connected(&tools::everything_stdio_def("ev"))
        .await;
    let url = format!("{}/ev/mcp", proxyd.url());
    let modern = [("mcp-protocol-version", MODERN)];

    // server/discover: versions, capabilities, serverInfo in _meta, resultType, hints
    let discover =
        json!({"jsonrpc":"2.0","id":"d","method":"server/discover","params":{"_meta": meta()}});
    let (s, h, text) = post(&url, &modern, &discover).await;
    assert_eq!(s, StatusCode::OK, "{text}");
    let v = last_json(&h, &text);
    assert_eq!(v["result"]["supportedVersions"], json!([MODERN]), "{v}");
    assert!(v["result"]["capabilities"]["tools"].is_object(), "{v}");
    assert_eq!(v["result"]["resultType"], "complete");
    assert_eq!(
        v["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "mcp-servers/everything"
    );
    assert_eq!(v["result"]["cacheScope"], "private");

    // a tool call, no session header needed (and none is minted)
    let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
        "name":"echo","arguments":{"message":"stateless"},"_meta": meta()}});
    let (s, h, text) = post(
        &url,
        &[
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ],
        &call,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert!(h.get("mcp-session-id").is_none());
    let v = last_json(&h, &text);
    assert_eq!(v["id"], 1);
    assert_eq!(v["result"]["resultType"], "complete", "{v}");
    assert!(
        v["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("stateless")
    );

    // the revision's errors
    type Case<'a> = (Vec<(&'a str, &'a str)>, Value, StatusCode, i64);
    let cases: Vec<Case<'_>> = vec![
        // removed and unknown methods: 404, -32601, the id kept
        (
            modern.to_vec(),
            json!({"jsonrpc":"2.0","id":2,"method":"ping","params":{"_meta": meta()}}),
            StatusCode::NOT_FOUND,
            -32601,
        ),
        (
            modern.to_vec(),
            json!({"jsonrpc":"2.0","id":3,"method":"initialize","params":{"_meta": meta()}}),
            StatusCode::NOT_FOUND,
            -32601,
        ),
        (
            modern.to_vec(),
            json!({"jsonrpc":"2.0","id":4,"method":"no/such","params":{"_meta": meta()}}),
            StatusCode::NOT_FOUND,
            -32601,
        ),
        // required _meta missing
        (
            modern.to_vec(),
            json!({"jsonrpc":"2.0","id":5,"method":"tools/list","params":{}}),
            StatusCode::BAD_REQUEST,
            -32602,
        ),
        (
            modern.to_vec(),
            json!({"jsonrpc":"2.0","id":6,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion": MODERN}}}),
            StatusCode::BAD_REQUEST,
            -32602,
        ),
        // header and body disagree
        (
            vec![
                ("mcp-protocol-version", MODERN),
                ("mcp-method", "tools/list"),
            ],
            call.clone(),
            StatusCode::BAD_REQUEST,
            -32020,
        ),
        (
            vec![
                ("mcp-protocol-version", MODERN),
                ("mcp-name", "=?base64?b3RoZXI=?="),
            ],
            call.clone(),
            StatusCode::BAD_REQUEST,
            -32020,
        ),
        (vec![], call.clone(), StatusCode::BAD_REQUEST, -32020),
        // an unsupported version
        (
            vec![("mcp-protocol-version", "2099-01-01")],
            call.clone(),
            StatusCode::BAD_REQUEST,
            -32022,
        ),
    ];
    for (headers, body, status, code) in cases {
        let (s, h, text) = post(&url, &headers, &body).await;
        assert_eq!(s, status, "{body}: {text}");
        let v = last_json(&h, &text);
        assert_eq!(v["error"]["code"], code, "{body}: {v}");
        if let Some(id) = body.get("id")
            && code == -32601
        {
            assert_eq!(&v["id"], id, "the id is kept: {v}");
        }
        if code == -32022 {
            assert!(
                v["error"]["data"]["supported"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(MODERN))
            );
        }
    }
    // the standard headers are required: Mcp-Method always, Mcp-Name for a tool call
    let list = json!({"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"_meta": meta()}});
    for (headers, body) in [
        (vec![("mcp-protocol-version", MODERN)], &list),
        (
            vec![
                ("mcp-protocol-version", MODERN),
                ("mcp-method", "tools/call"),
            ],
            &call,
        ),
    ] {
        let (s, h, text) = post_exact(&url, &headers, body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{headers:?}: {text}");
        let v = last_json(&h, &text);
        assert_eq!(v["error"]["code"], -32020, "{headers:?}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("is required"),
            "{v}"
        );
    }
    // GET and DELETE with a modern header: 405
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let r = reqwest::Client::new()
            .request(method.clone(), &url)
            .header("mcp-protocol-version", MODERN)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_speaks_2026_07_28_through_the_proxy_pinned_and_auto() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    admin
        .register_connected(&tools::everything_stdio_def("ev"))
        .await;
    let url = format!("{}/ev/mcp", proxyd.url());
    for mode in ["pinned", "auto"] {
        e2e::python_script("modern_client.py", &[mode, &url]).await;
    }
}

/// Runs `tests/ts/v2_client.mjs KIND MODE URL` (the official TypeScript client v2) under
/// Node 22 and asserts that every check passed.
async fn ts_v2_client(kind: &str, mode: &str, url: &str) {
    let root = tools::workspace_root();
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(200),
        tokio::process::Command::new(tools::node22())
            .arg(root.join("tests/ts/v2_client.mjs"))
            .args([kind, mode, url])
            .env("MCP_TS_NODE_MODULES", tools::ts_client_v2_modules())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the typescript client finished in time")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.lines().last() == Some("all ok"),
        "typescript v2 client ({kind}, {mode}, {url}) failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_client_v2_speaks_2026_07_28_through_the_proxy_to_both_eras() {
    let fixture_http = conformance::Fixture2026::start().await;
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    let defs = [
        tools::everything_stdio_def("ev"),
        conformance::fixture_2026_def("fxs"),
        fixture_http.def("fxh"),
    ];
    for def in defs {
        admin.register_def(&def).await;
    }
    for (name, era) in [("ev", "legacy"), ("fxs", "modern"), ("fxh", "modern")] {
        admin.wait_connected(name).await;
        assert_eq!(admin.status(name).await["era"], era, "{name}");
    }
    // the control: the same checks straight against the fixture, so a failure through the
    // proxy below is the proxy's
    ts_v2_client("fixture", "pinned", &fixture_http.url()).await;
    for mode in ["pinned", "auto"] {
        // a 2025-11-25 upstream: the proxy serves the 2026 client statelessly and turns the
        // upstream's elicitation and sampling into input_required rounds
        ts_v2_client("everything", mode, &format!("{}/ev/mcp", proxyd.url())).await;
        // a 2026-07-28 upstream over stdio and over streamable HTTP: input_required passes
        // through, subscriptions/listen reaches the upstream's notifications
        for name in ["fxs", "fxh"] {
            ts_v2_client("fixture", mode, &format!("{}/{name}/mcp", proxyd.url())).await;
        }
    }
}

/// A 2026-07-28 client on `/mcp` (the built-in group of every upstream) and on a group
/// made through the Admin API: `server/discover` is the group's, the listing has the
/// merged names, and a call by merged name reaches its member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_serve_2026_07_28_clients_by_merged_name() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    for name in ["one", "two"] {
        admin
            .register_connected(&tools::mock_stdio_def(name, &[]))
            .await;
    }
    let (s, body) = admin
        .send(
            reqwest::Method::POST,
            "/admin/groups",
            Some(json!({"name": "pair", "members": ["one", "two"], "prefix": "always"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let modern = [("mcp-protocol-version", MODERN)];
    for (path, info) in [("mcp", "mcp"), ("pair/mcp", "pair")] {
        let url = format!("{}/{path}", proxyd.url());
        let discover = json!({"jsonrpc":"2.0","id":"d","method":"server/discover",
            "params":{"_meta": meta()}});
        let (s, h, text) = post(&url, &modern, &discover).await;
        assert_eq!(s, StatusCode::OK, "{path}: {text}");
        let v = last_json(&h, &text);
        assert_eq!(v["result"]["supportedVersions"], json!([MODERN]), "{v}");
        assert!(v["result"]["capabilities"]["tools"].is_object(), "{v}");
        assert_eq!(
            v["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], info,
            "{v}"
        );
        // every page of the merged listing
        let mut names = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut params = json!({"_meta": meta()});
            if let Some(c) = &cursor {
                params["cursor"] = json!(c);
            }
            let list = json!({"jsonrpc":"2.0","id":"l","method":"tools/list","params": params});
            let (s, h, text) = post(&url, &modern, &list).await;
            assert_eq!(s, StatusCode::OK, "{path}: {text}");
            let v = last_json(&h, &text);
            assert_eq!(v["result"]["resultType"], "complete", "{v}");
            names.extend(
                v["result"]["tools"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["name"].as_str().unwrap().to_owned()),
            );
            match v["result"]["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        for merged in ["one__echo", "two__echo"] {
            assert!(names.contains(&merged.to_owned()), "{path}: {names:?}");
        }
        for (id, member) in [(1, "one"), (2, "two")] {
            let call = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{
                "name": format!("{member}__echo"),
                "arguments": {"message": format!("via {path} to {member}")},
                "_meta": meta()}});
            let (s, h, text) = post(&url, &modern, &call).await;
            assert_eq!(s, StatusCode::OK, "{path}: {text}");
            let v = last_json(&h, &text);
            assert_eq!(v["id"], id, "{v}");
            assert_eq!(v["result"]["resultType"], "complete", "{v}");
            assert!(
                v["result"]["content"][0]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(&format!("via {path} to {member}")),
                "{v}"
            );
        }
    }
}
