//! What a client is told when the upstream side fails: the kind of failure and a
//! reference, never the detail — upstream URLs with their query strings, pieces of
//! upstream error bodies, a stdio child's stderr. The detail goes to the log under the
//! same reference (and to the upstream's status, for operators).

use mcp_transport::{CloseKind, CloseReason};
use mcp_types::ErrorObject;
use mcp_types::jsonrpc::{codes, to_raw};

/// A fresh reference: 8 hex digits, enough to find the log line.
fn reference() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// The words for why a connection ended.
pub(crate) fn close_kind(reason: &CloseReason) -> &'static str {
    match reason.kind {
        CloseKind::Exited => "the upstream process exited",
        CloseKind::StreamLost => "the connection to the upstream was lost",
        CloseKind::SessionExpired => "the upstream ended the session",
        CloseKind::Protocol => "the upstream broke the protocol",
        CloseKind::Local => "the upstream session was closed by the proxy",
    }
}

/// The JSON-RPC error for a forwarded request that failed: the upstream's own JSON-RPC
/// error as it sent it, `-32602` for a request the proxy could not forward as it is,
/// `-32001` for a timeout, `-32000` otherwise — with a reference logged at `warn`.
pub(crate) fn request_failed(mcp: &str, err: &mcp_transport::Error) -> ErrorObject {
    use mcp_transport::Error as E;
    let what = match err {
        E::Rpc { error, .. } => return error.clone(),
        E::BadRequest { message, .. } => {
            return ErrorObject::new(codes::INVALID_PARAMS, message.clone());
        }
        E::Timeout { after, .. } => {
            // what timed out may name the upstream's URL: the log has it
            let after = mcp_types::duration::format(*after);
            let reference = reference();
            tracing::warn!(upstream = mcp, reference = %reference, error = %err, "forwarded request timed out");
            return with_reference(
                codes::REQUEST_TIMEOUT,
                format!("upstream {mcp:?}: the request timed out after {after}"),
                &reference,
            );
        }
        e if e.is_timeout() => {
            return ErrorObject::new(
                codes::REQUEST_TIMEOUT,
                format!("upstream {mcp:?}: the request timed out"),
            );
        }
        E::Closed { reason, .. } | E::NotDelivered { reason, .. } => close_kind(reason),
        E::SessionExpired { .. } => "the upstream ended the session",
        E::Http { .. } | E::Io { .. } => "the upstream could not be reached",
        E::Status { .. } => "the upstream refused the request",
        E::Protocol { .. } => "the upstream sent an invalid answer",
        E::Config { .. } | E::Spawn { .. } => "the upstream could not be started",
    };
    let reference = reference();
    tracing::warn!(upstream = mcp, reference = %reference, error = %err, "forwarded request failed");
    with_reference(
        codes::CONNECTION_CLOSED,
        format!("upstream {mcp:?}: {what}"),
        &reference,
    )
}

/// What a client is told when its upstream session could not be opened: the upstream's
/// state or the deadline, never the last error (it may name URLs or carry stderr).
pub(crate) fn open_failed(mcp: &str, code: i64, err: &crate::Error) -> ErrorObject {
    use crate::Error as E;
    let why = match err {
        E::NotConnected { state, .. } => format!("it is not connected (state {})", state.as_str()),
        E::Timeout { after, .. } => {
            format!("it timed out after {}", mcp_types::duration::format(*after))
        }
        E::UnknownMcp(_) => "it is not registered".to_owned(),
        E::ShuttingDown => "the proxy is shutting down".to_owned(),
        _ => "it failed".to_owned(),
    };
    let reference = reference();
    tracing::warn!(upstream = mcp, reference = %reference, error = %err, "cannot open an upstream session");
    with_reference(
        code,
        format!("upstream {mcp:?}: cannot open an upstream session: {why}"),
        &reference,
    )
}

/// What a client's requests in flight are told when its upstream session ends.
pub(crate) fn session_ended(mcp: &str, reason: &CloseReason) -> ErrorObject {
    let reference = reference();
    tracing::warn!(upstream = mcp, reference = %reference, reason = %reason, "upstream session ended under its client sessions");
    with_reference(
        codes::CONNECTION_CLOSED,
        format!(
            "upstream {mcp:?}: the upstream session ended: {}",
            close_kind(reason)
        ),
        &reference,
    )
}

fn with_reference(code: i64, message: String, reference: &str) -> ErrorObject {
    ErrorObject {
        code,
        message: format!("{message} (ref {reference})"),
        data: Some(to_raw(&serde_json::json!({ "ref": reference }))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_transport::Target;
    use mcp_types::TransportKind;

    /// `docs/transports.md` ("What a client is told") says what this module tells.
    #[test]
    fn the_transports_doc_tells_what_the_code_tells() {
        let doc = include_str!("../../../../docs/transports.md");
        let section = doc
            .split("## What a client is told")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("docs/transports.md has a section on what a client is told");
        let target = Target::new("NAME", TransportKind::Stdio);
        let mut phrases: Vec<String> = [
            CloseKind::Exited,
            CloseKind::StreamLost,
            CloseKind::SessionExpired,
            CloseKind::Protocol,
            CloseKind::Local,
        ]
        .into_iter()
        .map(|kind| close_kind(&CloseReason::new(kind, "x")).to_owned())
        .collect();
        let errors = [
            mcp_transport::Error::SessionExpired {
                target: target.clone(),
                session_id: "s".into(),
            },
            mcp_transport::Error::Status {
                target: target.clone(),
                what: "x".into(),
                status: http::StatusCode::BAD_GATEWAY,
                body: String::new(),
            },
            mcp_transport::Error::Protocol {
                target: target.clone(),
                message: "x".into(),
            },
            mcp_transport::Error::Timeout {
                target: target.clone(),
                what: "x".into(),
                after: std::time::Duration::from_secs(30),
            },
        ];
        for err in &errors {
            let told = request_failed("NAME", err);
            let message = told.message.split(" (ref ").next().unwrap().to_owned();
            let code = format!("`{}`", told.code);
            assert!(section.contains(&code), "{code} is not in the doc");
            phrases.push(message);
        }
        phrases.push(
            session_ended("NAME", &CloseReason::new(CloseKind::Exited, "x"))
                .message
                .split(": the upstream process")
                .next()
                .unwrap()
                .to_owned(),
        );
        for phrase in phrases {
            assert!(
                section.contains(&phrase),
                "docs/transports.md does not say {phrase:?}"
            );
        }
    }

    #[test]
    fn details_stay_out_of_what_the_client_reads() {
        let target = Target::new("fs", TransportKind::Stdio);
        let secret = "https://api.example.com/mcp?key=sk-secret; last stderr: token=hunter2";
        for err in [
            mcp_transport::Error::Closed {
                target: target.clone(),
                reason: CloseReason::new(CloseKind::Exited, secret),
            },
            mcp_transport::Error::Status {
                target: target.clone(),
                what: secret.into(),
                status: http::StatusCode::BAD_GATEWAY,
                body: secret.into(),
            },
            mcp_transport::Error::Protocol {
                target: target.clone(),
                message: secret.into(),
            },
        ] {
            let told = request_failed("fs", &err);
            assert_eq!(told.code, codes::CONNECTION_CLOSED);
            assert!(!told.message.contains("secret") && !told.message.contains("hunter2"));
            assert!(
                told.message.starts_with("upstream \"fs\": the upstream"),
                "{}",
                told.message
            );
            assert!(told.message.contains("(ref "), "{}", told.message);
        }
        let timeout = mcp_transport::Error::Timeout {
            target: target.clone(),
            what: secret.into(),
            after: std::time::Duration::from_secs(3),
        };
        let told = request_failed("fs", &timeout);
        assert_eq!(told.code, codes::REQUEST_TIMEOUT);
        assert!(!told.message.contains("secret"), "{}", told.message);
        assert!(
            told.message.contains("timed out after 3s (ref "),
            "{}",
            told.message
        );
        let not_connected = crate::Error::NotConnected {
            mcp: "fs".into(),
            state: mcp_types::ConnectionState::Error,
            last_error: Some(secret.into()),
        };
        let told = open_failed("fs", codes::CONNECTION_CLOSED, &not_connected);
        assert!(!told.message.contains("secret"), "{}", told.message);
        assert!(
            told.message.contains("not connected (state error)"),
            "{}",
            told.message
        );
        let ended = session_ended("fs", &CloseReason::new(CloseKind::Exited, secret)).message;
        assert!(
            !ended.contains("hunter2") && ended.contains("process exited"),
            "{ended}"
        );
    }
}
