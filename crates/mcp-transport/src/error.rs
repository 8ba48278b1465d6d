//! Errors of the transport crate.

use std::fmt;
use std::time::Duration;

use mcp_types::{ErrorObject, TransportKind};

use crate::transport::CloseReason;

/// Which upstream a transport talks to, and how: the context every error starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The upstream's name (`McpDefinition::name`).
    pub name: String,
    /// The transport in use.
    pub kind: TransportKind,
}

impl Target {
    /// A target for `name` over `kind`.
    pub fn new(name: impl Into<String>, kind: TransportKind) -> Self {
        Self {
            name: name.into(),
            kind,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "upstream {:?} ({})", self.name, self.kind.as_str())
    }
}

/// Everything that can go wrong while talking to an upstream.
///
/// Every message starts with the upstream and its transport, then says what happened:
/// `upstream "fs" (stdio): initialize timed out after 10s`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The definition cannot be used with this transport (no command, bad URL, …).
    #[error("{target}: invalid definition: {reason}")]
    Config {
        /// The upstream.
        target: Target,
        /// What is wrong.
        reason: String,
    },
    /// The child process could not be started.
    #[error("{target}: cannot start {program:?}: {source}")]
    Spawn {
        /// The upstream.
        target: Target,
        /// The program that failed to start.
        program: String,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP request could not be sent or its answer could not be read.
    #[error("{target}: {what} failed: {source}")]
    Http {
        /// The upstream.
        target: Target,
        /// Which request (`POST http://…`).
        what: String,
        /// The client error.
        #[source]
        source: reqwest::Error,
    },
    /// The upstream answered an HTTP request with an unexpected status.
    #[error("{target}: {what} returned {status}{}", fmt_body(.body))]
    Status {
        /// The upstream.
        target: Target,
        /// Which request.
        what: String,
        /// The HTTP status.
        status: http::StatusCode,
        /// The start of the response body, for the operator.
        body: String,
    },
    /// Something did not happen within its deadline.
    #[error("{target}: {what} timed out after {}", fmt_duration(*.after))]
    Timeout {
        /// The upstream.
        target: Target,
        /// What was awaited (`initialize`, `connect`, `POST http://…`).
        what: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// The upstream ended the session (streamable HTTP 404); a new `initialize` is needed.
    #[error("{target}: session expired (the server answered 404 for session {session_id:?})")]
    SessionExpired {
        /// The upstream.
        target: Target,
        /// The session that ended.
        session_id: String,
    },
    /// The connection is closed; the reason says why (exit status, stream lost, …).
    #[error("{target}: connection closed: {reason}")]
    Closed {
        /// The upstream.
        target: Target,
        /// Why it closed.
        reason: CloseReason,
    },
    /// The upstream broke the protocol (non-JSON, oversized message, bad version, …).
    #[error("{target}: protocol error: {message}")]
    Protocol {
        /// The upstream.
        target: Target,
        /// What it did wrong.
        message: String,
    },
    /// The upstream answered a request with a JSON-RPC error.
    #[error("{target}: {method} failed: json-rpc error {}: {}", .error.code, .error.message)]
    Rpc {
        /// The upstream.
        target: Target,
        /// The method of the failed request.
        method: String,
        /// The error object, as sent.
        error: ErrorObject,
    },
    /// A request never reached the upstream: the connection was found closed while
    /// writing it. Sending it again on a new connection cannot run it twice.
    #[error("{target}: the request was not delivered: {reason}")]
    NotDelivered {
        /// The upstream.
        target: Target,
        /// Why the connection closed.
        reason: CloseReason,
    },
    /// A client's request cannot be forwarded as it is (a member the proxy must read is
    /// ambiguous or of the wrong type).
    #[error("{target}: the request cannot be forwarded: {message}")]
    BadRequest {
        /// The upstream.
        target: Target,
        /// What is wrong with it.
        message: String,
    },
    /// A local I/O operation failed (writing to a child's stdin, …).
    #[error("{target}: {what}: {source}")]
    Io {
        /// The upstream.
        target: Target,
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

fn fmt_body(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

/// `10s`, `1.5s`, `250ms`: durations as definitions write them.
pub(crate) use mcp_types::duration::format as fmt_duration;

impl Error {
    /// The upstream this error is about.
    pub fn target(&self) -> &Target {
        match self {
            Self::Config { target, .. }
            | Self::Spawn { target, .. }
            | Self::Http { target, .. }
            | Self::Status { target, .. }
            | Self::Timeout { target, .. }
            | Self::SessionExpired { target, .. }
            | Self::Closed { target, .. }
            | Self::Protocol { target, .. }
            | Self::Rpc { target, .. }
            | Self::BadRequest { target, .. }
            | Self::NotDelivered { target, .. }
            | Self::Io { target, .. } => target,
        }
    }

    /// Whether a deadline passed.
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Timeout { .. } => true,
            Self::Http { source, .. } => source.is_timeout(),
            _ => false,
        }
    }

    /// Whether the upstream ended the session, so the caller should initialize again.
    pub fn is_session_expired(&self) -> bool {
        match self {
            Self::SessionExpired { .. } => true,
            Self::Closed { reason, .. } => reason.is_session_expired(),
            _ => false,
        }
    }

    /// Whether trying again (possibly on a new connection) may succeed: timeouts, lost
    /// connections, expired sessions, 5xx/429 answers. Bad definitions, protocol
    /// violations and JSON-RPC errors are not retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Http { .. }
            | Self::Timeout { .. }
            | Self::SessionExpired { .. }
            | Self::NotDelivered { .. } => true,
            Self::Closed { reason, .. } => !reason.is_local(),
            Self::Status { status, .. } => {
                status.is_server_error() || *status == http::StatusCode::TOO_MANY_REQUESTS
            }
            Self::Io { .. } => true,
            Self::Config { .. }
            | Self::Spawn { .. }
            | Self::Protocol { .. }
            | Self::Rpc { .. }
            | Self::BadRequest { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::CloseKind;

    #[test]
    fn messages_start_with_the_upstream_and_transport() {
        let e = Error::Timeout {
            target: Target::new("fs", TransportKind::Stdio),
            what: "initialize".into(),
            after: Duration::from_secs(10),
        };
        assert_eq!(
            e.to_string(),
            r#"upstream "fs" (stdio): initialize timed out after 10s"#
        );
        assert!(e.is_timeout() && e.is_retryable() && !e.is_session_expired());
    }

    #[test]
    fn closed_by_session_expiry_is_session_expired() {
        let e = Error::Closed {
            target: Target::new("h", TransportKind::StreamableHttp),
            reason: CloseReason::new(CloseKind::SessionExpired, "session expired"),
        };
        assert!(e.is_session_expired() && e.is_retryable());
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
    }
}
