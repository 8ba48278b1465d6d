//! `proxyctl` end to end: the real binary against a real `proxyd`, with real MCP servers
//! (`mcp-server-time` from `.tools/venv`, server-everything over streamable HTTP).

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use mcp_test_support::assert_eventually;
use mcp_test_support::proxyd::{ADMIN_TOKEN, Proxyd, proxyd_binary};
use mcp_test_support::tools::{EverythingMode, EverythingServer, mcp_server_time};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_proxyctl");

/// Runs `proxyctl ARGS` against `proxy`, with no config file of the user's in the way.
async fn ctl(proxy: &str, args: &[&str]) -> Output {
    ctl_with(proxy, args, &[]).await
}

async fn ctl_with(proxy: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(BIN)
        .args(args)
        .env("MCP_PROXY_URL", proxy)
        .env("MCP_PROXY_TOKEN", ADMIN_TOKEN)
        .env("XDG_CONFIG_HOME", home.path())
        .env_remove("MCP_PROXYCTL_CONFIG")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output();
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("proxyctl must not hang")
        .unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_out(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout {:?}, stderr {:?}", out(o), err(o)))
}

fn assert_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        out(o),
        err(o)
    );
}

async fn state(proxy: &str, name: &str) -> String {
    let o = ctl(proxy, &["get", name, "--json"]).await;
    if !o.status.success() {
        return format!("absent ({})", err(&o).trim());
    }
    json_out(&o)["status"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn add_list_call_import_export_rm_against_a_real_proxyd() {
    let p = Proxyd::start(proxyd_binary(), &[]).await.unwrap();
    let url = p.url();
    let time = mcp_server_time();
    let time = time.to_str().unwrap();

    // add a real stdio server and wait for it
    let o = ctl(
        &url,
        &["add", "time", "--", time, "--local-timezone", "UTC"],
    )
    .await;
    assert_code(&o, 0);
    assert!(out(&o).contains("time: connected, 2 tools"), "{}", out(&o));
    assert!(out(&o).contains(&format!("{url}/time/mcp")), "{}", out(&o));

    // list: a table, and JSON for scripts
    let o = ctl(&url, &["list"]).await;
    assert_code(&o, 0);
    let table = out(&o);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("time ") && l.contains("connected")),
        "{table}"
    );
    let o = ctl(&url, &["list", "--json"]).await;
    assert_eq!(json_out(&o)[0]["definition"]["source"], "api");

    // tools and a real call; an argument typed after the schema
    let o = ctl(&url, &["tools", "--server", "time"]).await;
    assert!(out(&o).contains("get_current_time"), "{}", out(&o));
    let o = ctl(
        &url,
        &[
            "call",
            "time",
            "get_current_time",
            "--arg",
            "timezone=Asia/Tokyo",
        ],
    )
    .await;
    assert_code(&o, 0);
    assert!(
        out(&o).contains("\"timezone\": \"Asia/Tokyo\""),
        "{}",
        out(&o)
    );
    let o = ctl(
        &url,
        &[
            "call",
            "time",
            "get_current_time",
            "--args",
            r#"{"timezone":"Nowhere/Land"}"#,
        ],
    )
    .await;
    assert_code(&o, 8);
    assert!(out(&o).contains("Invalid timezone"), "{}", out(&o));

    // import a sample mcpServers file: a stdio and an HTTP entry
    let everything = EverythingServer::start(EverythingMode::StreamableHttp).await;
    let dir = tempfile::tempdir().unwrap();
    let sample = dir.path().join("claude_desktop_config.json");
    std::fs::write(
        &sample,
        serde_json::to_string_pretty(&json!({"mcpServers": {
            "clock": {"command": time, "args": ["--local-timezone", "Europe/Paris"]},
            "everything": {"url": everything.url()},
        }}))
        .unwrap(),
    )
    .unwrap();
    let file = sample.to_str().unwrap();
    let o = ctl(&url, &["import", file]).await;
    assert_code(&o, 0);
    assert!(
        out(&o).contains("2 created, 0 updated, 0 unchanged, 0 skipped"),
        "{}",
        out(&o)
    );
    assert_eventually!(
        Duration::from_secs(30),
        state(&url, "clock").await == "connected"
    );
    assert_eventually!(
        Duration::from_secs(30),
        state(&url, "everything").await == "connected"
    );
    let o = ctl(&url, &["get", "everything", "--json"]).await;
    assert_eq!(json_out(&o)["definition"]["transport"], "streamable-http");
    let o = ctl(
        &url,
        &[
            "call",
            "everything",
            "echo",
            "--arg",
            "message=through the proxy",
        ],
    )
    .await;
    assert_code(&o, 0);
    assert!(out(&o).contains("through the proxy"), "{}", out(&o));
    // again: idempotent
    let o = ctl(&url, &["import", file, "--json"]).await;
    let report = json_out(&o);
    assert_eq!(
        (report["created"].as_u64(), report["unchanged"].as_u64()),
        (Some(0), Some(2))
    );

    // export: what a client pastes
    let o = ctl(&url, &["export"]).await;
    assert_code(&o, 0);
    let exported = json_out(&o);
    for name in ["time", "clock", "everything"] {
        assert_eq!(
            exported["mcpServers"][name]["url"],
            format!("{url}/{name}/mcp")
        );
        assert_eq!(exported["mcpServers"][name]["type"], "http");
    }
    let o = ctl(&url, &["export", "time", "--format", "vscode", "--sse"]).await;
    let exported = json_out(&o);
    assert_eq!(
        exported["servers"]["time"]["url"],
        format!("{url}/time/sse")
    );
    assert!(exported["servers"].get("clock").is_none());

    // rm, then it is gone
    let o = ctl(&url, &["rm", "time", "clock", "everything"]).await;
    assert_code(&o, 0);
    let o = ctl(&url, &["get", "time"]).await;
    assert_code(&o, 5);
    assert!(err(&o).contains("not found"), "{}", err(&o));
    let o = ctl(&url, &["rm", "time"]).await;
    assert_code(&o, 5);
    let o = ctl(&url, &["rm", "time", "--ignore-missing"]).await;
    assert_code(&o, 0);
}

#[tokio::test]
async fn import_of_bad_entries_reports_each_one_and_loses_nothing() {
    let p = Proxyd::start(proxyd_binary(), &[]).await.unwrap();
    let url = p.url();
    // An existing server with settings an mcpServers entry cannot carry.
    let dir = tempfile::tempdir().unwrap();
    let def = dir.path().join("keep.json");
    std::fs::write(
        &def,
        r#"{"name":"keep","transport":"streamable-http","url":"http://127.0.0.1:1/mcp",
            "timeout":"7s","autoReconnect":false,"tags":["prod"],
            "toolFilter":{"mode":"block","list":["rm"]}}"#,
    )
    .unwrap();
    let o = ctl(&url, &["apply", "-f", def.to_str().unwrap()]).await;
    assert_code(&o, 0);
    assert!(out(&o).contains("created"), "{}", out(&o));
    let sample = dir.path().join("mcp.json");
    std::fs::write(
        &sample,
        r#"{
  // JSON with comments, as VS Code writes it
  "mcpServers": {
    "keep": {"url": "http://127.0.0.1:1/v2/mcp", "type": "http"},
    "my server": {"command": "true"},
    "unsure": {"url": "http://127.0.0.1:1/api"},
    "websocket": {"url": "ws://127.0.0.1:1/ws", "type": "websocket"},
    "line": {"command": "npx -y @modelcontextprotocol/server-everything"},
    "nothing": {"args": ["--flag"]},
    "off": {"command": "true", "disabled": true},
    "good": {"url": "http://127.0.0.1:1/sse", "autoApprove": ["x"]},
  }
}"#,
    )
    .unwrap();
    let file = sample.to_str().unwrap();
    let o = ctl(&url, &["import", file, "--json"]).await;
    assert_code(&o, 9);
    let report = json_out(&o);
    let result = |name: &str| {
        report["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no result for {name}: {report}"))
            .clone()
    };
    assert_eq!(result("keep")["action"], "updated");
    assert_eq!(result("my server")["code"], "invalid");
    assert!(
        result("my server")["reason"]
            .as_str()
            .unwrap()
            .contains("my-server")
    );
    assert_eq!(result("unsure")["code"], "ambiguous_transport");
    assert_eq!(
        result("unsure")["choices"],
        json!(["sse", "streamable-http"])
    );
    assert_eq!(result("websocket")["code"], "invalid");
    assert_eq!(result("line")["code"], "invalid");
    assert!(
        result("line")["reason"]
            .as_str()
            .unwrap()
            .contains(r#""command": ["npx","-y","@modelcontextprotocol/server-everything"]"#),
        "{}",
        result("line")
    );
    assert_eq!(result("nothing")["code"], "invalid");
    assert_eq!(result("off")["code"], "disabled");
    assert_eq!(result("good")["action"], "created");
    assert_eq!(result("good")["transport"], "sse");
    assert!(
        result("good")["notes"][0]
            .as_str()
            .unwrap()
            .contains("autoApprove")
    );
    assert_eq!(
        report["results"].as_array().unwrap().len(),
        8,
        "one result per entry"
    );

    // Nothing was lost: the update kept what the format cannot say.
    let o = ctl(&url, &["get", "keep", "--json"]).await;
    let keep = json_out(&o)["definition"].clone();
    assert_eq!(keep["url"], "http://127.0.0.1:1/v2/mcp");
    assert_eq!(keep["timeout"], "7s");
    assert_eq!(keep["tags"], json!(["prod"]));
    assert_eq!(keep["toolFilter"]["list"], json!(["rm"]));
    let o = ctl(&url, &["list", "--json"]).await;
    let names: Vec<String> = json_out(&o)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["definition"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["good", "keep"]);

    // Told the transport, the ambiguous entry goes in; the rest is unchanged.
    let o = ctl(
        &url,
        &["import", file, "--transport", "unsure=streamable-http"],
    )
    .await;
    assert_code(&o, 9);
    let text = out(&o);
    assert!(
        text.contains("1 created, 0 updated, 2 unchanged, 5 skipped"),
        "{text}"
    );
    // A dry run changes nothing.
    let o = ctl(&url, &["rm", "unsure"]).await;
    assert_code(&o, 0);
    let o = ctl(
        &url,
        &[
            "import",
            file,
            "--dry-run",
            "--transport",
            "unsure=sse",
            "--json",
        ],
    )
    .await;
    assert_eq!(json_out(&o)["created"], 1);
    assert_eq!(
        state(&url, "unsure").await.split(' ').next(),
        Some("absent")
    );
    // A file that is not JSON at all is refused before anything is sent.
    std::fs::write(&sample, "{ not json").unwrap();
    let o = ctl(&url, &["import", file]).await;
    assert_code(&o, 6);
    assert!(err(&o).contains("invalid json"), "{}", err(&o));
}

#[tokio::test]
async fn a_program_that_does_not_speak_mcp_is_reported_at_once() {
    let p = Proxyd::start(proxyd_binary(), &[]).await.unwrap();
    let o = ctl(&p.url(), &["add", "echo-mcp", "--", "echo", "hello world"]).await;
    assert_code(&o, 9);
    let text = err(&o);
    assert!(text.contains("does not speak MCP over stdio"), "{text}");
    assert!(text.contains("\"hello world\""), "{text}");
    // A command line in the string form is refused with the array form to write.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("line.json");
    std::fs::write(
        &file,
        r#"{"name":"line","transport":"stdio","command":"npx -y @modelcontextprotocol/server-everything"}"#,
    )
    .unwrap();
    let o = ctl(&p.url(), &["add", "-f", file.to_str().unwrap()]).await;
    assert_code(&o, 6);
    assert!(
        err(&o).contains(r#""command": ["npx","-y","@modelcontextprotocol/server-everything"]"#),
        "{}",
        err(&o)
    );
}

#[tokio::test]
async fn apply_is_idempotent_and_edit_goes_through_the_editor() {
    let p = Proxyd::start(proxyd_binary(), &[]).await.unwrap();
    let url = p.url();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("servers.toml");
    std::fs::write(
        &file,
        "[[servers]]\nname = \"a\"\ntransport = \"streamable-http\"\nurl = \"http://127.0.0.1:1/mcp\"\n\
         auto_reconnect = false\n\n[[servers]]\nname = \"b\"\ntransport = \"sse\"\n\
         url = \"http://127.0.0.1:1/sse\"\nauto_reconnect = false\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let o = ctl(&url, &["apply", "-f", f, "--json"]).await;
    let actions: Vec<Value> = json_out(&o)
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].clone())
        .collect();
    assert_eq!(actions, [json!("created"), json!("created")]);
    let o = ctl(&url, &["apply", "-f", f, "--json"]).await;
    let actions: Vec<Value> = json_out(&o)
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].clone())
        .collect();
    assert_eq!(actions, [json!("unchanged"), json!("unchanged")]);

    // An "editor" that changes the timeout.
    let editor = dir.path().join("editor.sh");
    std::fs::write(&editor, "#!/bin/sh\nsed -i 's/\"30s\"/\"9s\"/' \"$1\"\n").unwrap();
    make_executable(&editor);
    let o = ctl_with(
        &url,
        &["edit", "a"],
        &[("VISUAL", editor.to_str().unwrap())],
    )
    .await;
    assert_code(&o, 0);
    assert!(out(&o).contains("a: updated"), "{}", out(&o));
    let o = ctl(&url, &["get", "a", "--json"]).await;
    assert_eq!(json_out(&o)["definition"]["timeout"], "9s");
    // An edit the proxy refuses is kept, not lost.
    std::fs::write(&editor, "#!/bin/sh\nsed -i 's/\"9s\"/\"0s\"/' \"$1\"\n").unwrap();
    let o = ctl_with(
        &url,
        &["edit", "a"],
        &[("VISUAL", editor.to_str().unwrap())],
    )
    .await;
    assert_code(&o, 6);
    assert!(err(&o).contains("your edit is kept in"), "{}", err(&o));
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn exit_codes_say_what_failed_and_help_has_examples() {
    let o = ctl("http://127.0.0.1:1", &["list"]).await;
    assert_code(&o, 3);
    assert!(err(&o).contains("hint: is proxyd running?"), "{}", err(&o));
    let p = Proxyd::start(proxyd_binary(), &[]).await.unwrap();
    let o = ctl_with(&p.url(), &["list"], &[("MCP_PROXY_TOKEN", "wrong-token")]).await;
    assert_code(&o, 4);
    // The URL and token from a config file, when neither flag nor environment says.
    let cfg = tempfile::tempdir().unwrap();
    let file = cfg.path().join("proxyctl.toml");
    std::fs::write(
        &file,
        format!("url = \"{}\"\ntoken = \"{ADMIN_TOKEN}\"\n", p.url()),
    )
    .unwrap();
    let run = tokio::process::Command::new(BIN)
        .args(["--config", file.to_str().unwrap(), "status", "--json"])
        .env_remove("MCP_PROXY_URL")
        .env_remove("MCP_PROXY_TOKEN")
        .output()
        .await
        .unwrap();
    assert_code(&run, 0);
    assert_eq!(json_out(&run)["ready"], true);
    let o = ctl(&p.url(), &["watch", "--count", "1"]).await;
    assert_code(&o, 0);
    let o = ctl(&p.url(), &["nonsense"]).await;
    assert_code(&o, 2);
    let o = ctl(&p.url(), &["call", "--help"]).await;
    assert!(out(&o).contains("Examples:"), "{}", out(&o));
    let o = ctl(&p.url(), &["completions", "bash"]).await;
    assert_code(&o, 0);
    assert!(out(&o).contains("proxyctl"), "{}", out(&o));
}

#[tokio::test]
async fn groups_add_list_get_tools_rm_against_a_real_proxyd() {
    let p = Proxyd::start(proxyd_binary(), &[]).await.unwrap();
    let url = p.url();
    let time = mcp_server_time();
    let o = ctl(&url, &["add", "time", "--", time.to_str().unwrap()]).await;
    assert_code(&o, 0);

    // a group over a registered server and one that is not (yet)
    let o = ctl(
        &url,
        &[
            "groups",
            "add",
            "team",
            "--member",
            "time",
            "--member",
            "later",
            "--prefix",
            "always",
            "--separator",
            "-",
            "--description",
            "the team's tools",
        ],
    )
    .await;
    assert_code(&o, 0);
    assert!(out(&o).contains("team: created, 2 tools"), "{}", out(&o));
    assert!(out(&o).contains(&format!("{url}/team/mcp")), "{}", out(&o));
    assert!(
        err(&o).contains("\"later\" is not registered"),
        "{}",
        err(&o)
    );

    // the table lists the built-in group too
    let o = ctl(&url, &["groups"]).await;
    assert_code(&o, 0);
    let table = out(&o);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("mcp ")), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("team ") && l.contains("1/2 connected")),
        "{table}"
    );
    let o = ctl(&url, &["groups", "get", "team"]).await;
    assert_code(&o, 0);
    assert!(out(&o).contains("later (not registered)"), "{}", out(&o));
    let o = ctl(&url, &["groups", "get", "team", "--json"]).await;
    assert_eq!(json_out(&o)["group"]["prefix"], "always");

    // the merged tools with their origin
    let o = ctl(&url, &["groups", "tools", "team", "--json"]).await;
    let listing = json_out(&o);
    assert_eq!(
        listing["tools"][0]["name"], "time-get_current_time",
        "{listing}"
    );
    assert_eq!(listing["tools"][0]["mcpName"], "time");
    assert_eq!(listing["tools"][0]["originalName"], "get_current_time");
    assert_code(&o, 9); // "later" is reported in errors
    let o = ctl(&url, &["groups", "tools", "team"]).await;
    assert!(out(&o).contains("time-convert_time"), "{}", out(&o));

    // errors say what failed: a taken name, bad input, the built-in group, a missing one
    let o = ctl(&url, &["groups", "add", "time"]).await;
    assert_code(&o, 7);
    let o = ctl(&url, &["groups", "add", "bad", "--separator", "::"]).await;
    assert_code(&o, 6);
    assert!(err(&o).contains("separator"), "{}", err(&o));
    let o = ctl(&url, &["groups", "rm", "mcp"]).await;
    assert_code(&o, 7);
    let o = ctl(&url, &["groups", "rm", "team", "nobody"]).await;
    assert_code(&o, 5);
    assert!(out(&o).contains("team: removed"), "{}", out(&o));
    let o = ctl(&url, &["groups", "rm", "nobody", "--ignore-missing"]).await;
    assert_code(&o, 0);
    let o = ctl(&url, &["groups", "get", "team"]).await;
    assert_code(&o, 5);

    // from a file
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.json");
    std::fs::write(
        &file,
        r#"{"name": "filed", "members": ["time"], // comments are fine
            "overrides": {"time.convert_time": {"hidden": true}}}"#,
    )
    .unwrap();
    let o = ctl(&url, &["groups", "add", "-f", file.to_str().unwrap()]).await;
    assert_code(&o, 0);
    assert!(out(&o).contains("filed: created, 1 tools"), "{}", out(&o));
}
