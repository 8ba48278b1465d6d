//! The `proxyd` binary end to end: configuration, storage, signals.

use std::time::Duration;

use mcp_test_support::assert_eventually;
use mcp_test_support::e2e::Admin;
use mcp_test_support::proxyd::{ADMIN_TOKEN, Proxyd};
use mcp_test_support::redis::RedisServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_proxyd");

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Registers `name` through the Admin API; the status.
async fn register(base: &str, name: &str) -> StatusCode {
    let def =
        json!({"name": name, "transport": "stdio", "command": "echo", "args": ["hello world"]});
    Admin::at(base)
        .send(Method::POST, "/admin/mcps", Some(def))
        .await
        .0
}

#[tokio::test]
async fn serves_the_admin_api_with_memory_storage_by_default() {
    let p = Proxyd::start(BIN, &[]).await.unwrap();
    let resp = client()
        .get(format!("{}/readyz", p.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["store"], "memory");
    assert_eq!(register(&p.url(), "echo-mcp").await, StatusCode::CREATED);
    assert_eq!(Admin::new(&p).names().await, ["echo-mcp"]);
    let resp = client()
        .get(format!("{}/admin/mcps", p.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn definitions_survive_a_restart_with_redis_storage() {
    let redis = RedisServer::start().await;
    let args = ["--storage", "redis", "--redis-url", &redis.url()];
    let mut first = Proxyd::start(BIN, &args).await.unwrap();
    assert_eq!(register(&first.url(), "durable").await, StatusCode::CREATED);
    let status = first.terminate(Duration::from_secs(15)).await.unwrap();
    assert!(status.success(), "{status:?}");
    let second = Proxyd::start(BIN, &args).await.unwrap();
    assert_eq!(Admin::new(&second).names().await, ["durable"]);
}

#[tokio::test]
async fn two_replicas_on_one_redis_see_each_others_registrations() {
    let redis = RedisServer::start().await;
    let args = ["--storage", "redis", "--redis-url", &redis.url()];
    let a = Proxyd::start(BIN, &args).await.unwrap();
    let b = Proxyd::start(BIN, &args).await.unwrap();
    assert_eq!(register(&a.url(), "from-a").await, StatusCode::CREATED);
    assert_eventually!(
        Duration::from_secs(1),
        Admin::new(&b).names().await == ["from-a"]
    );
    // A duplicate through the other replica is a conflict, not a second copy.
    assert_eq!(register(&b.url(), "from-a").await, StatusCode::CONFLICT);
}

#[tokio::test]
async fn redis_going_away_gives_503_and_recovers() {
    let mut redis = RedisServer::start().await;
    let args = ["--storage", "redis", "--redis-url", &redis.url()];
    let p = Proxyd::start(BIN, &args).await.unwrap();
    assert_eq!(register(&p.url(), "before").await, StatusCode::CREATED);
    redis.stop().await;
    let status = tokio::time::timeout(Duration::from_secs(15), register(&p.url(), "during"))
        .await
        .expect("a write while redis is down must not hang");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let ready = client()
        .get(format!("{}/readyz", p.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Reads are answered from what this replica runs, marked as such.
    let admin = Admin::new(&p);
    let (s, headers, body) = admin.request(Method::GET, "/admin/mcps", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let why = headers["x-mcp-proxy-store-unavailable"].to_str().unwrap();
    assert!(why.contains("unavailable"), "{why}");
    assert_eq!(body["mcps"][0]["definition"]["name"], "before", "{body}");
    let (s, headers, _) = admin
        .request(Method::GET, "/admin/mcps/before", None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(headers.contains_key("x-mcp-proxy-store-unavailable"));
    let (s, _) = admin
        .send(Method::GET, "/admin/mcps/never-registered", None)
        .await;
    assert_eq!(
        s,
        StatusCode::SERVICE_UNAVAILABLE,
        "unknown here: cannot say"
    );
    redis.start_again().await;
    assert_eventually!(
        Duration::from_secs(20),
        register(&p.url(), "after").await == StatusCode::CREATED
    );
}

#[tokio::test]
async fn refuses_a_public_address_with_the_default_admin_token() {
    let out = tokio::process::Command::new(BIN)
        .args(["--host", "0.0.0.0", "--port", "0"])
        .env("MCP_PROXY_ADMIN_TOKENS", "[\"CHANGE_ME_ADMIN_TOKEN\"]")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("default admin token"), "{stderr}");

    let out = tokio::process::Command::new(BIN)
        .args(["--host", "0.0.0.0", "--check-config"])
        .env("MCP_PROXY_ADMIN_TOKENS", "[\"short\"]")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a short token is refused too");
}

#[tokio::test]
async fn check_config_prints_the_effective_configuration_redacted() {
    let out = tokio::process::Command::new(BIN)
        .args(["--check-config", "--port", "9999"])
        .env("MCP_PROXY_ADMIN_TOKENS", "[\"very-secret-admin-token-1\"]")
        .env("MCP_PROXY_SHUTDOWN_TIMEOUT", "3s")
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("port = 9999"), "{stdout}");
    assert!(stdout.contains("shutdown_timeout = \"3s\""), "{stdout}");
    assert!(!stdout.contains("very-secret"), "{stdout}");

    let out = tokio::process::Command::new(BIN)
        .args(["--check-config"])
        .env("MCP_PROXY_ADMIN_ALLOW_IPS", "[\"not-an-ip\"]")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin_allow_ips"));
}

#[tokio::test]
async fn sigterm_stops_it_cleanly_and_json_logs_are_json() {
    let mut p = Proxyd::start(BIN, &["--log-format", "json"]).await.unwrap();
    assert_eq!(register(&p.url(), "x").await, StatusCode::CREATED);
    let status = p.terminate(Duration::from_secs(15)).await.unwrap();
    assert!(status.success(), "{status:?}");
    // The reader of its stderr may still be draining the pipe after the exit.
    assert_eventually!(
        Duration::from_secs(5),
        p.log().iter().any(|l| l.contains("proxyd stopped"))
    );
    let log = p.log();
    for line in &log {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string(), "{line}");
    }
}

#[tokio::test]
async fn the_ready_file_names_the_url_and_pid_and_goes_away_at_exit() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready.json");
    let mut child = tokio::process::Command::new(BIN)
        .args(["--host", "127.0.0.1", "--port", "0", "--ready-file"])
        .arg(&ready)
        .env("MCP_PROXY_ADMIN_TOKENS", format!("[\"{ADMIN_TOKEN}\"]"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    assert_eventually!(Duration::from_secs(30), ready.exists());
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&ready).unwrap()).unwrap();
    assert_eq!(v["pid"].as_u64(), child.id().map(u64::from), "{v}");
    let url = v["url"].as_str().unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{v}");
    // Written once listening: the address answers right away.
    let resp = client().get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["ready.json"], "{names:?}");

    let pid = child.id().unwrap().to_string();
    let kill = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!ready.exists(), "a stopped proxyd leaves no ready file");
}

#[tokio::test]
async fn an_unwritable_ready_file_stops_the_start_with_a_clear_error() {
    let out = tokio::process::Command::new(BIN)
        .args(["--host", "127.0.0.1", "--port", "0"])
        .args([
            "--ready-file",
            "/nonexistent-dir-of-proxyd-tests/ready.json",
        ])
        .env("MCP_PROXY_ADMIN_TOKENS", format!("[\"{ADMIN_TOKEN}\"]"))
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "{:?}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot write the ready file"), "{stderr}");
}
