//! A tiny stdio MCP server for fault injection. The first argument picks the mode:
//!
//! - `echo` (default): a well-behaved server with two paginated tools (`echo`, `big`).
//! - `garbage`: prints a non-JSON line first, then behaves like `echo`.
//! - `exit-mid-request`: on `tools/call`, writes to stderr and exits with status 3.
//! - `hang`: answers `initialize` and nothing else; reports each
//!   `notifications/cancelled` as a `notifications/message` notification.
//! - `silent`: never writes anything.
//! - `slow`: like `echo`, and also lists its `slow` tool (for Admin API calls, which
//!   check the catalog).
//! - `big <bytes>`: like `echo`, but first sends a notification of about `<bytes>` bytes
//!   (default 2 MiB) on one line.
//!
//! `tools/call` of `big` with `{"bytes": n}` answers with a text of `n` bytes;
//! `tools/call` of `hold` is never answered; `tools/call` of `slow` with `{"ms": n}` is
//! answered (`slow call completed after n ms`) n ms later, other requests meanwhile.
//! Every `tools/call` is reported on stderr
//! (`mock-stdio: got tools/call "<name>" id <id> pid <pid>`), and so is every
//! `notifications/cancelled` (`mock-stdio: pid <pid> cancelled <requestId>`); the first line
//! says `mock-stdio: started in mode <mode> pid <pid>`.
//! `tools/call` of `ask` with `{"message": m, "wait_for": n}` is held until `n` asks are
//! waiting; then, newest first, each gets a log message `asked: m` and its answer (so
//! each log message arrives while its own request is the newest one in flight).
//! `tools/call` of `interview` with `{"rounds": [["elicitation/create", "roots/list"],
//! ["sampling/createMessage"]]}` asks the client, round by round, every request of a
//! round at once (ids `iv-N`), waits for all their answers, and answers the call with
//! the JSON of every answer received, in the order asked (`isError` when one of them
//! was an error). Each answer (`result` or
//! `error`) and a `notifications/cancelled` for the call, which ends the interview, are
//! reported on stderr.

use std::io::{BufRead, Write};

use serde_json::{Value, json};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("echo", String::as_str);
    let stdin = std::io::stdin();
    // Not locked for good: a `slow` answer is written from its own thread (each `writeln!`
    // takes the lock once, so lines never interleave).
    let mut out = std::io::stdout();
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
    let mut interview: Option<Interview> = None;
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let method = msg["method"].as_str().unwrap_or_default();
        let id = msg.get("id").cloned();
        if msg.get("method").is_none() {
            // A response: an answer to the interview, or nothing we asked.
            if let Some(iv) = interview.as_mut()
                && let Some(done) = iv.answered(&msg, &mut out)
            {
                writeln!(out, "{done}").unwrap();
                out.flush().unwrap();
                interview = None;
            }
            continue;
        }
        if method == "notifications/cancelled"
            && interview
                .as_ref()
                .is_some_and(|iv| iv.call == msg["params"]["requestId"])
        {
            eprintln!("mock-stdio: interview cancelled");
            interview = None;
            continue;
        }
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
                    let mut page = vec![tool("big")];
                    if mode == "slow" {
                        page.push(tool("slow"));
                    }
                    json!({"tools": page})
                } else {
                    json!({"tools": [tool("echo")], "nextCursor": "page-2"})
                };
                json!({"jsonrpc": "2.0", "id": id, "result": result})
            }
            ("tools/call", Some(id)) if msg["params"]["name"] == "interview" => {
                let rounds = msg["params"]["arguments"]["rounds"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let mut iv = Interview {
                    call: id,
                    rounds: rounds.into_iter().collect(),
                    pending: Vec::new(),
                    answers: Vec::new(),
                    next: 0,
                    round: 0,
                };
                match iv.ask_round(&mut out) {
                    Some(done) => done,
                    None => {
                        interview = Some(iv);
                        continue;
                    }
                }
            }
            ("tools/call", Some(id)) if msg["params"]["name"] == "slow" => {
                let ms = msg["params"]["arguments"]["ms"].as_u64().unwrap_or(1000);
                std::thread::spawn(move || {
                    std::thread::sleep(std::time::Duration::from_millis(ms));
                    let answer = json!({"jsonrpc": "2.0", "id": id, "result": {
                        "content": [{"type": "text", "text": format!("slow call completed after {ms} ms")}]
                    }});
                    let mut out = std::io::stdout();
                    writeln!(out, "{answer}").unwrap();
                    out.flush().unwrap();
                });
                continue;
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

/// A `tools/call` of `interview` in progress.
struct Interview {
    call: Value,
    rounds: std::collections::VecDeque<Value>,
    /// Ids asked in this round and not answered.
    pending: Vec<String>,
    answers: Vec<Value>,
    next: u64,
    round: u64,
}

impl Interview {
    /// Asks the next round; the call's answer when no round is left.
    fn ask_round(&mut self, out: &mut impl Write) -> Option<Value> {
        let Some(round) = self.rounds.pop_front() else {
            let failed = self.answers.iter().any(|a| a["error"] == true);
            let text = Value::Array(std::mem::take(&mut self.answers)).to_string();
            return Some(json!({"jsonrpc": "2.0", "id": self.call, "result": {
                "content": [{"type": "text", "text": text}],
                "isError": failed,
            }}));
        };
        self.round += 1;
        for method in round.as_array().cloned().unwrap_or_default() {
            let method = method.as_str().unwrap_or_default().to_owned();
            self.next += 1;
            let id = format!("iv-{}", self.next);
            let question = format!("round {} question {}", self.round, self.next);
            let params = match method.as_str() {
                "elicitation/create" => json!({"message": question, "requestedSchema": {
                    "type": "object", "properties": {"answer": {"type": "string"}}}}),
                "sampling/createMessage" => json!({"maxTokens": 10, "messages": [
                    {"role": "user", "content": {"type": "text", "text": question}}]}),
                _ => json!({}),
            };
            let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
            writeln!(out, "{request}").unwrap();
            self.pending.push(id);
        }
        out.flush().unwrap();
        None
    }

    /// Takes one answer; the call's answer once the last round is answered.
    fn answered(&mut self, msg: &Value, out: &mut impl Write) -> Option<Value> {
        let id = msg["id"].as_str()?;
        let at = self.pending.iter().position(|p| p == id)?;
        self.pending.remove(at);
        let answer = msg.get("result").or_else(|| msg.get("error")).cloned();
        let kind = if msg.get("error").is_some() {
            "error"
        } else {
            "result"
        };
        eprintln!("mock-stdio: interview got {kind} for {id}");
        self.answers
            .push(json!({"id": id, "answer": answer, "error": kind == "error"}));
        if self.pending.is_empty() {
            return self.ask_round(out);
        }
        None
    }
}
