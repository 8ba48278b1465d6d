//! Sessions that survive a replica: three proxyd on one real `redis-server`, behind a real
//! nginx balancing round robin with no stickiness, all on 127.0.0.1 and started here.

#[path = "sessions/support.rs"]
mod support;

use std::path::PathBuf;
use std::time::Duration;

use mcp_test_support::assert_eventually;
use mcp_test_support::proxyd::Proxyd;
use mcp_test_support::redis::RedisServer;
use mcp_test_support::tools::{self, EverythingMode, EverythingServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Admin, BIN, McpHttp};

const K1: &str = "k1:1111111111111111111111111111111111111111111111111111111111111111";
const K2: &str = "k2:2222222222222222222222222222222222222222222222222222222222222222";
const VERSION: &str = "2025-06-18";

/// nginx, round robin over the replicas, in a directory of its own; killed on drop.
struct Nginx {
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
    port: u16,
}

fn nginx_binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("nginx missing: run scripts/install-test-deps.sh")
}

impl Nginx {
    async fn start(backends: &[u16]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = tools::free_port();
        let d = dir.path().display();
        let servers: String = backends
            .iter()
            .map(|p| format!("    server 127.0.0.1:{p} max_fails=0;\n"))
            .collect();
        // One process (no master, no user switch), everything under the temp directory.
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
             scgi_temp_path {d}/scgi;\n  upstream proxyd {{\n{servers}  }}\n  server {{\n    \
             listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://proxyd;\n      \
             proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      \
             proxy_set_header Host 127.0.0.1;\n      proxy_buffering off;\n      \
             proxy_read_timeout 300s;\n      proxy_next_upstream error timeout non_idempotent;\n    }}\n  }}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = tokio::process::Command::new(nginx_binary())
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn nginx");
        assert_eventually!(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        );
        Self {
            _child: child,
            _dir: dir,
            port,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// Three replicas on one Redis, sharing session keys.
struct Cluster {
    redis: RedisServer,
    replicas: Vec<Proxyd>,
}

async fn replica(redis: &RedisServer, id: &str, keys: &str, extra: &[(&str, &str)]) -> Proxyd {
    // A bare `id:KEY` is a list of one.
    let keys = if keys.starts_with('[') {
        keys.to_owned()
    } else {
        format!("[\"{keys}\"]")
    };
    let mut env = vec![
        ("MCP_PROXY_SESSION_KEYS", keys.as_str()),
        ("MCP_PROXY_REPLICA_ID", id),
        ("RUST_LOG", "info,mcp_proxy_http=debug,mcp_proxy_core=debug"),
    ];
    env.extend_from_slice(extra);
    Proxyd::start_with_env(
        BIN,
        &["--storage", "redis", "--redis-url", &redis.url()],
        &env,
    )
    .await
    .unwrap()
}

impl Cluster {
    async fn start(keys: [&str; 3], extra: &[(&str, &str)]) -> Self {
        let redis = RedisServer::start().await;
        let mut replicas = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            replicas.push(replica(&redis, &format!("r{i}"), k, extra).await);
        }
        Self { redis, replicas }
    }

    fn ports(&self) -> Vec<u16> {
        self.replicas.iter().map(Proxyd::port).collect()
    }

    /// Registers `def` on the first replica; every replica sees it (through Redis) and
    /// connects.
    async fn register(&self, def: Value) {
        let name = def["name"].as_str().unwrap().to_owned();
        Admin::new(&self.replicas[0]).register(def).await;
        for r in &self.replicas {
            let admin = Admin::new(r);
            assert_eventually!(Duration::from_secs(30), {
                let (s, _) = admin
                    .send(reqwest::Method::GET, &format!("/admin/mcps/{name}"), None)
                    .await;
                s == StatusCode::OK
            });
            admin.wait_connected(&name).await;
        }
    }
}

fn echo(id: u64, msg: &str) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"echo","arguments":{"message":msg}}})
}

fn resumed(p: &Proxyd) -> usize {
    support::log_count(p, "resumed a session started on another replica")
}

fn forwarded(p: &Proxyd) -> usize {
    support::log_count(p, "forwarding to the holder")
}

fn token_refusal(body: &Value) -> &str {
    body["error"]["data"]["details"]["reason"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plain_http_session_goes_on_over_every_replica_behind_round_robin_and_ends_everywhere() {
    let upstream = EverythingServer::start(EverythingMode::StreamableHttp).await;
    let cluster = Cluster::start([K1, K1, K1], &[]).await;
    cluster
        .register(serde_json::to_value(upstream.def("evh")).unwrap())
        .await;
    let nginx = Nginx::start(&cluster.ports()).await;
    let url = nginx.url("/evh/mcp");
    let http = McpHttp::new();
    let sid = http.open_session(&url, VERSION).await;
    assert!(sid.starts_with("mcps1.k1."), "a sealed token: {sid}");
    for i in 0..9 {
        let (s, _, body) = http
            .post(&url, Some(&sid), &[], &echo(10 + i, &format!("m{i}")))
            .await;
        assert_eq!(s, StatusCode::OK, "call {i}: {body}");
        let text = body["result"]["content"][0]["text"].as_str().unwrap_or("");
        assert!(text.contains(&format!("m{i}")), "call {i}: {body}");
    }
    // Progress comes back on whichever replica serves the call.
    for i in 0..3 {
        let call = json!({"jsonrpc":"2.0","id":100 + i,"method":"tools/call","params":{
            "name":"trigger-long-running-operation","arguments":{"duration":0.3,"steps":3},
            "_meta":{"progressToken":format!("p{i}")}}});
        let msgs = http.post_collect(&url, Some(&sid), &call).await;
        let progress = msgs
            .iter()
            .filter(|m| m["method"] == "notifications/progress")
            .count();
        assert!(progress >= 1, "call {i}: {msgs:?}");
        assert!(msgs.last().unwrap()["result"].is_object(), "{msgs:?}");
    }
    // Round robin: the two replicas that did not start the session resumed it.
    let resumes: Vec<usize> = cluster.replicas.iter().map(resumed).collect();
    assert_eq!(
        resumes.iter().filter(|n| **n >= 1).count(),
        2,
        "resumes per replica: {resumes:?}"
    );
    // No new initialize upstream: one upstream session, continued by the others.
    let resumed_fresh: usize = cluster
        .replicas
        .iter()
        .map(|p| support::log_count(p, "fresh=true"))
        .sum();
    assert_eq!(resumed_fresh, 0);
    // A GET stream opens on any replica.
    let (s, _, _) = http
        .get_sse(
            &url,
            &[("mcp-session-id", &sid), ("mcp-protocol-version", VERSION)],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // DELETE ends it everywhere: the upstream session is gone and the registry entry
    // too. A copy another replica still holds learns it from the upstream at its next
    // request (a JSON-RPC error, never a result); from then on every replica says 404.
    let del = http
        .http
        .delete(&url)
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), StatusCode::OK);
    let mut statuses = Vec::new();
    for i in 0..6 {
        let (s, _, body) = http.post(&url, Some(&sid), &[], &echo(200 + i, "x")).await;
        assert!(body["error"].is_object(), "after delete, try {i}: {body}");
        statuses.push(s);
    }
    assert!(
        statuses[3..].iter().all(|s| *s == StatusCode::NOT_FOUND),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_python_sdk_keeps_its_session_across_replicas() {
    let upstream = EverythingServer::start(EverythingMode::StreamableHttp).await;
    let cluster = Cluster::start([K1, K1, K1], &[]).await;
    cluster
        .register(serde_json::to_value(upstream.def("evh")).unwrap())
        .await;
    let nginx = Nginx::start(&cluster.ports()).await;
    support::python_client("streamable", &nginx.url("/evh/mcp"), None).await;
    let resumes: usize = cluster.replicas.iter().map(resumed).sum();
    assert!(resumes >= 2, "the SDK's requests landed on other replicas");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_mid_session_does_not_end_the_session() {
    let upstream = EverythingServer::start(EverythingMode::StreamableHttp).await;
    let mut cluster = Cluster::start([K1, K1, K1], &[]).await;
    cluster
        .register(serde_json::to_value(upstream.def("evh")).unwrap())
        .await;
    let nginx = Nginx::start(&cluster.ports()).await;
    let url = nginx.url("/evh/mcp");
    let http = McpHttp::new();
    let sid = http.open_session(&url, VERSION).await;
    for i in 0..3 {
        let (s, _, body) = http.post(&url, Some(&sid), &[], &echo(i, "before")).await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    cluster.replicas[1].kill().await;
    for i in 0..9 {
        let (s, _, body) = http
            .post(&url, Some(&sid), &[], &echo(50 + i, "after"))
            .await;
        assert_eq!(s, StatusCode::OK, "call {i} after the kill: {body}");
    }
    // A replica that never held it continues it too.
    let direct = format!("{}/evh/mcp", cluster.replicas[2].url());
    let (s, _, body) = http
        .post(&direct, Some(&sid), &[], &echo(99, "direct"))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_rotation_first_key_seals_every_key_opens() {
    let upstream = EverythingServer::start(EverythingMode::StreamableHttp).await;
    // Mid-rotation: r0 still seals with k1; r1 seals with k2 and opens k1; r2 holds k2 only.
    let both = format!("[\"{K2}\",\"{K1}\"]");
    let cluster =
        Cluster::start([&format!("[\"{K1}\"]"), &both, &format!("[\"{K2}\"]")], &[]).await;
    cluster
        .register(serde_json::to_value(upstream.def("evh")).unwrap())
        .await;
    let url = |i: usize| format!("{}/evh/mcp", cluster.replicas[i].url());
    let http = McpHttp::new();
    let old = http.open_session(&url(0), VERSION).await;
    assert!(old.starts_with("mcps1.k1."), "{old}");
    let (s, _, body) = http
        .post(&url(1), Some(&old), &[], &echo(1, "k1 on r1"))
        .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "an old token opens where k1 is still listed: {body}"
    );
    let (s, _, body) = http
        .post(&url(2), Some(&old), &[], &echo(2, "k1 on r2"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(token_refusal(&body), "unknown_key", "{body}");
    let new = http.open_session(&url(1), VERSION).await;
    assert!(new.starts_with("mcps1.k2."), "the first key seals: {new}");
    let (s, _, body) = http
        .post(&url(2), Some(&new), &[], &echo(3, "k2 on r2"))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_expired_and_foreign_tokens_get_404() {
    let upstream = EverythingServer::start(EverythingMode::StreamableHttp).await;
    let tokens = "[\"token-of-alice-0123456789\",\"token-of-bob-0123456789ab\"]";
    let cluster = Cluster::start(
        [K1, K1, K1],
        &[
            ("MCP_PROXY_GLOBAL_AUTH_TOKENS", tokens),
            ("MCP_PROXY_SESSION_TOKEN_LIFETIME", "3s"),
        ],
    )
    .await;
    cluster
        .register(serde_json::to_value(upstream.def("evh")).unwrap())
        .await;
    let nginx = Nginx::start(&cluster.ports()).await;
    let url = nginx.url("/evh/mcp");
    let http = McpHttp::new();
    let alice = [(
        "authorization".to_owned(),
        "Bearer token-of-alice-0123456789".to_owned(),
    )];
    let bob = [(
        "authorization".to_owned(),
        "Bearer token-of-bob-0123456789ab".to_owned(),
    )];
    let (s, h, body) = http
        .post(&url, None, &alice, &McpHttp::initialize_body(VERSION))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let sid = h["mcp-session-id"].to_str().unwrap().to_owned();
    let (s, _, body) = http.post(&url, Some(&sid), &alice, &echo(1, "mine")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // Another client's token: on every replica.
    for i in 0..3 {
        let (s, _, body) = http
            .post(&url, Some(&sid), &bob, &echo(2 + i, "theirs"))
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(token_refusal(&body), "other_principal", "{body}");
        assert_eq!(body["error"]["code"], -32600, "{body}");
    }
    // A changed byte.
    let mut forged = sid.clone().into_bytes();
    let i = forged.len() - 5;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let (s, _, body) = http.post(&url, Some(&forged), &alice, &echo(9, "x")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(token_refusal(&body), "forged", "{body}");
    // A plain id, as a single replica would issue.
    let (s, _, body) = http
        .post(
            &url,
            Some("0123456789abcdef0123456789abcdef"),
            &alice,
            &echo(10, "x"),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(token_refusal(&body), "malformed", "{body}");
    // Past its lifetime (3s): refused, whatever the session's activity.
    assert_eventually!(Duration::from_secs(15), {
        let (s, _, body) = http.post(&url, Some(&sid), &alice, &echo(11, "late")).await;
        s == StatusCode::NOT_FOUND && token_refusal(&body) == "expired"
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stdio_session_stays_with_its_live_owner_and_is_taken_over_when_it_dies() {
    let mut cluster = Cluster::start([K1, K1, K1], &[]).await;
    cluster
        .register(serde_json::to_value(tools::everything_stdio_def("evs")).unwrap())
        .await;
    let url = |c: &Cluster, i: usize| format!("{}/evs/mcp", c.replicas[i].url());
    let http = McpHttp::new();
    let sid = http.open_session(&url(&cluster, 0), VERSION).await;
    let (s, _, body) = http
        .post(&url(&cluster, 0), Some(&sid), &[], &echo(1, "owner"))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // Its process lives on r0, which is alive: another replica forwards to it.
    let (s, _, body) = http
        .post(&url(&cluster, 1), Some(&sid), &[], &echo(2, "b"))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(forwarded(&cluster.replicas[1]) >= 1);
    // The owner dies: while its heartbeat is current the session is not taken over, and
    // a replica that cannot reach it says so.
    cluster.replicas[0].kill().await;
    let on_r1 = url(&cluster, 1);
    let (s, _, body) = http.post(&on_r1, Some(&sid), &[], &echo(5, "x")).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        body["error"]["data"]["code"], "replica_unreachable",
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("replica r0"),
        "{body}"
    );
    // Once it expires, the next replica takes the session over with a fresh upstream
    // process and tells the client to list tools again.
    let mut last;
    assert_eventually!(Duration::from_secs(30), {
        let (s, _, body) = http.post(&on_r1, Some(&sid), &[], &echo(3, "taken")).await;
        last = body;
        s == StatusCode::OK
    });
    assert!(
        last["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("taken"),
        "{last}"
    );
    support::log_line(&cluster.replicas[1], &["took over the session"]).await;
    // The session is r1's now: r2 forwards to it.
    let (s, _, body) = http
        .post(&url(&cluster, 2), Some(&sid), &[], &echo(4, "c"))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(support::log_count(&cluster.replicas[2], "took over"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_redis_away_held_sessions_go_on_and_resumes_fail_clearly() {
    let upstream = EverythingServer::start(EverythingMode::StreamableHttp).await;
    let mut cluster = Cluster::start([K1, K1, K1], &[]).await;
    cluster
        .register(serde_json::to_value(upstream.def("evh")).unwrap())
        .await;
    let url = |i: usize| format!("{}/evh/mcp", cluster.replicas[i].url());
    let http = McpHttp::new();
    let sid = http.open_session(&url(0), VERSION).await;
    let (s, _, body) = http
        .post(&url(1), Some(&sid), &[], &echo(1, "resumed"))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    cluster.redis.stop().await;
    for (i, replica) in [0, 1, 0, 1].into_iter().enumerate() {
        let (s, _, body) = http
            .post(&url(replica), Some(&sid), &[], &echo(10 + i as u64, "held"))
            .await;
        assert_eq!(s, StatusCode::OK, "replica {replica} holds it: {body}");
    }
    let (s, _, body) = http
        .post(&url(2), Some(&sid), &[], &echo(20, "resume"))
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        body["error"]["data"]["code"], "session_registry_unavailable",
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("registry"),
        "{body}"
    );
    // Redis back (empty): held sessions still go on.
    cluster.redis.start_again().await;
    let (s, _, body) = http
        .post(&url(0), Some(&sid), &[], &echo(30, "again"))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_legacy_message_on_another_replica_is_forwarded_to_the_replica_holding_its_stream() {
    let upstream = EverythingServer::start(EverythingMode::StreamableHttp).await;
    let mut cluster = Cluster::start([K1, K1, K1], &[]).await;
    cluster
        .register(serde_json::to_value(upstream.def("evh")).unwrap())
        .await;
    let http = McpHttp::new();
    let (s, _, mut stream) = http
        .get_sse(&format!("{}/evh/sse", cluster.replicas[0].url()), &[])
        .await;
    assert_eq!(s, StatusCode::OK);
    let first = support::read_until(&mut stream, "\n\n").await;
    let path = first
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or_else(|| panic!("no endpoint event: {first}"))
        .trim()
        .to_owned();
    assert!(path.ends_with("&replica=r0"), "{first}");
    let post = |i: usize, body: &Value| {
        http.http
            .post(format!("{}{path}", cluster.replicas[i].url()))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    // Another replica does not hold the stream: it forwards the post to the one that
    // does, and the answer arrives on the stream, once.
    let resp = post(1, &init).await.unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let seen = support::read_until(&mut stream, "protocolVersion").await;
    assert_eq!(seen.matches("\"id\":1").count(), 1, "{seen}");
    assert_eq!(forwarded(&cluster.replicas[1]), 1);
    // A session id this replica never issued, naming itself: plain 404.
    let own = path.replace("&replica=r0", "&replica=r1");
    let resp = http
        .http
        .post(format!("{}{own}", cluster.replicas[1].url()))
        .header("content-type", "application/json")
        .body(init.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // The holder dies: once its heartbeat is gone, the session is gone too (404).
    drop(stream);
    cluster.replicas[0].kill().await;
    let url1 = format!("{}{path}", cluster.replicas[1].url());
    assert_eventually!(Duration::from_secs(30), {
        let resp = http
            .http
            .post(&url1)
            .header("content-type", "application/json")
            .body(init.to_string())
            .send()
            .await
            .unwrap();
        resp.status() == StatusCode::NOT_FOUND
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_moves_again_after_redis_comes_back_empty() {
    let upstream = EverythingServer::start(EverythingMode::StreamableHttp).await;
    let mut cluster = Cluster::start([K1, K1, K1], &[]).await;
    cluster
        .register(serde_json::to_value(upstream.def("evh")).unwrap())
        .await;
    let url = |c: &Cluster, i: usize| format!("{}/evh/mcp", c.replicas[i].url());
    let http = McpHttp::new();
    let sid = http.open_session(&url(&cluster, 0), VERSION).await;
    // Redis restarts without its data: the session's entry is gone.
    cluster.redis.stop().await;
    cluster.redis.start_again().await;
    // r0 sees its heartbeat vanished and writes the entry back; r1 then resumes it.
    let line = support::log_line(&cluster.replicas[0], &["the registry came back empty"]).await;
    assert!(line.contains("written=1"), "{line}");
    let (s, _, body) = http
        .post(&url(&cluster, 1), Some(&sid), &[], &echo(1, "moved"))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(
        body["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("moved"),
        "{body}"
    );
    assert_eq!(resumed(&cluster.replicas[1]), 1);
}

/// Which replica of `cluster` owns the stdio session: the only one that has not
/// forwarded any of its requests (after requests landed on every replica).
fn owner_of(cluster: &Cluster) -> usize {
    let owners: Vec<usize> = (0..cluster.replicas.len())
        .filter(|i| forwarded(&cluster.replicas[*i]) == 0)
        .collect();
    assert_eq!(owners.len(), 1, "one owner, the others forward: {owners:?}");
    owners[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stdio_session_behind_round_robin_is_served_by_its_owner_on_every_request() {
    let cluster = Cluster::start([K1, K1, K1], &[]).await;
    cluster
        .register(serde_json::to_value(tools::everything_stdio_def("evs")).unwrap())
        .await;
    let nginx = Nginx::start(&cluster.ports()).await;
    let url = nginx.url("/evs/mcp");
    let http = McpHttp::new();
    let sid = http.open_session(&url, VERSION).await;
    for i in 0..6 {
        let (s, _, body) = http
            .post(&url, Some(&sid), &[], &echo(10 + i, &format!("m{i}")))
            .await;
        assert_eq!(s, StatusCode::OK, "call {i}: {body}");
        let text = body["result"]["content"][0]["text"].as_str().unwrap_or("");
        assert!(text.contains(&format!("m{i}")), "call {i}: {body}");
    }
    // Progress streams back through whichever replica the call landed on.
    for i in 0..3 {
        let call = json!({"jsonrpc":"2.0","id":100 + i,"method":"tools/call","params":{
            "name":"trigger-long-running-operation","arguments":{"duration":0.3,"steps":3},
            "_meta":{"progressToken":format!("p{i}")}}});
        let msgs = http.post_collect(&url, Some(&sid), &call).await;
        let progress = msgs
            .iter()
            .filter(|m| m["method"] == "notifications/progress")
            .count();
        assert!(progress >= 1, "call {i}: {msgs:?}");
        assert!(msgs.last().unwrap()["result"].is_object(), "{msgs:?}");
    }
    // One process, on the owner: nobody resumed or took the session over.
    let owner = owner_of(&cluster);
    for r in &cluster.replicas {
        assert_eq!(support::log_count(r, "took over"), 0);
        assert_eq!(resumed(r), 0);
    }
    let others: Vec<usize> = (0..3).filter(|i| *i != owner).collect();
    let direct = |i: usize| format!("{}/evs/mcp", cluster.replicas[i].url());
    // A GET stream opened on a replica that is not the owner carries the owner's
    // notifications.
    let headers = [
        ("mcp-session-id", sid.as_str()),
        ("mcp-protocol-version", VERSION),
    ];
    let (s, h, mut stream) = http.get_sse(&direct(others[0]), &headers).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let toggle = json!({"jsonrpc":"2.0","id":300,"method":"tools/call","params":{
        "name":"toggle-simulated-logging","arguments":{}}});
    let (s, _, body) = http.post(&url, Some(&sid), &[], &toggle).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let seen = support::read_until(&mut stream, "notifications/message").await;
    assert!(
        seen.contains("id: 0-"),
        "events of the standalone stream: {seen}"
    );
    // The client goes away: the forwarded stream ends on the owner too, so the session
    // takes a new standalone stream (one at a time), here through the other replica.
    drop(stream);
    assert_eventually!(Duration::from_secs(15), {
        let (s, _, again) = http.get_sse(&direct(others[1]), &headers).await;
        drop(again);
        s == StatusCode::OK
    });
    // DELETE on a replica that is not the owner ends the session on the owner.
    let del = http
        .http
        .delete(direct(others[0]))
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), StatusCode::OK);
    for i in 0..3 {
        let (s, _, body) = http
            .post(&direct(i), Some(&sid), &[], &echo(400, "x"))
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "replica {i} after delete: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_python_sdk_keeps_a_stdio_session_across_replicas() {
    let cluster = Cluster::start([K1, K1, K1], &[]).await;
    cluster
        .register(serde_json::to_value(tools::everything_stdio_def("evs")).unwrap())
        .await;
    let nginx = Nginx::start(&cluster.ports()).await;
    support::python_client("streamable", &nginx.url("/evs/mcp"), None).await;
    let forwards: usize = cluster.replicas.iter().map(forwarded).sum();
    assert!(forwards >= 2, "the SDK's requests landed on other replicas");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_python_sdk_keeps_a_legacy_sse_session_behind_round_robin() {
    let upstream = EverythingServer::start(EverythingMode::StreamableHttp).await;
    let cluster = Cluster::start([K1, K1, K1], &[]).await;
    cluster
        .register(serde_json::to_value(upstream.def("evh")).unwrap())
        .await;
    let nginx = Nginx::start(&cluster.ports()).await;
    support::python_client("sse", &nginx.url("/evh/sse"), None).await;
    let forwards: usize = cluster.replicas.iter().map(forwarded).sum();
    assert!(forwards >= 2, "the SDK's posts landed on other replicas");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn legacy_posts_landing_on_every_replica_are_answered_on_the_stream() {
    let upstream = EverythingServer::start(EverythingMode::StreamableHttp).await;
    let cluster = Cluster::start([K1, K1, K1], &[]).await;
    cluster
        .register(serde_json::to_value(upstream.def("evh")).unwrap())
        .await;
    let nginx = Nginx::start(&cluster.ports()).await;
    let http = McpHttp::new();
    let (s, _, mut stream) = http.get_sse(&nginx.url("/evh/sse"), &[]).await;
    assert_eq!(s, StatusCode::OK);
    let first = support::read_until(&mut stream, "\n\n").await;
    let path = first
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or_else(|| panic!("no endpoint event: {first}"))
        .trim()
        .to_owned();
    let post = |body: Value| {
        http.http
            .post(nginx.url(&path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    assert_eq!(post(init).await.unwrap().status(), StatusCode::ACCEPTED);
    let mut seen = support::read_until(&mut stream, "protocolVersion").await;
    let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    assert_eq!(post(note).await.unwrap().status(), StatusCode::ACCEPTED);
    for i in 2..8 {
        let resp = post(echo(i, &format!("legacy{i}"))).await.unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "post {i}");
    }
    // The answers come in any order.
    for i in 2..8 {
        let needle = format!("legacy{i}");
        if !seen.contains(&needle) {
            seen.push_str(&support::read_until(&mut stream, &needle).await);
        }
    }
    for i in 2..8 {
        assert_eq!(seen.matches(&format!("\"id\":{i}")).count(), 1, "{seen}");
    }
    // Round robin: eight posts, two replicas that do not hold the stream forwarded theirs.
    let forwards: Vec<usize> = cluster.replicas.iter().map(forwarded).collect();
    assert_eq!(
        forwards.iter().filter(|n| **n >= 1).count(),
        2,
        "forwards per replica: {forwards:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn last_event_id_landing_on_another_replica_replays_there_while_the_writer_lives() {
    let upstream = EverythingServer::start(EverythingMode::StreamableHttp).await;
    let mut cluster = Cluster::start([K1, K1, K1], &[]).await;
    cluster
        .register(serde_json::to_value(upstream.def("evh")).unwrap())
        .await;
    let url = |c: &Cluster, i: usize| format!("{}/evh/mcp", c.replicas[i].url());
    let http = McpHttp::new();
    let sid = http.open_session(&url(&cluster, 0), VERSION).await;
    let call = json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{
        "name":"trigger-long-running-operation","arguments":{"duration":1.0,"steps":4},
        "_meta":{"progressToken":"lei"}}});
    let mut resp = http
        .request(&url(&cluster, 0), Some(&sid), &[])
        .body(call.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let head = support::read_until(&mut resp, "notifications/progress").await;
    let first_id = head
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap_or_else(|| panic!("no event id: {head}"))
        .trim()
        .to_owned();
    assert!(
        first_id.ends_with("@r0"),
        "ids name the replica: {first_id}"
    );
    // The client loses the answer; it resumes on another replica.
    drop(resp);
    let headers = [
        ("mcp-session-id", sid.as_str()),
        ("mcp-protocol-version", VERSION),
        ("last-event-id", first_id.as_str()),
    ];
    let (s, _, mut replay) = http.get_sse(&url(&cluster, 1), &headers).await;
    assert_eq!(s, StatusCode::OK);
    let rest = support::read_until(&mut replay, "\"result\"").await;
    assert!(
        !rest.contains(&format!("id: {first_id}\n")),
        "after it only: {rest}"
    );
    assert!(rest.contains("\"id\":7"), "{rest}");
    assert_eq!(forwarded(&cluster.replicas[1]), 1);
    // The writer dies: while its heartbeat is current, the resume says it cannot reach
    // it; once it is gone, the events are gone (the clear 400).
    drop(replay);
    cluster.replicas[0].kill().await;
    let (s, _, gone) = http.get_sse(&url(&cluster, 1), &headers).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = gone.json().await.unwrap();
    assert_eq!(
        body["error"]["data"]["code"], "replica_unreachable",
        "{body}"
    );
    let mut last;
    assert_eventually!(Duration::from_secs(30), {
        let (s, _, gone) = http.get_sse(&url(&cluster, 2), &headers).await;
        last = gone.json().await.unwrap_or(Value::Null);
        s == StatusCode::BAD_REQUEST
    });
    assert_eq!(last["error"]["data"]["code"], "unknown_event_id", "{last}");
}

/// A stand-in replica: records the head of every request it gets, answers 202.
async fn fake_replica() -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = conn.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    while buf.len() < end + 4 + length {
                        let Ok(n) = conn.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    buf.drain(..end + 4 + length);
                    let _ = tx.send(head);
                    let answer = b"HTTP/1.1 202 Accepted\r\ncontent-length: 8\r\n\r\nAccepted";
                    if conn.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, rx)
}

fn header_of<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forwarded_headers_are_sealed_refused_when_forged_or_expired_and_never_forwarded_again() {
    use mcp_store::SessionRegistry;
    let cluster = Cluster::start([K1, K1, K1], &[]).await;
    let upstream = EverythingServer::start(EverythingMode::StreamableHttp).await;
    cluster
        .register(serde_json::to_value(upstream.def("evh")).unwrap())
        .await;
    // A replica "rx" whose heartbeat names a listener of this test.
    let registry = mcp_store::RedisStore::connect(mcp_store::RedisConfig::new(cluster.redis.url()))
        .await
        .unwrap();
    let (port, mut heads) = fake_replica().await;
    registry
        .heartbeat(
            "rx",
            &format!("http://127.0.0.1:{port}"),
            Duration::from_secs(300),
        )
        .await
        .unwrap();
    let http = McpHttp::new();
    let path = "/evh/message?sessionId=0123456789abcdef&replica=rx";
    let post = |i: usize, path: &str, forwarded: Option<&str>| {
        let mut req = http
            .http
            .post(format!("{}{path}", cluster.replicas[i].url()))
            .header("content-type", "application/json")
            .header("connection", "keep-alive, x-hop")
            .header("x-hop", "1")
            .body(echo(1, "f").to_string());
        if let Some(f) = forwarded {
            req = req.header("mcp-proxy-forwarded", f);
        }
        req.send()
    };
    // r1 forwards the post to rx, as sent, marked with a sealed header.
    let resp = post(1, path, None).await.unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let head = heads.recv().await.unwrap();
    assert!(head.starts_with(&format!("POST {path} HTTP/1.1")), "{head}");
    assert_eq!(header_of(&head, "content-type"), Some("application/json"));
    assert_eq!(header_of(&head, "x-hop"), None, "hop-by-hop: {head}");
    let sealed = header_of(&head, "mcp-proxy-forwarded")
        .unwrap_or_else(|| panic!("no forwarded header: {head}"))
        .to_owned();
    assert!(sealed.starts_with("mcpf1.k1."), "{sealed}");
    let refusal = |body: &Value| {
        body["error"]["data"]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    // Presented again (within its lifetime) to r2: it opens, and r2, which does not hold
    // the session either, answers without forwarding it again.
    let resp = post(2, path, Some(&sealed)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(refusal(&body), "session_on_other_replica", "{body}");
    assert_eq!(body["error"]["data"]["details"]["replica"], "rx", "{body}");
    // On another path, changed, or made up: refused, and nothing is forwarded.
    let other = path.replace("0123", "3210");
    let mut forged = sealed.clone().into_bytes();
    let i = forged.len() - 4;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for (what, path, header) in [
        ("another path", other.as_str(), sealed.as_str()),
        ("forged", path, forged.as_str()),
        ("made up", path, "mcpf1.k1.AAAA"),
    ] {
        let resp = post(2, path, Some(header)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{what}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(refusal(&body), "forwarded_header_refused", "{what}: {body}");
        assert_eq!(body["error"]["code"], -32600, "{body}");
    }
    // Past its lifetime (10 s): refused.
    let mut last;
    assert_eventually!(Duration::from_secs(30), {
        let resp = post(0, path, Some(&sealed)).await.unwrap();
        let s = resp.status();
        last = resp.json().await.unwrap_or(Value::Null);
        s == StatusCode::BAD_REQUEST
    });
    assert_eq!(refusal(&last), "forwarded_header_refused", "{last}");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("expired"),
        "{last}"
    );
    assert!(
        heads.try_recv().is_err(),
        "nothing but r1's post reached rx"
    );
    assert_eq!(forwarded(&cluster.replicas[0]), 0);
    assert_eq!(forwarded(&cluster.replicas[2]), 0);
    // A holder whose address refuses connections: 503 replica_unreachable.
    let closed = tools::free_port();
    registry
        .heartbeat(
            "rz",
            &format!("http://127.0.0.1:{closed}"),
            Duration::from_secs(300),
        )
        .await
        .unwrap();
    let resp = post(1, &path.replace("rx", "rz"), None).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(refusal(&body), "replica_unreachable", "{body}");
}

/// POSTs a 2026-07-28 request; the status and the last JSON-RPC message of the answer.
async fn post_modern(http: &McpHttp, url: &str, body: &Value) -> (StatusCode, Value) {
    let resp = http
        .request(url, None, &[])
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", body["method"].as_str().unwrap_or_default())
        .header(
            "mcp-name",
            body["params"]["name"].as_str().unwrap_or_default(),
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let text = resp.text().await.unwrap();
    let last = support::messages(&headers, &text).last().cloned();
    (status, last.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_input_required_retry_landing_on_another_replica_reaches_its_waiting_call() {
    let cluster = Cluster::start([K1, K1, K1], &[]).await;
    cluster
        .register(serde_json::to_value(tools::mock_stdio_def("iv", &[])).unwrap())
        .await;
    let url = |i: usize| format!("{}/iv/mcp", cluster.replicas[i].url());
    let http = McpHttp::new();
    let interview = |id: &str, retry: Value| {
        let mut params = json!({
            "name": "interview",
            "arguments": {"rounds": [["elicitation/create"]]},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
                "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
            },
        });
        if let Value::Object(extra) = retry {
            params.as_object_mut().unwrap().extend(extra);
        }
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
    };
    // The upstream's question parks its call on r0.
    let (s, first) = post_modern(&http, &url(0), &interview("q1", json!({}))).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    let state = first["result"]["requestState"].as_str().unwrap().to_owned();
    let key = first["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    // The retry lands on r1: forwarded to r0, where the call takes the answer and ends.
    let answer = json!({key: {"action": "accept", "content": {"answer": "from-r1"}}});
    let retry = interview(
        "q2",
        json!({"requestState": state, "inputResponses": answer}),
    );
    let (s, done) = post_modern(&http, &url(1), &retry).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["id"], "q2", "{done}");
    let text = done["result"]["content"][0]["text"].as_str().unwrap_or("");
    assert!(
        text.contains("from-r1"),
        "the upstream got the answer: {done}"
    );
    assert_eq!(forwarded(&cluster.replicas[1]), 1);
    // Spent: presented again, anywhere, it finds nothing waiting.
    let (_, spent) = post_modern(&http, &url(2), &retry).await;
    assert_eq!(
        spent["error"]["data"]["code"], "request_state_gone",
        "{spent}"
    );
}
