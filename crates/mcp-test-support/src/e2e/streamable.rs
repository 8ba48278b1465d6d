//! Raw streamable HTTP requests that read JSON or SSE answers.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// Raw streamable HTTP requests.
#[derive(Debug, Clone)]
pub struct McpHttp {
    pub http: reqwest::Client,
}

impl Default for McpHttp {
    fn default() -> Self {
        Self::new()
    }
}

impl McpHttp {
    /// A client with a 90 s timeout per request.
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(90))
                .build()
                .unwrap(),
        }
    }

    pub fn initialize_body(version: &str) -> Value {
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion": version, "capabilities": {},
            "clientInfo": {"name": "raw-test", "version": "1"}}})
    }

    pub fn request(
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
    pub async fn post(
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

    pub async fn post_raw(
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
    pub async fn post_typed(
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
    pub async fn post_collect(&self, url: &str, session: Option<&str>, body: &Value) -> Vec<Value> {
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
    pub async fn open_session(&self, url: &str, version: &str) -> String {
        self.open_session_with(url, version, &[]).await
    }

    /// Opens a session sending `extra` headers with both messages; its id.
    pub async fn open_session_with(
        &self,
        url: &str,
        version: &str,
        extra: &[(String, String)],
    ) -> String {
        let (s, h, body) = self
            .post(url, None, extra, &Self::initialize_body(version))
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(body["result"]["protocolVersion"], version, "{body}");
        let sid = h["mcp-session-id"].to_str().unwrap().to_owned();
        let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
        let (s, _, _) = self.post(url, Some(&sid), extra, &note).await;
        assert_eq!(s, StatusCode::ACCEPTED);
        sid
    }

    /// `tools/call` of `name` with `arguments` in session `sid`; the last message of the
    /// answer (the response), whatever the status.
    pub async fn call_tool(
        &self,
        url: &str,
        sid: &str,
        id: impl Into<Value>,
        name: &str,
        arguments: Value,
    ) -> Value {
        let (_, _, answer) = self
            .post(url, Some(sid), &[], &tool_call(id, name, arguments))
            .await;
        answer
    }

    /// The names `tools/list` answers in session `sid`, asserting 200.
    pub async fn tool_names(&self, url: &str, sid: &str) -> Vec<String> {
        let list = json!({"jsonrpc":"2.0","id":100,"method":"tools/list"});
        let (s, _, body) = self.post(url, Some(sid), &[], &list).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        body["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"))
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// GETs an SSE stream; the response is returned unread (the stream stays open while
    /// it lives).
    pub async fn get_sse(
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

/// A `tools/call` request.
pub fn tool_call(id: impl Into<Value>, name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id.into(), "method": "tools/call",
           "params": {"name": name, "arguments": arguments}})
}

/// Reads a streaming body until `needle` has arrived (at most 30 s); returns all of it.
pub async fn read_until(resp: &mut reqwest::Response, needle: &str) -> String {
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
pub fn messages(headers: &HeaderMap, text: &str) -> Vec<Value> {
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
