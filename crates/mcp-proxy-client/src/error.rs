//! Errors of the client: what the proxy answered, what went wrong on the way, and what is
//! wrong with a workflow's `mcps:` list.

use std::fmt;
use std::time::Duration;

use mcp_types::{ConnectionState, FieldError};

/// Everything the client can fail with. Every variant that comes from an answer of the proxy
/// carries the operation (`op`, e.g. `GET /admin/mcps/fs`), the proxy's machine-readable
/// `code` and its human message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 404: no such MCP, tool or route.
    #[error("{op}: not found: {message}")]
    NotFound {
        /// The operation.
        op: String,
        /// `mcp_not_found`, `tool_not_found` or `not_found`.
        code: String,
        /// The proxy's message.
        message: String,
    },
    /// 409 `already_exists`: an MCP of that name is registered.
    #[error("{op}: already exists: {message}")]
    AlreadyExists {
        /// The operation.
        op: String,
        /// The proxy's message.
        message: String,
    },
    /// 401: the admin token is missing or wrong.
    #[error("{op}: unauthorized: {message}")]
    Unauthorized {
        /// The operation.
        op: String,
        /// The proxy's message.
        message: String,
    },
    /// 403: the caller may not do this (address not allowed, tool blocked by the filter).
    #[error("{op}: forbidden ({code}): {message}")]
    Forbidden {
        /// The operation.
        op: String,
        /// `forbidden` or `tool_blocked`.
        code: String,
        /// The proxy's message.
        message: String,
    },
    /// 400: the request is invalid; `fields` names every failing field when the proxy did.
    #[error("{op}: invalid ({code}): {message}")]
    Invalid {
        /// The operation.
        op: String,
        /// `invalid_request` or `invalid_json`.
        code: String,
        /// The proxy's message.
        message: String,
        /// The failing fields.
        fields: Vec<FieldError>,
    },
    /// 503: the proxy, its store or the upstream cannot serve the request now.
    #[error("{op}: unavailable ({code}): {message}")]
    Unavailable {
        /// The operation.
        op: String,
        /// `upstream_unavailable`, `store_unavailable`, `shutting_down`, …
        code: String,
        /// The proxy's message.
        message: String,
    },
    /// 502: the upstream answered with an error (e.g. a JSON-RPC error to `tools/call`).
    #[error("{op}: upstream error ({code}): {message}")]
    Upstream {
        /// The operation.
        op: String,
        /// `upstream_error`.
        code: String,
        /// The proxy's message.
        message: String,
        /// The JSON-RPC error object, when the proxy sent one.
        details: Box<serde_json::Value>,
    },
    /// No answer in time: the client's own timeout, or 504 from the proxy.
    #[error("{op}: timed out: {message}")]
    Timeout {
        /// The operation.
        op: String,
        /// What timed out.
        message: String,
    },
    /// The request could not be sent or its answer could not be read (connection refused,
    /// reset, TLS …).
    #[error("{op}: {source}")]
    Transport {
        /// The operation.
        op: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// Any other error status (500, 501, 413, …).
    #[error("{op}: http {status} ({code}): {message}")]
    Status {
        /// The operation.
        op: String,
        /// The HTTP status.
        status: u16,
        /// The proxy's code.
        code: String,
        /// The proxy's message.
        message: String,
    },
    /// The proxy answered with a body this client does not understand.
    #[error("{op}: unexpected answer: {message}")]
    Decode {
        /// The operation.
        op: String,
        /// What is wrong with it.
        message: String,
    },
    /// A URL given to the client is unusable.
    #[error("invalid url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A retry policy with impossible values.
    #[error("invalid retry policy: {0}")]
    InvalidRetryPolicy(&'static str),
    /// Some MCPs did not reach `connected` in time.
    #[error("wait for connections: {} not connected after {}: {}", .pending.len(),
        mcp_types::duration::format(*.after), PendingList(.pending))]
    NotConnected {
        /// How long was waited.
        after: Duration,
        /// Every MCP still pending, with its state and last error.
        pending: Vec<PendingMcp>,
    },
    /// Some of a batch failed; the others were applied.
    #[error("{op}: {} of {total} failed: {}", .failures.len(), FailureList(.failures))]
    Batch {
        /// The operation (`ensure_many`, `shutdown`).
        op: &'static str,
        /// How many were attempted.
        total: usize,
        /// Each failed name with its error.
        failures: Vec<(String, Error)>,
    },
    /// A workflow or agent document is not valid YAML or not the expected shape.
    #[error("workflow yaml: {0}")]
    Yaml(String),
    /// A workflow's `mcps:` list has invalid entries; every failing field is listed.
    #[error("workflow mcps: {}", FieldList(.0))]
    InvalidWorkflow(Vec<FieldError>),
    /// A `{{ .env.NAME }}` placeholder names a variable the caller did not provide.
    #[error("{field}: placeholder {{{{ .env.{name} }}}} has no value")]
    MissingVariable {
        /// Where the placeholder is, e.g. `mcps[1].headers.Authorization`.
        field: String,
        /// The variable.
        name: String,
    },
}

impl Error {
    /// Whether trying again may succeed: connection failures, timeouts and 502/503/504.
    ///
    /// Whether a retry is *safe* also depends on the call; see [`crate::RetryPolicy`].
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. }
                | Self::Upstream { .. }
                | Self::Timeout { .. }
                | Self::Transport { .. }
        )
    }

    /// Whether the proxy said the thing does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// Whether the request never left this process (the connection could not be opened), so
    /// the proxy cannot have acted on it.
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Transport { source, .. } if source.is_connect())
    }

    /// The proxy's machine-readable code, when it answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::NotFound { code, .. }
            | Self::Forbidden { code, .. }
            | Self::Invalid { code, .. }
            | Self::Unavailable { code, .. }
            | Self::Upstream { code, .. }
            | Self::Status { code, .. } => Some(code),
            Self::AlreadyExists { .. } => Some("already_exists"),
            Self::Unauthorized { .. } => Some("unauthorized"),
            _ => None,
        }
    }
}

/// An MCP that was not connected when [`crate::ProxyClient::wait_for_connections`] gave up.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingMcp {
    /// The MCP's name.
    pub name: String,
    /// Its last known state; `None` when it is not registered (or the proxy did not answer).
    pub state: Option<ConnectionState>,
    /// Its last error, or why its state is unknown.
    pub last_error: Option<String>,
}

impl fmt::Display for PendingMcp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.map_or("unknown", ConnectionState::as_str);
        write!(f, "{:?} ({state}", self.name)?;
        match &self.last_error {
            Some(e) => write!(f, ", last error: {e})"),
            None => f.write_str(", no error reported)"),
        }
    }
}

struct PendingList<'a>(&'a [PendingMcp]);

impl fmt::Display for PendingList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

struct FailureList<'a>(&'a [(String, Error)]);

impl fmt::Display for FailureList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, e)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{name:?}: {e}")?;
        }
        Ok(())
    }
}

struct FieldList<'a>(&'a [FieldError]);

impl fmt::Display for FieldList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_connected_names_every_pending_mcp_and_its_error() {
        let err = Error::NotConnected {
            after: Duration::from_secs(5),
            pending: vec![
                PendingMcp {
                    name: "search".into(),
                    state: Some(ConnectionState::Error),
                    last_error: Some("connect: connection refused".into()),
                },
                PendingMcp {
                    name: "ghost".into(),
                    state: None,
                    last_error: Some("not registered".into()),
                },
            ],
        };
        assert_eq!(
            err.to_string(),
            "wait for connections: 2 not connected after 5s: \"search\" (error, last error: \
             connect: connection refused); \"ghost\" (unknown, last error: not registered)"
        );
    }

    #[test]
    fn missing_variable_shows_the_placeholder() {
        let err = Error::MissingVariable {
            field: "mcps[0].env.TOKEN".into(),
            name: "TOKEN".into(),
        };
        assert_eq!(
            err.to_string(),
            "mcps[0].env.TOKEN: placeholder {{ .env.TOKEN }} has no value"
        );
    }
}
