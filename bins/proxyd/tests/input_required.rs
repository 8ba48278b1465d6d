//! A 2026-07-28 client in front of a 2025 upstream that asks for input while it serves a
//! call: the questions come back as `input_required` rounds with a sealed `requestState`,
//! the answers go to the waiting upstream call, and a state that is changed, presented by
//! someone else, on another request, after its expiry, twice, or on another replica is
//! refused with the right error.

#[path = "sessions/support.rs"]
mod support;

use std::collections::BTreeSet;

use mcp_test_support::assert_eventually;
use mcp_test_support::proxyd::Proxyd;
use mcp_test_support::tools;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Admin, BIN};

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
        .header("mcp-protocol-version", MODERN);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.body(body.to_string()).send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let text = resp.text().await.unwrap();
    let last = support::messages(&headers, &text)
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
