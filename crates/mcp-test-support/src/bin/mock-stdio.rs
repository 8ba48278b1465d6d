//! A tiny stdio MCP server for fault injection. The first argument picks the mode:
//!
//! - `echo` (default): a well-behaved server with two paginated tools (`echo`, `big`).
//! - `garbage`: prints a non-JSON line first, then behaves like `echo`.
//! - `exit-mid-request`: on `tools/call`, writes to stderr and exits with status 3.
//! - `hang`: answers `initialize` and nothing else; reports each
//!   `notifications/cancelled` as a `notifications/message` notification.
//! - `silent`: never writes anything.
//! - `big <bytes>`: like `echo`, but first sends a notification of about `<bytes>` bytes
//!   (default 2 MiB) on one line.
//!
//! `tools/call` of `big` with `{"bytes": n}` answers with a text of `n` bytes;
//! `tools/call` of `hold` is never answered. Every `tools/call` is reported on stderr
//! (`mock-stdio: got tools/call "<name>" id <id> pid <pid>`), and so is every
//! `notifications/cancelled` (`mock-stdio: pid <pid> cancelled <requestId>`); the first line
//! says `mock-stdio: started in mode <mode> pid <pid>`.
//! `tools/call` of `ask` with `{"message": m, "wait_for": n}` is held until `n` asks are
//! waiting; then, newest first, each gets a log message `asked: m` and its answer (so
//! each log message arrives while its own request is the newest one in flight).

use std::io::{BufRead, Write};

use serde_json::{Value, json};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("echo", String::as_str);
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    match mode {
        "garbage" => {
            writeln!(out, "this is not json").unwrap();
            out.flush().unwrap();
        }
        "big" => {
            let bytes: usize = args.get(1).and_then(|b| b.parse().ok()).unwrap_or(2 << 20);
            let note = json!({"jsonrpc": "2.0", "method": "notifications/message",
                "params": {"level": "info", "data": "x".repeat(bytes)}});
            writeln!(out, "{note}").unwrap();
            out.flush().unwrap();
        }
        "silent" => {
            for _ in stdin.lock().lines() {}
            return;
        }
        _ => {}
    }
    let pid = std::process::id();
    eprintln!("mock-stdio: started in mode {mode} pid {pid}");
    let mut asks: Vec<(Value, String)> = Vec::new();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let method = msg["method"].as_str().unwrap_or_default();
        let id = msg.get("id").cloned();
        if method == "tools/call" {
            // What the server runs, for tests to read (with logEnabled, from the proxy's log).
            eprintln!(
                "mock-stdio: got tools/call {} id {} pid {pid}",
                msg["params"]["name"], msg["id"]
            );
        }
        if method == "notifications/cancelled" {
            eprintln!(
                "mock-stdio: pid {pid} cancelled {}",
                msg["params"]["requestId"]
            );
        }
        let reply = match (method, id) {
            ("notifications/cancelled", None) if mode == "hang" => json!({
                "jsonrpc": "2.0", "method": "notifications/message",
                "params": {"level": "info", "data": format!("cancelled {}", msg["params"]["requestId"])}
            }),
            (_, None) => continue,
            ("initialize", Some(id)) => {
                let asked = msg["params"]["protocolVersion"]
                    .as_str()
                    .unwrap_or("2025-06-18");
                json!({"jsonrpc": "2.0", "id": id, "result": {
                    "protocolVersion": asked,
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "mock-stdio", "version": "1.0.0"},
                }})
            }
            (_, Some(_)) if mode == "hang" => continue,
            ("tools/call", Some(_)) if msg["params"]["name"] == "hold" => continue,
            ("tools/call", Some(_)) if mode == "exit-mid-request" => {
                eprintln!("mock-stdio: fatal: crashing on purpose");
                std::process::exit(3);
            }
            ("ping", Some(id)) => json!({"jsonrpc": "2.0", "id": id, "result": {}}),
            ("tools/list", Some(id)) => {
                let tool = |name: &str| json!({"name": name, "inputSchema": {"type": "object"}});
                let result = if msg["params"]["cursor"] == "page-2" {
                    json!({"tools": [tool("big")]})
                } else {
                    json!({"tools": [tool("echo")], "nextCursor": "page-2"})
                };
                json!({"jsonrpc": "2.0", "id": id, "result": result})
            }
            ("tools/call", Some(id)) if msg["params"]["name"] == "ask" => {
                let args = &msg["params"]["arguments"];
                let message = args["message"].as_str().unwrap_or_default().to_owned();
                eprintln!("mock-stdio: holding ask {message}");
                asks.push((id, message));
                let wait_for = args["wait_for"].as_u64().unwrap_or(1) as usize;
                if asks.len() < wait_for {
                    continue;
                }
                while let Some((id, message)) = asks.pop() {
                    let note = json!({"jsonrpc": "2.0", "method": "notifications/message",
                        "params": {"level": "info", "data": format!("asked: {message}")}});
                    let answer = json!({"jsonrpc": "2.0", "id": id, "result": {
                        "content": [{"type": "text", "text": message}]
                    }});
                    writeln!(out, "{note}\n{answer}").unwrap();
                }
                out.flush().unwrap();
                continue;
            }
            ("tools/call", Some(id)) => {
                let args = &msg["params"]["arguments"];
                let text = match msg["params"]["name"].as_str() {
                    Some("big") => "y".repeat(args["bytes"].as_u64().unwrap_or(0) as usize),
                    _ => args["message"].as_str().unwrap_or_default().to_owned(),
                };
                json!({"jsonrpc": "2.0", "id": id, "result": {
                    "content": [{"type": "text", "text": text}]
                }})
            }
            (method, Some(id)) => json!({"jsonrpc": "2.0", "id": id, "error": {
                "code": -32601, "message": format!("unknown method {method}")
            }}),
        };
        writeln!(out, "{reply}").unwrap();
        out.flush().unwrap();
    }
}
