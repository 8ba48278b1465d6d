//! One keep-alive HTTP/1.1 connection per use (hyper's connection-level client: no pool,
//! no locks), plus readers for JSON and event-stream bodies.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use url::Url;

use crate::sse::{SseEvent, SseParser};

/// Where requests go: a resolved address, the `Host` value and the request target.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) url: Url,
    pub(crate) addr: SocketAddr,
    host: HeaderValue,
    path: String,
}

impl Target {
    /// Resolves `url` (http only). Unless `allow_remote`, only loopback addresses are
    /// accepted: this tool sends load, and load belongs on this machine.
    pub(crate) async fn resolve(url: Url, allow_remote: bool) -> anyhow::Result<Self> {
        if url.scheme() != "http" {
            bail!("target {url}: only http:// URLs are supported");
        }
        let host = url
            .host_str()
            .with_context(|| format!("target {url}: no host"))?
            .to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let addr = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
            .await
            .with_context(|| format!("target {url}: cannot resolve {host}"))?
            .find(|a| allow_remote || a.ip().is_loopback())
            .with_context(|| {
                format!("target {url}: not a loopback address (pass --allow-remote to load another host)")
            })?;
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        };
        let mut path = url.path().to_owned();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        Ok(Self {
            host: HeaderValue::from_str(&authority)?,
            path,
            addr,
            url,
        })
    }

    /// The same server, another path (an SSE `endpoint` event, relative or absolute).
    pub(crate) async fn join(&self, reference: &str, allow_remote: bool) -> anyhow::Result<Self> {
        let url = self
            .url
            .join(reference)
            .with_context(|| format!("endpoint {reference:?} is not a URL"))?;
        Self::resolve(url, allow_remote).await
    }
}

/// Request headers every request carries (`--header`).
#[derive(Debug, Clone, Default)]
pub(crate) struct ExtraHeaders(pub(crate) Vec<(HeaderName, HeaderValue)>);

/// One HTTP/1.1 connection.
#[derive(Debug)]
pub(crate) struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    /// Connects (TCP_NODELAY) and starts the connection's task, which ends with the
    /// connection.
    pub(crate) async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| {
            let hint = if e.raw_os_error() == Some(24) {
                " (too many open files: raise `ulimit -n`)"
            } else {
                ""
            };
            anyhow!("cannot connect to {addr}: {e}{hint}")
        })?;
        tcp.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .with_context(|| format!("http handshake with {addr}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self { sender })
    }

    /// Whether the server closed it (then a new one is needed).
    pub(crate) fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Sends one request.
    pub(crate) async fn send(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> anyhow::Result<Response<Incoming>> {
        self.sender
            .ready()
            .await
            .context("the connection closed before the request was sent")?;
        let (method, path) = (req.method().clone(), req.uri().clone());
        self.sender
            .send_request(req)
            .await
            .with_context(|| format!("{method} {path}"))
    }
}

/// A request to `target`: `Host`, the extra headers and, for a body, JSON content type.
pub(crate) fn request(
    method: Method,
    target: &Target,
    extra: &ExtraHeaders,
    headers: &[(HeaderName, HeaderValue)],
    body: Option<Bytes>,
) -> anyhow::Result<Request<Full<Bytes>>> {
    let mut b = Request::builder()
        .method(method)
        .uri(target.path.as_str())
        .header(HOST, target.host.clone());
    if body.is_some() {
        b = b
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream");
    }
    for (k, v) in extra.0.iter().chain(headers) {
        b = b.header(k, v);
    }
    Ok(b.body(Full::new(body.unwrap_or_default()))?)
}

/// Whether a response head says `text/event-stream`.
pub(crate) fn is_event_stream(headers: &HeaderMap) -> bool {
    content_type(headers).starts_with("text/event-stream")
}

/// The content type, lowercased, or "".
pub(crate) fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Reads a whole body, refusing more than `limit` bytes.
pub(crate) async fn read_body(body: Incoming, limit: usize) -> anyhow::Result<Bytes> {
    Ok(Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| anyhow!("reading the body: {e}"))?
        .to_bytes())
}

/// The first bytes of an error body, for a message.
pub(crate) async fn error_text(resp: Response<Incoming>) -> String {
    let status = resp.status();
    let body = tokio::time::timeout(
        Duration::from_secs(2),
        read_body(resp.into_body(), 64 << 10),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .unwrap_or_default();
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    format!("status {status}: {}", text.trim())
}

/// An event-stream body read event by event.
#[derive(Debug)]
pub(crate) struct SseBody {
    body: Incoming,
    parser: SseParser,
    ended: bool,
    broken: bool,
}

impl SseBody {
    pub(crate) fn new(body: Incoming, max_event_bytes: usize) -> Self {
        Self {
            body,
            parser: SseParser::new(max_event_bytes),
            ended: false,
            broken: false,
        }
    }

    /// Whether the stream ended or broke (a legacy SSE session is then over).
    pub(crate) fn is_finished(&self) -> bool {
        self.ended || self.broken
    }

    /// The next event; `None` at the end of the body.
    pub(crate) async fn next_event(&mut self) -> anyhow::Result<Option<SseEvent>> {
        loop {
            match self.parser.next_event() {
                Ok(Some(ev)) => return Ok(Some(ev)),
                Ok(None) => {}
                Err(e) => {
                    self.broken = true;
                    return Err(e);
                }
            }
            if self.ended {
                return Ok(None);
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.parser.push(&data);
                    }
                }
                Some(Err(e)) => {
                    self.broken = true;
                    return Err(anyhow!("event stream broke: {e}"));
                }
                None => {
                    // A last event without its blank line is not dispatched (the spec).
                    self.ended = true;
                }
            }
        }
    }

    /// Reads to the end of the body (so the connection can be reused).
    pub(crate) async fn drain(&mut self) -> anyhow::Result<()> {
        while !self.ended {
            match self.body.frame().await {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(anyhow!("event stream broke: {e}")),
                None => self.ended = true,
            }
        }
        Ok(())
    }
}
