//! Errors of the proxy core. Each says who is at fault and whether a retry may help.

use std::time::Duration;

use mcp_types::{ConnectionState, ErrorObject};

/// Everything the core can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No upstream of that name.
    #[error("mcp {0:?} not found")]
    UnknownMcp(String),
    /// The upstream has no tool of that name.
    #[error("mcp {mcp:?} has no tool {tool:?}")]
    UnknownTool {
        /// The upstream.
        mcp: String,
        /// The tool asked for.
        tool: String,
    },
    /// The tool filter hides the tool.
    #[error("tool {tool:?} of mcp {mcp:?} is blocked by its tool filter")]
    ToolBlocked {
        /// The upstream.
        mcp: String,
        /// The tool asked for.
        tool: String,
    },
    /// The upstream is not connected right now.
    #[error("mcp {mcp:?} is not connected (state {}){}", .state.as_str(), fmt_last(.last_error))]
    NotConnected {
        /// The upstream.
        mcp: String,
        /// Its state.
        state: ConnectionState,
        /// Its last error.
        last_error: Option<String>,
    },
    /// The upstream did not answer in time.
    #[error("mcp {mcp:?}: {what} timed out after {}", mcp_types::duration::format(*.after))]
    Timeout {
        /// The upstream.
        mcp: String,
        /// What timed out.
        what: String,
        /// The deadline.
        after: Duration,
    },
    /// The upstream answered with a JSON-RPC error.
    #[error("mcp {mcp:?} answered {method} with json-rpc error {}: {}", .error.code, .error.message)]
    Rpc {
        /// The upstream.
        mcp: String,
        /// The method.
        method: String,
        /// The error object, as sent.
        error: ErrorObject,
    },
    /// Talking to the upstream failed.
    #[error(transparent)]
    Upstream(#[from] mcp_transport::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] mcp_store::Error),
    /// `max_connections` reached.
    #[error("max_connections ({0}) reached: delete an mcp before adding another")]
    TooManyUpstreams(usize),
    /// The definition fails validation (every failing field).
    #[error("{0}")]
    Invalid(mcp_types::ValidationErrors),
    /// The definition is declared in the configuration of the program that embeds the
    /// core (`proxyd`'s `[[servers]]`); its registrant may not change it.
    #[error(
        "mcp {0:?} is declared in the proxy's configuration ([[servers]] or servers_dir): \
         change it there and reload proxyd (SIGHUP), or remove the declaration"
    )]
    Declared(String),
    /// The upstream's `maxSessions` is reached.
    #[error("mcp {mcp:?}: max sessions ({limit}) reached")]
    TooManySessions {
        /// The upstream.
        mcp: String,
        /// Its `maxSessions`.
        limit: usize,
    },
    /// The global `max_sessions` is reached.
    #[error("max_sessions ({0}) reached")]
    SessionLimit(usize),
    /// The client session is over (ended by the client, its upstream, or the proxy).
    #[error("session {0:?} not found or ended")]
    SessionEnded(String),
    /// The manager is shutting down.
    #[error("the proxy is shutting down")]
    ShuttingDown,
}

fn fmt_last(last: &Option<String>) -> String {
    last.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
}

impl Error {
    /// Whether the upstream (not the caller, not the proxy) is at fault.
    pub fn is_upstream(&self) -> bool {
        matches!(
            self,
            Self::NotConnected { .. } | Self::Timeout { .. } | Self::Rpc { .. } | Self::Upstream(_)
        )
    }

    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::NotConnected { .. }
            | Self::Timeout { .. }
            | Self::ShuttingDown
            | Self::TooManySessions { .. }
            | Self::SessionLimit(_) => true,
            Self::Upstream(e) => e.is_retryable(),
            Self::Store(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// Whether a deadline passed.
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Timeout { .. } => true,
            Self::Upstream(e) => e.is_timeout(),
            _ => false,
        }
    }
}
