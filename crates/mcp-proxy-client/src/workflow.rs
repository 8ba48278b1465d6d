//! The `mcps:` list of workflow and agent YAML documents, parsed and validated into
//! [`McpSpec`]s, and what `use_proxy` makes of them ([`plan`]).

mod plan;
mod template;
mod validate;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use mcp_types::{CommandSpec, FieldError, McpDefinition, McpName, Secret, TransportKind};
use serde::Deserialize;
use url::Url;

use crate::error::Error;

pub use plan::{Endpoint, PlannedMcp, plan};
pub use template::Template;

/// How long a proxied MCP gets to connect when its entry has no `start_timeout`.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);

/// A scalar YAML value taken as text (`PORT: 8080` is `"8080"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ScalarConfig {
    /// A string.
    Text(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl ScalarConfig {
    fn into_text(self) -> String {
        match self {
            Self::Text(t) => t,
            Self::Int(i) => i.to_string(),
            Self::Float(f) => f.to_string(),
            Self::Bool(b) => b.to_string(),
        }
    }
}

/// `command:` — a shell-like string (split like a POSIX shell would, quotes honoured) or a
/// list whose head is the program.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CommandConfig {
    /// `"uvx mcp-server-time --local-timezone 'Europe/Paris'"`.
    Line(String),
    /// `["uvx", "mcp-server-time"]`.
    Argv(Vec<String>),
}

/// `start_timeout:` — `"30s"`, `"1m30s"`, `"500ms"`, or a number of seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DurationConfig {
    /// A duration string.
    Text(String),
    /// Seconds.
    Seconds(u64),
}

/// One entry of `mcps:`, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpEntryConfig {
    /// The entry's id; the MCP's name when registered with the proxy.
    pub id: String,
    /// An HTTP(S) MCP server (no `command`).
    #[serde(default)]
    pub url: Option<String>,
    /// A stdio MCP server to spawn (no `url`).
    #[serde(default)]
    pub command: Option<CommandConfig>,
    /// Arguments after those in `command`.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment of a stdio server; values may hold `{{ .env.NAME }}`.
    #[serde(default)]
    pub env: BTreeMap<String, ScalarConfig>,
    /// Headers for an HTTP server; values may hold `{{ .env.NAME }}`.
    #[serde(default)]
    pub headers: BTreeMap<String, ScalarConfig>,
    /// `stdio`, `sse` or `streamable-http`; default `stdio` with `command`, else `sse`.
    #[serde(default)]
    pub transport: Option<String>,
    /// Reach the server through the proxy.
    #[serde(default)]
    pub use_proxy: bool,
    /// How long to wait for it to connect.
    #[serde(default)]
    pub start_timeout: Option<DurationConfig>,
    /// Client sessions at most (the proxy's `maxSessions`).
    #[serde(default)]
    pub max_sessions: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct DocumentConfig {
    #[serde(default)]
    mcps: Option<Vec<McpEntryConfig>>,
}

/// Where a server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpSource {
    /// A program to spawn; talks stdio.
    Stdio {
        /// The program.
        program: String,
        /// Its arguments (the tail of `command`, then `args`).
        args: Vec<String>,
    },
    /// An HTTP server.
    Http {
        /// Its URL.
        url: Url,
        /// `sse` or `streamable-http`.
        transport: TransportKind,
    },
}

/// A validated `mcps:` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpSpec {
    /// The id (a valid MCP name).
    pub id: McpName,
    /// Where the server is.
    pub source: McpSource,
    /// Environment of a stdio server.
    pub env: BTreeMap<String, Template>,
    /// Headers for an HTTP server.
    pub headers: BTreeMap<String, Template>,
    /// Reach it through the proxy.
    pub use_proxy: bool,
    /// How long to wait for it to connect.
    pub start_timeout: Duration,
    /// `maxSessions` when registered.
    pub max_sessions: Option<u32>,
    pub(crate) field: String,
}

impl McpSpec {
    /// The field path of this entry in error messages: `mcps[2]`.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The transport the server speaks.
    pub fn transport(&self) -> TransportKind {
        match &self.source {
            McpSource::Stdio { .. } => TransportKind::Stdio,
            McpSource::Http { transport, .. } => *transport,
        }
    }

    /// `env` with every placeholder resolved from `vars`.
    pub fn resolved_env(
        &self,
        vars: &HashMap<String, String>,
    ) -> Result<BTreeMap<String, Secret>, Error> {
        resolve(&self.field, "env", &self.env, vars)
    }

    /// `headers` with every placeholder resolved from `vars`; a value that contains CR or
    /// LF after resolution is refused.
    pub fn resolved_headers(
        &self,
        vars: &HashMap<String, String>,
    ) -> Result<BTreeMap<String, Secret>, Error> {
        let headers = resolve(&self.field, "headers", &self.headers, vars)?;
        let bad: Vec<FieldError> = headers
            .iter()
            .filter(|(_, v)| v.expose().contains(['\r', '\n']))
            .map(|(k, _)| FieldError {
                field: format!("{}.headers.{k}", self.field),
                message: "value contains CR or LF after placeholder resolution".into(),
            })
            .collect();
        if bad.is_empty() {
            Ok(headers)
        } else {
            Err(Error::InvalidWorkflow(bad))
        }
    }

    /// The proxy definition registering this entry under its id, placeholders resolved.
    pub fn definition(&self, vars: &HashMap<String, String>) -> Result<McpDefinition, Error> {
        let mut def = match &self.source {
            McpSource::Stdio { program, args } => {
                let mut d = McpDefinition::new(self.id.as_str(), TransportKind::Stdio);
                d.command = Some(CommandSpec::Program(program.clone()));
                d.args = args.clone();
                d
            }
            McpSource::Http { url, transport } => {
                McpDefinition::http(self.id.as_str(), *transport, url.as_str())
            }
        };
        def.env = self.resolved_env(vars)?;
        def.headers = self.resolved_headers(vars)?;
        def.max_sessions = self.max_sessions;
        def.validate().map_err(|e| {
            Error::InvalidWorkflow(
                e.0.into_iter()
                    .map(|f| FieldError {
                        field: format!("{}.{}", self.field, f.field),
                        message: f.message,
                    })
                    .collect(),
            )
        })?;
        Ok(def)
    }
}

fn resolve(
    entry: &str,
    key: &str,
    map: &BTreeMap<String, Template>,
    vars: &HashMap<String, String>,
) -> Result<BTreeMap<String, Secret>, Error> {
    map.iter()
        .map(|(k, t)| {
            let v = t.render(&format!("{entry}.{key}.{k}"), vars)?;
            Ok((k.clone(), Secret::new(v)))
        })
        .collect()
}

/// The validated `mcps:` list of a workflow or agent document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkflowMcps {
    mcps: Vec<McpSpec>,
}

impl WorkflowMcps {
    /// Parses a whole workflow or agent document and validates its `mcps:` list (other
    /// keys are the engine's business and are ignored). Every failing field is reported
    /// at once.
    pub fn from_yaml(text: &str) -> Result<Self, Error> {
        let doc: DocumentConfig =
            serde_yaml_ng::from_str(text).map_err(|e| Error::Yaml(e.to_string()))?;
        Self::try_from(doc.mcps.unwrap_or_default())
    }

    /// The entries, in document order.
    pub fn mcps(&self) -> &[McpSpec] {
        &self.mcps
    }

    /// The entry with this id.
    pub fn find(&self, id: &str) -> Option<&McpSpec> {
        self.mcps.iter().find(|m| m.id.as_str() == id)
    }
}

impl TryFrom<Vec<McpEntryConfig>> for WorkflowMcps {
    type Error = Error;

    fn try_from(entries: Vec<McpEntryConfig>) -> Result<Self, Error> {
        let mut errors = Vec::new();
        let mut mcps = Vec::new();
        for (i, entry) in entries.into_iter().enumerate() {
            let field = format!("mcps[{i}]");
            match validate::entry(&field, entry, &mut errors) {
                Some(spec) if mcps.iter().any(|m: &McpSpec| m.id == spec.id) => {
                    errors.push(FieldError {
                        field: format!("{field}.id"),
                        message: format!("duplicate id {:?}", spec.id.as_str()),
                    });
                }
                Some(spec) => mcps.push(spec),
                None => {}
            }
        }
        if errors.is_empty() {
            Ok(Self { mcps })
        } else {
            Err(Error::InvalidWorkflow(errors))
        }
    }
}
