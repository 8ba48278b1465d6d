//! Lossless JSON-RPC 2.0 message model.
//!
//! Only the envelope (`jsonrpc`, `id`, `method`, `error`) is parsed; `params` and `result`
//! stay as raw JSON text, and unknown top-level members are kept verbatim, so a message that
//! is parsed and serialized again comes out with the same content.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::Error;

/// The JSON-RPC version string every message carries.
pub const JSONRPC_VERSION: &str = "2.0";

/// Standard and MCP-conventional JSON-RPC error codes.
pub mod codes {
    /// Invalid JSON was received.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON sent is not a valid request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// The method does not exist or is not available.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Invalid method parameters.
    pub const INVALID_PARAMS: i64 = -32602;
    /// Internal JSON-RPC error.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The connection to the peer was closed or lost before the answer came.
    pub const CONNECTION_CLOSED: i64 = -32000;
    /// The request did not complete within its deadline.
    pub const REQUEST_TIMEOUT: i64 = -32001;
}

/// A JSON-RPC request id. Numbers and strings keep their JSON type and exact text.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum RequestId {
    /// A numeric id, kept as written (e.g. `7`, `-1`, `1e3`).
    Number(serde_json::Number),
    /// A string id.
    String(String),
    /// `null`, only legal in an error response to an unparseable request.
    Null,
}

impl RequestId {
    /// Returns a numeric id.
    pub fn number(n: i64) -> Self {
        Self::Number(n.into())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::String(s) => write!(f, "{s:?}"),
            Self::Null => f.write_str("null"),
        }
    }
}

impl From<i64> for RequestId {
    fn from(n: i64) -> Self {
        Self::number(n)
    }
}

impl From<&str> for RequestId {
    fn from(s: &str) -> Self {
        Self::String(s.to_owned())
    }
}

impl From<String> for RequestId {
    fn from(s: String) -> Self {
        Self::String(s)
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Number(n) => n.serialize(s),
            Self::String(v) => s.serialize_str(v),
            Self::Null => s.serialize_unit(),
        }
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => Ok(Self::Number(n)),
            serde_json::Value::String(s) => Ok(Self::String(s)),
            serde_json::Value::Null => Ok(Self::Null),
            other => Err(de::Error::custom(format!(
                "request id must be a string or a number, not {}",
                json_kind(&other)
            ))),
        }
    }
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorObject {
    /// The error code.
    pub code: i64,
    /// A short description.
    pub message: String,
    /// Optional extra data, kept as raw JSON (`"data": null` too: it is not absent).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub data: Option<Box<RawValue>>,
}

/// A member that is present, whatever its value: `null` is kept rather than read as absent.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

impl ErrorObject {
    /// Builds an error object without data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }
}

impl PartialEq for ErrorObject {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code
            && self.message == other.message
            && self.data.as_ref().map(|d| d.get()) == other.data.as_ref().map(|d| d.get())
    }
}

/// Unknown top-level members of a message, kept verbatim.
pub type Extra = BTreeMap<String, Box<RawValue>>;

/// A request: has an `id` and a `method`.
#[derive(Debug, Clone)]
pub struct Request {
    /// The request id.
    pub id: RequestId,
    /// The method name.
    pub method: String,
    /// The parameters, raw.
    pub params: Option<Box<RawValue>>,
    /// Unknown top-level members.
    pub extra: Extra,
}

/// A notification: a `method` without an `id`.
#[derive(Debug, Clone)]
pub struct Notification {
    /// The method name.
    pub method: String,
    /// The parameters, raw.
    pub params: Option<Box<RawValue>>,
    /// Unknown top-level members.
    pub extra: Extra,
}

/// A response: an `id` with either a `result` or an `error`.
#[derive(Debug, Clone)]
pub struct Response {
    /// The id of the request this answers.
    pub id: RequestId,
    /// The outcome.
    pub outcome: Outcome,
    /// Unknown top-level members.
    pub extra: Extra,
}

/// The outcome carried by a response.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A successful result, raw.
    Result(Box<RawValue>),
    /// An error.
    Error(ErrorObject),
}

/// Any single JSON-RPC message.
#[derive(Debug, Clone)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A notification.
    Notification(Notification),
    /// A response.
    Response(Response),
}

/// One message or a batch, as received on the wire.
#[derive(Debug, Clone)]
pub enum Payload {
    /// A single message.
    Single(Message),
    /// A JSON array of messages (allowed by 2025-03-26, removed in 2025-06-18).
    Batch(Vec<Message>),
}

impl Payload {
    /// Parses a single message or a batch from bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'[') {
            let batch: Vec<Message> = serde_json::from_slice(bytes).map_err(Error::Json)?;
            if batch.is_empty() {
                return Err(Error::InvalidMessage("empty batch".into()));
            }
            Ok(Self::Batch(batch))
        } else {
            Message::from_slice(bytes).map(Self::Single)
        }
    }

    /// The messages, in order.
    pub fn into_messages(self) -> Vec<Message> {
        match self {
            Self::Single(m) => vec![m],
            Self::Batch(v) => v,
        }
    }
}

impl Message {
    /// Parses one message from bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        serde_json::from_slice(bytes).map_err(Error::Json)
    }

    /// Parses one message from a string.
    pub fn from_str_exact(text: &str) -> Result<Self, Error> {
        serde_json::from_str(text).map_err(Error::Json)
    }

    /// Serializes to JSON bytes that hold no raw CR or LF, so one message is always one
    /// line of a line-framed transport (stdio) and one `data:` line of an SSE event.
    ///
    /// Raw `params`, `result` and unknown members keep their text, whitespace included; a
    /// raw CR or LF in valid JSON can only be whitespace between tokens (inside strings
    /// they must be escaped), so each becomes a space and the JSON means the same.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).expect("a message always serializes");
        for b in &mut out {
            if *b == b'\n' || *b == b'\r' {
                *b = b' ';
            }
        }
        out
    }

    /// [`Message::to_vec`] as a string.
    pub fn to_json_string(&self) -> String {
        String::from_utf8(self.to_vec()).expect("serde_json writes UTF-8")
    }

    /// Builds a request with typed params.
    pub fn request(
        id: impl Into<RequestId>,
        method: impl Into<String>,
        params: Option<&impl Serialize>,
    ) -> Self {
        Self::Request(Request {
            id: id.into(),
            method: method.into(),
            params: params.map(to_raw),
            extra: Extra::new(),
        })
    }

    /// Builds a notification with typed params.
    pub fn notification(method: impl Into<String>, params: Option<&impl Serialize>) -> Self {
        Self::Notification(Notification {
            method: method.into(),
            params: params.map(to_raw),
            extra: Extra::new(),
        })
    }

    /// Builds a success response.
    pub fn result(id: RequestId, result: &impl Serialize) -> Self {
        Self::Response(Response {
            id,
            outcome: Outcome::Result(to_raw(result)),
            extra: Extra::new(),
        })
    }

    /// Builds an error response.
    pub fn error(id: RequestId, code: i64, message: impl Into<String>) -> Self {
        Self::Response(Response {
            id,
            outcome: Outcome::Error(ErrorObject::new(code, message)),
            extra: Extra::new(),
        })
    }

    /// The method, for requests and notifications.
    pub fn method(&self) -> Option<&str> {
        match self {
            Self::Request(r) => Some(&r.method),
            Self::Notification(n) => Some(&n.method),
            Self::Response(_) => None,
        }
    }

    /// The id, for requests and responses.
    pub fn id(&self) -> Option<&RequestId> {
        match self {
            Self::Request(r) => Some(&r.id),
            Self::Response(r) => Some(&r.id),
            Self::Notification(_) => None,
        }
    }

    /// The raw params, for requests and notifications.
    pub fn params(&self) -> Option<&RawValue> {
        match self {
            Self::Request(r) => r.params.as_deref(),
            Self::Notification(n) => n.params.as_deref(),
            Self::Response(_) => None,
        }
    }

    /// `params._meta.progressToken`, when present (parses only that path).
    pub fn progress_token(&self) -> Option<ProgressToken> {
        #[derive(Deserialize)]
        struct Params {
            #[serde(rename = "_meta")]
            meta: Option<Meta>,
        }
        #[derive(Deserialize)]
        struct Meta {
            #[serde(rename = "progressToken")]
            progress_token: Option<ProgressToken>,
        }
        let params: Params = serde_json::from_str(self.params()?.get()).ok()?;
        params.meta?.progress_token
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self, Self::Request(_))
    }

    /// Whether this is a response.
    pub fn is_response(&self) -> bool {
        matches!(self, Self::Response(_))
    }

    /// Whether this is a notification.
    pub fn is_notification(&self) -> bool {
        matches!(self, Self::Notification(_))
    }
}

impl Response {
    /// Decodes a success result into `T`; an error response becomes [`Error::Rpc`].
    pub fn into_result<T: serde::de::DeserializeOwned>(self) -> Result<T, Error> {
        match self.outcome {
            Outcome::Result(raw) => serde_json::from_str(raw.get()).map_err(Error::Json),
            Outcome::Error(e) => Err(Error::Rpc(e)),
        }
    }
}

/// A progress token: a string or a number, type preserved.
pub type ProgressToken = RequestId;

/// Serializes a value to a raw JSON box.
pub fn to_raw(value: &impl Serialize) -> Box<RawValue> {
    let text = serde_json::to_string(value).expect("value serializes to JSON");
    RawValue::from_string(text).expect("serde_json output is valid JSON")
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (extra, n) = match self {
            Self::Request(r) => (&r.extra, 3 + usize::from(r.params.is_some())),
            Self::Notification(n) => (&n.extra, 2 + usize::from(n.params.is_some())),
            Self::Response(r) => (&r.extra, 3),
        };
        let mut map = s.serialize_map(Some(n + extra.len()))?;
        map.serialize_entry("jsonrpc", JSONRPC_VERSION)?;
        match self {
            Self::Request(r) => {
                map.serialize_entry("id", &r.id)?;
                map.serialize_entry("method", &r.method)?;
                if let Some(p) = &r.params {
                    map.serialize_entry("params", p)?;
                }
            }
            Self::Notification(n) => {
                map.serialize_entry("method", &n.method)?;
                if let Some(p) = &n.params {
                    map.serialize_entry("params", p)?;
                }
            }
            Self::Response(r) => {
                map.serialize_entry("id", &r.id)?;
                match &r.outcome {
                    Outcome::Result(v) => map.serialize_entry("result", v)?,
                    Outcome::Error(e) => map.serialize_entry("error", e)?,
                }
            }
        }
        for (k, v) in extra {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(MessageVisitor)
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC 2.0 message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message, A::Error> {
        let mut version: Option<String> = None;
        let mut id: Option<RequestId> = None;
        let mut method: Option<String> = None;
        let mut params: Option<Box<RawValue>> = None;
        let mut result: Option<Box<RawValue>> = None;
        let mut error: Option<ErrorObject> = None;
        let mut extra = Extra::new();
        while let Some(key) = map.next_key::<String>()? {
            let dup = |k: &str| de::Error::custom(format!("duplicate member `{k}`"));
            match key.as_str() {
                "jsonrpc" if version.is_none() => version = Some(map.next_value()?),
                "id" if id.is_none() => id = Some(map.next_value()?),
                "method" if method.is_none() => method = Some(map.next_value()?),
                "params" if params.is_none() => params = Some(map.next_value()?),
                "result" if result.is_none() => result = Some(map.next_value()?),
                "error" if error.is_none() => error = Some(map.next_value()?),
                "jsonrpc" | "id" | "method" | "params" | "result" | "error" => {
                    return Err(dup(&key));
                }
                // The peer's parser may keep either copy: refused like the envelope's.
                _ if extra.contains_key(&key) => return Err(dup(&key)),
                _ => {
                    let v: Box<RawValue> = map.next_value()?;
                    extra.insert(key, v);
                }
            }
        }
        match version.as_deref() {
            Some(JSONRPC_VERSION) => {}
            Some(other) => {
                return Err(de::Error::custom(format!(
                    "`jsonrpc` must be \"2.0\", not {other:?}"
                )));
            }
            None => return Err(de::Error::custom("missing `jsonrpc` member")),
        }
        match (method, id, result, error) {
            (Some(method), Some(id), None, None) => {
                if id == RequestId::Null {
                    return Err(de::Error::custom("a request id must not be null"));
                }
                Ok(Message::Request(Request {
                    id,
                    method,
                    params,
                    extra,
                }))
            }
            (Some(method), None, None, None) => Ok(Message::Notification(Notification {
                method,
                params,
                extra,
            })),
            (None, Some(id), Some(result), None) if params.is_none() => {
                Ok(Message::Response(Response {
                    id,
                    outcome: Outcome::Result(result),
                    extra,
                }))
            }
            (None, Some(id), None, Some(error)) if params.is_none() => {
                Ok(Message::Response(Response {
                    id,
                    outcome: Outcome::Error(error),
                    extra,
                }))
            }
            (None, Some(_), Some(_), Some(_)) => Err(de::Error::custom(
                "a response must not carry both `result` and `error`",
            )),
            (None, None, _, _) => Err(de::Error::custom(
                "a message needs a `method` (request, notification) or an `id` (response)",
            )),
            _ => Err(de::Error::custom(
                "not a valid JSON-RPC request, notification or response",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        Message::from_str_exact(text).unwrap().to_json_string()
    }

    #[test]
    fn request_round_trip_keeps_id_type_params_and_unknown_members() {
        let text = r#"{"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{"name":"echo","_meta":{"progressToken":7,"x":[1,2.50]}},"custom":{"a":1}}"#;
        assert_eq!(round_trip(text), text);
        let num = r#"{"jsonrpc":"2.0","id":12345678901234567890,"method":"ping"}"#;
        assert_eq!(round_trip(num), num);
    }

    #[test]
    fn raw_line_breaks_never_leave_a_message() {
        let text = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\"\r\n}\n,\"x\":\n[1,\r2]}";
        let m = Message::from_str_exact(text).unwrap();
        let out = m.to_vec();
        assert!(!out.contains(&b'\n') && !out.contains(&b'\r'));
        let again = Message::from_slice(&out).unwrap();
        assert_eq!(again.method(), Some("tools/call"));
        assert_eq!(again.params().unwrap().get(), "{\"name\":\"a\"  }");
    }

    #[test]
    fn numeric_and_string_ids_are_distinct() {
        let a = Message::from_str_exact(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap();
        let b = Message::from_str_exact(r#"{"jsonrpc":"2.0","id":"1","method":"ping"}"#).unwrap();
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id(), Some(&RequestId::number(1)));
    }

    #[test]
    fn responses_and_notifications_parse() {
        let r =
            Message::from_str_exact(r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[]}}"#).unwrap();
        assert!(r.is_response());
        let e = Message::from_str_exact(
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}"#,
        )
        .unwrap();
        match e {
            Message::Response(Response {
                id: RequestId::Null,
                outcome: Outcome::Error(err),
                ..
            }) => assert_eq!(err.code, codes::PARSE_ERROR),
            other => panic!("unexpected {other:?}"),
        }
        let n =
            Message::from_str_exact(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
                .unwrap();
        assert!(n.is_notification());
    }

    #[test]
    fn invalid_envelopes_are_rejected_with_a_reason() {
        for (text, needle) in [
            (r#"{"id":1,"method":"x"}"#, "missing `jsonrpc`"),
            (
                r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#,
                "must be \"2.0\"",
            ),
            (r#"{"jsonrpc":"2.0"}"#, "needs a `method`"),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":"m"}}"#,
                "both",
            ),
            (
                r#"{"jsonrpc":"2.0","id":true,"method":"x"}"#,
                "string or a number",
            ),
            (
                r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#,
                "must not be null",
            ),
        ] {
            let err = Message::from_str_exact(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn progress_token_is_read_from_meta() {
        let m = Message::from_str_exact(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"progressToken":"p-1"}}}"#,
        )
        .unwrap();
        assert_eq!(m.progress_token(), Some(RequestId::from("p-1")));
        let none = Message::from_str_exact(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap();
        assert_eq!(none.progress_token(), None);
    }

    #[test]
    fn batches_parse_and_empty_batches_fail() {
        let p = Payload::from_slice(
            br#" [{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"n"}]"#,
        )
        .unwrap();
        assert_eq!(p.into_messages().len(), 2);
        assert!(Payload::from_slice(b"[]").is_err());
    }

    #[test]
    fn into_result_decodes_or_returns_the_rpc_error() {
        let Message::Response(ok) =
            Message::from_str_exact(r#"{"jsonrpc":"2.0","id":1,"result":{"a":5}}"#).unwrap()
        else {
            panic!("not a response")
        };
        let v: serde_json::Value = ok.into_result().unwrap();
        assert_eq!(v["a"], 5);
        let Message::Response(bad) = Message::error(RequestId::number(1), -32601, "nope") else {
            panic!("not a response")
        };
        assert!(matches!(
            bad.into_result::<serde_json::Value>(),
            Err(Error::Rpc(e)) if e.code == -32601
        ));
    }
}
