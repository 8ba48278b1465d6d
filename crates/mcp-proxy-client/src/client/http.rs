//! One Admin-API request: send with retry, map the answer to a value or a typed [`Error`].

use mcp_types::FieldError;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::debug;

use super::ProxyClient;
use crate::error::Error;
use crate::retry::{self, RetryPolicy, Safety};

/// A response body.
type Bytes = Vec<u8>;

impl ProxyClient {
    /// Sends a request and decodes a successful answer as `T`.
    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        safety: Safety,
        method: Method,
        segments: &[&str],
        body: Option<Value>,
    ) -> Result<T, Error> {
        let op = format!("{method} {}", self.url(segments).path());
        let bytes = self
            .send(&self.retry, safety, method, segments, body)
            .await?;
        decode(&op, &bytes)
    }

    /// Sends a request under `policy` and returns the body of a 2xx answer.
    pub(super) async fn send(
        &self,
        policy: &RetryPolicy,
        safety: Safety,
        method: Method,
        segments: &[&str],
        body: Option<Value>,
    ) -> Result<Bytes, Error> {
        let url = self.url(segments);
        let admin = segments.first().is_some_and(|s| *s == "admin");
        self.send_to(policy, safety, method, url, admin, body).await
    }

    /// Sends a request to `url` (the bearer token only when `admin`) under `policy` and
    /// returns the body of a 2xx answer.
    pub(super) async fn send_to(
        &self,
        policy: &RetryPolicy,
        safety: Safety,
        method: Method,
        url: url::Url,
        admin: bool,
        body: Option<Value>,
    ) -> Result<Bytes, Error> {
        let op = format!("{method} {}", url.path());
        retry::run(policy, safety, &op, || {
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .timeout(self.timeout);
            if admin {
                req = req.bearer_auth(self.token.expose());
            }
            if let Some(b) = &body {
                req = req.json(b);
            }
            self.attempt(&op, req)
        })
        .await
    }

    async fn attempt(&self, op: &str, req: reqwest::RequestBuilder) -> Result<Bytes, Error> {
        let resp = req.send().await.map_err(|e| self.transport(op, e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.transport(op, e))?;
        debug!(
            op,
            status = status.as_u16(),
            bytes = bytes.len(),
            "admin api answered"
        );
        if status.is_success() {
            Ok(bytes.to_vec())
        } else {
            Err(status_error(op, status, &bytes))
        }
    }

    fn transport(&self, op: &str, e: reqwest::Error) -> Error {
        if e.is_timeout() {
            Error::Timeout {
                op: op.to_owned(),
                message: format!(
                    "no answer within {}",
                    mcp_types::duration::format(self.timeout)
                ),
            }
        } else {
            Error::Transport {
                op: op.to_owned(),
                source: e,
            }
        }
    }
}

/// Decodes a JSON body.
pub(super) fn decode<T: DeserializeOwned>(op: &str, bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Decode {
        op: op.to_owned(),
        message: e.to_string(),
    })
}

/// Decodes a JSON value.
pub(super) fn decode_value<T: DeserializeOwned>(op: &str, value: Value) -> Result<T, Error> {
    serde_json::from_value(value).map_err(|e| Error::Decode {
        op: op.to_owned(),
        message: e.to_string(),
    })
}

/// Maps an error answer (`{"error","code","details"}`) to a typed error.
fn status_error(op: &str, status: StatusCode, bytes: &[u8]) -> Error {
    let body: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
    let message = text("error").or_else(|| text("reason")).unwrap_or_else(|| {
        let raw = String::from_utf8_lossy(bytes);
        let raw = raw.trim();
        if raw.is_empty() {
            status.canonical_reason().unwrap_or("no message").to_owned()
        } else {
            raw.chars().take(200).collect()
        }
    });
    let code = text("code").unwrap_or_else(|| default_code(status).to_owned());
    let details = body.get("details").cloned().unwrap_or(Value::Null);
    let op = op.to_owned();
    match status {
        StatusCode::BAD_REQUEST => Error::Invalid {
            op,
            code,
            message,
            fields: serde_json::from_value::<Vec<FieldError>>(details).unwrap_or_default(),
        },
        StatusCode::UNAUTHORIZED => Error::Unauthorized { op, message },
        StatusCode::FORBIDDEN => Error::Forbidden { op, code, message },
        StatusCode::NOT_FOUND => Error::NotFound { op, code, message },
        StatusCode::CONFLICT if code == "already_exists" => Error::AlreadyExists { op, message },
        StatusCode::BAD_GATEWAY => Error::Upstream {
            op,
            code,
            message,
            details: Box::new(details),
        },
        StatusCode::SERVICE_UNAVAILABLE => Error::Unavailable { op, code, message },
        StatusCode::GATEWAY_TIMEOUT => Error::Timeout {
            op,
            message: format!("proxy answered {code}: {message}"),
        },
        _ => Error::Status {
            op,
            status: status.as_u16(),
            code,
            message,
        },
    }
}

fn default_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "invalid_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::BAD_GATEWAY => "bad_gateway",
        _ => "http_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_become_typed_errors_with_the_servers_message() {
        let e = status_error(
            "POST /admin/mcps",
            StatusCode::BAD_REQUEST,
            br#"{"error":"invalid definition: url: required","code":"invalid_request",
                 "details":[{"field":"url","message":"required"}]}"#,
        );
        match &e {
            Error::Invalid { fields, .. } => assert_eq!(fields[0].field, "url"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            e.to_string(),
            "POST /admin/mcps: invalid (invalid_request): invalid definition: url: required"
        );
        let e = status_error(
            "POST /admin/mcps",
            StatusCode::CONFLICT,
            br#"{"error":"mcp \"a\" already exists","code":"already_exists"}"#,
        );
        assert!(matches!(e, Error::AlreadyExists { .. }), "{e:?}");
        let e = status_error(
            "GET /readyz",
            StatusCode::SERVICE_UNAVAILABLE,
            br#"{"status":"unavailable","reason":"store (redis) not ready"}"#,
        );
        assert!(e.is_retryable());
        assert!(e.to_string().contains("store (redis) not ready"), "{e}");
        let e = status_error("GET /x", StatusCode::INTERNAL_SERVER_ERROR, b"boom");
        assert_eq!(e.to_string(), "GET /x: http 500 (http_error): boom");
        assert!(!e.is_retryable());
    }
}
