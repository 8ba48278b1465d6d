//! Pieces shared by the two HTTP transports: URL and header preparation, the HTTP client,
//! bounded bodies and bounded SSE event streams.

use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::{Event, Eventsource};
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use mcp_types::{McpDefinition, TransportKind};
use url::Url;

use crate::Result;
use crate::error::{Error, Target};
use crate::options::TransportOptions;

/// Most bytes of an error body quoted in an error message.
const ERROR_BODY_MAX: usize = 300;

/// What both HTTP transports read from a definition before their first request.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) target: Target,
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) connect_timeout: Duration,
    pub(crate) http: reqwest::Client,
}

/// The target, URL, headers, connect deadline and HTTP client of the upstream `def`
/// names, reached over `kind`.
pub(crate) fn prepare(
    def: &McpDefinition,
    opts: &TransportOptions,
    kind: TransportKind,
) -> Result<Prepared> {
    let target = Target::new(&def.name, kind);
    let url = upstream_url(def, opts, &target)?;
    let headers = base_headers(def, opts, &target)?;
    let connect_timeout = opts.connect_timeout_for(def);
    let http = client(connect_timeout, &target)?;
    Ok(Prepared {
        target,
        url,
        headers,
        connect_timeout,
        http,
    })
}

/// The upstream URL with `path_suffix` appended to its path.
fn upstream_url(def: &McpDefinition, opts: &TransportOptions, target: &Target) -> Result<Url> {
    let config = |reason: String| Error::Config {
        target: target.clone(),
        reason,
    };
    let raw = def
        .url
        .as_deref()
        .ok_or_else(|| config("an HTTP transport needs a url".into()))?;
    let mut url = Url::parse(raw).map_err(|e| config(format!("invalid url {raw:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(config(format!("url {raw:?} is not http(s)")));
    }
    if let Some(suffix) = opts.path_suffix.as_deref().map(|s| s.trim_matches('/'))
        && !suffix.is_empty()
    {
        if let Err(why) = mcp_types::validate::check_path_suffix(suffix) {
            return Err(config(why));
        }
        let path = format!("{}/{suffix}", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    Ok(url)
}

/// The headers of every request: passthrough headers, then the definition's own headers
/// (which win).
fn base_headers(
    def: &McpDefinition,
    opts: &TransportOptions,
    target: &Target,
) -> Result<HeaderMap> {
    let mut headers = opts.extra_headers.clone();
    for (name, value) in &def.headers {
        let bad = |what: &str| Error::Config {
            target: target.clone(),
            reason: format!("header {name:?} has an invalid {what}"),
        };
        let name = HeaderName::try_from(name.as_str()).map_err(|_| bad("name"))?;
        let mut value = HeaderValue::try_from(value.expose()).map_err(|_| bad("value"))?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok(headers)
}

/// Redirects followed at most, and only within the origin of the first request: the
/// definition's headers (often credentials) never travel to another host.
const MAX_REDIRECTS: usize = 5;

/// An HTTP client with a connect deadline and no overall deadline (SSE streams live long;
/// each call bounds its own wait). Redirects stay on the origin they start from.
fn client(connect_timeout: Duration, target: &Target) -> Result<reqwest::Client> {
    let same_origin = reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().map(Url::origin);
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else if first.is_some_and(|o| o != attempt.url().origin()) {
            attempt.stop()
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .redirect(same_origin)
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .map_err(|e| Error::Config {
            target: target.clone(),
            reason: format!("cannot build the HTTP client: {e}"),
        })
}

/// `METHOD url`, for messages, formatted only when one is needed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct What<'a>(pub(crate) &'static str, pub(crate) &'a Url);

impl std::fmt::Display for What<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0, self.1)
    }
}

/// Sends `request`, waiting at most `timeout` for the response head.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    timeout: Duration,
    target: &Target,
    what: What<'_>,
) -> Result<reqwest::Response> {
    match tokio::time::timeout(timeout, request.send()).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(source)) => Err(Error::Http {
            target: target.clone(),
            what: what.to_string(),
            source,
        }),
        Err(_) => Err(Error::Timeout {
            target: target.clone(),
            what: what.to_string(),
            after: timeout,
        }),
    }
}

/// The response's media type, lowercased, without parameters.
pub(crate) fn media_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// [`Error::Status`] for an unexpected answer, quoting the start of its body.
pub(crate) async fn status_error(
    response: reqwest::Response,
    target: &Target,
    what: &str,
) -> Error {
    let status = response.status();
    let body = tokio::time::timeout(Duration::from_secs(2), read_limited(response, 4096))
        .await
        .ok()
        .and_then(Result::ok)
        .map(|b| {
            let text = String::from_utf8_lossy(&b).trim().to_owned();
            text.chars().take(ERROR_BODY_MAX).collect()
        })
        .unwrap_or_default();
    Error::Status {
        target: target.clone(),
        what: what.to_owned(),
        status,
        body,
    }
}

/// Why a body or stream could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    Http(reqwest::Error),
    TooLarge(usize),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Http(e) => write!(f, "{e}"),
            Self::TooLarge(max) => write!(f, "message larger than the limit of {max} bytes"),
        }
    }
}

/// Reads a whole body, refusing more than `max` bytes.
pub(crate) async fn read_limited(
    response: reqwest::Response,
    max: usize,
) -> std::result::Result<Bytes, ReadError> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(ReadError::Http)?;
        if body.len() + chunk.len() > max {
            return Err(ReadError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.into())
}

/// SSE events of a response body. An event bigger than `max` bytes ends the stream with
/// [`ReadError::TooLarge`] before it is buffered whole.
pub(crate) fn events(
    response: reqwest::Response,
    max: usize,
) -> BoxStream<'static, std::result::Result<Event, String>> {
    limit_events(response.bytes_stream(), max)
        .eventsource()
        .map(|ev| ev.map_err(|e| e.to_string()))
        .boxed()
}

/// Counts the bytes of the event being received (since the last blank line) and fails
/// once they pass `max`.
fn limit_events<S>(
    stream: S,
    max: usize,
) -> impl Stream<Item = std::result::Result<Bytes, ReadError>>
where
    S: Stream<Item = reqwest::Result<Bytes>>,
{
    let mut event_len = 0usize;
    let mut line_len = 0usize;
    let mut prev_cr = false;
    stream.map(move |chunk| {
        let chunk = chunk.map_err(ReadError::Http)?;
        for &b in chunk.iter() {
            match b {
                b'\n' if prev_cr => prev_cr = false,
                b'\n' | b'\r' => {
                    if line_len == 0 {
                        event_len = 0;
                    }
                    line_len = 0;
                    prev_cr = b == b'\r';
                }
                _ => {
                    prev_cr = false;
                    line_len += 1;
                    event_len += 1;
                }
            }
        }
        if event_len > max {
            return Err(ReadError::TooLarge(max));
        }
        Ok(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_suffix_is_appended() {
        let def = McpDefinition::http("h", TransportKind::StreamableHttp, "http://x/mcp?k=v");
        let opts = TransportOptions {
            path_suffix: Some("/a/b".into()),
            ..TransportOptions::default()
        };
        let target = Target::new("h", TransportKind::StreamableHttp);
        let url = upstream_url(&def, &opts, &target).unwrap();
        assert_eq!(url.as_str(), "http://x/mcp/a/b?k=v");
    }

    #[tokio::test]
    async fn oversized_events_fail_and_small_ones_pass() {
        let chunks: Vec<reqwest::Result<Bytes>> = vec![
            Ok(Bytes::from_static(b"data: 12345\n\ndata: 1234")),
            Ok(Bytes::from_static(b"5\r\n\r\ndata: 123456789012345")),
        ];
        let out: Vec<_> = limit_events(futures_util::stream::iter(chunks), 16)
            .collect()
            .await;
        assert!(out[0].is_ok());
        assert!(matches!(out[1], Err(ReadError::TooLarge(16))));
    }
}
