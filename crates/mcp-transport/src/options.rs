//! Knobs shared by every transport.

use std::time::Duration;

use http::HeaderMap;
use mcp_types::McpDefinition;

/// Default [`TransportOptions::max_message_bytes`]: 16 MiB, `proxyd`'s default too (tool
/// results carrying images or files pass 4 MiB; one message is still bounded).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// How a transport behaves; [`Default`] gives the documented defaults.
///
/// Deadlines left at `None` take the definition's `timeout`.
#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// Largest message accepted from the upstream (a stdio line, an SSE event, a JSON
    /// body). A bigger one is a protocol error, never an unbounded allocation.
    pub max_message_bytes: usize,
    /// How many of the last stderr lines of a stdio child are kept for error messages.
    pub stderr_lines: usize,
    /// Deadline to start: spawn and first bytes for stdio, TCP connect and the `endpoint`
    /// event for HTTP. `None`: the definition's `timeout`.
    pub connect_timeout: Option<Duration>,
    /// Deadline for each request (and for each HTTP POST to be answered).
    /// `None`: the definition's `timeout`.
    pub request_timeout: Option<Duration>,
    /// stdio: how long to wait for the child to exit after closing its stdin, before
    /// SIGTERM; and again after SIGTERM before SIGKILL.
    pub shutdown_grace: Duration,
    /// Capacity of the event channel handed to the owner (backpressure, not loss).
    pub event_capacity: usize,
    /// Streamable HTTP: how many times a broken SSE stream is resumed with `Last-Event-ID`.
    pub max_resume_attempts: u32,
    /// Streamable HTTP: wait before resuming when the server sent no `retry:` field.
    pub resume_delay: Duration,
    /// Longest `retry:` wait honoured (a server cannot park us forever).
    pub max_resume_delay: Duration,
    /// HTTP: extra headers for every upstream request (per-client passthrough headers).
    /// They never override the definition's own `headers`.
    pub extra_headers: HeaderMap,
    /// HTTP: path segments appended to the upstream URL's path (`a/b` turns
    /// `http://h/mcp` into `http://h/mcp/a/b`); already percent-encoded. Dot segments
    /// and backslashes are refused.
    pub path_suffix: Option<String>,
    /// stdio: when not empty, the only programs that may be spawned
    /// (`stdio_allowed_commands`), checked right before each spawn whatever the
    /// definition's origin (Admin API, store, an older configuration).
    pub allowed_commands: std::sync::Arc<[String]>,
    /// Streamable HTTP: go on with this existing upstream session (its `Mcp-Session-Id`)
    /// instead of starting one; the caller then skips `initialize`
    /// ([`McpClient::resume`](crate::McpClient::resume)). Ignored by other transports.
    pub resume_session: Option<String>,
}

impl Default for TransportOptions {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            stderr_lines: 20,
            connect_timeout: None,
            request_timeout: None,
            shutdown_grace: Duration::from_secs(2),
            event_capacity: 64,
            max_resume_attempts: 3,
            resume_delay: Duration::from_millis(500),
            max_resume_delay: Duration::from_secs(10),
            extra_headers: HeaderMap::new(),
            path_suffix: None,
            allowed_commands: std::sync::Arc::from(Vec::new()),
            resume_session: None,
        }
    }
}

impl TransportOptions {
    /// The connect deadline for `def`.
    pub fn connect_timeout_for(&self, def: &McpDefinition) -> Duration {
        self.connect_timeout.unwrap_or(def.timeout)
    }

    /// The request deadline for `def`.
    pub fn request_timeout_for(&self, def: &McpDefinition) -> Duration {
        self.request_timeout.unwrap_or(def.timeout)
    }
}
