//! [`ProxyClient`]: the typed Admin-API client.

mod groups;
mod http;
mod live;

use std::time::Duration;

use mcp_types::{McpDefinition, Secret, TransportKind};
use reqwest::Method;
use serde_json::Value;
use url::Url;

use crate::error::Error;
use crate::model::{Health, ImportReport, McpEntry, Metrics};
use crate::retry::{RetryPolicy, Safety};

/// A client of one proxy's Admin API. Cheap to clone (the connection pool is shared).
///
/// Every request is bounded by `timeout`; failed requests are retried per the
/// [`RetryPolicy`] (the default one unless [`ProxyClient::with_retry`] says otherwise).
#[derive(Debug, Clone)]
pub struct ProxyClient {
    http: reqwest::Client,
    base: Url,
    token: Secret,
    timeout: Duration,
    retry: RetryPolicy,
}

impl ProxyClient {
    /// A client of the proxy at `base_url` (e.g. `http://127.0.0.1:8080`), sending
    /// `admin_token` as a bearer token; each request gets at most `timeout`.
    ///
    /// # Panics
    ///
    /// Like `reqwest::Client::new`, when the TLS back-end cannot be initialised.
    pub fn new(base_url: Url, admin_token: impl Into<String>, timeout: Duration) -> Self {
        let mut base = base_url;
        base.set_query(None);
        base.set_fragment(None);
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .build()
            .expect("the HTTP client builds (TLS back-end available)");
        Self {
            http,
            base,
            token: Secret::new(admin_token.into()),
            timeout,
            retry: RetryPolicy::default(),
        }
    }

    /// The same, parsing `base_url`; fails unless it is an `http(s)` URL.
    pub fn try_new(
        base_url: &str,
        admin_token: impl Into<String>,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let url = parse_http_url(base_url)?;
        Ok(Self::new(url, admin_token, timeout))
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The proxy's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The URL an MCP client uses to reach the MCP `name` through the proxy:
    /// `{base}/{name}/sse` for `sse`, `{base}/{name}/stream` otherwise (a stdio upstream
    /// is served over streamable HTTP).
    pub fn endpoint_url(&self, name: &str, transport: TransportKind) -> Url {
        let last = match transport {
            TransportKind::Sse => "sse",
            TransportKind::Stdio | TransportKind::StreamableHttp => "stream",
        };
        self.url(&[name, last])
    }

    /// `GET /healthz`: the proxy is up.
    pub async fn health(&self) -> Result<Health, Error> {
        self.call(Safety::Idempotent, Method::GET, &["healthz"], None)
            .await
    }

    /// `GET /readyz`: the proxy's store answers and its definitions are loaded.
    pub async fn ready(&self) -> Result<(), Error> {
        self.call::<Value>(Safety::Idempotent, Method::GET, &["readyz"], None)
            .await
            .map(drop)
    }

    /// `POST /admin/mcps`: registers a new MCP. [`Error::AlreadyExists`] when the name is
    /// taken; [`Error::Invalid`] names every failing field.
    ///
    /// Retried only when the proxy was not reached or answered that it did nothing
    /// (502/503): a retry after an unanswered request could find its own creation.
    pub async fn register(&self, def: &McpDefinition) -> Result<McpEntry, Error> {
        let body = encode("POST /admin/mcps", "definition", def)?;
        self.call(
            Safety::AnsweredOrUnsent,
            Method::POST,
            &["admin", "mcps"],
            Some(body),
        )
        .await
    }

    /// `PUT /admin/mcps/{name}`: replaces a definition (the proxy hot-reloads the
    /// connection when it changed). [`Error::NotFound`] when absent.
    pub async fn update(&self, def: &McpDefinition) -> Result<McpEntry, Error> {
        let body = encode(&format!("PUT /admin/mcps/{}", def.name), "definition", def)?;
        self.call(
            Safety::Idempotent,
            Method::PUT,
            &["admin", "mcps", &def.name],
            Some(body),
        )
        .await
    }

    /// `DELETE /admin/mcps/{name}`: `true` when it was removed, `false` when it was not
    /// there (not an error).
    pub async fn deregister(&self, name: &str) -> Result<bool, Error> {
        self.delete_at(&["admin", "mcps", name]).await
    }

    /// `DELETE` of `segments`: `true` when removed, `false` when it was not there.
    pub(crate) async fn delete_at(&self, segments: &[&str]) -> Result<bool, Error> {
        match self
            .send(
                &self.retry,
                Safety::Idempotent,
                Method::DELETE,
                segments,
                None,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `GET /admin/mcps/{name}`: the definition (secrets as `***`) and its status.
    pub async fn get(&self, name: &str) -> Result<McpEntry, Error> {
        self.call(
            Safety::Idempotent,
            Method::GET,
            &["admin", "mcps", name],
            None,
        )
        .await
    }

    /// `GET /admin/mcps`: every registered MCP with its status.
    pub async fn list(&self) -> Result<Vec<McpEntry>, Error> {
        self.list_with(&self.retry).await
    }

    async fn list_with(&self, policy: &RetryPolicy) -> Result<Vec<McpEntry>, Error> {
        let op = "GET /admin/mcps";
        let bytes = self
            .send(
                policy,
                Safety::Idempotent,
                Method::GET,
                &["admin", "mcps"],
                None,
            )
            .await?;
        let mut body: Value = http::decode(op, &bytes)?;
        http::decode_value(op, body["mcps"].take())
    }

    /// `POST /admin/mcps:import`: registers (or updates) one MCP per entry of an
    /// `{"mcpServers": {…}}` document and reports what became of each; with `dry_run`,
    /// only reports. Idempotent, so retried like a read.
    pub async fn import(&self, document: &Value, dry_run: bool) -> Result<ImportReport, Error> {
        let mut url = self.url(&["admin", "mcps:import"]);
        if dry_run {
            url.set_query(Some("dryRun=true"));
        }
        let op = format!("POST {}", url.path());
        let bytes = self
            .send_to(
                &self.retry,
                Safety::Idempotent,
                Method::POST,
                url,
                true,
                Some(document.clone()),
            )
            .await?;
        http::decode(&op, &bytes)
    }

    /// `GET /metrics`: the Prometheus (OpenMetrics) text.
    pub async fn prometheus(&self) -> Result<String, Error> {
        let url = self.url(&["metrics"]);
        let bytes = self
            .send_to(
                &self.retry,
                Safety::Idempotent,
                Method::GET,
                url,
                true,
                None,
            )
            .await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// `GET /admin/metrics`: the proxy's counters.
    pub async fn metrics(&self) -> Result<Metrics, Error> {
        self.call(Safety::Idempotent, Method::GET, &["admin", "metrics"], None)
            .await
    }

    /// `{base}/{segments…}`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }
}

/// Parses an `http(s)` URL with a host.
pub(crate) fn parse_http_url(text: &str) -> Result<Url, Error> {
    let url = Url::parse(text).map_err(|e| Error::InvalidUrl {
        url: text.to_owned(),
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::InvalidUrl {
            url: text.to_owned(),
            reason: format!("scheme must be http or https, not {:?}", url.scheme()),
        });
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::InvalidUrl {
            url: text.to_owned(),
            reason: "no host".into(),
        });
    }
    Ok(url)
}

/// `value` as the JSON body of `op` (`what` names it in the error).
pub(crate) fn encode(op: &str, what: &str, value: &impl serde::Serialize) -> Result<Value, Error> {
    serde_json::to_value(value).map_err(|e| Error::Decode {
        op: op.to_owned(),
        message: format!("cannot serialize the {what}: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_base_path_and_escape_names() {
        let c = ProxyClient::try_new("http://127.0.0.1:8080/proxy/", "t", Duration::from_secs(1))
            .unwrap();
        assert_eq!(
            c.url(&["admin", "mcps", "a b"]).as_str(),
            "http://127.0.0.1:8080/proxy/admin/mcps/a%20b"
        );
        assert_eq!(
            c.endpoint_url("time", TransportKind::Stdio).as_str(),
            "http://127.0.0.1:8080/proxy/time/stream"
        );
        assert_eq!(
            c.url(&["admin", "mcps:import"]).as_str(),
            "http://127.0.0.1:8080/proxy/admin/mcps:import"
        );
        let c = ProxyClient::try_new("http://127.0.0.1:8080", "t", Duration::from_secs(1)).unwrap();
        assert_eq!(
            c.endpoint_url("fs", TransportKind::Sse).as_str(),
            "http://127.0.0.1:8080/fs/sse"
        );
        for bad in ["ftp://x", "not a url", "file:///tmp"] {
            assert!(
                ProxyClient::try_new(bad, "t", Duration::from_secs(1)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_never_shows_the_token() {
        let c = ProxyClient::try_new("http://127.0.0.1:1", "sekrit-token", Duration::from_secs(1))
            .unwrap();
        assert!(!format!("{c:?}").contains("sekrit"));
    }
}
