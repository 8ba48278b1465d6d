//! The machine-readable codes of errors, one enum, the strings in one place.

/// The machine-readable code of an error: `code` in the Admin API's error body, `data.code`
/// in the JSON-RPC error of an MCP endpoint. The strings are part of the API: clients
/// match on them, and `docs/` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// `not_found`: No route matches the path.
    NotFound,
    /// `method_not_allowed`: The route exists but not for this method.
    MethodNotAllowed,
    /// `unauthorized`: Missing or wrong credentials.
    Unauthorized,
    /// `forbidden`: Credentials fine, but the caller may not do this.
    Forbidden,
    /// `payload_too_large`: The body is larger than `max_body_bytes`.
    PayloadTooLarge,
    /// `request_timeout`: The body did not arrive whole in time.
    RequestTimeout,
    /// `invalid_json`: The body is not JSON.
    InvalidJson,
    /// `invalid_request`: The body is JSON but not valid input.
    InvalidRequest,
    /// `unsupported_media_type`: The body is not `application/json`.
    UnsupportedMediaType,
    /// `mcp_not_found`: No upstream of that name.
    McpNotFound,
    /// `tool_not_found`: The upstream has no tool of that name.
    ToolNotFound,
    /// `tool_blocked`: The tool filter hides the tool.
    ToolBlocked,
    /// `already_exists`: The name is taken (by an upstream or a group).
    AlreadyExists,
    /// `max_connections_reached`: `max_connections` upstreams exist.
    MaxConnectionsReached,
    /// `declared_in_config`: The upstream is declared in proxyd's configuration.
    DeclaredInConfig,
    /// `group_not_found`: No group of that name.
    GroupNotFound,
    /// `read_only`: The group is built in.
    ReadOnly,
    /// `max_groups_reached`: `max_groups` groups exist.
    MaxGroupsReached,
    /// `precondition_failed`: `If-Match` names another version.
    PreconditionFailed,
    /// `upstream_unavailable`: The upstream is not connected.
    UpstreamUnavailable,
    /// `upstream_error`: The upstream answered with an error or failed.
    UpstreamError,
    /// `upstream_timeout`: The upstream did not answer in time.
    UpstreamTimeout,
    /// `shutting_down`: The proxy is shutting down.
    ShuttingDown,
    /// `store_unavailable`: The store failed in a way a retry may cure.
    StoreUnavailable,
    /// `internal_error`: Something went wrong on our side.
    InternalError,
    /// `session_required`: An MCP endpoint request names no session.
    SessionRequired,
    /// `session_not_found`: The session is unknown, ended, or its token refused.
    SessionNotFound,
    /// `session_on_other_replica`: The session's upstream runs on another, live replica.
    SessionOnOtherReplica,
    /// `session_registry_unavailable`: The session registry cannot be read now.
    SessionRegistryUnavailable,
    /// `replica_unreachable`: The replica holding the session cannot be reached.
    ReplicaUnreachable,
    /// `replica_failed`: The replica holding the session was reached but did not answer.
    ReplicaFailed,
    /// `forwarded_header_refused`: An `mcp-proxy-forwarded` header that does not verify.
    ForwardedHeaderRefused,
    /// `too_many_sessions`: Session limits reached.
    TooManySessions,
    /// `unsupported_protocol_version`: `MCP-Protocol-Version` names a version the proxy does not speak.
    UnsupportedProtocolVersion,
    /// `invalid_message`: The body is JSON but not a JSON-RPC message.
    InvalidMessage,
    /// `batch_not_supported`: A JSON-RPC batch where the protocol has none.
    BatchNotSupported,
    /// `initialize_in_batch`: `initialize` inside a batch.
    InitializeInBatch,
    /// `already_initialized`: `initialize` sent with a session id.
    AlreadyInitialized,
    /// `request_id_in_use`: A request id already in flight on the session.
    RequestIdInUse,
    /// `unknown_event_id`: `Last-Event-ID` names no stream that can be resumed.
    UnknownEventId,
    /// `invalid_path`: Extra path segments that are not a valid path suffix.
    InvalidPath,
    /// `not_acceptable`: `Accept` does not allow what the endpoint answers with.
    NotAcceptable,
    /// `conflict`: The resource is busy (a second standalone stream).
    Conflict,
    /// `too_many_requests`: The session is at its in-flight limit.
    TooManyRequests,
}

impl ErrorKind {
    /// Every kind, in the order of the docs.
    pub const ALL: &'static [Self] = &[
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Unauthorized,
        Self::Forbidden,
        Self::PayloadTooLarge,
        Self::RequestTimeout,
        Self::InvalidJson,
        Self::InvalidRequest,
        Self::UnsupportedMediaType,
        Self::McpNotFound,
        Self::ToolNotFound,
        Self::ToolBlocked,
        Self::AlreadyExists,
        Self::MaxConnectionsReached,
        Self::DeclaredInConfig,
        Self::GroupNotFound,
        Self::ReadOnly,
        Self::MaxGroupsReached,
        Self::PreconditionFailed,
        Self::UpstreamUnavailable,
        Self::UpstreamError,
        Self::UpstreamTimeout,
        Self::ShuttingDown,
        Self::StoreUnavailable,
        Self::InternalError,
        Self::SessionRequired,
        Self::SessionNotFound,
        Self::SessionOnOtherReplica,
        Self::SessionRegistryUnavailable,
        Self::ReplicaUnreachable,
        Self::ReplicaFailed,
        Self::ForwardedHeaderRefused,
        Self::TooManySessions,
        Self::UnsupportedProtocolVersion,
        Self::InvalidMessage,
        Self::BatchNotSupported,
        Self::InitializeInBatch,
        Self::AlreadyInitialized,
        Self::RequestIdInUse,
        Self::UnknownEventId,
        Self::InvalidPath,
        Self::NotAcceptable,
        Self::Conflict,
        Self::TooManyRequests,
    ];

    /// The code as it travels: lowercase words joined by `_`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::InvalidJson => "invalid_json",
            Self::InvalidRequest => "invalid_request",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::McpNotFound => "mcp_not_found",
            Self::ToolNotFound => "tool_not_found",
            Self::ToolBlocked => "tool_blocked",
            Self::AlreadyExists => "already_exists",
            Self::MaxConnectionsReached => "max_connections_reached",
            Self::DeclaredInConfig => "declared_in_config",
            Self::GroupNotFound => "group_not_found",
            Self::ReadOnly => "read_only",
            Self::MaxGroupsReached => "max_groups_reached",
            Self::PreconditionFailed => "precondition_failed",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamError => "upstream_error",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::ShuttingDown => "shutting_down",
            Self::StoreUnavailable => "store_unavailable",
            Self::InternalError => "internal_error",
            Self::SessionRequired => "session_required",
            Self::SessionNotFound => "session_not_found",
            Self::SessionOnOtherReplica => "session_on_other_replica",
            Self::SessionRegistryUnavailable => "session_registry_unavailable",
            Self::ReplicaUnreachable => "replica_unreachable",
            Self::ReplicaFailed => "replica_failed",
            Self::ForwardedHeaderRefused => "forwarded_header_refused",
            Self::TooManySessions => "too_many_sessions",
            Self::UnsupportedProtocolVersion => "unsupported_protocol_version",
            Self::InvalidMessage => "invalid_message",
            Self::BatchNotSupported => "batch_not_supported",
            Self::InitializeInBatch => "initialize_in_batch",
            Self::AlreadyInitialized => "already_initialized",
            Self::RequestIdInUse => "request_id_in_use",
            Self::UnknownEventId => "unknown_event_id",
            Self::InvalidPath => "invalid_path",
            Self::NotAcceptable => "not_acceptable",
            Self::Conflict => "conflict",
            Self::TooManyRequests => "too_many_requests",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::ErrorKind;

    /// The backticked words of `text` that look like codes (`a_code`, lowercase).
    fn codes_in(text: &str) -> BTreeSet<&str> {
        text.split('`')
            .skip(1)
            .step_by(2)
            .filter(|w| {
                w.starts_with(|c: char| c.is_ascii_lowercase())
                    && w.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            })
            .collect()
    }

    /// The codes the docs promise: the OpenAPI error body's list (Admin API) and the
    /// status column of `docs/sessions.md`'s table (MCP endpoints).
    fn documented() -> BTreeSet<&'static str> {
        let openapi = include_str!("../../../../docs/openapi.yaml");
        let list = openapi
            .split("Stable for programs:")
            .nth(1)
            .and_then(|rest| rest.split("details:").next())
            .expect("docs/openapi.yaml lists the error codes in the error body");
        let sessions = include_str!("../../../../docs/sessions.md");
        let table = sessions
            .split("## Status codes of the streamable endpoint")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("docs/sessions.md has a table of the streamable endpoint's status codes");
        let status_cells = table
            .lines()
            .filter(|l| l.starts_with('|'))
            .filter_map(|l| l.trim_end_matches('|').rsplit('|').next());
        let mut codes = codes_in(list);
        for cell in status_cells {
            codes.extend(codes_in(cell));
        }
        codes
    }

    #[test]
    fn codes_are_distinct_snake_case_words() {
        let codes: BTreeSet<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(codes.len(), ErrorKind::ALL.len(), "two kinds share a code");
        for code in codes {
            assert!(
                code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{code:?} is not snake case"
            );
        }
        assert_eq!(
            serde_json::to_value(ErrorKind::SessionRequired).unwrap(),
            "session_required"
        );
    }

    #[test]
    fn the_docs_list_every_code_and_no_other() {
        let documented = documented();
        let kinds: BTreeSet<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        let unknown: Vec<_> = documented.difference(&kinds).collect();
        assert!(
            unknown.is_empty(),
            "the docs name codes the proxy never sends: {unknown:?}"
        );
        let undocumented: Vec<_> = kinds.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "codes in neither docs/openapi.yaml nor docs/sessions.md: {undocumented:?}"
        );
    }
}
