//! Errors of the HTTP layer, and the one place that maps them to status codes.

use http::StatusCode;
use serde_json::Value;

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
    #[error("content type must be application/json, not {0:?}")]
    UnsupportedMediaType(String),
    /// The named definition does not exist.
    #[error("mcp {0:?} not found")]
    McpNotFound(String),
    /// A definition of that name exists already.
    #[error("mcp {0:?} already exists")]
    AlreadyExists(String),
    /// The number of definitions reached `max_connections`.
    #[error("max_connections ({0}) reached: delete an mcp before adding another")]
    TooManyDefinitions(usize),
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

impl Error {
    /// The HTTP status, the machine-readable code and optional details of this error.
    ///
    /// This is the only function that maps errors to status codes.
    pub fn parts(&self) -> (StatusCode, &'static str, Option<Value>) {
        use mcp_store::Error as S;
        match self {
            Self::RouteNotFound(_) => (StatusCode::NOT_FOUND, "not_found", None),
            Self::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None)
            }
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", None),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", None),
            Self::PayloadTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                Some(serde_json::json!({ "limit": limit })),
            ),
            Self::InvalidJson { line, column, .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_json",
                Some(serde_json::json!({ "line": line, "column": column })),
            ),
            Self::Invalid { details, .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                Some(details.clone()),
            ),
            Self::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                None,
            ),
            Self::McpNotFound(_) | Self::Store(S::NotFound(_)) => {
                (StatusCode::NOT_FOUND, "mcp_not_found", None)
            }
            Self::AlreadyExists(_) | Self::Store(S::AlreadyExists(_)) => {
                (StatusCode::CONFLICT, "already_exists", None)
            }
            Self::TooManyDefinitions(_) => (StatusCode::CONFLICT, "max_connections_reached", None),
            Self::Core(e) => core_parts(e),
            Self::Store(e) if e.is_retryable() => {
                (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", None)
            }
            Self::Store(_) | Self::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal_error", None)
            }
        }
    }
}

fn core_parts(e: &mcp_proxy_core::Error) -> (StatusCode, &'static str, Option<Value>) {
    use mcp_proxy_core::Error as C;
    match e {
        C::UnknownMcp(_) => (StatusCode::NOT_FOUND, "mcp_not_found", None),
        C::UnknownTool { .. } => (StatusCode::NOT_FOUND, "tool_not_found", None),
        C::ToolBlocked { .. } => (StatusCode::FORBIDDEN, "tool_blocked", None),
        C::NotConnected { state, .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_unavailable",
            Some(serde_json::json!({ "state": state })),
        ),
        C::Rpc { error, .. } => (
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            Some(serde_json::to_value(error).unwrap_or_default()),
        ),
        e if e.is_timeout() => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", None),
        C::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream_error", None),
        C::TooManyUpstreams(_) => (StatusCode::CONFLICT, "max_connections_reached", None),
        C::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down", None),
        C::Store(s) if s.is_retryable() => {
            (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", None)
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error", None),
    }
}
