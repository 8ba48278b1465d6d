//! The little JSON-RPC a load generator needs: request bytes built from a template, and
//! an envelope reader that looks at `id`, `method`, `result.isError` and `error` without
//! building a tree of the rest (a 64 KiB answer is scanned, not copied).

use std::borrow::Cow;

use anyhow::Context;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Request ids are `session × ID_STRIDE + sequence`: unique across sessions (some
/// gateways broadcast every answer to every session) and below 2^53, so a JavaScript
/// server keeps them exact.
pub(crate) const ID_STRIDE: u64 = 1_000_000_000;
/// Sessions at most (ids stay below 2^53).
pub(crate) const MAX_SESSIONS: usize = 1_000_000;
/// Session numbers from here on are used for a stdio link's own handshake.
pub(crate) const CONTROL_SESSION: u64 = 8_000_000;

/// The id of the `seq`-th request of session `session`.
pub(crate) fn request_id(session: u64, seq: u64) -> u64 {
    session * ID_STRIDE + seq
}

/// A JSON-RPC request with a numeric id and already-serialized params.
pub(crate) fn request(id: u64, method: &str, params: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(params.len() + method.len() + 64);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.to_string().as_bytes());
    out.extend_from_slice(b",\"method\":");
    out.extend_from_slice(serde_json::to_string(method).unwrap_or_default().as_bytes());
    out.extend_from_slice(b",\"params\":");
    out.extend_from_slice(params);
    out.push(b'}');
    out
}

/// `initialize` params for `version`, with no client capabilities (so a server has no
/// reason to send sampling, elicitation or roots requests).
pub(crate) fn initialize_params(version: &str) -> Vec<u8> {
    serde_json::json!({
        "protocolVersion": version,
        "capabilities": {},
        "clientInfo": {"name": "mcp-bench", "version": env!("CARGO_PKG_VERSION")},
    })
    .to_string()
    .into_bytes()
}

/// `notifications/initialized`.
pub(crate) const INITIALIZED: &[u8] = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// The answer to a server→client request: `{}` for `ping`, "method not found" otherwise
/// (this client declares no capabilities).
pub(crate) fn reply_to(id: &str, method: &str) -> Vec<u8> {
    if method == "ping" {
        format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#).into_bytes()
    } else {
        let msg = serde_json::to_string(&format!("mcp-bench does not handle {method}"))
            .unwrap_or_default();
        format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32601,"message":{msg}}}}}"#)
            .into_bytes()
    }
}

/// What a response said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A result; `is_error` is a tool's own `isError: true`.
    Result {
        is_error: bool,
        protocol_version: Option<String>,
    },
    /// A JSON-RPC error.
    Error { code: i64, message: String },
}

/// One message from a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message {
    /// A response to request `id` (`None` when the id was not a non-negative integer).
    Response { id: Option<u64>, outcome: Outcome },
    /// A server→client request; `id` is its raw JSON.
    Request { id: String, method: String },
    /// A notification.
    Notification { method: String },
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(default)]
    result: Option<ResultHead>,
    #[serde(default)]
    error: Option<ErrorObject>,
}

#[derive(Deserialize)]
struct ResultHead {
    #[serde(default, rename = "isError")]
    is_error: Option<bool>,
    #[serde(default, rename = "protocolVersion")]
    protocol_version: Option<String>,
}

#[derive(Deserialize)]
struct ErrorObject {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

/// The protocol version an `initialize` answer chose.
pub(crate) fn negotiated(outcome: Outcome) -> anyhow::Result<String> {
    match outcome {
        Outcome::Result {
            protocol_version: Some(v),
            ..
        } => Ok(v),
        Outcome::Result { .. } => anyhow::bail!("initialize: the result has no protocolVersion"),
        Outcome::Error { code, message } => anyhow::bail!("initialize: error {code}: {message}"),
    }
}

/// Reads one JSON-RPC message, or a batch of them.
pub(crate) fn parse(bytes: &[u8]) -> anyhow::Result<Vec<Message>> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let batch: Vec<Wire<'_>> = serde_json::from_slice(bytes).with_context(|| bad(bytes))?;
        batch.into_iter().map(classify).collect()
    } else {
        let one: Wire<'_> = serde_json::from_slice(bytes).with_context(|| bad(bytes))?;
        Ok(vec![classify(one)?])
    }
}

fn bad(bytes: &[u8]) -> String {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]).into_owned();
    format!("the server sent a message that is not JSON-RPC: {head:?}")
}

fn classify(w: Wire<'_>) -> anyhow::Result<Message> {
    match (w.id, w.method) {
        (Some(id), Some(method)) => Ok(Message::Request {
            id: id.get().to_owned(),
            method: method.into_owned(),
        }),
        (None, Some(method)) => Ok(Message::Notification {
            method: method.into_owned(),
        }),
        (id, None) => {
            let id = id.and_then(|r| r.get().parse::<u64>().ok());
            let outcome = match (w.result, w.error) {
                (_, Some(e)) => Outcome::Error {
                    code: e.code,
                    message: e.message,
                },
                (Some(r), None) => Outcome::Result {
                    is_error: r.is_error.unwrap_or(false),
                    protocol_version: r.protocol_version,
                },
                (None, None) => {
                    anyhow::bail!("the server sent a response with neither result nor error")
                }
            };
            Ok(Message::Response { id, outcome })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_template_is_valid_json() {
        let body = request(request_id(3, 7), "tools/call", br#"{"name":"echo"}"#);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["id"], 3_000_000_007u64);
        assert_eq!(v["method"], "tools/call");
        assert_eq!(v["params"]["name"], "echo");
        assert!(request_id(MAX_SESSIONS as u64 + CONTROL_SESSION, ID_STRIDE - 1) < 1 << 53);
    }

    #[test]
    fn classifies_responses_requests_and_notifications() {
        let msgs = parse(
            br#"[{"jsonrpc":"2.0","id":5,"result":{"content":[{"type":"text","text":"x"}],"isError":true}},
                {"jsonrpc":"2.0","id":"s-1","method":"ping"},
                {"jsonrpc":"2.0","method":"notifications/message","params":{}},
                {"jsonrpc":"2.0","id":6,"error":{"code":-32602,"message":"bad"}}]"#,
        )
        .unwrap();
        assert_eq!(
            msgs,
            vec![
                Message::Response {
                    id: Some(5),
                    outcome: Outcome::Result {
                        is_error: true,
                        protocol_version: None
                    }
                },
                Message::Request {
                    id: "\"s-1\"".into(),
                    method: "ping".into()
                },
                Message::Notification {
                    method: "notifications/message".into()
                },
                Message::Response {
                    id: Some(6),
                    outcome: Outcome::Error {
                        code: -32602,
                        message: "bad".into()
                    }
                },
            ]
        );
        let init = parse(br#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25"}}"#)
            .unwrap();
        assert!(matches!(
            &init[0],
            Message::Response { outcome: Outcome::Result { protocol_version: Some(v), .. }, .. } if v == "2025-11-25"
        ));
        assert!(
            parse(b"not json")
                .unwrap_err()
                .to_string()
                .contains("not JSON-RPC")
        );
    }

    #[test]
    fn replies_to_server_requests() {
        let pong: serde_json::Value = serde_json::from_slice(&reply_to("\"a\"", "ping")).unwrap();
        assert_eq!(pong["id"], "a");
        assert!(pong["result"].is_object());
        let no: serde_json::Value =
            serde_json::from_slice(&reply_to("7", "sampling/createMessage")).unwrap();
        assert_eq!(no["error"]["code"], -32601);
    }
}
