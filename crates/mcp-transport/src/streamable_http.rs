//! Streamable HTTP (2025-03-26 … 2025-11-25): every message is a POST to one endpoint;
//! answers come back as a JSON body or an SSE stream; a GET stream carries
//! server-initiated messages; `Mcp-Session-Id` and `MCP-Protocol-Version` headers tie the
//! requests of a session together.
//!
//! In the modern revision (2026-07-28, [`Transport::set_modern`]) there is no session and
//! no GET stream: each POST names its version, method and target in headers
//! (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`), and an error the server answers
//! with a 4xx status comes back as the JSON-RPC error it is.

mod headers;
mod stream;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use http::{Method, StatusCode};
use mcp_types::jsonrpc::Payload;
use mcp_types::mcp::methods;
use mcp_types::{McpDefinition, Message, TransportKind};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::Instrument;
use url::Url;

use crate::Result;
use crate::error::{Error, Target};
use crate::net;
use crate::options::TransportOptions;
use crate::transport::{CloseKind, CloseLatch, CloseReason, Inbox, Sent, Transport, closed};

pub use stream::AnswerStream;

/// The session header (HTTP headers are case-insensitive).
pub use mcp_types::mcp::SESSION_HEADER;
/// The negotiated-version header.
pub const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";
/// The resumption header.
pub const LAST_EVENT_ID_HEADER: &str = "last-event-id";

/// A streamable HTTP upstream session.
#[derive(Debug)]
pub struct StreamableHttpTransport {
    inner: Arc<Inner>,
    _tasks: DropGuard,
}

#[derive(Debug)]
struct Inner {
    target: Target,
    http: reqwest::Client,
    url: Url,
    headers: HeaderMap,
    session_id: Mutex<Option<String>>,
    protocol_version: Mutex<Option<String>>,
    /// The modern revision spoken, when one is (no session, standard headers).
    modern: Mutex<Option<String>>,
    closed: CloseLatch,
    inbox: Arc<dyn Inbox>,
    cancel: CancellationToken,
    limits: Limits,
    span: tracing::Span,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    max_message_bytes: usize,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_resume_attempts: u32,
    resume_delay: Duration,
    max_resume_delay: Duration,
}

impl StreamableHttpTransport {
    /// Prepares a session with the upstream `def` names. Nothing is sent until the first
    /// message (which should be `initialize`).
    pub async fn connect(
        def: &McpDefinition,
        opts: &TransportOptions,
        inbox: Arc<dyn Inbox>,
    ) -> Result<Self> {
        let up = net::prepare(def, opts, TransportKind::StreamableHttp)?;
        let cancel = CancellationToken::new();
        let span =
            tracing::info_span!("upstream", upstream = %def.name, transport = "streamable-http");
        let inner = Arc::new(Inner {
            span,
            target: up.target,
            http: up.http,
            url: up.url,
            headers: up.headers,
            session_id: Mutex::new(opts.resume_session.clone()),
            protocol_version: Mutex::new(None),
            modern: Mutex::new(None),
            closed: CloseLatch::default(),
            inbox,
            cancel: cancel.clone(),
            limits: Limits {
                max_message_bytes: opts.max_message_bytes,
                connect_timeout: up.connect_timeout,
                request_timeout: opts.request_timeout_for(def),
                max_resume_attempts: opts.max_resume_attempts,
                resume_delay: opts.resume_delay,
                max_resume_delay: opts.max_resume_delay,
            },
        });
        Ok(Self {
            inner,
            _tasks: cancel.drop_guard(),
        })
    }

    /// The session id the server assigned, once initialized.
    pub fn session_id(&self) -> Option<String> {
        self.inner
            .session_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Inner {
    fn closed_reason(&self) -> Option<CloseReason> {
        self.closed.reason()
    }

    /// Marks the session over. Returns whether this call did it (then it owns the event).
    fn finish(&self, reason: &CloseReason) -> bool {
        self.closed.close(reason, &self.cancel)
    }

    fn finish_and_report(&self, reason: CloseReason) {
        self.closed
            .close_and_report(reason, &self.cancel, self.inbox.as_ref(), &self.target);
    }

    /// The server answered 404 to a request carrying `session_id`: the session is gone.
    fn expire(&self, session_id: &str) -> Error {
        self.expire_with(session_id, 404)
    }

    /// [`Self::expire`] for a session the server refused with `status`.
    fn expire_with(&self, session_id: &str, status: u16) -> Error {
        let reason = CloseReason::new(
            CloseKind::SessionExpired,
            format!("the server ended session {session_id:?} ({status}); initialize again"),
        );
        self.finish_and_report(reason);
        Error::SessionExpired {
            target: self.target.clone(),
            session_id: session_id.to_owned(),
        }
    }

    /// The modern revision spoken, if any.
    fn modern(&self) -> Option<String> {
        self.modern.lock().expect("era lock").clone()
    }

    /// A request with the session's headers; `initialize` goes without a session id.
    fn request(
        &self,
        method: Method,
        with_session: bool,
    ) -> (reqwest::RequestBuilder, Option<String>) {
        let mut req = self
            .http
            .request(method, self.url.clone())
            .headers(self.headers.clone());
        if let Some(version) = self.modern() {
            return (req.header(PROTOCOL_VERSION_HEADER, version), None);
        }
        let session = if with_session {
            self.session_id
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        } else {
            None
        };
        if let Some(id) = &session {
            req = req.header(SESSION_HEADER, id);
        }
        if let Some(version) = self
            .protocol_version
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            req = req.header(PROTOCOL_VERSION_HEADER, version);
        }
        (req, session)
    }

    /// POSTs one message; an answer that comes back inline is returned, not delivered.
    async fn post(self: &Arc<Self>, msg: Message) -> Result<Sent> {
        if let Some(reason) = self.closed_reason() {
            return Err(closed(&self.target, reason));
        }
        let is_initialize = msg.method() == Some(methods::INITIALIZE);
        let request_id = match &msg {
            Message::Request(r) => Some(r.id.clone()),
            _ => None,
        };
        let (mut req, session) = self.request(Method::POST, !is_initialize);
        let modern = self.modern().is_some();
        if modern {
            req = headers::standard(req, &msg);
        }
        let req = req
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .body(msg.to_vec());
        let what = net::What("POST", &self.url);
        let response = net::send(req, self.limits.request_timeout, &self.target, what).await?;
        if is_initialize {
            let id = response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            *self
                .session_id
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = id;
        }
        let status = response.status();
        if status == StatusCode::NOT_FOUND
            && let Some(session) = session
        {
            return Err(self.expire(&session));
        }
        if status == StatusCode::ACCEPTED || status == StatusCode::NO_CONTENT {
            return Ok(Sent::Accepted);
        }
        if status == StatusCode::BAD_REQUEST
            && let Some(session) = session
            && self.session_refused(&session).await
        {
            return Err(self.expire_with(&session, 400));
        }
        if !status.is_success() {
            if modern
                && status.is_client_error()
                && let Some(id) = &request_id
            {
                return headers::rejected(self, response, id, &what.to_string()).await;
            }
            return Err(net::status_error(response, &self.target, &what.to_string()).await);
        }
        match net::media_type(&response).as_str() {
            "text/event-stream" => {
                let stream = stream::AnswerStream::new(self.clone(), response, request_id, false);
                if stream_is_awaited(&msg) {
                    return Ok(Sent::Stream(stream));
                }
                tokio::spawn(stream::drain(stream).instrument(self.span.clone()));
                Ok(Sent::Accepted)
            }
            "application/json" => {
                let body = tokio::time::timeout(
                    self.limits.request_timeout,
                    net::read_limited(response, self.limits.max_message_bytes),
                )
                .await;
                let body = match body {
                    Ok(Ok(body)) => body,
                    Ok(Err(err)) => {
                        return Err(Error::Protocol {
                            target: self.target.clone(),
                            message: format!("reading the answer to {what} failed: {err}"),
                        });
                    }
                    Err(_) => {
                        return Err(Error::Timeout {
                            target: self.target.clone(),
                            what: format!("reading the answer to {what}"),
                            after: self.limits.request_timeout,
                        });
                    }
                };
                if body.iter().all(u8::is_ascii_whitespace) {
                    return Ok(Sent::Accepted);
                }
                let payload = Payload::from_slice(&body).map_err(|err| Error::Protocol {
                    target: self.target.clone(),
                    message: format!("the answer to {what} is not JSON-RPC: {err}"),
                })?;
                Ok(Sent::Messages(payload.into_messages()))
            }
            _ if request_id.is_none() => Ok(Sent::Accepted),
            other => Err(Error::Protocol {
                target: self.target.clone(),
                message: format!(
                    "POST {} answered a request with content type {other:?}",
                    self.url
                ),
            }),
        }
    }

    /// Whether the server refuses `session` itself, asked after a 400 to a request that
    /// carried it. Some servers answer an id they no longer know (after a restart) with
    /// 400 instead of the 404 the transport prescribes; a 400 can also be about the
    /// request alone. A `ping` in the same session tells them apart without reading any
    /// error text: a live session answers it; a 400 or 404 to it means the session is gone.
    pub(crate) async fn session_refused(&self, session: &str) -> bool {
        let probe = br#"{"jsonrpc":"2.0","id":"mcp-proxy-session-probe","method":"ping"}"#;
        let (req, sent) = self.request(Method::POST, true);
        if sent.as_deref() != Some(session) {
            return false;
        }
        let req = req
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .body(probe.as_slice());
        let what = net::What("POST", &self.url);
        match net::send(req, self.limits.connect_timeout, &self.target, what).await {
            Ok(r) => matches!(r.status(), StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND),
            Err(_) => false,
        }
    }

    async fn delete_session(&self) {
        let Some(session) = self
            .session_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            return;
        };
        let (req, _) = self.request(Method::DELETE, true);
        let what = net::What("DELETE", &self.url);
        match net::send(req, self.limits.connect_timeout, &self.target, what).await {
            Ok(r) if r.status().is_success() => {
                tracing::debug!(upstream = %self.target.name, session, "session deleted");
            }
            Ok(r)
                if matches!(
                    r.status(),
                    StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_FOUND
                ) => {}
            Ok(r) => {
                let err = net::status_error(r, &self.target, &what.to_string()).await;
                tracing::debug!(upstream = %self.target.name, error = %err, "session delete refused");
            }
            Err(err) => {
                tracing::debug!(upstream = %self.target.name, error = %err, "session delete failed");
            }
        }
    }
}

#[async_trait]
impl Transport for StreamableHttpTransport {
    fn kind(&self) -> TransportKind {
        TransportKind::StreamableHttp
    }

    fn target(&self) -> &Target {
        &self.inner.target
    }

    async fn send(&self, msg: Message) -> Result<()> {
        match self.inner.post(msg).await? {
            Sent::Accepted => {}
            Sent::Messages(messages) => {
                for msg in messages {
                    self.inner.inbox.message(msg);
                }
            }
            Sent::Stream(stream) => {
                let span = self.inner.span.clone();
                tokio::spawn(stream::drain(stream).instrument(span));
            }
        }
        Ok(())
    }

    async fn exchange(&self, msg: Message) -> Result<Sent> {
        self.inner.post(msg).await
    }

    fn set_protocol_version(&self, version: &str) {
        *self
            .inner
            .protocol_version
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(version.to_owned());
    }

    fn set_modern(&self, version: Option<&str>) {
        *self.inner.modern.lock().expect("era lock") = version.map(str::to_owned);
    }

    fn on_initialized(&self) {
        if self.inner.closed_reason().is_none() && self.inner.modern().is_none() {
            let span = self.inner.span.clone();
            tokio::spawn(stream::open_get(self.inner.clone()).instrument(span));
        }
    }

    async fn close(&self) -> Result<()> {
        if !self.inner.finish(&CloseReason::local()) {
            return Ok(());
        }
        self.inner.delete_session().await;
        self.inner.inbox.closed(CloseReason::local());
        Ok(())
    }

    fn session_id(&self) -> Option<String> {
        StreamableHttpTransport::session_id(self)
    }

    async fn release(&self) -> Result<()> {
        if self.inner.finish(&CloseReason::local()) {
            self.inner.inbox.closed(CloseReason::local());
        }
        Ok(())
    }
}

/// Whether the sender of `msg` reads the event stream it is answered with (a request's
/// answer); otherwise the stream is drained into the inbox.
fn stream_is_awaited(msg: &Message) -> bool {
    msg.is_request()
}
