//! The Admin API of a running proxyd, called with the test admin token.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::proxyd::{ADMIN_TOKEN, Proxyd};

/// A client of one proxyd's Admin API (and its `/metrics`).
#[derive(Debug)]
pub struct Admin {
    pub base: String,
    pub http: reqwest::Client,
}

impl Admin {
    pub fn new(p: &Proxyd) -> Self {
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

    pub async fn send(
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

    pub async fn register(&self, def: Value) {
        let (status, body) = self
            .send(reqwest::Method::POST, "/admin/mcps", Some(def))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    pub async fn status(&self, name: &str) -> Value {
        let (status, body) = self
            .send(reqwest::Method::GET, &format!("/admin/mcps/{name}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["status"].clone()
    }

    pub async fn state(&self, name: &str) -> String {
        self.status(name).await["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn call(&self, mcp: &str, tool: &str, args: Value) -> (StatusCode, Value) {
        self.send(
            reqwest::Method::POST,
            "/admin/tools/call",
            Some(json!({"mcpName": mcp, "toolName": tool, "arguments": args})),
        )
        .await
    }

    /// The value of one Prometheus series (`name{labels}` as rendered), 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
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

    pub async fn wait_connected(&self, name: &str) {
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
