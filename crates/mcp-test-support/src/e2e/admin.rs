//! The Admin API of a running proxyd, called with the test admin token.

use std::time::Duration;

use mcp_types::McpDefinition;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::proxyd::{ADMIN_TOKEN, Proxyd};

/// A client of one proxyd's Admin API (and its `/metrics`).
#[derive(Debug)]
pub struct Admin {
    pub base: String,
    pub http: reqwest::Client,
}

impl Admin {
    /// The Admin API of `p`.
    pub fn new(p: &Proxyd) -> Self {
        Self::at(p.url())
    }

    /// The Admin API at `base` (`http://127.0.0.1:PORT`).
    pub fn at(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            // A connection per call: a proxyd with a short `listener.idle_timeout` closes
            // idle ones, and a pooled connection closed just as it is reused fails the call.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        }
    }

    /// A request with an optional JSON body and `If-Match`; the status, headers and JSON
    /// body (`Null` when there is none).
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        if let Some(tag) = if_match {
            req = req.header("if-match", tag);
        }
        let resp = req.send().await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        (status, headers, resp.json().await.unwrap_or(Value::Null))
    }

    /// A request with an optional JSON body; the status and JSON body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, body) = self.request(method, path, body, None).await;
        (status, body)
    }

    /// Registers a definition given as JSON, asserting 201.
    pub async fn register(&self, def: Value) {
        let (status, body) = self
            .send(reqwest::Method::POST, "/admin/mcps", Some(def))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Registers `def`, asserting 201.
    pub async fn register_def(&self, def: &McpDefinition) {
        self.register(serde_json::to_value(def).unwrap()).await;
    }

    /// Registers `def`, asserting 201, and waits until it is connected.
    pub async fn register_connected(&self, def: &McpDefinition) {
        self.register_def(def).await;
        self.wait_connected(&def.name).await;
    }

    /// The entries of `GET /admin/mcps` (`definition` and `status` each).
    pub async fn entries(&self) -> Vec<Value> {
        let (status, body) = self.send(reqwest::Method::GET, "/admin/mcps", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["mcps"]
            .as_array()
            .unwrap_or_else(|| panic!("no mcps in {body}"))
            .clone()
    }

    /// The names of the registered definitions, in the listing's order.
    pub async fn names(&self) -> Vec<String> {
        self.entries()
            .await
            .iter()
            .map(|e| e["definition"]["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The listing's entry of `name`; `Null` when there is none.
    pub async fn entry(&self, name: &str) -> Value {
        self.entries()
            .await
            .into_iter()
            .find(|e| e["definition"]["name"] == name)
            .unwrap_or(Value::Null)
    }

    /// The `status` of `name` (asserting 200).
    pub async fn status(&self, name: &str) -> Value {
        let (status, body) = self
            .send(reqwest::Method::GET, &format!("/admin/mcps/{name}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["status"].clone()
    }

    /// The `status.state` of `name`.
    pub async fn state(&self, name: &str) -> String {
        self.status(name).await["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// `POST /admin/tools/call`: tool `tool` of `mcp` with `args`.
    pub async fn call(&self, mcp: &str, tool: &str, args: Value) -> (StatusCode, Value) {
        self.send(
            reqwest::Method::POST,
            "/admin/tools/call",
            Some(json!({"mcpName": mcp, "toolName": tool, "arguments": args})),
        )
        .await
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one Prometheus series (`name{labels}` as rendered), 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        self.metrics_text()
            .await
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    /// A request the Admin API must refuse with `status` and error `code`; the error body.
    pub async fn refused(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
        status: StatusCode,
        code: &str,
    ) -> Value {
        let (s, _, body) = self.request(method, path, body, if_match).await;
        assert_eq!((s, body["code"].as_str()), (status, Some(code)), "{body}");
        body
    }

    /// Waits (at most 60 s) until `name` is connected.
    pub async fn wait_connected(&self, name: &str) {
        crate::eventually(
            Duration::from_secs(60),
            Duration::from_millis(100),
            &format!("{name} connected"),
            || async {
                let status = self.status(name).await;
                if status["state"] == "connected" {
                    Ok(())
                } else {
                    Err(status.to_string())
                }
            },
        )
        .await;
    }
}
