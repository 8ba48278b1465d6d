//! A 2026-07-28 client in front of a 2025 upstream that asks for input while it serves a
//! call: the questions come back as `input_required` rounds with a sealed `requestState`,
//! the answers go to the waiting upstream call, and a state that is changed, presented by
//! someone else, on another request, after its expiry, twice, or on another replica is
//! refused with the right error.
//!
//! And the other way: a 2025 client in front of a 2026-07-28 upstream (the dual-era
//! fixture on the official Python SDK) that answers `input_required`: its input requests
//! reach the client as real requests, the answers go back upstream in a retry, and the
//! client sees one ordinary result; a cancellation stops the rounds and an error answer
//! fails the call.

use std::collections::BTreeSet;

use mcp_test_support::assert_eventually;
use mcp_test_support::e2e::{self, Admin};
use mcp_test_support::proxyd::Proxyd;
use mcp_test_support::tools;
use reqwest::StatusCode;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_proxyd");

const MODERN: &str = "2026-07-28";
const KEY_A: &str = "a1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const KEY_B: &str = "b1:ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

fn meta(capabilities: Value) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": capabilities,
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
    })
}

fn all_kinds() -> Value {
    json!({"elicitation": {}, "sampling": {}, "roots": {}})
}

/// A `tools/call` of the mock's `interview`, with the retry members given.
fn interview(id: &str, rounds: Value, capabilities: Value, retry: Value) -> Value {
    let mut params = json!({
        "name": "interview",
        "arguments": {"rounds": rounds},
        "_meta": meta(capabilities),
    });
    if let Value::Object(extra) = retry {
        params.as_object_mut().unwrap().extend(extra);
    }
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
}

/// POSTs a modern request; the status and the last JSON-RPC message of the answer.
async fn post(url: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", body["method"].as_str().unwrap_or_default());
    if let Some(name) = body["params"]["name"].as_str() {
        req = req.header("mcp-name", name);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.body(body.to_string()).send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let text = resp.text().await.unwrap();
    let last = e2e::messages(&headers, &text)
        .last()
        .cloned()
        .unwrap_or(Value::Null);
    (status, last)
}

fn error_code(answer: &Value) -> (i64, String) {
    (
        answer["error"]["code"].as_i64().unwrap_or_default(),
        answer["error"]["data"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// The answer a client gives to an input request of `method`.
fn answer_for(method: &str, n: usize) -> Value {
    match method {
        "elicitation/create" => {
            json!({"action": "accept", "content": {"answer": format!("told-{n}")}})
        }
        "sampling/createMessage" => json!({
            "role": "assistant",
            "content": {"type": "text", "text": format!("sampled-{n}")},
            "model": "test-model",
        }),
        "roots/list" => json!({"roots": [{"uri": format!("file:///root-{n}"), "name": "r"}]}),
        other => panic!("unexpected input request {other}"),
    }
}

async fn proxyd_with(env: &[(&str, &str)]) -> (Proxyd, Admin) {
    let proxyd = Proxyd::start_with_env(BIN, &[], env).await.unwrap();
    let admin = Admin::new(&proxyd);
    let mut def = serde_json::to_value(tools::mock_stdio_def("iv", &[])).unwrap();
    def["logEnabled"] = json!(true);
    admin.register(def).await;
    admin.wait_connected("iv").await;
    (proxyd, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2025_upstreams_questions_become_input_required_rounds_for_a_2026_client() {
    let (proxyd, _admin) = proxyd_with(&[]).await;
    let url = format!("{}/iv/mcp", proxyd.url());
    let rounds = json!([
        ["elicitation/create", "sampling/createMessage", "roots/list"],
        ["elicitation/create"]
    ]);

    let (status, first) = post(
        &url,
        None,
        &interview("c1", rounds.clone(), all_kinds(), json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["id"], "c1", "{first}");
    let result = &first["result"];
    assert_eq!(result["resultType"], "input_required", "{first}");
    assert!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"].is_object(),
        "{first}"
    );
    let state = result["requestState"].as_str().unwrap().to_owned();
    assert!(state.starts_with("mcpp1."), "{state}");
    let asked = result["inputRequests"].as_object().unwrap().clone();
    assert!(!asked.is_empty(), "{first}");

    // A changed state, a wrong shape, another request: refused, and the call still waits.
    let tampered = interview(
        "t1",
        rounds.clone(),
        all_kinds(),
        json!({"requestState": format!("{state}-TAMPERED"), "inputResponses": {}}),
    );
    let (status, answer) = post(&url, None, &tampered).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(
        error_code(&answer),
        (-32602, "request_state_invalid".into())
    );
    assert_eq!(answer["id"], "t1");
    let mut flipped = state.clone().into_bytes();
    let at = flipped.len() - 5;
    flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let (_, answer) = post(
        &url,
        None,
        &interview(
            "t2",
            rounds.clone(),
            all_kinds(),
            json!({"requestState": flipped}),
        ),
    )
    .await;
    assert_eq!(
        error_code(&answer),
        (-32602, "request_state_invalid".into())
    );
    let (status, answer) = post(
        &url,
        None,
        &interview(
            "t3",
            rounds.clone(),
            all_kinds(),
            json!({"requestState": state, "inputResponses": {"k": 12345}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    let (_, answer) = post(
        &url,
        None,
        &interview(
            "t4",
            json!([["roots/list"]]),
            all_kinds(),
            json!({"requestState": state}),
        ),
    )
    .await;
    assert_eq!(
        error_code(&answer),
        (-32602, "request_state_other_request".into())
    );

    // Answers under keys that were not asked: asked again, under a new state; the old
    // one is spent.
    let (_, again) = post(
        &url,
        None,
        &interview(
            "r1",
            rounds.clone(),
            all_kinds(),
            json!({"requestState": state, "inputResponses": {"not-asked": {"action": "decline"}}}),
        ),
    )
    .await;
    assert_eq!(again["id"], "r1", "{again}");
    assert_eq!(again["result"]["resultType"], "input_required", "{again}");
    let again_asked = again["result"]["inputRequests"].as_object().unwrap();
    assert!(asked.keys().all(|k| again_asked.contains_key(k)), "{again}");
    let mut state_now = again["result"]["requestState"].as_str().unwrap().to_owned();
    assert_ne!(state_now, state);
    let (_, spent) = post(
        &url,
        None,
        &interview(
            "r2",
            rounds.clone(),
            all_kinds(),
            json!({"requestState": state}),
        ),
    )
    .await;
    assert_eq!(error_code(&spent), (-32602, "request_state_gone".into()));

    // Answer every round until the call completes.
    let mut sent: Vec<(String, Value)> = Vec::new();
    let mut methods_asked = Vec::new();
    let mut pending = again["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .clone();
    let mut last = Value::Null;
    for round in 0..6 {
        let mut responses = serde_json::Map::new();
        for (key, request) in &pending {
            let method = request["method"].as_str().unwrap().to_owned();
            let answer = answer_for(&method, sent.len());
            methods_asked.push(method);
            responses.insert(key.clone(), answer.clone());
            sent.push((key.clone(), answer));
        }
        let id = format!("round-{round}");
        let (status, answer) = post(
            &url,
            None,
            &interview(
                &id,
                rounds.clone(),
                all_kinds(),
                json!({"requestState": state_now, "inputResponses": responses}),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["id"], id.as_str(), "{answer}");
        if answer["result"]["resultType"] == "complete" {
            last = answer;
            break;
        }
        assert_eq!(answer["result"]["resultType"], "input_required", "{answer}");
        pending = answer["result"]["inputRequests"]
            .as_object()
            .unwrap()
            .clone();
        state_now = answer["result"]["requestState"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    assert_eq!(last["result"]["resultType"], "complete", "{last}");
    methods_asked.sort();
    assert_eq!(
        methods_asked,
        [
            "elicitation/create",
            "elicitation/create",
            "roots/list",
            "sampling/createMessage"
        ],
        "every question of both rounds was asked once"
    );
    // The upstream got exactly the answers given, each under the request it asked.
    let text = last["result"]["content"][0]["text"].as_str().unwrap();
    let got: Vec<Value> = serde_json::from_str(text).unwrap();
    assert_eq!(got.len(), 4, "{text}");
    let given: BTreeSet<String> = sent.iter().map(|(_, a)| a.to_string()).collect();
    let received: BTreeSet<String> = got.iter().map(|a| a["answer"].to_string()).collect();
    assert_eq!(given, received, "{text}");
    // The last state is spent too.
    let (_, spent) = post(
        &url,
        None,
        &interview(
            "r9",
            rounds,
            all_kinds(),
            json!({"requestState": state_now}),
        ),
    )
    .await;
    assert_eq!(error_code(&spent), (-32602, "request_state_gone".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_the_client_cannot_answer_is_missing_capability() {
    let (proxyd, _admin) = proxyd_with(&[]).await;
    let url = format!("{}/iv/mcp", proxyd.url());
    // Sampling declared, elicitation asked: the upstream is refused, fails, and the client
    // hears -32021 naming elicitation; nothing was asked of it.
    let (status, answer) = post(
        &url,
        None,
        &interview(
            "m1",
            json!([["elicitation/create"]]),
            json!({"sampling": {}}),
            json!({}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["id"], "m1");
    assert_eq!(answer["error"]["code"], -32021, "{answer}");
    assert!(
        answer["error"]["data"]["requiredCapabilities"]["elicitation"].is_object(),
        "{answer}"
    );
    assert_eq!(
        answer["error"]["data"]["upstream"]["result"]["isError"], true,
        "{answer}"
    );
    // The upstream's question was answered with an error, not left waiting.
    assert_eventually!(
        proxyd
            .log()
            .iter()
            .any(|l| l.contains("mock-stdio: interview got error for iv-1"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_is_bound_to_its_principal_its_replica_its_key_and_its_lifetime() {
    let tokens = r#"["token-of-alice-0123456789","token-of-bob-0123456789"]"#;
    let env = |key: &str| {
        vec![
            ("MCP_PROXY_GLOBAL_AUTH_TOKENS", tokens.to_owned()),
            ("MCP_PROXY_INPUT_WAIT", "3s".to_owned()),
            ("MCP_PROXY_SESSION_KEYS", format!(r#"["{key}"]"#)),
        ]
    };
    let (a, _) = proxyd_with(&borrow(&env(KEY_A))).await;
    let (b, _) = proxyd_with(&borrow(&env(KEY_A))).await;
    let (c, _) = proxyd_with(&borrow(&env(KEY_B))).await;
    let alice = Some("token-of-alice-0123456789");
    let bob = Some("token-of-bob-0123456789");
    let rounds = json!([["elicitation/create"]]);
    let url_a = format!("{}/iv/mcp", a.url());

    let (_, first) = post(
        &url_a,
        alice,
        &interview("p1", rounds.clone(), all_kinds(), json!({})),
    )
    .await;
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    let state = first["result"]["requestState"].as_str().unwrap().to_owned();
    let key = first["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let retry = |id: &str| {
        interview(
            id,
            rounds.clone(),
            all_kinds(),
            json!({"requestState": state, "inputResponses": {key.clone(): {"action": "accept", "content": {"answer": "x"}}}}),
        )
    };
    // Someone else: refused, and the call still waits for its own client.
    let (status, answer) = post(&url_a, bob, &retry("p2")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(
        error_code(&answer),
        (-32602, "request_state_foreign".into())
    );
    // Another replica with the same key opens it, and finds nothing waiting there.
    let (_, answer) = post(&format!("{}/iv/mcp", b.url()), alice, &retry("p3")).await;
    assert_eq!(error_code(&answer), (-32602, "request_state_gone".into()));
    // A replica with another key cannot open it.
    let (_, answer) = post(&format!("{}/iv/mcp", c.url()), alice, &retry("p4")).await;
    assert_eq!(
        error_code(&answer),
        (-32602, "request_state_invalid".into())
    );

    // The same key across a restart of the issuer would open it too; what matters here
    // is its lifetime: probing as someone else never takes the call, and once the state
    // has expired that is what the probe hears.
    assert_eventually!(
        std::time::Duration::from_secs(20),
        error_code(&post(&url_a, bob, &retry("p5")).await.1).1 == "request_state_expired"
    );
    let (_, answer) = post(&url_a, alice, &retry("p6")).await;
    assert_eq!(
        error_code(&answer),
        (-32602, "request_state_expired".into())
    );
    // The expired call was dropped: its upstream request cancelled.
    assert_eventually!(
        a.log()
            .iter()
            .any(|l| l.contains("mock-stdio: interview cancelled"))
    );
}

fn borrow<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// proxyd with the 2026-07-28 fixture over stdio as `modern`, and over streamable HTTP as
/// `modern-http`, both found modern.
async fn proxyd_with_modern() -> (Proxyd, Admin, mcp_test_support::conformance::Fixture2026) {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    let fixture = mcp_test_support::conformance::Fixture2026::start().await;
    let stdio = mcp_test_support::conformance::fixture_2026_def("modern");
    admin.register_def(&stdio).await;
    admin.register_def(&fixture.def("modern-http")).await;
    for name in ["modern", "modern-http"] {
        admin.wait_connected(name).await;
        assert_eq!(admin.status(name).await["era"], "modern");
    }
    (proxyd, admin, fixture)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2025_python_client_answers_a_modern_upstreams_input_requests() {
    let (proxyd, _admin, _fixture) = proxyd_with_modern().await;
    for name in ["modern", "modern-http"] {
        let url = format!("{}/{name}/mcp", proxyd.url());
        e2e::python_script("legacy_client.py", &[&url]).await;
    }
}

/// A 2025 session declaring `capabilities`; its id.
async fn legacy_session(mcp: &e2e::McpHttp, url: &str, capabilities: Value) -> String {
    let mut init = e2e::McpHttp::initialize_body("2025-11-25");
    init["params"]["capabilities"] = capabilities;
    let (s, h, body) = mcp.post(url, None, &[], &init).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let sid = h["mcp-session-id"].to_str().unwrap().to_owned();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(
        mcp.post(url, Some(&sid), &[], &note).await.0,
        StatusCode::ACCEPTED
    );
    sid
}

/// POSTs a request of session `sid` and returns its answer stream, unread.
async fn open_call(mcp: &e2e::McpHttp, url: &str, sid: &str, body: &Value) -> reqwest::Response {
    let resp = mcp
        .http
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-session-id", sid)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp
}

/// The first server→client request in an SSE text.
fn asked_request(text: &str) -> Value {
    let headers = {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("content-type", "text/event-stream".parse().unwrap());
        h
    };
    e2e::messages(&headers, text)
        .into_iter()
        .find(|m| m.get("method").is_some() && m.get("id").is_some())
        .unwrap_or_else(|| panic!("no request in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2025_clients_error_fails_the_call_and_its_cancel_stops_the_rounds() {
    let (proxyd, admin, _fixture) = proxyd_with_modern().await;
    let mcp = e2e::McpHttp::new();
    let url = format!("{}/modern/mcp", proxyd.url());
    let sid = legacy_session(&mcp, &url, json!({"elicitation": {}})).await;
    let call = |id: i64| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "test_input_required_result_elicitation", "arguments": {}}})
    };

    // The client answers the input request with an error: the call fails with it.
    let mut stream = open_call(&mcp, &url, &sid, &call(7)).await;
    let seen = e2e::read_until(&mut stream, "elicitation/create").await;
    let asked = asked_request(&seen);
    assert_eq!(asked["method"], "elicitation/create", "{asked}");
    assert_eq!(asked["params"]["message"], "What is your name?", "{asked}");
    let refusal = json!({"jsonrpc": "2.0", "id": asked["id"],
                         "error": {"code": -32050, "message": "the user walked away"}});
    assert_eq!(
        mcp.post(&url, Some(&sid), &[], &refusal).await.0,
        StatusCode::ACCEPTED
    );
    let rest = stream.text().await.unwrap();
    let headers = {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("content-type", "text/event-stream".parse().unwrap());
        h
    };
    let last = e2e::messages(&headers, &format!("{seen}{rest}"))
        .last()
        .cloned()
        .unwrap();
    assert_eq!(last["id"], 7, "{last}");
    assert_eq!(last["error"]["code"], -32050, "{last}");
    let message = last["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("user_name") && message.contains("the user walked away"),
        "{message}"
    );

    // The client cancels while it is being asked: the question is withdrawn and the
    // upstream is not asked again, even when the answer comes anyway.
    let calls =
        r#"mcp_proxy_upstream_requests_total{upstream="modern",method="tools/call",outcome="ok"}"#;
    let before = admin.metric(calls).await;
    let (status, _, mut events) = mcp.get_sse(&url, &[("mcp-session-id", &sid)]).await;
    assert_eq!(status, StatusCode::OK);
    let mut stream = open_call(&mcp, &url, &sid, &call(8)).await;
    let seen = e2e::read_until(&mut stream, "elicitation/create").await;
    let asked = asked_request(&seen);
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                        "params": {"requestId": 8, "reason": "changed my mind"}});
    assert_eq!(
        mcp.post(&url, Some(&sid), &[], &cancel).await.0,
        StatusCode::ACCEPTED
    );
    let withdrawn = e2e::read_until(&mut events, "notifications/cancelled").await;
    let id = asked["id"].as_str().unwrap();
    assert!(
        withdrawn.contains(id),
        "the withdrawal names {id}: {withdrawn}"
    );
    let late = json!({"jsonrpc": "2.0", "id": asked["id"],
                      "result": {"action": "accept", "content": {"name": "Late"}}});
    assert_eq!(
        mcp.post(&url, Some(&sid), &[], &late).await.0,
        StatusCode::ACCEPTED
    );
    // The session still serves, and the upstream saw no retry of the cancelled call.
    let simple = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                        "params": {"name": "test_simple_text", "arguments": {}}});
    let (s, _, answer) = mcp.post(&url, Some(&sid), &[], &simple).await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    assert!(
        answer["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("simple text")
    );
    assert_eq!(
        admin.metric(calls).await,
        before + 2.0,
        "the upstream saw the cancelled call's first round and the plain call, no retry"
    );
}
