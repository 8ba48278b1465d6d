//! Declared servers end to end: `[[servers]]` and `servers_dir` with a real `proxyd`,
//! across restarts, SIGHUP, file changes, bad files, and two replicas on one Redis.

use std::path::Path;
use std::time::Duration;

use mcp_test_support::assert_eventually;
use mcp_test_support::e2e::Admin;
use mcp_test_support::proxyd::Proxyd;
use mcp_test_support::redis::RedisServer;
use mcp_test_support::tools::mcp_server_time;
use reqwest::{Method, StatusCode};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_proxyd");
const SECRET: &str = "never-logged-secret-4711";

/// Registers `name` through the Admin API; the status.
async fn register(base: &str, name: &str) -> StatusCode {
    let def = json!({"name": name, "transport": "streamable-http",
                      "url": "http://127.0.0.1:1/mcp", "autoReconnect": false});
    Admin::at(base)
        .send(Method::POST, "/admin/mcps", Some(def))
        .await
        .0
}

async fn sighup(p: &Proxyd) {
    let pid = p.pid().unwrap().to_string();
    let ok = tokio::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .await
        .unwrap();
    assert!(ok.success());
}

/// Writes a file whole, as editors do (a new file renamed over the old one).
fn write(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// An HTTP server nobody listens for, that never retries: cheap to declare.
fn quiet(name: &str, kind: &str, path: &str) -> String {
    format!(
        "[[servers]]\nname = \"{name}\"\ntransport = \"{kind}\"\nurl = \"http://127.0.0.1:1/{path}\"\n\
         auto_reconnect = false\nheaders = {{ Authorization = \"Bearer ${{DECLARED_SECRET}}\" }}\n"
    )
}

#[tokio::test]
async fn declared_servers_follow_restarts_sighup_and_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let servers_d = dir.path().join("servers.d");
    std::fs::create_dir(&servers_d).unwrap();
    let config = dir.path().join("proxyd.toml");
    let time = mcp_server_time();
    let head = format!(
        "servers_dir = \"{}\"\nservers_poll_interval = \"0s\"\n\n[[servers]]\nname = \"clock\"\n\
         transport = \"stdio\"\ncommand = \"{}\"\nenv = {{ UNUSED_TOKEN = \"${{DECLARED_SECRET}}\" }}\n\n",
        servers_d.display(),
        time.display()
    );
    write(
        &config,
        &(head.clone() + &quiet("remote", "streamable-http", "mcp")),
    );
    write(
        &servers_d.join("from-file.toml"),
        "transport = \"sse\"\nurl = \"http://127.0.0.1:1/sse\"\nauto_reconnect = false\n",
    );
    let args = ["--config", config.to_str().unwrap()];
    let env = [("DECLARED_SECRET", SECRET)];
    let mut p = Proxyd::start_with_env(BIN, &args, &env).await.unwrap();
    let url = p.url();
    let admin = Admin::at(&url);
    assert_eq!(admin.names().await, ["clock", "from-file", "remote"]);
    for e in admin.entries().await {
        assert_eq!(e["definition"]["source"], "config", "{e}");
    }
    assert_eq!(
        admin.entry("remote").await["definition"]["headers"]["Authorization"],
        "***"
    );
    assert_eventually!(
        Duration::from_secs(30),
        admin.entry("clock").await["status"]["state"] == "connected"
    );

    // The Admin API does not change a declared server; it registers others beside them.
    admin
        .refused(
            Method::DELETE,
            "/admin/mcps/clock",
            None,
            None,
            StatusCode::CONFLICT,
            "declared_in_config",
        )
        .await;
    let mut def = admin.entry("remote").await["definition"].clone();
    def["timeout"] = json!("3s");
    let (s, _) = admin
        .send(Method::PUT, "/admin/mcps/remote", Some(def))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(register(&url, "api-one").await, StatusCode::CREATED);

    // After a restart (memory store): the declared servers are back, api-one is not.
    let status = p.terminate(Duration::from_secs(15)).await.unwrap();
    assert!(status.success());
    let log = p.log();
    assert!(
        !log.iter().any(|l| l.contains(SECRET)),
        "the secret was logged"
    );
    let mut p = Proxyd::start_with_env(BIN, &args, &env).await.unwrap();
    let url = p.url();
    let admin = Admin::at(&url);
    assert_eq!(admin.names().await, ["clock", "from-file", "remote"]);
    assert_eq!(register(&url, "api-two").await, StatusCode::CREATED);

    // SIGHUP: remote removed, clock changed, third added; the watcher turned on too.
    let head = head.replace("\"0s\"", "\"100ms\"");
    let changed = head.replace(
        &format!("command = \"{}\"\n", time.display()),
        &format!(
            "command = \"{}\"\nargs = [\"--local-timezone\", \"UTC\"]\n",
            time.display()
        ),
    );
    write(
        &config,
        &(changed + &quiet("third", "streamable-http", "mcp")),
    );
    sighup(&p).await;
    assert_eventually!(
        Duration::from_secs(10),
        admin.names().await == ["api-two", "clock", "from-file", "third"]
    );
    assert_eq!(
        admin.entry("clock").await["definition"]["args"],
        json!(["--local-timezone", "UTC"])
    );
    assert!(
        p.log()
            .iter()
            .any(|l| l.contains("reloading declared servers") && l.contains("SIGHUP")),
        "{:?}",
        p.log()
    );

    // A new file in servers_dir is picked up without a signal, and so is a removal.
    write(
        &servers_d.join("more.json"),
        r#"{"mcpServers": {"from-json": {"url": "http://127.0.0.1:1/mcp"}}}"#,
    );
    assert_eventually!(
        Duration::from_secs(10),
        admin.names().await.contains(&"from-json".to_owned())
    );
    std::fs::remove_file(servers_d.join("from-file.toml")).unwrap();
    assert_eventually!(
        Duration::from_secs(10),
        !admin.names().await.contains(&"from-file".to_owned())
    );

    // A broken file changes nothing and says why; fixed, the reload goes through.
    write(
        &servers_d.join("broken.toml"),
        "transport = \"stdio\"\ncommand = \n",
    );
    assert_eventually!(
        Duration::from_secs(10),
        p.log()
            .iter()
            .any(|l| l.contains("declared servers not reloaded") && l.contains("broken.toml"))
    );
    assert_eq!(
        admin.names().await,
        ["api-two", "clock", "from-json", "third"]
    );
    write(
        &servers_d.join("broken.toml"),
        "transport = \"sse\"\nurl = \"http://127.0.0.1:1/sse\"\nauto_reconnect = false\n",
    );
    assert_eventually!(
        Duration::from_secs(10),
        admin.names().await == ["api-two", "broken", "clock", "from-json", "third"]
    );
    assert_eq!(
        admin.entry("api-two").await["definition"]["source"],
        "api",
        "the admin api's server is never touched"
    );
    let status = p.terminate(Duration::from_secs(15)).await.unwrap();
    assert!(status.success());
    assert!(
        !p.log().iter().any(|l| l.contains(SECRET)),
        "the secret was logged"
    );
}

#[tokio::test]
async fn replicas_on_one_redis_share_declared_servers_and_only_declaring_ones_prune() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxyd.toml");
    write(
        &config,
        &format!(
            "servers_poll_interval = \"0s\"\n{}",
            quiet("shared-decl", "streamable-http", "mcp")
        ),
    );
    let storage = ["--storage", "redis", "--redis-url", &redis.url()];
    let mut declaring: Vec<&str> = storage.to_vec();
    declaring.extend(["--config", config.to_str().unwrap()]);
    let env = [("DECLARED_SECRET", SECRET)];
    let a = Proxyd::start_with_env(BIN, &declaring, &env).await.unwrap();
    let mut b = Proxyd::start(BIN, &storage).await.unwrap();
    assert_eventually!(
        Duration::from_secs(5),
        Admin::new(&b).names().await == ["shared-decl"]
    );
    assert_eq!(
        Admin::new(&b).entry("shared-decl").await["definition"]["source"],
        "config"
    );
    // B declares nothing: its restart leaves the declared server alone.
    b.terminate(Duration::from_secs(15)).await.unwrap();
    let b = Proxyd::start(BIN, &storage).await.unwrap();
    assert_eq!(Admin::new(&b).names().await, ["shared-decl"]);
    let (s, _) = Admin::new(&b)
        .send(Method::DELETE, "/admin/mcps/shared-decl", None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "declared, even seen from b");
    // A declares none any more: every replica drops it.
    write(&config, "servers_poll_interval = \"0s\"\nservers = []\n");
    sighup(&a).await;
    assert_eventually!(
        Duration::from_secs(10),
        Admin::new(&b).names().await.is_empty()
    );
    assert!(Admin::new(&a).names().await.is_empty());
}

#[tokio::test]
async fn check_config_lists_declared_servers_and_refuses_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxyd.toml");
    write(&config, &quiet("fine", "streamable-http", "mcp"));
    let out = tokio::process::Command::new(BIN)
        .args(["--check-config", "--config", config.to_str().unwrap()])
        .env("DECLARED_SECRET", SECRET)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("# declared servers (1): fine (servers[0])"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(SECRET) && stdout.contains("Authorization = \"***\""),
        "{stdout}"
    );
    // Without the variable, and with a command line in the string form: exit 2, both said.
    write(
        &config,
        &(quiet("fine", "streamable-http", "mcp")
            + "\n[[servers]]\nname = \"line\"\ntransport = \"stdio\"\ncommand = \"npx -y pkg\"\n"),
    );
    let out = tokio::process::Command::new(BIN)
        .args(["--check-config", "--config", config.to_str().unwrap()])
        .env_remove("DECLARED_SECRET")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "servers[0]: headers.Authorization: environment variable DECLARED_SECRET is not set"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"servers[1]: command: "npx -y pkg" is one program name"#),
        "{stderr}"
    );
}
