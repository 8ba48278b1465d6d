//! Request and response bodies: size-limited reads, JSON parsing with positions, and the
//! uniform error body.

use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// The response body type of every handler.
pub(crate) type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// A full body from bytes.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub(crate) fn empty() -> Body {
    full(Bytes::new())
}

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    let bytes = serde_json::to_vec(value).expect("response values serialize");
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The uniform error response: `{"error", "code", "details"?}`.
pub(crate) fn error_response(err: &Error) -> Response<Body> {
    let (status, code, details) = err.parts();
    let mut body = serde_json::json!({ "error": err.to_string(), "code": code });
    if let Some(d) = details {
        body["details"] = d;
    }
    let mut resp = json_response(status, &body);
    match err {
        Error::MethodNotAllowed { allow, .. } => {
            let list = allow.iter().map(http::Method::as_str).collect::<Vec<_>>();
            if let Ok(v) = HeaderValue::from_str(&list.join(", ")) {
                resp.headers_mut().insert(ALLOW, v);
            }
        }
        Error::Unauthorized(_) => {
            resp.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"mcp-proxy-admin\""),
            );
        }
        _ => {}
    }
    resp
}

tokio::task_local! {
    /// The body deadline (`body_read_timeout`) of the request being handled; set by
    /// [`App::handle`](crate::App::handle) around each request, so every handler that reads a
    /// body gets it without passing it along.
    pub(crate) static BODY_READ_TIMEOUT: Duration;
}

/// The body deadline when none is set (a handler called outside [`App::handle`]).
const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads the whole body within the request's body deadline, refusing more than `limit`
/// bytes (declared or actual) with 413 and a body that does not arrive in time with 408.
///
/// An oversized body is not read further: the answer goes out at once, and the connection
/// (which cannot carry another request) discards the rest before closing (see
/// `server::conn`), so the client reads the 413 instead of a reset, whatever the size.
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    body: Incoming,
    limit: usize,
) -> Result<Bytes, Error> {
    let within = BODY_READ_TIMEOUT
        .try_with(|t| *t)
        .unwrap_or(DEFAULT_BODY_READ_TIMEOUT);
    match tokio::time::timeout(within, read_all(headers, body, limit)).await {
        Ok(read) => read,
        Err(_) => Err(Error::BodyTimeout { within }),
    }
}

async fn read_all(headers: &HeaderMap, mut body: Incoming, limit: usize) -> Result<Bytes, Error> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Error::PayloadTooLarge { limit });
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::Invalid {
            message: format!("could not read the request body: {e}"),
            details: serde_json::Value::Null,
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(Error::PayloadTooLarge { limit });
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// What a body without a `Content-Type` header is taken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Untyped {
    /// JSON: the Admin API and legacy SSE messages (curl without `-H`).
    Json,
    /// Refused: streamable HTTP, whose clients must say `application/json`.
    Refused,
}

/// Refuses a body whose content type is not JSON (`application/json` or a `+json` type,
/// any parameters); a missing one is judged by `untyped`. The one content-type check.
pub(crate) fn require_json(headers: &HeaderMap, untyped: Untyped) -> Result<(), Error> {
    let ct = match headers.get(CONTENT_TYPE) {
        None if untyped == Untyped::Json => return Ok(()),
        None => "",
        Some(v) => v.to_str().unwrap_or(""),
    };
    let mime = ct.split(';').next().unwrap_or("").trim();
    let (kind, sub) = mime.split_once('/').unwrap_or((mime, ""));
    let sub = sub.to_ascii_lowercase();
    if kind.eq_ignore_ascii_case("application") && (sub == "json" || sub.ends_with("+json")) {
        Ok(())
    } else {
        Err(Error::UnsupportedMediaType(ct.to_owned()))
    }
}

/// Refuses an empty body as invalid JSON.
fn require_body(bytes: &[u8]) -> Result<(), Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::InvalidJson {
            line: 1,
            column: 0,
            message: "the request body is empty".into(),
        });
    }
    Ok(())
}

/// Reads a definition (or group) leniently: only a body that is not JSON fails here (with
/// its position); every other problem is reported, all at once, by [`Lenient::finish`].
///
/// [`Lenient::finish`]: mcp_types::validate::Lenient::finish
pub(crate) fn parse_draft<T: mcp_types::validate::Readable>(
    bytes: &[u8],
) -> Result<mcp_types::validate::Lenient<T>, Error> {
    require_body(bytes)?;
    mcp_types::validate::Lenient::<T>::from_slice(bytes).map_err(|e| Error::InvalidJson {
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })
}

/// Parses JSON into `T`. Syntax errors name the line and column; shape errors (unknown
/// field, wrong type) name the field path.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    require_body(bytes)?;
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            // serde_json reports a wrong-typed enum value (`"transport": {}`) as a syntax
            // error; only a body that is not JSON at all gets `invalid_json`.
            let well_formed =
                !inner.is_data() && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok();
            if inner.is_data() || well_formed {
                let field = if path == "." { String::new() } else { path };
                let message = if well_formed {
                    "invalid type or value".to_owned()
                } else {
                    strip_position(&inner.to_string())
                };
                Err(Error::Invalid {
                    message: if field.is_empty() {
                        format!("invalid request: {message}")
                    } else {
                        format!("invalid request: {field}: {message}")
                    },
                    details: serde_json::json!([{ "field": field, "message": message }]),
                })
            } else {
                Err(Error::InvalidJson {
                    line: inner.line(),
                    column: inner.column(),
                    message: strip_position(&inner.to_string()),
                })
            }
        }
    }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_json_content_type_rule_and_a_stated_one_for_no_type() {
        let with = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
            h
        };
        for ct in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
        ] {
            for untyped in [Untyped::Json, Untyped::Refused] {
                assert!(require_json(&with(ct), untyped).is_ok(), "{ct}");
            }
        }
        for ct in ["text/plain", "text/json", "application/jsonx", ""] {
            for untyped in [Untyped::Json, Untyped::Refused] {
                assert!(
                    matches!(
                        require_json(&with(ct), untyped),
                        Err(Error::UnsupportedMediaType(_))
                    ),
                    "{ct}"
                );
            }
        }
        assert!(require_json(&HeaderMap::new(), Untyped::Json).is_ok());
        assert!(require_json(&HeaderMap::new(), Untyped::Refused).is_err());
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        a: u32,
    }

    #[test]
    fn syntax_errors_carry_the_position() {
        let Err(Error::InvalidJson { line, column, .. }) = parse_json::<T>(b"{\n  \"a\": ,}")
        else {
            panic!("expected invalid json")
        };
        assert_eq!((line, column), (2, 8));
    }

    #[test]
    fn shape_errors_name_the_field() {
        let Err(Error::Invalid { details, message }) = parse_json::<T>(br#"{"a":"x"}"#) else {
            panic!("expected invalid")
        };
        assert_eq!(details[0]["field"], "a");
        assert!(message.contains("invalid type"), "{message}");
        let Err(Error::Invalid { message, .. }) = parse_json::<T>(br#"{"a":1,"b":2}"#) else {
            panic!("expected invalid")
        };
        assert!(message.contains("unknown field `b`"), "{message}");
    }

    #[test]
    fn a_wrong_typed_enum_is_a_shape_error_not_a_syntax_error() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        enum E {
            X,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct W {
            e: E,
        }
        for body in [r#"{"e":{}}"#, r#"{"e":null}"#, r#"{"e":[1]}"#, r#"{"e":0}"#] {
            let Err(Error::Invalid { details, .. }) = parse_json::<W>(body.as_bytes()) else {
                panic!("expected invalid for {body}")
            };
            assert_eq!(details[0]["field"], "e", "{body}");
        }
        assert!(matches!(
            parse_json::<W>(br#"{"e": }"#),
            Err(Error::InvalidJson { .. })
        ));
    }
}
