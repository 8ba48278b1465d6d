//! Errors of the HTTP layer, and the one place that maps them to status codes.

mod kind;

use http::StatusCode;
use serde_json::Value;

pub use kind::ErrorKind;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No route matches the path.
    #[error("no route for {0}")]
    RouteNotFound(String),
    /// The route exists but not for this method.
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The method used.
        method: http::Method,
        /// The path.
        path: String,
        /// The methods the route accepts.
        allow: &'static [http::Method],
    },
    /// Missing or wrong credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Credentials fine, but the caller may not do this (IP not allowed, Host refused, …).
    #[error("{0}")]
    Forbidden(String),
    /// The body is larger than `max_body_bytes`.
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body did not arrive whole within `body_read_timeout`.
    #[error("request body not received within {}", mcp_types::duration::format(*.within))]
    BodyTimeout {
        /// The deadline.
        within: std::time::Duration,
    },
    /// The body is not JSON.
    #[error("invalid json at line {line} column {column}: {message}")]
    InvalidJson {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// The body is JSON but not a valid definition (or other input).
    #[error("{message}")]
    Invalid {
        /// Summary.
        message: String,
        /// Per-field errors.
        details: Value,
    },
    /// The request body has a content type other than JSON.
    #[error("content type must be application/json, not {0:?} (with curl, use --json)")]
    UnsupportedMediaType(String),
    /// The named definition does not exist.
    #[error("mcp {0:?} not found")]
    McpNotFound(String),
    /// A definition of that name exists already.
    #[error("mcp {0:?} already exists")]
    AlreadyExists(String),
    /// The name is taken (a group of that name exists, or a group's name is wanted by a
    /// definition or the other way round: they share one namespace).
    #[error("{0}")]
    Exists(String),
    /// The named group does not exist.
    #[error("group {0:?} not found")]
    GroupNotFound(String),
    /// The group is built in (`/mcp`, `aggregate_all`); the Admin API shows it but does not
    /// change it.
    #[error(
        "group {0:?} is built in (every upstream, served at /mcp) and cannot be changed: \
         set aggregate_all = false in proxyd's configuration to turn it off"
    )]
    ReadOnly(String),
    /// The number of groups reached the limit.
    #[error("max_groups ({0}) reached: delete a group before adding another")]
    TooManyGroups(usize),
    /// `If-Match` names another version than the one stored.
    #[error("{what} {name:?} has changed: If-Match does not name its current ETag ({})", etag.as_deref().unwrap_or("none"))]
    PreconditionFailed {
        /// `mcp` or `group`.
        what: &'static str,
        /// The definition or group.
        name: String,
        /// Its current entity tag, if it has one.
        etag: Option<String>,
    },
    /// A proxy-endpoint request that is not acceptable as sent (no session id, an
    /// unsupported protocol version, a batch where none is allowed, …).
    #[error("{message}")]
    BadRequest {
        /// Machine-readable code.
        kind: ErrorKind,
        /// What is wrong.
        message: String,
    },
    /// The MCP session id is unknown or the session ended.
    #[error("session not found: it ended or never existed; send initialize to start a new one")]
    SessionNotFound,
    /// The session token names no session here: it does not open, has expired, or was
    /// issued to another client or endpoint (the reason goes in the details).
    #[error("{message}")]
    SessionRefused {
        /// Machine-readable reason (`expired`, `forged`, …).
        reason: &'static str,
        /// What the client is told.
        message: &'static str,
    },
    /// The session is not held by this replica and the session registry cannot be read
    /// now (Redis away): the client may retry, or initialize a new session.
    #[error("session registry unavailable: {0}")]
    RegistryUnavailable(String),
    /// The session's upstream lives in another replica's process, which is alive.
    #[error("{0}")]
    SessionElsewhere(String),
    /// The session (or the events asked for) is held by another replica, which is alive,
    /// and this request cannot be forwarded there (it was forwarded here already).
    #[error(
        "this session is held by replica {replica} ({address}); this request was forwarded \
         here by another replica already and is not forwarded again"
    )]
    OnReplica {
        /// The replica holding it.
        replica: String,
        /// Where it listens.
        address: String,
    },
    /// The replica holding the session cannot be reached (connection refused, timed out).
    #[error("{0}")]
    ReplicaUnreachable(String),
    /// The replica holding the session was reached but did not answer.
    #[error("{0}")]
    ReplicaFailed(String),
    /// The `Accept` header does not allow what the endpoint answers with.
    #[error("{0}")]
    NotAcceptable(String),
    /// The resource is busy (a second standalone SSE stream for one session).
    #[error("{0}")]
    Conflict(String),
    /// The client sends faster than it is answered (a session at its in-flight limit).
    #[error("{0}")]
    TooManyRequests(String),
    /// The store failed.
    #[error("storage: {0}")]
    Store(#[from] mcp_store::Error),
    /// The proxy core refused or failed (unknown tool, upstream down, timeout, …).
    #[error(transparent)]
    Core(#[from] mcp_proxy_core::Error),
    /// Something went wrong on our side.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A proxy-endpoint request refused as sent ([`Error::BadRequest`], 400).
pub(crate) fn bad(kind: ErrorKind, message: impl Into<String>) -> Error {
    Error::BadRequest {
        kind,
        message: message.into(),
    }
}

impl Error {
    /// The HTTP status, the machine-readable code and optional details of this error.
    ///
    /// This is the only function that maps errors to status codes.
    pub fn parts(&self) -> (StatusCode, ErrorKind, Option<Value>) {
        use ErrorKind as K;
        use mcp_store::Error as S;
        match self {
            Self::RouteNotFound(_) => (StatusCode::NOT_FOUND, K::NotFound, None),
            Self::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, K::MethodNotAllowed, None)
            }
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, K::Unauthorized, None),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, K::Forbidden, None),
            Self::PayloadTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                K::PayloadTooLarge,
                Some(serde_json::json!({ "limit": limit })),
            ),
            Self::BodyTimeout { .. } => (StatusCode::REQUEST_TIMEOUT, K::RequestTimeout, None),
            Self::InvalidJson { line, column, .. } => (
                StatusCode::BAD_REQUEST,
                K::InvalidJson,
                Some(serde_json::json!({ "line": line, "column": column })),
            ),
            Self::Invalid { details, .. } => (
                StatusCode::BAD_REQUEST,
                K::InvalidRequest,
                Some(details.clone()),
            ),
            Self::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                K::UnsupportedMediaType,
                None,
            ),
            Self::McpNotFound(_) | Self::Store(S::NotFound(_)) => {
                (StatusCode::NOT_FOUND, K::McpNotFound, None)
            }
            Self::GroupNotFound(_) | Self::Store(S::GroupNotFound(_)) => {
                (StatusCode::NOT_FOUND, K::GroupNotFound, None)
            }
            Self::AlreadyExists(_)
            | Self::Exists(_)
            | Self::Store(S::AlreadyExists(_) | S::GroupAlreadyExists(_) | S::NameTaken { .. }) => {
                (StatusCode::CONFLICT, K::AlreadyExists, None)
            }
            Self::ReadOnly(_) => (StatusCode::CONFLICT, K::ReadOnly, None),
            Self::TooManyGroups(_) => (StatusCode::CONFLICT, K::MaxGroupsReached, None),
            Self::PreconditionFailed { etag, .. } => (
                StatusCode::PRECONDITION_FAILED,
                K::PreconditionFailed,
                Some(serde_json::json!({ "etag": etag })),
            ),
            Self::BadRequest { kind, .. } => (StatusCode::BAD_REQUEST, *kind, None),
            Self::SessionNotFound => (StatusCode::NOT_FOUND, K::SessionNotFound, None),
            Self::SessionRefused { reason, .. } => (
                StatusCode::NOT_FOUND,
                K::SessionNotFound,
                Some(serde_json::json!({ "reason": reason })),
            ),
            Self::SessionElsewhere(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                K::SessionOnOtherReplica,
                None,
            ),
            Self::OnReplica { replica, address } => (
                StatusCode::SERVICE_UNAVAILABLE,
                K::SessionOnOtherReplica,
                Some(serde_json::json!({ "replica": replica, "address": address })),
            ),
            Self::ReplicaUnreachable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, K::ReplicaUnreachable, None)
            }
            Self::ReplicaFailed(_) => (StatusCode::BAD_GATEWAY, K::ReplicaFailed, None),
            Self::RegistryUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                K::SessionRegistryUnavailable,
                None,
            ),
            Self::NotAcceptable(_) => (StatusCode::NOT_ACCEPTABLE, K::NotAcceptable, None),
            Self::Conflict(_) => (StatusCode::CONFLICT, K::Conflict, None),
            Self::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, K::TooManyRequests, None),
            Self::Core(e) => core_parts(e),
            Self::Store(e) if e.is_retryable() => {
                (StatusCode::SERVICE_UNAVAILABLE, K::StoreUnavailable, None)
            }
            Self::Store(_) | Self::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, K::InternalError, None)
            }
        }
    }
}

fn core_parts(e: &mcp_proxy_core::Error) -> (StatusCode, ErrorKind, Option<Value>) {
    use ErrorKind as K;
    use mcp_proxy_core::Error as C;
    match e {
        C::UnknownMcp(_) => (StatusCode::NOT_FOUND, K::McpNotFound, None),
        C::UnknownTool { .. } => (StatusCode::NOT_FOUND, K::ToolNotFound, None),
        C::ToolBlocked { .. } => (StatusCode::FORBIDDEN, K::ToolBlocked, None),
        C::NotConnected { state, .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            K::UpstreamUnavailable,
            Some(serde_json::json!({ "state": state })),
        ),
        C::Rpc { error, .. } => (
            StatusCode::BAD_GATEWAY,
            K::UpstreamError,
            Some(serde_json::to_value(error).unwrap_or_default()),
        ),
        e if e.is_timeout() => (StatusCode::GATEWAY_TIMEOUT, K::UpstreamTimeout, None),
        C::Upstream(_) => (StatusCode::BAD_GATEWAY, K::UpstreamError, None),
        C::TooManyUpstreams(_) => (StatusCode::CONFLICT, K::MaxConnectionsReached, None),
        C::Invalid(errors) => (
            StatusCode::BAD_REQUEST,
            K::InvalidRequest,
            Some(serde_json::to_value(&errors.0).unwrap_or_default()),
        ),
        C::Declared(_) => (StatusCode::CONFLICT, K::DeclaredInConfig, None),
        C::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, K::ShuttingDown, None),
        C::TooManySessions { .. } | C::SessionLimit(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, K::TooManySessions, None)
        }
        C::SessionEnded(_) => (StatusCode::NOT_FOUND, K::SessionNotFound, None),
        C::Store(s) if s.is_retryable() => {
            (StatusCode::SERVICE_UNAVAILABLE, K::StoreUnavailable, None)
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, K::InternalError, None),
    }
}
