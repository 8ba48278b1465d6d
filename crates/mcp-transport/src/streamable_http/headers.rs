//! What the modern revision (2026-07-28) adds to a streamable-HTTP POST and to its
//! answer: the standard request headers, and JSON-RPC errors sent with a 4xx status.

use base64::Engine as _;
use mcp_types::jsonrpc::Payload;
use mcp_types::mcp::methods;
use mcp_types::{Message, RequestId};

use super::Inner;
use crate::Result;
use crate::error::Error;
use crate::net;
use crate::transport::Sent;

/// Most bytes read from a 4xx answer in search of its JSON-RPC error.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// `Mcp-Method` for every message with a method, and `Mcp-Name` for the methods that
/// name what they act on (`params.name`, or `params.uri` for `resources/read`).
pub(super) fn standard(mut req: reqwest::RequestBuilder, msg: &Message) -> reqwest::RequestBuilder {
    let Some(method) = msg.method() else {
        return req;
    };
    req = req.header("mcp-method", encode(method));
    let name = match method {
        methods::TOOLS_CALL | methods::PROMPTS_GET => mcp_types::params::name(msg.params()),
        methods::RESOURCES_READ => mcp_types::params::uri(msg.params()),
        _ => Ok(None),
    };
    if let Ok(Some(name)) = name {
        req = req.header("mcp-name", encode(&name));
    }
    req
}

/// A header value as the revision writes it: as is when it is plain visible ASCII (spaces
/// inside), otherwise in the `=?base64?…?=` sentinel form (so is a value that looks like
/// one).
pub(super) fn encode(value: &str) -> String {
    let looks_encoded = value.starts_with("=?base64?") && value.ends_with("?=");
    let plain = value.bytes().all(|b| (0x20..=0x7e).contains(&b))
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && !looks_encoded;
    if plain {
        value.to_owned()
    } else {
        let b64 = base64::engine::general_purpose::STANDARD.encode(value.as_bytes());
        format!("=?base64?{b64}?=")
    }
}

/// A modern server answers a request it rejects (unknown method, bad `_meta`, missing
/// capability, unsupported version) with a 4xx status and the JSON-RPC error in the body:
/// that error is the request's answer. Any other 4xx is an HTTP error, as before.
pub(super) async fn rejected(
    inner: &Inner,
    response: reqwest::Response,
    id: &RequestId,
    what: &str,
) -> Result<Sent> {
    let status = response.status();
    if net::media_type(&response) != "application/json" {
        return Err(net::status_error(response, &inner.target, what).await);
    }
    let body = tokio::time::timeout(
        inner.limits.request_timeout,
        net::read_limited(response, ERROR_BODY_LIMIT),
    )
    .await;
    let Ok(Ok(body)) = body else {
        return Err(Error::Status {
            target: inner.target.clone(),
            what: what.to_owned(),
            status,
            body: String::new(),
        });
    };
    let answer = Payload::from_slice(&body).ok().and_then(|p| {
        p.into_messages()
            .into_iter()
            .find(|m| matches!(m, Message::Response(r) if &r.id == id))
    });
    match answer {
        Some(msg) => Ok(Sent::Messages(vec![msg])),
        None => Err(Error::Status {
            target: inner.target.clone(),
            what: what.to_owned(),
            status,
            body: String::from_utf8_lossy(&body).chars().take(300).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_plain_or_base64_sentinels() {
        assert_eq!(encode("tools/call"), "tools/call");
        assert_eq!(encode("get weather"), "get weather");
        assert_eq!(encode("héllo"), "=?base64?aMOpbGxv?=");
        assert_eq!(encode(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(encode("line1\nline2"), "=?base64?bGluZTEKbGluZTI=?=");
        assert_eq!(
            encode("=?base64?literal?="),
            "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
        );
    }
}
