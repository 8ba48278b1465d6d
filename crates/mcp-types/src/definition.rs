//! The `MCPDefinition` schema: what a POST/PUT to `/admin/mcps` carries and what the store
//! keeps.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::secret::{REDACTED, Secret};
use crate::time::Timestamp;

pub(crate) mod secrets;

/// How the proxy talks to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransportKind {
    /// A child process speaking newline-delimited JSON on stdin/stdout.
    Stdio,
    /// The 2024-11-05 HTTP+SSE transport.
    Sse,
    /// The streamable HTTP transport (2025-03-26 and later).
    StreamableHttp,
}

impl TransportKind {
    /// Whether the upstream is reached over HTTP.
    pub fn is_http(self) -> bool {
        !matches!(self, Self::Stdio)
    }

    /// The name used in definitions.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdio => "stdio",
            Self::Sse => "sse",
            Self::StreamableHttp => "streamable-http",
        }
    }
}

/// How client sessions map onto upstream sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionMode {
    /// Each client session gets its own upstream session (for stdio, its own process).
    #[default]
    PerClient,
    /// One upstream connection multiplexed over every client session.
    Shared,
}

/// Who manages a definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefinitionSource {
    /// Registered through the Admin API (or a client of it, such as `proxyctl`).
    #[default]
    Api,
    /// Declared in `proxyd`'s configuration (`[[servers]]` or `servers_dir`): changed by
    /// editing the configuration and reloading, not through the Admin API.
    Config,
}

impl DefinitionSource {
    /// The name used in definitions.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Config => "config",
        }
    }
}

/// The program to spawn: a single program name or path, or an argv array whose head is the
/// program and whose tail comes before `args`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CommandSpec {
    /// The program alone (not split on spaces).
    Program(String),
    /// `[program, arg, …]`.
    Argv(Vec<String>),
}

impl CommandSpec {
    /// The program to run, if any.
    pub fn program(&self) -> Option<&str> {
        match self {
            Self::Program(p) => Some(p.as_str()),
            Self::Argv(v) => v.first().map(String::as_str),
        }
    }

    /// Arguments carried in the array form, before the definition's `args`.
    pub fn leading_args(&self) -> &[String] {
        match self {
            Self::Program(_) => &[],
            Self::Argv(v) => v.get(1..).unwrap_or(&[]),
        }
    }
}

/// Whether `toolFilter.list` names the tools to keep or the tools to hide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterMode {
    /// Only the listed tools are visible.
    Allow,
    /// The listed tools are hidden.
    Block,
}

/// A tool allow- or block-list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolFilter {
    /// Allow or block.
    pub mode: FilterMode,
    /// Tool names (exact match).
    #[serde(default)]
    pub list: Vec<String>,
}

impl ToolFilter {
    /// Whether a tool of this name is visible and callable.
    pub fn permits(&self, tool: &str) -> bool {
        let listed = self.list.iter().any(|t| t == tool);
        match self.mode {
            FilterMode::Allow => listed,
            FilterMode::Block => !listed,
        }
    }
}

/// Default `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `maxReconnects`.
pub const DEFAULT_MAX_RECONNECTS: u32 = 5;
/// Default `reconnectDelay`.
pub const DEFAULT_RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// Default `healthCheckInterval`.
pub const DEFAULT_HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// Default `maxSessions` for stdio upstreams.
pub const DEFAULT_MAX_SESSIONS_STDIO: u32 = 64;
/// Default `maxSessions` for HTTP upstreams.
pub const DEFAULT_MAX_SESSIONS_HTTP: u32 = 1024;

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}
fn default_true() -> bool {
    true
}
fn default_max_reconnects() -> u32 {
    DEFAULT_MAX_RECONNECTS
}
fn default_reconnect_delay() -> Duration {
    DEFAULT_RECONNECT_DELAY
}
fn default_health_interval() -> Duration {
    DEFAULT_HEALTH_CHECK_INTERVAL
}
fn is_false(b: &bool) -> bool {
    !*b
}

/// An upstream MCP server definition (the `MCPDefinition` of the Admin API).
///
/// Deserializing checks types and rejects unknown fields; [`McpDefinition::validate`] checks
/// everything else and reports every failing field at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpDefinition {
    /// Unique name; the first path segment of the proxy endpoints.
    pub name: String,
    /// Free text for operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How to reach the upstream.
    pub transport: TransportKind,
    /// stdio: the program to spawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandSpec>,
    /// stdio: arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// stdio: extra environment variables (secret values).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, Secret>,
    /// stdio: working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// HTTP transports: the upstream URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// HTTP transports: headers sent on every upstream request (secret values).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Secret>,
    /// Deadline for connecting and for each forwarded request.
    #[serde(default = "default_timeout", with = "crate::duration")]
    pub timeout: Duration,
    /// Bearer tokens accepted on this upstream's proxy endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auth_tokens: Vec<Secret>,
    /// Require a token even when no token is configured (then every request is refused).
    #[serde(default, skip_serializing_if = "is_false")]
    pub require_auth: bool,
    /// Client IPs or CIDRs allowed to use the proxy endpoints (empty = anyone).
    #[serde(default, rename = "allowedIPs", skip_serializing_if = "Vec::is_empty")]
    pub allowed_ips: Vec<String>,
    /// Client request headers copied to the upstream.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passthrough_headers: Vec<String>,
    /// Reconnect after a failure or loss.
    #[serde(default = "default_true")]
    pub auto_reconnect: bool,
    /// Consecutive failed reconnects before resting in `error` (0 = no limit).
    #[serde(default = "default_max_reconnects")]
    pub max_reconnects: u32,
    /// First back-off delay; doubles per attempt up to 60 s.
    #[serde(default = "default_reconnect_delay", with = "crate::duration")]
    pub reconnect_delay: Duration,
    /// Send `ping` every `healthCheckInterval`.
    #[serde(default = "default_true")]
    pub health_check_enabled: bool,
    /// Time between health checks.
    #[serde(default = "default_health_interval", with = "crate::duration")]
    pub health_check_interval: Duration,
    /// Tool allow/block list.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::object::option"
    )]
    pub tool_filter: Option<ToolFilter>,
    /// stdio: copy the child's stderr to the log.
    #[serde(default = "default_true")]
    pub log_enabled: bool,
    /// `per-client` (default) or `shared`.
    #[serde(default)]
    pub session_mode: SessionMode,
    /// Client sessions at most; default 64 for stdio, 1024 for HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<u32>,
    /// Free labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Who manages it: `api` or `config`; set by the server (a value sent by a client is
    /// ignored).
    #[serde(default)]
    pub source: DefinitionSource,
    /// Set by the server at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// Set by the server at every change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
    /// Set by the store at every write: greater than the version of every earlier write to
    /// the store, so replicas apply a change only when it is newer than what they run, and
    /// the Admin API's `ETag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

impl McpDefinition {
    /// A definition with every default, for `name` and `transport`.
    pub fn new(name: impl Into<String>, transport: TransportKind) -> Self {
        Self {
            name: name.into(),
            description: None,
            transport,
            command: None,
            args: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
            url: None,
            headers: BTreeMap::new(),
            timeout: DEFAULT_TIMEOUT,
            auth_tokens: Vec::new(),
            require_auth: false,
            allowed_ips: Vec::new(),
            passthrough_headers: Vec::new(),
            auto_reconnect: true,
            max_reconnects: DEFAULT_MAX_RECONNECTS,
            reconnect_delay: DEFAULT_RECONNECT_DELAY,
            health_check_enabled: true,
            health_check_interval: DEFAULT_HEALTH_CHECK_INTERVAL,
            tool_filter: None,
            log_enabled: true,
            session_mode: SessionMode::PerClient,
            max_sessions: None,
            tags: Vec::new(),
            source: DefinitionSource::Api,
            created_at: None,
            updated_at: None,
            version: None,
        }
    }

    /// A stdio definition.
    pub fn stdio(name: impl Into<String>, program: impl Into<String>, args: &[&str]) -> Self {
        let mut d = Self::new(name, TransportKind::Stdio);
        d.command = Some(CommandSpec::Program(program.into()));
        d.args = args.iter().map(|a| (*a).to_owned()).collect();
        d
    }

    /// An HTTP definition (`sse` or `streamable-http`).
    pub fn http(name: impl Into<String>, transport: TransportKind, url: impl Into<String>) -> Self {
        let mut d = Self::new(name, transport);
        d.url = Some(url.into());
        d
    }

    /// The program and its full argument list (array-form command tail, then `args`).
    pub fn argv(&self) -> Option<(&str, Vec<&str>)> {
        let cmd = self.command.as_ref()?;
        let program = cmd.program()?;
        let args = cmd
            .leading_args()
            .iter()
            .chain(self.args.iter())
            .map(String::as_str)
            .collect();
        Some((program, args))
    }

    /// `maxSessions`, or the transport's default.
    pub fn effective_max_sessions(&self) -> u32 {
        self.max_sessions.unwrap_or(if self.transport.is_http() {
            DEFAULT_MAX_SESSIONS_HTTP
        } else {
            DEFAULT_MAX_SESSIONS_STDIO
        })
    }

    /// Whether the tool filter lets `tool` through.
    pub fn permits_tool(&self, tool: &str) -> bool {
        self.tool_filter.as_ref().is_none_or(|f| f.permits(tool))
    }

    /// Clears what only the server sets (`createdAt`, `updatedAt`, `version`, `source`).
    pub fn clear_server_fields(&mut self) {
        self.created_at = None;
        self.updated_at = None;
        self.version = None;
        self.source = DefinitionSource::Api;
    }

    /// A copy fit for responses: `env` and `headers` values become `***` (their key says
    /// which is which) and each of `authTokens` becomes its handle `***:<digest>`
    /// ([`Secret::handle`]), so that a PUT can say which tokens to keep
    /// ([`McpDefinition::restore_secrets`]).
    pub fn redacted(&self) -> Self {
        let mut d = self.clone();
        for v in d.env.values_mut() {
            *v = Secret::new(REDACTED);
        }
        for v in d.headers.values_mut() {
            *v = Secret::new(REDACTED);
        }
        for t in &mut d.auth_tokens {
            *t = Secret::new(t.handle(&self.name));
        }
        d
    }

    /// Whether two definitions describe the same upstream, ignoring what the server sets
    /// (timestamps, version and `source`).
    pub fn same_config(&self, other: &Self) -> bool {
        let strip = |d: &Self| {
            let mut d = d.clone();
            d.clear_server_fields();
            d
        };
        strip(self) == strip(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_quick_start_parses_with_defaults() {
        let d: McpDefinition = serde_json::from_str(
            r#"{"name":"echo-mcp","transport":"stdio","command":"echo","args":["hello world"]}"#,
        )
        .unwrap();
        assert_eq!(d.timeout, Duration::from_secs(30));
        assert!(d.auto_reconnect && d.health_check_enabled);
        assert_eq!(d.max_reconnects, 5);
        assert_eq!(d.session_mode, SessionMode::PerClient);
        assert_eq!(d.effective_max_sessions(), 64);
        assert_eq!(d.argv(), Some(("echo", vec!["hello world"])));
    }

    #[test]
    fn command_array_head_is_the_program() {
        let d: McpDefinition = serde_json::from_str(
            r#"{"name":"e","transport":"stdio","command":["npx","-y","pkg"],"args":["stdio"]}"#,
        )
        .unwrap();
        assert_eq!(d.argv(), Some(("npx", vec!["-y", "pkg", "stdio"])));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_str::<McpDefinition>(
            r#"{"name":"e","transport":"stdio","command":"x","colour":"red"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `colour`"), "{err}");
    }

    #[test]
    fn durations_accept_strings_and_nanoseconds_and_serialize_as_strings() {
        let d: McpDefinition = serde_json::from_str(
            r#"{"name":"e","transport":"sse","url":"http://x","timeout":"1m30s","reconnectDelay":500000000}"#,
        )
        .unwrap();
        assert_eq!(d.timeout, Duration::from_secs(90));
        assert_eq!(d.reconnect_delay, Duration::from_millis(500));
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["timeout"], "1m30s");
        assert_eq!(v["reconnectDelay"], "500ms");
        assert_eq!(v["transport"], "sse");
        let back: McpDefinition = serde_json::from_value(v).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn redaction_hides_every_secret() {
        let mut d = McpDefinition::http("h", TransportKind::StreamableHttp, "https://x/mcp");
        d.headers.insert("X-Api-Key".into(), "k-123456".into());
        d.env.insert("TOKEN".into(), "t-123456".into());
        d.auth_tokens.push("client-secret".into());
        let text = serde_json::to_string(&d.redacted()).unwrap();
        for secret in ["k-123456", "t-123456", "client-secret"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains(r#""X-Api-Key":"***""#), "{text}");
        assert!(text.contains(r#""authTokens":["***:"#), "{text}");
    }

    #[test]
    fn tool_filter_allow_and_block() {
        let allow = ToolFilter {
            mode: FilterMode::Allow,
            list: vec!["echo".into()],
        };
        assert!(allow.permits("echo") && !allow.permits("rm"));
        let block = ToolFilter {
            mode: FilterMode::Block,
            list: vec!["rm".into()],
        };
        assert!(block.permits("echo") && !block.permits("rm"));
    }
}
