//! Sessions that survive a replica: three proxyd on one real `redis-server`, behind a real
//! nginx balancing round robin with no stickiness, all on 127.0.0.1 and started here.

#[path = "replicas/conformance.rs"]
mod conformance;
#[path = "replicas/forwarding.rs"]
mod forwarding;

use std::path::PathBuf;
use std::time::Duration;

use mcp_test_support::assert_eventually;
use mcp_test_support::e2e::{self as support, Admin, McpHttp};
use mcp_test_support::proxyd::Proxyd;
use mcp_test_support::redis::RedisServer;
use mcp_test_support::tools::{self, EverythingMode, EverythingServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_proxyd");

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

/// Three replicas sharing key `K1`, with `evh`: server-everything over streamable HTTP
/// (per-client), registered on them. The upstream lives as long as its value.
async fn evh_cluster() -> (EverythingServer, Cluster) {
    let upstream = EverythingServer::start(EverythingMode::StreamableHttp).await;
    let cluster = Cluster::start([K1, K1, K1], &[]).await;
    cluster
        .register(serde_json::to_value(upstream.def("evh")).unwrap())
        .await;
    (upstream, cluster)
}

fn echo(id: u64, msg: &str) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"echo","arguments":{"message":msg}}})
}

/// `echoes` echo calls and three calls with progress in session `sid` at `url`: each
/// answered, each progress call with at least one progress notification before its result.
async fn calls_with_progress(http: &McpHttp, url: &str, sid: &str, echoes: u64) {
    for i in 0..echoes {
        let (s, _, body) = http
            .post(url, Some(sid), &[], &echo(10 + i, &format!("m{i}")))
            .await;
        assert_eq!(s, StatusCode::OK, "call {i}: {body}");
        let text = body["result"]["content"][0]["text"].as_str().unwrap_or("");
        assert!(text.contains(&format!("m{i}")), "call {i}: {body}");
    }
    for i in 0..3 {
        let call = json!({"jsonrpc":"2.0","id":100 + i,"method":"tools/call","params":{
            "name":"trigger-long-running-operation","arguments":{"duration":0.3,"steps":3},
            "_meta":{"progressToken":format!("p{i}")}}});
        let msgs = http.post_collect(url, Some(sid), &call).await;
        let progress = msgs
            .iter()
            .filter(|m| m["method"] == "notifications/progress")
            .count();
        assert!(progress >= 1, "call {i}: {msgs:?}");
        assert!(msgs.last().unwrap()["result"].is_object(), "{msgs:?}");
    }
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
    let (_upstream, cluster) = evh_cluster().await;
    let nginx = Nginx::start(&cluster.ports()).await;
    let url = nginx.url("/evh/mcp");
    let http = McpHttp::new();
    let sid = http.open_session(&url, VERSION).await;
    assert!(sid.starts_with("mcps1.k1."), "a sealed token: {sid}");
    // Echo calls, then calls with progress, each landing on whichever replica nginx picks.
    calls_with_progress(&http, &url, &sid, 9).await;
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
    let (_upstream, cluster) = evh_cluster().await;
    let nginx = Nginx::start(&cluster.ports()).await;
    support::python_client("streamable", &nginx.url("/evh/mcp"), None).await;
    let resumes: usize = cluster.replicas.iter().map(resumed).sum();
    assert!(resumes >= 2, "the SDK's requests landed on other replicas");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_mid_session_does_not_end_the_session() {
    let (_upstream, mut cluster) = evh_cluster().await;
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
    let (_upstream, mut cluster) = evh_cluster().await;
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
    let (_upstream, mut cluster) = evh_cluster().await;
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
    let (_upstream, mut cluster) = evh_cluster().await;
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
