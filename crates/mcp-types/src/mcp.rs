//! Typed MCP messages the proxy reads itself: the lifecycle and the list/call results of
//! discovery. Everything it does not need to understand stays raw (`serde_json::Value` in
//! `extra`), so nothing is lost.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The newest protocol revision this proxy speaks.
pub const LATEST_PROTOCOL_VERSION: &str = "2025-11-25";

/// Every revision this proxy accepts, newest first.
pub const SUPPORTED_PROTOCOL_VERSIONS: &[&str] =
    &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The HTTP header carrying a streamable-HTTP session id (clients ↔ proxy ↔ upstreams).
pub const SESSION_HEADER: &str = "mcp-session-id";

/// Whether `version` is one this proxy speaks.
pub fn is_supported_version(version: &str) -> bool {
    SUPPORTED_PROTOCOL_VERSIONS.contains(&version)
}

/// MCP 2026-07-28 (the modern era): no handshake, every request carries the client's
/// version, capabilities and identity in `params._meta`.
pub mod modern {
    /// The modern revision the proxy speaks to upstreams.
    pub const PROTOCOL_VERSION: &str = "2026-07-28";
    /// Every modern revision the proxy speaks, newest first.
    pub const PROTOCOL_VERSIONS: &[&str] = &["2026-07-28"];
    /// `_meta` key: the request's protocol version (required).
    pub const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
    /// `_meta` key: the client's capabilities for this request (required).
    pub const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
    /// `_meta` key: the client's name and version.
    pub const META_CLIENT: &str = "io.modelcontextprotocol/clientInfo";
    /// `_meta` key: the least severe log level the request wants messages for.
    pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
    /// Result `_meta` key: the server's name and version.
    pub const META_SERVER: &str = "io.modelcontextprotocol/serverInfo";
    /// Notification `_meta` key: the `subscriptions/listen` request it belongs to.
    pub const META_SUBSCRIPTION: &str = "io.modelcontextprotocol/subscriptionId";
    /// `server/discover`.
    pub const DISCOVER: &str = "server/discover";
    /// `subscriptions/listen`.
    pub const LISTEN: &str = "subscriptions/listen";
    /// `notifications/subscriptions/acknowledged`, the first message of a listen.
    pub const LISTEN_ACKNOWLEDGED: &str = "notifications/subscriptions/acknowledged";
    /// `HeaderMismatch`.
    pub const HEADER_MISMATCH: i64 = -32020;
    /// `MissingRequiredClientCapability`.
    pub const MISSING_CAPABILITY: i64 = -32021;
    /// `UnsupportedProtocolVersion`.
    pub const UNSUPPORTED_VERSION: i64 = -32022;
    /// Methods the revision removed (a modern server does not know them).
    pub const REMOVED_METHODS: &[&str] = &[
        super::methods::INITIALIZE,
        super::methods::PING,
        "logging/setLevel",
        super::methods::RESOURCES_SUBSCRIBE,
        super::methods::RESOURCES_UNSUBSCRIBE,
    ];
    /// Client capabilities a modern server asks for through `input_required` results
    /// (and a 2025 server through requests of its own).
    pub const INPUT_CAPABILITIES: &[&str] = &["sampling", "elicitation", "roots"];

    /// Whether `version` is a modern revision the proxy speaks.
    pub fn is_version(version: &str) -> bool {
        PROTOCOL_VERSIONS.contains(&version)
    }
}

/// Method names used by the proxy.
pub mod methods {
    /// `initialize`.
    pub const INITIALIZE: &str = "initialize";
    /// `notifications/initialized`.
    pub const INITIALIZED: &str = "notifications/initialized";
    /// `ping`.
    pub const PING: &str = "ping";
    /// `tools/list`.
    pub const TOOLS_LIST: &str = "tools/list";
    /// `tools/call`.
    pub const TOOLS_CALL: &str = "tools/call";
    /// `prompts/list`.
    pub const PROMPTS_LIST: &str = "prompts/list";
    /// `resources/list`.
    pub const RESOURCES_LIST: &str = "resources/list";
    /// `resources/templates/list`.
    pub const RESOURCE_TEMPLATES_LIST: &str = "resources/templates/list";
    /// `notifications/cancelled`.
    pub const CANCELLED: &str = "notifications/cancelled";
    /// `notifications/progress`.
    pub const PROGRESS: &str = "notifications/progress";
    /// `notifications/tools/list_changed`.
    pub const TOOLS_LIST_CHANGED: &str = "notifications/tools/list_changed";
    /// `notifications/prompts/list_changed`.
    pub const PROMPTS_LIST_CHANGED: &str = "notifications/prompts/list_changed";
    /// `notifications/resources/list_changed`.
    pub const RESOURCES_LIST_CHANGED: &str = "notifications/resources/list_changed";
    /// `prompts/get`.
    pub const PROMPTS_GET: &str = "prompts/get";
    /// `resources/read`.
    pub const RESOURCES_READ: &str = "resources/read";
    /// `resources/subscribe`.
    pub const RESOURCES_SUBSCRIBE: &str = "resources/subscribe";
    /// `resources/unsubscribe`.
    pub const RESOURCES_UNSUBSCRIBE: &str = "resources/unsubscribe";
    /// `notifications/resources/updated`.
    pub const RESOURCES_UPDATED: &str = "notifications/resources/updated";
    /// `notifications/message` (a log message).
    pub const LOG_MESSAGE: &str = "notifications/message";
    /// `sampling/createMessage` (server → client).
    pub const SAMPLING_CREATE_MESSAGE: &str = "sampling/createMessage";
    /// `elicitation/create` (server → client).
    pub const ELICITATION_CREATE: &str = "elicitation/create";
    /// `roots/list` (server → client).
    pub const ROOTS_LIST: &str = "roots/list";
    /// `completion/complete`.
    pub const COMPLETION_COMPLETE: &str = "completion/complete";
    /// `logging/setLevel`.
    pub const LOGGING_SET_LEVEL: &str = "logging/setLevel";
    /// `tasks/get`.
    pub const TASKS_GET: &str = "tasks/get";
    /// `tasks/result`.
    pub const TASKS_RESULT: &str = "tasks/result";
    /// `tasks/list`.
    pub const TASKS_LIST: &str = "tasks/list";
    /// `tasks/cancel`.
    pub const TASKS_CANCEL: &str = "tasks/cancel";
}

/// `name`/`version` of a client or server (`Implementation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Implementation {
    /// Programmatic name.
    pub name: String,
    /// Version string.
    pub version: String,
    /// Everything else (`title`, `icons`, `websiteUrl`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Implementation {
    /// An implementation with just a name and a version.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            extra: Map::new(),
        }
    }
}

/// `initialize` request params.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    /// The version the client asks for.
    pub protocol_version: String,
    /// Client capabilities, kept as sent.
    #[serde(default)]
    pub capabilities: Value,
    /// The client.
    pub client_info: Implementation,
    /// Everything else (`_meta`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `initialize` result.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResult {
    /// The version the server chose.
    pub protocol_version: String,
    /// Server capabilities, kept as sent.
    #[serde(default)]
    pub capabilities: Value,
    /// The server.
    pub server_info: Implementation,
    /// Usage hints for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Params of any paginated list request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PaginatedParams {
    /// The cursor from the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A tool as listed by `tools/list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    /// The tool name.
    pub name: String,
    /// Description for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    #[serde(default)]
    pub input_schema: Value,
    /// Annotations (hints), as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Value>,
    /// Everything else (`title`, `outputSchema`, `_meta`, `icons`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A page of a list result: the items under `key`, and the next cursor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPage {
    /// The next page's cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// `tools`, `prompts`, `resources` or `resourceTemplates`, with everything else.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl ListPage {
    /// Takes the item array named `key` out of the page.
    pub fn take_items(&mut self, key: &str) -> Vec<Value> {
        match self.rest.remove(key) {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        }
    }
}

/// `tools/call` params.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallToolParams {
    /// The tool.
    pub name: String,
    /// Its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    /// Everything else (`_meta`, `task`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `tools/call` result, whole: every content item, `isError`, `structuredContent`, `_meta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallToolResult {
    /// The content items, as sent.
    #[serde(default)]
    pub content: Vec<Value>,
    /// Whether the tool reported an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// Structured output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_content: Option<Value>,
    /// Everything else (`_meta`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_tool_result_keeps_everything() {
        let text = r#"{"content":[{"type":"text","text":"hi"},{"type":"image","data":"AA==","mimeType":"image/png"}],"isError":true,"structuredContent":{"n":1},"_meta":{"k":"v"}}"#;
        let r: CallToolResult = serde_json::from_str(text).unwrap();
        assert_eq!(r.content.len(), 2);
        assert_eq!(r.is_error, Some(true));
        assert_eq!(r.extra["_meta"]["k"], "v");
        let back: Value = serde_json::to_value(&r).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(text).unwrap());
    }

    #[test]
    fn tool_keeps_unknown_members() {
        let text = r#"{"name":"echo","title":"Echo","inputSchema":{"type":"object"},"outputSchema":{"type":"object"},"_meta":{"a":1}}"#;
        let t: Tool = serde_json::from_str(text).unwrap();
        assert_eq!(t.extra["title"], "Echo");
        let back: Value = serde_json::to_value(&t).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(text).unwrap());
    }

    #[test]
    fn versions() {
        assert!(is_supported_version("2025-06-18"));
        assert!(!is_supported_version("2023-01-01"));
        assert_eq!(SUPPORTED_PROTOCOL_VERSIONS[0], LATEST_PROTOCOL_VERSION);
    }
}
