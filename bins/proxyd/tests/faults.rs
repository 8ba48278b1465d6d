//! Faults with real processes around a real `proxyd`: a stdio child killed mid-call, an
//! HTTP upstream restarted mid-stream, an upstream that accepts and never answers, answers
//! over `max_message_bytes`, Redis down at start and stopped under load, clients that go
//! away mid-stream, and proxyd itself restarted under open sessions. For each: no request
//! outlives its deadline, the service comes back, and proxyd's memory and descriptors
//! return to their baseline. The figures (how fast an error arrives, how fast the service
//! is back) are printed; run with `--no-capture` to see them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mcp_store::{RedisConfig, RedisStore, Store};
use mcp_test_support::assert_eventually;
use mcp_test_support::e2e::{
    Admin, Baseline, McpHttp, alive, log_count, log_line, messages, pid_in, read_until, signal,
    tool_call,
};
use mcp_test_support::mock::{Fault, MockServer};
use mcp_test_support::proxyd::{ADMIN_TOKEN, Launch, Proxyd};
use mcp_test_support::redis::RedisServer;
use mcp_test_support::tools::{self, EverythingMode, EverythingServer};
use mcp_types::{McpDefinition, TransportKind};
use reqwest::StatusCode;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_proxyd");

const V: &str = "2025-11-25";
/// The bound on anything that must not hang; the figures printed are far below it.
const BOUND: Duration = Duration::from_secs(20);

fn def_json(def: &McpDefinition) -> Value {
    serde_json::to_value(def).unwrap()
}

/// A tools/call on a session, bounded; every message of the answer.
async fn bounded_call(mcp: &McpHttp, url: &str, sid: &str, body: &Value) -> Vec<Value> {
    tokio::time::timeout(BOUND, mcp.post_collect(url, Some(sid), body))
        .await
        .unwrap_or_else(|_| panic!("{body} to {url} hung"))
}

/// The text of a successful `tools/call` answer.
fn text_of(answer: &[Value]) -> String {
    let last = answer.last().expect("an answer");
    last["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("not a result: {last}"))
        .to_owned()
}

/// An echo call on a session that must succeed with `message` in its text.
async fn echo_ok(mcp: &McpHttp, url: &str, sid: &str, id: u64, message: &str) {
    let answer = bounded_call(
        mcp,
        url,
        sid,
        &tool_call(id, "echo", json!({"message": message})),
    )
    .await;
    let text = text_of(&answer);
    assert!(text.contains(message), "{url}: {text}");
}

/// The error object of a failed `tools/call` answer.
fn error_of(answer: &[Value]) -> Value {
    let last = answer.last().expect("an answer");
    assert!(last["error"].is_object(), "not an error: {last}");
    last["error"].clone()
}

/// The status of a request on a session (a ping: the proxy answers it itself).
async fn session_status(mcp: &McpHttp, url: &str, sid: &str) -> StatusCode {
    let ping = json!({"jsonrpc": "2.0", "id": 99, "method": "ping"});
    let (status, _, _) = tokio::time::timeout(BOUND, mcp.post(url, Some(sid), &[], &ping))
        .await
        .expect("ping hung");
    status
}

async fn delete_session(mcp: &McpHttp, url: &str, sid: &str) {
    let resp = mcp
        .http
        .delete(url)
        .header("mcp-session-id", sid)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
}

/// Registers the mock's echo server as `name` (per-client) and waits until it is
/// connected; the Admin API, a client and the server's streamable URL.
async fn echo_upstream(p: &Proxyd, name: &str) -> (Admin, McpHttp, String) {
    let admin = Admin::new(p);
    admin
        .register_connected(&tools::mock_stdio_def(name, &["echo"]))
        .await;
    (admin, McpHttp::new(), format!("{}/{name}/mcp", p.url()))
}

/// One session through `url` with an echo call, then ended: warms up the path before a
/// baseline is taken.
async fn warm_up(mcp: &McpHttp, url: &str) {
    let sid = mcp.open_session(url, V).await;
    echo_ok(mcp, url, &sid, 1, "warm").await;
    delete_session(mcp, url, &sid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_child_killed_mid_call_fails_the_call_at_once_and_the_service_comes_back() {
    let p = Proxyd::start(BIN, &[]).await.unwrap();
    let (_admin, mcp, url) = echo_upstream(&p, "kid").await;
    warm_up(&mcp, &url).await;
    let baseline = Baseline::take(p.pid().unwrap());

    let sid = mcp.open_session(&url, V).await;
    let pending = {
        let (mcp, url, sid) = (mcp.clone(), url.clone(), sid.clone());
        tokio::spawn(async move {
            let answer = mcp
                .post_collect(&url, Some(&sid), &tool_call(7, "hold", json!({})))
                .await;
            (answer, Instant::now())
        })
    };
    // the session's own child has the call: kill it
    let child = pid_in(&log_line(&p, &["got tools/call", "hold", "pid "]).await);
    signal(child, "KILL").await;
    let killed = Instant::now();
    let (answer, answered) = tokio::time::timeout(BOUND, pending)
        .await
        .expect("the call in flight hung after its process died")
        .unwrap();
    let error_after = answered.saturating_duration_since(killed);
    let error = error_of(&answer);
    assert_eq!(answer.last().unwrap()["id"], 7, "{answer:?}");
    assert!(
        error["message"].as_str().unwrap().contains("kid"),
        "{error}"
    );
    assert!(
        error_after < Duration::from_secs(2),
        "the error took {error_after:?}"
    );

    // the dead session is gone; a new one works
    assert_eq!(
        session_status(&mcp, &url, &sid).await,
        StatusCode::NOT_FOUND
    );
    let again = mcp.open_session(&url, V).await;
    echo_ok(&mcp, &url, &again, 8, "back").await;
    let back_after = killed.elapsed();
    eprintln!(
        "fault figure: stdio child killed mid-call: error after {error_after:?}, \
         service back (new session + call) after {back_after:?}"
    );
    assert!(back_after < BOUND);
    delete_session(&mcp, &url, &again).await;
    assert!(!alive(child));
    baseline.assert_back("stdio child killed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_upstream_restarted_mid_stream_fails_the_stream_and_sessions_start_over() {
    // the first server holds tool calls open; the one after the restart answers them
    let first = MockServer::start_on(Fault::NeverAnswer, tools::restartable_port()).await;
    let port = first.port();
    let p = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&p);
    admin
        .register_connected(&McpDefinition::http(
            "mh",
            TransportKind::StreamableHttp,
            first.url(),
        ))
        .await;
    let mcp = McpHttp::new();
    let url = format!("{}/mh/mcp", p.url());
    let warm = mcp.open_session(&url, V).await;
    delete_session(&mcp, &url, &warm).await;
    let baseline = Baseline::take(p.pid().unwrap());

    let sid = mcp.open_session(&url, V).await;
    let pending = {
        let (mcp, url, sid) = (mcp.clone(), url.clone(), sid.clone());
        tokio::spawn(async move {
            let answer = mcp
                .post_collect(
                    &url,
                    Some(&sid),
                    &tool_call(7, "echo", json!({"message": "x"})),
                )
                .await;
            (answer, Instant::now())
        })
    };
    // the call's event stream is open upstream: crash the server under it
    assert_eventually!(
        BOUND,
        first
            .requests()
            .iter()
            .any(|r| r.rpc_method.as_deref() == Some("tools/call"))
    );
    drop(first);
    let killed = Instant::now();
    let (answer, answered) = tokio::time::timeout(BOUND, pending)
        .await
        .expect("the call outlived its upstream")
        .unwrap();
    let error_after = answered.saturating_duration_since(killed);
    assert_eq!(error_of(&answer)["code"], -32000, "{answer:?}");

    // the server comes back on its port, knowing no session
    let _second = MockServer::start_on(Fault::None, port).await;
    let restarted = Instant::now();
    let echo = tool_call(8, "echo", json!({"message": "old"}));
    let (status, _, body) = tokio::time::timeout(BOUND, mcp.post(&url, Some(&sid), &[], &echo))
        .await
        .expect("a request on the old session hung");
    // its request fails (the upstream says 404), and the session ends with it
    assert!(
        body["error"].is_object() || status == StatusCode::NOT_FOUND,
        "{status} {body}"
    );
    assert_eventually!(
        BOUND,
        session_status(&mcp, &url, &sid).await == StatusCode::NOT_FOUND
    );
    let again = mcp.open_session(&url, V).await;
    echo_ok(&mcp, &url, &again, 9, "new").await;
    let back_after = restarted.elapsed();
    admin.wait_connected("mh").await;
    eprintln!(
        "fault figure: http upstream killed mid-stream: the call failed after \
         {error_after:?}; after the restart, old session 404 and a new session served \
         after {back_after:?}"
    );
    delete_session(&mcp, &url, &again).await;
    baseline.assert_back("http upstream restarted").await;
}

/// The same restart with the reference server, which answers a session id it does not
/// know with 400 ("No valid session ID provided") instead of the 404 the transport
/// specification prescribes: the proxy's probe (a `ping` in that session, refused too)
/// ends the session, and the client is sent to initialize again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_restarted_mid_stream_sends_its_clients_to_initialize_again() {
    let port = tools::restartable_port();
    let upstream = EverythingServer::start_on(EverythingMode::StreamableHttp, port).await;
    let p = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&p);
    admin.register_connected(&upstream.def("evh")).await;
    let mcp = McpHttp::new();
    let url = format!("{}/evh/mcp", p.url());
    let sid = mcp.open_session(&url, V).await;
    let long = json!({"jsonrpc": "2.0", "id": "long", "method": "tools/call", "params": {
        "name": "trigger-long-running-operation", "arguments": {"duration": 60, "steps": 60},
        "_meta": {"progressToken": 1}}});
    let mut stream = mcp
        .http
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-session-id", &sid)
        .body(long.to_string())
        .send()
        .await
        .unwrap();
    let headers = stream.headers().clone();
    let mut seen = read_until(&mut stream, "notifications/progress").await;
    drop(upstream);
    // the stream ends (with an error for the call) instead of waiting out the minute
    let rest = tokio::time::timeout(BOUND, async {
        while let Ok(Some(chunk)) = stream.chunk().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(rest.is_ok(), "the stream outlived its upstream: {seen}");
    let answer = messages(&headers, &seen);
    assert!(answer.last().unwrap()["error"].is_object(), "{seen}");
    assert_eventually!(
        BOUND,
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    );
    let _upstream = EverythingServer::start_on(EverythingMode::StreamableHttp, port).await;
    let mut status = StatusCode::OK;
    for id in 10..15 {
        let echo = tool_call(id, "echo", json!({"message": "old"}));
        let (s, _, _) = tokio::time::timeout(BOUND, mcp.post(&url, Some(&sid), &[], &echo))
            .await
            .expect("a request on the old session hung");
        status = s;
        if status == StatusCode::NOT_FOUND {
            break;
        }
    }
    assert_eq!(status, StatusCode::NOT_FOUND, "the old session lives on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_never_answers_is_bounded_by_its_timeout() {
    // accepts connections, reads nothing, answers nothing
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}/mcp", silent.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            held.push(conn);
        }
    });
    // connected, but its tool calls are never answered
    let mute = MockServer::start(Fault::NeverAnswer).await;
    let p = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&p);
    let timeout = Duration::from_secs(2);
    let mut dead = McpDefinition::http("dead", TransportKind::StreamableHttp, &silent_url);
    dead.timeout = timeout;
    let mut hung = McpDefinition::http("hung", TransportKind::StreamableHttp, mute.url());
    hung.timeout = timeout;
    admin.register_def(&dead).await;
    admin.register_connected(&hung).await;
    let mcp = McpHttp::new();
    let hung_url = format!("{}/hung/mcp", p.url());
    let dead_url = format!("{}/dead/mcp", p.url());
    let baseline = Baseline::take(p.pid().unwrap());

    // the primary connection's attempts end at the timeout: an error, not "connecting"
    assert_eventually!(BOUND, admin.state("dead").await == "error");
    let status = admin.status("dead").await;
    assert!(
        status["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("timed out")),
        "{status}"
    );
    // a client's initialize waits for the upstream at most `timeout`
    let started = Instant::now();
    let (s, _, body) = tokio::time::timeout(
        BOUND,
        mcp.post(&dead_url, None, &[], &McpHttp::initialize_body(V)),
    )
    .await
    .expect("initialize hung");
    let init_after = started.elapsed();
    assert_eq!(body["jsonrpc"], "2.0", "{s}: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("timed out")),
        "{s}: {body}"
    );

    // a call the upstream never answers: a timeout error, and the upstream is told
    let sid = mcp.open_session(&hung_url, V).await;
    let started = Instant::now();
    let answer = bounded_call(&mcp, &hung_url, &sid, &tool_call(3, "echo", json!({}))).await;
    let call_after = started.elapsed();
    let error = error_of(&answer);
    assert!(
        error["message"].as_str().unwrap().contains("timed out"),
        "{error}"
    );
    assert!(
        call_after >= timeout,
        "answered before the deadline: {call_after:?}"
    );
    assert_eventually!(
        BOUND,
        mute.requests()
            .iter()
            .any(|r| r.rpc_method.as_deref() == Some("notifications/cancelled"))
    );
    eprintln!(
        "fault figure: silent upstream (timeout {timeout:?}): initialize refused after \
         {init_after:?}; unanswered call failed after {call_after:?}"
    );
    delete_session(&mcp, &hung_url, &sid).await;
    baseline.assert_back("silent upstreams").await;
    holder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_over_max_message_bytes_is_a_clean_error_and_the_connection_recovers() {
    const TEN_MIB: u64 = 10 << 20;
    let p = Proxyd::start_with_env(BIN, &[], &[("MCP_PROXY_MAX_MESSAGE_BYTES", "4194304")])
        .await
        .unwrap();
    let admin = Admin::new(&p);
    let sse = MockServer::start(Fault::None).await;
    let json_answers = MockServer::start(Fault::JsonResponses).await;
    for (name, url) in [("sse-big", sse.url()), ("json-big", json_answers.url())] {
        let def = McpDefinition::http(name, TransportKind::StreamableHttp, url);
        admin.register_def(&def).await;
    }
    admin
        .register_def(&tools::mock_stdio_def("stdio-big", &["echo"]))
        .await;
    let mcp = McpHttp::new();
    for name in ["sse-big", "json-big", "stdio-big"] {
        admin.wait_connected(name).await;
        warm_up(&mcp, &format!("{}/{name}/mcp", p.url())).await;
    }
    let baseline = Baseline::take(p.pid().unwrap());

    // HTTP upstreams: that one call fails, the session goes on
    for name in ["sse-big", "json-big"] {
        let url = format!("{}/{name}/mcp", p.url());
        let sid = mcp.open_session(&url, V).await;
        let answer = bounded_call(
            &mcp,
            &url,
            &sid,
            &tool_call(2, "big", json!({"bytes": TEN_MIB})),
        )
        .await;
        assert_eq!(answer.last().unwrap()["id"], 2, "{name}: {answer:?}");
        too_large(&p, &error_of(&answer)).await;
        // the session serves on
        echo_ok(&mcp, &url, &sid, 3, "on").await;
        delete_session(&mcp, &url, &sid).await;
    }
    // stdio: a line over the limit cannot be skipped, so that process is stopped; the
    // call fails cleanly, the session ends, a new one gets a new process
    let url = format!("{}/stdio-big/mcp", p.url());
    let sid = mcp.open_session(&url, V).await;
    let answer = bounded_call(
        &mcp,
        &url,
        &sid,
        &tool_call(2, "big", json!({"bytes": TEN_MIB})),
    )
    .await;
    too_large(&p, &error_of(&answer)).await;
    // the call's error and the session's end come from the same stop of the process,
    // in either order
    assert_eventually!(
        BOUND,
        session_status(&mcp, &url, &sid).await == StatusCode::NOT_FOUND
    );
    let again = mcp.open_session(&url, V).await;
    echo_ok(&mcp, &url, &again, 3, "new").await;
    delete_session(&mcp, &url, &again).await;
    assert_eq!(admin.state("stdio-big").await, "connected");
    baseline.assert_back("10 MiB answers").await;
}

/// An error for an answer over the limit: it says so, or carries a reference to the log
/// line that does.
async fn too_large(p: &Proxyd, error: &Value) {
    eprintln!("an answer over the limit is told: {error}");
    let message = error["message"].as_str().unwrap();
    if !message.contains("limit") {
        let reference = error["data"]["ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{error}"));
        log_line(p, &[reference, "larger than the limit"]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxyd_starts_without_redis_serves_its_declared_servers_and_loads_once_redis_answers() {
    let mut redis = RedisServer::not_started();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxyd.toml");
    let mock = tools::mock_stdio();
    std::fs::write(
        &config,
        format!(
            "[storage]\nkind = \"redis\"\nurl = \"{}\"\n\n[[servers]]\nname = \"decl\"\n\
             transport = \"stdio\"\ncommand = {:?}\nargs = [\"echo\"]\n",
            redis.url(),
            mock.to_string_lossy()
        ),
    )
    .unwrap();
    let p = Proxyd::start(BIN, &["--config", config.to_str().unwrap()])
        .await
        .unwrap();
    let admin = Admin::new(&p);
    let http = reqwest::Client::new();
    let readyz = || async {
        let resp = http
            .get(format!("{}/readyz", p.url()))
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json::<Value>().await.unwrap())
    };
    let (status, body) = readyz().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.contains("redis") && reason.contains("not connected yet"),
        "{reason}"
    );
    // the declared server serves from the configuration meanwhile
    admin.wait_connected("decl").await;
    let mcp = McpHttp::new();
    let url = format!("{}/decl/mcp", p.url());
    let sid = mcp.open_session(&url, V).await;
    echo_ok(&mcp, &url, &sid, 2, "early").await;
    // admin writes wait for the store
    let api_def = def_json(&tools::mock_stdio_def("api-one", &["echo"]));
    let (status, body) = admin
        .send(reqwest::Method::POST, "/admin/mcps", Some(api_def.clone()))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "store_unavailable", "{body}");

    // Redis comes; another replica writes a definition there
    redis.start_again().await;
    let other = RedisStore::connect(RedisConfig::new(redis.url()))
        .await
        .unwrap();
    other
        .create(tools::mock_stdio_def("from-other", &["echo"]))
        .await
        .unwrap();
    assert_eventually!(BOUND, readyz().await.0 == StatusCode::OK);
    admin.wait_connected("from-other").await;
    // the declared server was written to the store, and kept running: the session opened
    // before Redis came is still served
    assert_eventually!(BOUND, other.get("decl").await.unwrap().is_some());
    let stored = other.get("decl").await.unwrap().unwrap();
    assert_eq!(stored.source, mcp_types::DefinitionSource::Config);
    echo_ok(&mcp, &url, &sid, 3, "later").await;
    let (status, body) = admin
        .send(reqwest::Method::POST, "/admin/mcps", Some(api_def))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(other.get("api-one").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_started_under_load_loses_no_definition() {
    let mut redis = RedisServer::start_persistent().await;
    let p = Proxyd::start(BIN, &["--storage", "redis", "--redis-url", &redis.url()])
        .await
        .unwrap();
    let (admin, mcp, url) = echo_upstream(&p, "busy").await;
    warm_up(&mcp, &url).await;
    let baseline = Baseline::take(p.pid().unwrap());

    // proxy traffic: a session calling in a loop, counting failures
    let stop = tokio_util::sync::CancellationToken::new();
    let traffic = {
        let (mcp, url, stop) = (mcp.clone(), url.clone(), stop.clone());
        let sid = mcp.open_session(&url, V).await;
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            let mut id = 100;
            while !stop.is_cancelled() {
                id += 1;
                let answer = bounded_call(
                    &mcp,
                    &url,
                    &sid,
                    &tool_call(id, "echo", json!({"message": "t"})),
                )
                .await;
                match answer
                    .last()
                    .and_then(|m| m["result"]["content"][0]["text"].as_str())
                {
                    Some("t") => ok += 1,
                    _ => failed.push(answer),
                }
            }
            (ok, failed)
        })
    };
    // admin writes: definitions that never connect, one every 50 ms, statuses recorded
    let created = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let writes = {
        let (base, stop) = (p.url(), stop.clone());
        let (created, refused) = (created.clone(), refused.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::builder().timeout(BOUND).build().unwrap();
            let mut seen: Vec<(String, StatusCode)> = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            let mut i = 0;
            while !stop.is_cancelled() && i < 200 {
                tick.tick().await;
                i += 1;
                let name = format!("w{i}");
                let status = http
                    .post(format!("{base}/admin/mcps"))
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&json!({"name": name, "transport": "streamable-http",
                                  "url": "http://127.0.0.1:1/mcp", "autoReconnect": false}))
                    .send()
                    .await
                    .unwrap()
                    .status();
                match status {
                    StatusCode::CREATED => created.fetch_add(1, Ordering::SeqCst),
                    StatusCode::SERVICE_UNAVAILABLE => refused.fetch_add(1, Ordering::SeqCst),
                    _ => 0,
                };
                seen.push((name, status));
            }
            seen
        })
    };
    let readyz = || async {
        reqwest::get(format!("{}/readyz", p.url()))
            .await
            .unwrap()
            .status()
    };
    assert_eventually!(BOUND, created.load(Ordering::SeqCst) >= 3);
    redis.stop().await;
    let stopped = Instant::now();
    assert_eventually!(BOUND, readyz().await == StatusCode::SERVICE_UNAVAILABLE);
    assert_eventually!(BOUND, refused.load(Ordering::SeqCst) >= 3);
    redis.start_again().await;
    let restarted = Instant::now();
    assert_eventually!(BOUND, readyz().await == StatusCode::OK);
    let ready_after = restarted.elapsed();
    // another replica's write after the restart reaches this one (resync)
    let other = RedisStore::connect(RedisConfig::new(redis.url()))
        .await
        .unwrap();
    other
        .create(McpDefinition::http(
            "from-other",
            TransportKind::StreamableHttp,
            "http://127.0.0.1:1/mcp",
        ))
        .await
        .unwrap();
    assert_eventually!(
        BOUND,
        admin
            .send(reqwest::Method::GET, "/admin/mcps/from-other", None)
            .await
            .0
            == StatusCode::OK
    );
    // a few more writes after the outage, then stop
    let before = created.load(Ordering::SeqCst);
    assert_eventually!(BOUND, created.load(Ordering::SeqCst) >= before + 3);
    stop.cancel();
    let (ok, failed) = traffic.await.unwrap();
    let seen = writes.await.unwrap();
    assert!(
        failed.is_empty(),
        "proxy traffic failed during the outage: {failed:?}"
    );
    assert!(ok > 0);
    let refused = refused.load(Ordering::SeqCst);
    for (name, status) in &seen {
        assert!(
            *status == StatusCode::CREATED || *status == StatusCode::SERVICE_UNAVAILABLE,
            "{name}: {status}"
        );
    }
    // no acknowledged definition is lost, in redis or in this replica
    let stored: Vec<String> = other
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    let (_, listed) = admin.send(reqwest::Method::GET, "/admin/mcps", None).await;
    let served: Vec<&str> = listed["mcps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["definition"]["name"].as_str().unwrap())
        .collect();
    for (name, status) in &seen {
        if *status == StatusCode::CREATED {
            assert!(stored.contains(name), "{name} lost from redis");
            assert!(served.contains(&name.as_str()), "{name} not served");
        }
    }
    eprintln!(
        "fault figure: redis down for {:?} under load: {ok} calls served, none failed; \
         {refused} of {} writes refused with 503; ready again {ready_after:?} after redis",
        restarted.duration_since(stopped),
        seen.len()
    );
    baseline.assert_back("redis outage").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_go_away_mid_call_get_their_upstream_work_cancelled() {
    let p = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&p);
    let mut shared = def_json(&tools::mock_stdio_def("sh", &["echo"]));
    shared["sessionMode"] = json!("shared");
    admin.register(shared).await;
    admin
        .register_connected(&tools::mock_stdio_def("pc", &["echo"]))
        .await;
    admin.wait_connected("pc").await;
    let mcp = McpHttp::new();
    let base = p.url();
    warm_up(&mcp, &format!("{base}/sh/mcp")).await;
    let baseline = Baseline::take(p.pid().unwrap());

    // legacy SSE, shared upstream: losing the stream ends the session and cancels its call
    let cancelled = log_count(&p, "cancelled ");
    let (sse, post) = legacy_session(&mcp, &format!("{base}/sh")).await;
    assert_eq!(
        post(tool_call(1, "hold", json!({}))).await,
        StatusCode::ACCEPTED
    );
    log_line(&p, &["got tools/call", "hold"]).await;
    drop(sse);
    let dropped = Instant::now();
    assert_eventually!(BOUND, log_count(&p, "cancelled ") > cancelled);
    let legacy_after = dropped.elapsed();
    assert_eventually!(
        BOUND,
        post(json!({"jsonrpc": "2.0", "id": 2, "method": "ping"})).await == StatusCode::NOT_FOUND
    );

    // streamable HTTP, shared upstream: a dropped POST is not a cancellation (the spec);
    // ending the session is
    let url = format!("{base}/sh/mcp");
    let sid = mcp.open_session(&url, V).await;
    let holds = held_calls(&p);
    let held = {
        let (mcp, url, sid) = (mcp.clone(), url.clone(), sid.clone());
        tokio::spawn(async move {
            mcp.post_collect(&url, Some(&sid), &tool_call(3, "hold", json!({})))
                .await
        })
    };
    assert_eventually!(BOUND, held_calls(&p) > holds);
    held.abort();
    let cancelled = log_count(&p, "cancelled ");
    delete_session(&mcp, &url, &sid).await;
    let deleted = Instant::now();
    assert_eventually!(BOUND, log_count(&p, "cancelled ") > cancelled);
    let delete_after = deleted.elapsed();

    // per-client upstream: the session's own process goes with the session
    let (sse, post) = legacy_session(&mcp, &format!("{base}/pc")).await;
    assert_eq!(
        post(tool_call(1, "hold", json!({}))).await,
        StatusCode::ACCEPTED
    );
    let child = pid_in(&log_line(&p, &["got tools/call", "hold", "upstream=pc "]).await);
    drop(sse);
    assert_eventually!(BOUND, !alive(child));
    eprintln!(
        "fault figure: client gone mid-call: legacy stream lost -> upstream cancel after \
         {legacy_after:?}; streamable session deleted -> cancel after {delete_after:?}"
    );
    baseline.assert_back("clients gone mid-call").await;
}

/// How many `hold` calls the mocks have logged.
fn held_calls(p: &Proxyd) -> usize {
    p.log()
        .iter()
        .filter(|l| l.contains("got tools/call") && l.contains("hold"))
        .count()
}

/// A legacy SSE session on `/{name}`: the open stream, initialized, and a poster for its
/// message endpoint.
async fn legacy_session(
    mcp: &McpHttp,
    base: &str,
) -> (
    reqwest::Response,
    impl Fn(Value) -> std::pin::Pin<Box<dyn std::future::Future<Output = StatusCode> + Send>> + use<>,
) {
    let (status, _, mut sse) = mcp.get_sse(&format!("{base}/sse"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let first = read_until(&mut sse, "\n\n").await;
    let endpoint = first
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap()
        .to_owned();
    let origin = base.rsplit_once('/').unwrap().0.to_owned();
    let http = mcp.http.clone();
    let post = move |body: Value| {
        let (http, url) = (http.clone(), format!("{origin}{endpoint}"));
        Box::pin(async move {
            tokio::time::timeout(BOUND, http.post(url).json(&body).send())
                .await
                .expect("a legacy post hung")
                .unwrap()
                .status()
        }) as std::pin::Pin<Box<dyn std::future::Future<Output = StatusCode> + Send>>
    };
    assert_eq!(
        post(McpHttp::initialize_body("2024-11-05")).await,
        StatusCode::ACCEPTED
    );
    read_until(&mut sse, "\"protocolVersion\":\"2024-11-05\"").await;
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(post(initialized).await, StatusCode::ACCEPTED);
    (sse, post)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxyd_restarted_with_redis_under_open_sessions_sends_clients_to_initialize_again() {
    let redis = RedisServer::start().await;
    let args = ["--storage", "redis", "--redis-url", &redis.url()];
    // a port no outgoing connection can take while proxyd is down
    let launch = Launch {
        port: tools::restartable_port(),
        ..Launch::default()
    };
    let mut first = Proxyd::launch(BIN, &args, &[], &launch).await.unwrap();
    let (_admin, mcp, url) = echo_upstream(&first, "m").await;
    let sid = mcp.open_session(&url, V).await;
    echo_ok(&mcp, &url, &sid, 2, "one").await;
    let (mut legacy, _) = legacy_session(&mcp, &format!("{}/m", first.url())).await;
    let pending = {
        let (mcp, url, sid) = (mcp.clone(), url.clone(), sid.clone());
        tokio::spawn(async move {
            let resp = mcp
                .http
                .post(&url)
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/json")
                .header("mcp-session-id", &sid)
                .body(tool_call(3, "hold", json!({})).to_string())
                .send()
                .await
                .ok()?;
            let headers = resp.headers().clone();
            let text = resp.text().await.ok()?;
            messages(&headers, &text).last().cloned()
        })
    };
    log_line(&first, &["got tools/call", "hold"]).await;
    let children: Vec<u32> = first
        .log()
        .iter()
        .filter(|l| l.contains("started in mode echo pid "))
        .map(|l| pid_in(l))
        .collect();
    assert!(
        children.len() >= 3,
        "primary and two sessions: {children:?}"
    );

    let status = first.terminate(BOUND).await.unwrap();
    assert!(status.success(), "{status}");
    let stopped = Instant::now();
    // the call in flight and the legacy stream end instead of hanging
    let answer = tokio::time::timeout(BOUND, pending)
        .await
        .expect("a call in flight hung across the restart")
        .unwrap();
    // an error for the call, or the connection closed under it
    assert!(
        answer.as_ref().is_none_or(|m| m["error"].is_object()),
        "{answer:?}"
    );
    let ended = tokio::time::timeout(BOUND, async {
        while let Ok(Some(_)) = legacy.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the legacy stream outlived proxyd");
    for child in &children {
        assert_eventually!(BOUND, !alive(*child));
    }

    let second = Proxyd::launch(BIN, &args, &[], &launch).await.unwrap();
    assert_eq!(second.url(), first.url(), "same address");
    let admin = Admin::new(&second);
    admin.wait_connected("m").await;
    // the old session is unknown: 404 with a JSON-RPC body, then initialize works
    let echo = tool_call(4, "echo", json!({"message": "old"}));
    let (s, _, body) = tokio::time::timeout(BOUND, mcp.post(&url, Some(&sid), &[], &echo))
        .await
        .expect("the old session hung");
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["data"]["code"], "session_not_found", "{body}");
    let again = mcp.open_session(&url, V).await;
    echo_ok(&mcp, &url, &again, 5, "two").await;
    let back_after = stopped.elapsed();
    let baseline = Baseline::take(second.pid().unwrap());
    let (legacy, post) = legacy_session(&mcp, &format!("{}/m", second.url())).await;
    assert_eq!(
        post(tool_call(6, "echo", json!({"message": "x"}))).await,
        StatusCode::ACCEPTED
    );
    drop(legacy);
    delete_session(&mcp, &url, &again).await;
    eprintln!(
        "fault figure: proxyd restarted with redis: clients re-initialized and served \
         {back_after:?} after the old process exited"
    );
    baseline.assert_back("restart").await;
}
