//! The live half of the client: discovery listings, tool calls, reconnects, and waiting for
//! connections.

use std::collections::BTreeMap;
use std::time::Duration;

use mcp_types::ConnectionState;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::time::Instant;
use tracing::debug;

use super::{ProxyClient, http};
use crate::error::{Error, PendingMcp};
use crate::model::{Listing, McpEntry, McpItem, ToolInfo, ToolResult};
use crate::retry::{RetryPolicy, Safety};

/// How often [`ProxyClient::wait_for_connections`] asks the proxy.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

impl ProxyClient {
    /// `GET /admin/tools`: every visible tool of every MCP, each with its `mcp_name`, and
    /// the MCPs that could not be listed.
    pub async fn list_tools(&self) -> Result<Listing<ToolInfo>, Error> {
        self.listing("tools").await
    }

    /// `GET /admin/prompts`.
    pub async fn list_prompts(&self) -> Result<Listing<McpItem>, Error> {
        self.listing("prompts").await
    }

    /// `GET /admin/resources`.
    pub async fn list_resources(&self) -> Result<Listing<McpItem>, Error> {
        self.listing("resources").await
    }

    async fn listing<T: DeserializeOwned>(&self, key: &str) -> Result<Listing<T>, Error> {
        let op = format!("GET /admin/{key}");
        let mut body: Value = self
            .call(Safety::Idempotent, Method::GET, &["admin", key], None)
            .await?;
        Ok(Listing {
            items: http::decode_value(&op, body[key].take())?,
            errors: http::decode_value(&op, body["errors"].take())?,
        })
    }

    /// `POST /admin/tools/call`: calls `tool` of the MCP `mcp` and returns the whole
    /// result; a tool that fails reports it in [`ToolResult::is_error`], not as an `Err`.
    ///
    /// Never retried once the request may have reached the proxy (the tool may have run);
    /// use [`ProxyClient::call_idempotent_tool`] for tools that are safe to run twice.
    pub async fn call_tool(
        &self,
        mcp: &str,
        tool: &str,
        arguments: Option<Value>,
    ) -> Result<ToolResult, Error> {
        self.call_tool_with(Safety::Unsent, mcp, tool, arguments)
            .await
    }

    /// The same, for a tool the caller declares idempotent: retried like any read.
    pub async fn call_idempotent_tool(
        &self,
        mcp: &str,
        tool: &str,
        arguments: Option<Value>,
    ) -> Result<ToolResult, Error> {
        self.call_tool_with(Safety::Idempotent, mcp, tool, arguments)
            .await
    }

    async fn call_tool_with(
        &self,
        safety: Safety,
        mcp: &str,
        tool: &str,
        arguments: Option<Value>,
    ) -> Result<ToolResult, Error> {
        let op = "POST /admin/tools/call";
        let body = json!({ "mcpName": mcp, "toolName": tool, "arguments": arguments });
        let mut answer: Value = self
            .call(
                safety,
                Method::POST,
                &["admin", "tools", "call"],
                Some(body),
            )
            .await?;
        http::decode_value(op, answer["result"].take())
    }

    /// `POST /admin/mcps/{name}/reconnect`: forces a fresh connection (and resets the
    /// reconnect attempts).
    pub async fn reconnect(&self, name: &str) -> Result<(), Error> {
        self.call::<Value>(
            Safety::Idempotent,
            Method::POST,
            &["admin", "mcps", name, "reconnect"],
            None,
        )
        .await
        .map(drop)
    }

    /// Waits until every MCP in `names` is `connected`, for at most `deadline`, and
    /// returns their entries in the order asked.
    ///
    /// On timeout, [`Error::NotConnected`] names every MCP still pending with its state
    /// and last error (or "not registered", or why the proxy could not be asked).
    pub async fn wait_for_connections<S: AsRef<str>>(
        &self,
        names: &[S],
        deadline: Duration,
    ) -> Result<Vec<McpEntry>, Error> {
        let until = Instant::now() + deadline;
        let mut pending: BTreeMap<&str, PendingMcp> = names
            .iter()
            .map(|n| {
                let n = n.as_ref();
                let p = PendingMcp {
                    name: n.to_owned(),
                    state: None,
                    last_error: Some("the proxy has not answered yet".into()),
                };
                (n, p)
            })
            .collect();
        let mut connected: Vec<String> = Vec::new();
        // After one answer, a failed probe keeps the proxy's last word on each MCP.
        let mut answered = false;
        loop {
            let remaining = until.saturating_duration_since(Instant::now());
            let probe = tokio::time::timeout(
                remaining.min(self.timeout),
                self.list_with(&RetryPolicy::none()),
            )
            .await;
            match probe {
                Ok(Ok(entries)) => {
                    answered = true;
                    let mut ready = Vec::with_capacity(names.len());
                    for name in names {
                        let name = name.as_ref();
                        let p = pending.get_mut(name).expect("every name is tracked");
                        match entries.iter().find(|e| e.definition.name == name) {
                            Some(e) if e.status.state == ConnectionState::Connected => {
                                ready.push(e.clone());
                            }
                            Some(e) => {
                                p.state = Some(e.status.state);
                                p.last_error = e.status.last_error.clone();
                            }
                            None => {
                                p.state = None;
                                p.last_error = Some("not registered".into());
                            }
                        }
                    }
                    if ready.len() == names.len() {
                        return Ok(ready);
                    }
                    connected = ready.into_iter().map(|e| e.definition.name).collect();
                }
                Ok(Err(e)) if !answered => {
                    for p in pending.values_mut() {
                        p.last_error = Some(format!("cannot ask the proxy: {e}"));
                    }
                }
                Err(_) if !answered => {
                    for p in pending.values_mut() {
                        p.last_error = Some("the proxy did not answer in time".into());
                    }
                }
                Ok(Err(_)) | Err(_) => {}
            }
            let remaining = until.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                let pending: Vec<PendingMcp> = names
                    .iter()
                    .filter(|n| !connected.iter().any(|c| c == n.as_ref()))
                    .filter_map(|n| pending.get(n.as_ref()).cloned())
                    .collect();
                debug!(pending = pending.len(), "wait for connections timed out");
                return Err(Error::NotConnected {
                    after: deadline,
                    pending,
                });
            }
            tokio::time::sleep(remaining.min(POLL_INTERVAL)).await;
        }
    }
}
