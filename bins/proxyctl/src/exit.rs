//! Exit codes that say what failed, and the errors that carry one.

use std::fmt;

use mcp_proxy_client::Error as ClientError;

/// What the process exit code says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Done.
    Ok = 0,
    /// Anything else.
    Error = 1,
    /// Bad flags or arguments, an unreadable config file.
    Usage = 2,
    /// The proxy cannot be reached, timed out, or is not ready (503).
    Unreachable = 3,
    /// 401 / 403.
    Auth = 4,
    /// 404.
    NotFound = 5,
    /// The input is invalid: a file that does not parse, a definition the proxy refused.
    Invalid = 6,
    /// 409: exists already, declared in the configuration, a limit reached.
    Conflict = 7,
    /// The tool reported an error (`isError`), or the upstream answered with one (502).
    ToolError = 8,
    /// Partly done: some entries skipped or failed, or a server did not connect in time.
    Partial = 9,
}

impl Exit {
    /// The exit code a client error maps to.
    pub(crate) fn of(e: &ClientError) -> Self {
        match e {
            ClientError::NotFound { .. } => Self::NotFound,
            ClientError::AlreadyExists { .. } => Self::Conflict,
            ClientError::Status { status: 409, .. } => Self::Conflict,
            ClientError::Unauthorized { .. } | ClientError::Forbidden { .. } => Self::Auth,
            ClientError::Invalid { .. }
            | ClientError::InvalidWorkflow(_)
            | ClientError::Yaml(_)
            | ClientError::MissingVariable { .. } => Self::Invalid,
            ClientError::Unavailable { .. }
            | ClientError::Timeout { .. }
            | ClientError::Transport { .. } => Self::Unreachable,
            ClientError::Upstream { .. } => Self::ToolError,
            ClientError::NotConnected { .. } | ClientError::Batch { .. } => Self::Partial,
            ClientError::InvalidUrl { .. } | ClientError::InvalidRetryPolicy(_) => Self::Usage,
            _ => Self::Error,
        }
    }

    /// The exit code of any error: a [`Failure`]'s own, a client error's, else 1.
    pub(crate) fn of_any(e: &anyhow::Error) -> Self {
        if let Some(f) = e.downcast_ref::<Failure>() {
            return f.exit;
        }
        match e.downcast_ref::<ClientError>() {
            Some(c) => Self::of(c),
            None => Self::Error,
        }
    }
}

/// An error with the exit code it deserves.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) exit: Exit,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// The error as one line: its message, then its root cause when the message does not
/// already say it (connection errors nest three deep).
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let top = e.to_string();
    let mut root = e;
    while let Some(next) = root.source() {
        root = next;
    }
    let root = root.to_string();
    if !top.contains(&root) {
        format!("{top}: {root}")
    } else {
        top
    }
}

/// A hint for the errors people meet first.
pub(crate) fn hint(e: &anyhow::Error) -> Option<&'static str> {
    client_hint(e.downcast_ref::<ClientError>()?)
}

/// The same, for a client error.
pub(crate) fn client_hint(e: &ClientError) -> Option<&'static str> {
    match e {
        ClientError::Transport { source, .. } if source.is_connect() => Some(
            "is proxyd running? start it with `proxyd`, or give its address with --proxy or \
             MCP_PROXY_URL",
        ),
        ClientError::Unauthorized { .. } => {
            Some("give the admin token with --token or MCP_PROXY_TOKEN (see admin_tokens)")
        }
        ClientError::Status { code, .. } if code == "declared_in_config" => Some(
            "this server is declared in proxyd's configuration: edit the declaration and \
             reload proxyd (kill -HUP)",
        ),
        _ => None,
    }
}
