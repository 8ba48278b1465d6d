//! Helpers shared by the end-to-end tests: the Admin API, raw streamable HTTP requests that
//! read JSON or SSE answers, and the Python SDK client script.

#![allow(dead_code)]

use std::time::Duration;

use mcp_test_support::proxyd::{ADMIN_TOKEN, Proxyd};
use mcp_test_support::tools;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_proxyd");

pub(crate) struct Admin {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
}

impl Admin {
    pub(crate) fn new(p: &Proxyd) -> Self {
        Self {
            base: p.url(),
            // A connection per call: a proxyd with a short `listener.idle_timeout` closes
            // idle ones, and a pooled connection closed just as it is reused fails the call.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        }
    }

    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn register(&self, def: Value) {
        let (status, body) = self
            .send(reqwest::Method::POST, "/admin/mcps", Some(def))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    pub(crate) async fn status(&self, name: &str) -> Value {
        let (status, body) = self
            .send(reqwest::Method::GET, &format!("/admin/mcps/{name}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["status"].clone()
    }

    pub(crate) async fn state(&self, name: &str) -> String {
        self.status(name).await["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub(crate) async fn call(&self, mcp: &str, tool: &str, args: Value) -> (StatusCode, Value) {
        self.send(
            reqwest::Method::POST,
            "/admin/tools/call",
            Some(json!({"mcpName": mcp, "toolName": tool, "arguments": args})),
        )
        .await
    }

    /// The value of one Prometheus series (`name{labels}` as rendered), 0 when absent.
    pub(crate) async fn metric(&self, series: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    pub(crate) async fn wait_connected(&self, name: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let status = self.status(name).await;
            if status["state"] == "connected" {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} did not connect: {status}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Raw streamable HTTP requests.
#[derive(Clone)]
pub(crate) struct McpHttp {
    pub(crate) http: reqwest::Client,
}

impl McpHttp {
    pub(crate) fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(90))
                .build()
                .unwrap(),
        }
    }

    pub(crate) fn initialize_body(version: &str) -> Value {
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion": version, "capabilities": {},
            "clientInfo": {"name": "raw-test", "version": "1"}}})
    }

    pub(crate) fn request(
        &self,
        url: &str,
        session: Option<&str>,
        extra: &[(String, String)],
    ) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .post(url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json");
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        for (k, v) in extra {
            req = req.header(k, v);
        }
        req
    }

    /// POSTs `body`; returns the status, headers and the last JSON message of the answer
    /// (or the error body).
    pub(crate) async fn post(
        &self,
        url: &str,
        session: Option<&str>,
        extra: &[(String, String)],
        body: &Value,
    ) -> (StatusCode, HeaderMap, Value) {
        let resp = self
            .request(url, session, extra)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let text = resp.text().await.unwrap();
        let msgs = messages(&headers, &text);
        (status, headers, msgs.last().cloned().unwrap_or(Value::Null))
    }

    pub(crate) async fn post_raw(
        &self,
        url: &str,
        session: Option<&str>,
        body: &str,
    ) -> (StatusCode, Value) {
        let resp = self
            .request(url, session, &[])
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    /// POSTs `body` with the given `Accept` and `Content-Type`; the status.
    pub(crate) async fn post_typed(
        &self,
        url: &str,
        session: &str,
        accept: &str,
        content_type: &str,
        body: &str,
    ) -> StatusCode {
        self.http
            .post(url)
            .header("accept", accept)
            .header("content-type", content_type)
            .header("mcp-session-id", session)
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
            .status()
    }

    /// POSTs `body` and returns every message of the answer, in order.
    pub(crate) async fn post_collect(
        &self,
        url: &str,
        session: Option<&str>,
        body: &Value,
    ) -> Vec<Value> {
        let resp = self
            .request(url, session, &[])
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        messages(&headers, &text)
    }

    /// Opens a session (initialize + initialized) and returns its id.
    pub(crate) async fn open_session(&self, url: &str, version: &str) -> String {
        let (s, h, body) = self
            .post(url, None, &[], &Self::initialize_body(version))
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(body["result"]["protocolVersion"], version, "{body}");
        let sid = h["mcp-session-id"].to_str().unwrap().to_owned();
        let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
        let (s, _, _) = self.post(url, Some(&sid), &[], &note).await;
        assert_eq!(s, StatusCode::ACCEPTED);
        sid
    }

    /// GETs an SSE stream; the response is returned unread (the stream stays open while
    /// it lives).
    pub(crate) async fn get_sse(
        &self,
        url: &str,
        extra: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, reqwest::Response) {
        let mut req = self.http.get(url).header("accept", "text/event-stream");
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        (resp.status(), resp.headers().clone(), resp)
    }
}

/// Reads a streaming body until `needle` has arrived (at most 30 s); returns all of it.
pub(crate) async fn read_until(resp: &mut reqwest::Response, needle: &str) -> String {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !seen.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("{needle:?} did not arrive; got:\n{seen}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the stream ended before {needle:?}; got:\n{seen}"));
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    seen
}

/// The JSON messages of a body: one JSON value, or the `data:` of each SSE event.
pub(crate) fn messages(headers: &HeaderMap, text: &str) -> Vec<Value> {
    let sse = headers
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
    if !sse {
        return serde_json::from_str(text).into_iter().collect();
    }
    text.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            let data = data.join("\n");
            (!data.trim().is_empty()).then(|| serde_json::from_str(&data).unwrap())
        })
        .collect()
}

/// Runs `tests/python/everything_client.py` with the venv's Python; fails the test with
/// its output unless every check passed.
pub(crate) async fn python_client(kind: &str, url: &str, token: Option<&str>) {
    let root = tools::workspace_root();
    let python = root.join(".tools/venv/bin/python");
    assert!(
        python.exists(),
        "python venv missing: run scripts/install-test-deps.sh"
    );
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(root.join("tests/python/everything_client.py"))
        .arg(kind)
        .arg(url)
        .kill_on_drop(true);
    if let Some(t) = token {
        cmd.arg(t);
    }
    let out = tokio::time::timeout(Duration::from_secs(240), cmd.output())
        .await
        .expect("the python client finished in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("all ok"),
        "python client ({kind} {url}) failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
}

/// Raw HTTP/1.1 over a TCP stream, for clients that misbehave on purpose.
pub(crate) mod raw {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// What a read found: an answer, or the connection closed without one.
    #[derive(Debug)]
    pub(crate) enum Read {
        /// Status and body of a whole answer.
        Answer(u16, String),
        /// The connection closed (or was reset) with these bytes read.
        Closed(Vec<u8>),
    }

    pub(crate) async fn connect(base: &str) -> TcpStream {
        let addr = base.trim_start_matches("http://");
        TcpStream::connect(addr).await.unwrap()
    }

    /// A request head (`Host: localhost`) with extra header lines.
    pub(crate) fn head(method: &str, path: &str, extra: &[&str]) -> String {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
        for h in extra {
            head.push_str(h);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        head
    }

    pub(crate) async fn send(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
        stream.write_all(bytes).await
    }

    /// Reads one answer (`Content-Length` or chunked), or until the connection closes;
    /// at most `within`.
    pub(crate) async fn read(stream: &mut TcpStream, within: Duration) -> Read {
        let mut buf = Vec::new();
        let reading = async {
            let mut chunk = [0u8; 16 * 1024];
            loop {
                if let Some((status, body)) = parse(&buf) {
                    return Read::Answer(status, body);
                }
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return Read::Closed(buf.clone()),
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        };
        tokio::time::timeout(within, reading)
            .await
            .unwrap_or_else(|_| panic!("no answer and no close within {within:?}"))
    }

    /// Whether the connection is closed: a read returns end of file (or an error) within
    /// `within`; bytes read meanwhile are returned.
    pub(crate) async fn closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        let reading = async {
            let mut chunk = [0u8; 16 * 1024];
            loop {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        };
        tokio::time::timeout(within, reading)
            .await
            .ok()
            .map(|()| buf)
    }

    /// Status and body of the answer in `buf`, once it is whole.
    pub(crate) fn parse(buf: &[u8]) -> Option<(u16, String)> {
        let text = String::from_utf8_lossy(buf);
        let end = text.find("\r\n\r\n")?;
        let (head, rest) = (&text[..end], &text[end + 4..]);
        let status = head.split(' ').nth(1)?.parse().ok()?;
        let lower = head.to_ascii_lowercase();
        if let Some(len) = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            return (rest.len() >= len).then(|| (status, rest[..len].to_owned()));
        }
        if lower.contains("transfer-encoding: chunked") {
            let mut body = String::new();
            let mut rest = rest;
            loop {
                let line_end = rest.find("\r\n")?;
                let size = usize::from_str_radix(rest[..line_end].trim(), 16).ok()?;
                if size == 0 {
                    return Some((status, body));
                }
                let data = rest.get(line_end + 2..line_end + 2 + size)?;
                body.push_str(data);
                rest = rest.get(line_end + 2 + size + 2..)?;
            }
        }
        Some((status, rest.to_owned()))
    }
}

/// Resident memory of a process in KiB (`VmRSS` in `/proc/PID/status`).
pub(crate) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Open file descriptors of a process (`/proc/PID/fd`).
pub(crate) fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Resident memory and open descriptors of a process at a quiet moment, to compare with
/// later: a fault must not leave either grown.
pub(crate) struct Baseline {
    pid: u32,
    rss_kib: u64,
    fds: usize,
}

/// How far above its baseline a process may stay after a fault: allocators keep some
/// freed memory, and pooled client connections come and go.
pub(crate) const RSS_SLACK_KIB: u64 = 64 * 1024;
pub(crate) const FD_SLACK: usize = 16;

impl Baseline {
    pub(crate) fn take(pid: u32) -> Self {
        Self {
            pid,
            rss_kib: rss_kib(pid),
            fds: open_fds(pid),
        }
    }

    /// Waits (bounded) until memory and descriptors are back near the baseline.
    pub(crate) async fn assert_back(&self, what: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (rss, fds) = (rss_kib(self.pid), open_fds(self.pid));
            if rss <= self.rss_kib + RSS_SLACK_KIB && fds <= self.fds + FD_SLACK {
                eprintln!(
                    "{what}: rss {} KiB -> {rss} KiB, fds {} -> {fds}",
                    self.rss_kib, self.fds
                );
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not back to the baseline: rss {} KiB -> {rss} KiB, fds {} -> {fds}",
                self.rss_kib,
                self.fds
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Waits (at most 30 s) for a log line of `p` holding every one of `needles`; returns it.
pub(crate) async fn log_line(p: &Proxyd, needles: &[&str]) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(line) = p
            .log()
            .into_iter()
            .find(|l| needles.iter().all(|n| l.contains(n)))
        {
            return line;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no log line with {needles:?}; the log:\n{}",
            p.log().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Lines of `p`'s log holding `needle`.
pub(crate) fn log_count(p: &Proxyd, needle: &str) -> usize {
    p.log().iter().filter(|l| l.contains(needle)).count()
}

/// The number after `pid ` in a `mock-stdio` line.
pub(crate) fn pid_in(line: &str) -> u32 {
    line.split("pid ")
        .nth(1)
        .and_then(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no pid in {line}"))
}

/// Whether process `pid` is alive (and not a zombie).
pub(crate) fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_owned()))
        .is_some_and(|state| !state.starts_with('Z') && !state.starts_with('X'))
}

/// `kill -<signal> <pid>`.
pub(crate) async fn signal(pid: u32, signal: &str) {
    let status = tokio::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .await
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}
