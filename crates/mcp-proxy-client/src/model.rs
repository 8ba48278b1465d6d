//! What the Admin API answers, typed. Fields this client does not know are kept in `extra`
//! maps, so nothing the proxy sends is lost.

use mcp_types::{ConnectionState, GroupDefinition, McpDefinition, McpStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `"ok"`.
    pub status: String,
    /// The proxy's version.
    pub version: String,
    /// Seconds since the proxy started.
    pub uptime_seconds: u64,
}

/// A registered MCP: its definition (secrets shown as `***`) and its live status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpEntry {
    /// The definition, redacted by the proxy.
    pub definition: McpDefinition,
    /// The live status.
    pub status: McpStatus,
    /// Whether the proxy endpoints ask clients for a bearer token (`false` from proxies
    /// that do not say).
    #[serde(default)]
    pub auth_required: bool,
}

/// A group: its definition (tokens shown as handles) and this proxy's view of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupEntry {
    /// The definition, redacted by the proxy.
    pub group: GroupDefinition,
    /// Members, catalog sizes, collisions.
    pub status: GroupStatus,
    /// The built-in group `mcp`, which the Admin API does not change.
    #[serde(default)]
    pub read_only: bool,
    /// Whether the group's endpoints ask clients for a bearer token.
    #[serde(default)]
    pub auth_required: bool,
}

/// Where a group stands (`status` of a [`GroupEntry`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupStatus {
    /// Whether clients can use it now.
    pub available: bool,
    /// Its members, by name.
    #[serde(default)]
    pub members: Vec<GroupMember>,
    /// Tools in the merged catalog.
    #[serde(default)]
    pub tools: usize,
    /// Prompts in the merged catalog.
    #[serde(default)]
    pub prompts: usize,
    /// Resources in the merged catalog.
    #[serde(default)]
    pub resources: usize,
    /// Names two items would share, served to neither.
    #[serde(default)]
    pub collisions: Vec<Collision>,
    /// Override keys that name no tool of a member.
    #[serde(default)]
    pub unknown_overrides: Vec<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupMember {
    /// The upstream's name.
    pub name: String,
    /// Whether an upstream of that name exists.
    pub present: bool,
    /// Its connection state, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ConnectionState>,
}

/// A name two or more items of a group's members would have had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Collision {
    /// `tool` or `prompt`.
    pub kind: String,
    /// The name they share.
    pub name: String,
    /// `{member}.{original}` of each.
    pub origins: Vec<String>,
}

/// What `POST /admin/mcps:import` made of an `mcpServers` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    /// Nothing was changed (`dry_run` asked for).
    pub dry_run: bool,
    /// Entries registered.
    pub created: usize,
    /// Entries that changed an existing definition.
    pub updated: usize,
    /// Entries the proxy already held.
    pub unchanged: usize,
    /// Entries left out; each result says why.
    pub skipped: usize,
    /// One result per entry, in document order.
    pub results: Vec<ImportResult>,
}

/// What became of one entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportResult {
    /// The entry's name (the MCP's name).
    pub name: String,
    /// `created`, `updated`, `unchanged` or `skipped`.
    pub action: String,
    /// The transport it maps to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<mcp_types::TransportKind>,
    /// Why it was skipped: `invalid`, `ambiguous_transport`, `disabled`,
    /// `declared_in_config`, `max_connections_reached`, `already_exists`,
    /// `store_unavailable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// A sentence for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Failing fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<mcp_types::FieldError>,
    /// Transports to choose from (`ambiguous_transport`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// Remarks: ignored keys, placeholders passed on literally.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// A tool of a registered MCP (`GET /admin/tools`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolInfo {
    /// The tool's name, as the upstream spells it.
    pub name: String,
    /// The MCP that serves it.
    pub mcp_name: String,
    /// Description for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    #[serde(default)]
    pub input_schema: Value,
    /// Annotations (hints), as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Value>,
    /// Everything else (`title`, `outputSchema`, `_meta`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A prompt or resource of a registered MCP (`GET /admin/prompts`, `/admin/resources`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpItem {
    /// The MCP that serves it.
    pub mcp_name: String,
    /// The item as the upstream sent it (`name`, `uri`, `description`, …).
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl McpItem {
    /// The item's `name`, when it has one.
    pub fn name(&self) -> Option<&str> {
        self.fields.get("name").and_then(Value::as_str)
    }
}

/// An MCP that could not contribute to a listing (down, or its listing failed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListingError {
    /// The MCP.
    pub mcp_name: String,
    /// Why.
    pub error: String,
}

/// An aggregated listing with its partial failures: a down MCP shows up in `errors`, never
/// silently missing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listing<T> {
    /// The items, each tagged with its MCP.
    pub items: Vec<T>,
    /// MCPs that could not be listed.
    pub errors: Vec<ListingError>,
}

/// The whole `CallToolResult` of a tool call, `isError` included: a tool that reports an
/// error is a successful call whose result says so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResult {
    /// Content blocks (`text`, `image`, `resource`, …), as sent.
    #[serde(default)]
    pub content: Vec<Value>,
    /// Whether the tool reports a failure.
    #[serde(default)]
    pub is_error: bool,
    /// Structured output, when the tool has an output schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_content: Option<Value>,
    /// `_meta` and anything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ToolResult {
    /// The `text` of every text block, joined with newlines.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter(|c| c["type"] == "text")
            .filter_map(|c| c["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// `GET /admin/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metrics {
    /// Upstream definitions.
    pub total_clients: u64,
    /// Upstreams connected.
    pub connected: u64,
    /// Upstreams connecting.
    pub connecting: u64,
    /// Upstreams in error.
    pub errored: u64,
    /// Upstreams disconnected.
    pub disconnected: u64,
    /// Requests forwarded, all upstreams.
    pub total_requests: u64,
    /// Failed requests, all upstreams.
    pub total_errors: u64,
    /// The cap on definitions.
    pub max_connections: u64,
    /// Client sessions open.
    pub active_sessions: u64,
    /// Seconds since the proxy started.
    pub uptime_seconds: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_result_keeps_is_error_and_unknown_members() {
        let r: ToolResult = serde_json::from_value(serde_json::json!({
            "content": [{"type": "text", "text": "no such city"}],
            "isError": true,
            "_meta": {"trace": "t1"}
        }))
        .unwrap();
        assert!(r.is_error);
        assert_eq!(r.text(), "no such city");
        assert_eq!(serde_json::to_value(&r).unwrap()["_meta"]["trace"], "t1");
    }
}
