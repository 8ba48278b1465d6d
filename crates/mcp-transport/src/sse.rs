//! Legacy HTTP+SSE (2024-11-05): a GET opens an event stream whose first event,
//! `endpoint`, names the URL to POST messages to; the server's messages arrive as
//! `message` events on the stream. The stream is the session: when it ends, so does the
//! connection (this transport has no resumption).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use http::StatusCode;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use mcp_types::jsonrpc::Payload;
use mcp_types::{McpDefinition, Message, TransportKind};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::Instrument;
use url::Url;

use crate::Result;
use crate::error::{Error, Target};
use crate::net;
use crate::options::TransportOptions;
use crate::transport::{CloseKind, CloseLatch, CloseReason, Inbox, Transport, closed};

type EventStream = BoxStream<'static, std::result::Result<eventsource_stream::Event, String>>;

/// A legacy HTTP+SSE upstream connection.
#[derive(Debug)]
pub struct SseTransport {
    inner: Arc<Inner>,
    _tasks: DropGuard,
}

#[derive(Debug)]
struct Inner {
    target: Target,
    http: reqwest::Client,
    endpoint: Url,
    headers: HeaderMap,
    closed: CloseLatch,
    inbox: Arc<dyn Inbox>,
    cancel: CancellationToken,
    request_timeout: Duration,
}

impl SseTransport {
    /// Opens the event stream and waits for the `endpoint` event.
    pub async fn connect(
        def: &McpDefinition,
        opts: &TransportOptions,
        inbox: Arc<dyn Inbox>,
    ) -> Result<Self> {
        let up = net::prepare(def, opts, TransportKind::Sse)?;
        let (target, url, connect_timeout) = (up.target, up.url, up.connect_timeout);
        let what = net::What("GET", &url);
        let req = up
            .http
            .get(url.clone())
            .headers(up.headers.clone())
            .header(ACCEPT, "text/event-stream");
        let response = net::send(req, connect_timeout, &target, what).await?;
        if !response.status().is_success() {
            return Err(net::status_error(response, &target, &what.to_string()).await);
        }
        let media = net::media_type(&response);
        if media != "text/event-stream" {
            return Err(Error::Protocol {
                target,
                message: format!("{what} answered with {media:?}, not an event stream"),
            });
        }
        let mut stream = net::events(response, opts.max_message_bytes);
        let mut early = Vec::new();
        let endpoint = tokio::time::timeout(
            connect_timeout,
            wait_for_endpoint(&mut stream, &url, &target, &mut early),
        )
        .await
        .map_err(|_| Error::Timeout {
            target: target.clone(),
            what: "waiting for the endpoint event".into(),
            after: connect_timeout,
        })??;
        tracing::debug!(upstream = %def.name, %endpoint, "sse endpoint received");

        let cancel = CancellationToken::new();
        let inner = Arc::new(Inner {
            target,
            http: up.http,
            endpoint,
            headers: up.headers,
            closed: CloseLatch::default(),
            inbox,
            cancel: cancel.clone(),
            request_timeout: opts.request_timeout_for(def),
        });
        let span = tracing::info_span!("upstream", upstream = %def.name, transport = "sse");
        tokio::spawn(read_stream(inner.clone(), stream, early).instrument(span));
        Ok(Self {
            inner,
            _tasks: cancel.drop_guard(),
        })
    }

    /// The URL messages are posted to.
    pub fn endpoint(&self) -> &Url {
        &self.inner.endpoint
    }
}

/// Reads events until `endpoint`, keeping any message that comes earlier.
async fn wait_for_endpoint(
    stream: &mut EventStream,
    url: &Url,
    target: &Target,
    early: &mut Vec<Message>,
) -> Result<Url> {
    let protocol = |message: String| Error::Protocol {
        target: target.clone(),
        message,
    };
    while let Some(event) = stream.next().await {
        let event = event.map_err(|e| protocol(format!("the event stream broke: {e}")))?;
        match event.event.as_str() {
            "endpoint" => {
                let data = event.data.trim();
                let endpoint = url
                    .join(data)
                    .map_err(|e| protocol(format!("invalid endpoint {data:?}: {e}")))?;
                if endpoint.origin() != url.origin() {
                    return Err(protocol(format!(
                        "endpoint {endpoint} is not on the origin of {url}"
                    )));
                }
                return Ok(endpoint);
            }
            "" | "message" => {
                if let Ok(p) = Payload::from_slice(event.data.as_bytes()) {
                    early.extend(p.into_messages());
                }
            }
            _ => {}
        }
    }
    Err(protocol(
        "the event stream ended before the endpoint event".into(),
    ))
}

async fn read_stream(inner: Arc<Inner>, mut stream: EventStream, early: Vec<Message>) {
    for msg in early {
        inner.inbox.message(msg);
    }
    let why = loop {
        let next = tokio::select! {
            () = inner.cancel.cancelled() => return,
            next = stream.next() => next,
        };
        match next {
            None => break "the server closed the event stream".to_owned(),
            Some(Err(err)) => break format!("the event stream broke: {err}"),
            Some(Ok(event)) if event.event.is_empty() || event.event == "message" => {
                if event.data.trim().is_empty() {
                    continue;
                }
                match Payload::from_slice(event.data.as_bytes()) {
                    Ok(p) => {
                        for msg in p.into_messages() {
                            inner.inbox.message(msg);
                        }
                    }
                    Err(err) => {
                        tracing::warn!(upstream = %inner.target.name, error = %err, "sse event is not JSON-RPC; skipped");
                    }
                }
            }
            Some(Ok(_)) => {}
        }
    };
    inner.finish_and_report(CloseReason::new(CloseKind::StreamLost, why));
}

impl Inner {
    fn finish_and_report(&self, reason: CloseReason) {
        self.closed
            .close_and_report(reason, &self.cancel, self.inbox.as_ref(), &self.target);
    }
}

#[async_trait]
impl Transport for SseTransport {
    fn kind(&self) -> TransportKind {
        TransportKind::Sse
    }

    fn target(&self) -> &Target {
        &self.inner.target
    }

    async fn send(&self, msg: Message) -> Result<()> {
        let inner = &self.inner;
        if let Some(reason) = inner.closed.reason() {
            return Err(closed(&inner.target, reason));
        }
        let what = net::What("POST", &inner.endpoint);
        let req = inner
            .http
            .post(inner.endpoint.clone())
            .headers(inner.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(msg.to_vec());
        let response = net::send(req, inner.request_timeout, &inner.target, what).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status == StatusCode::NOT_FOUND {
            let reason = CloseReason::new(
                CloseKind::SessionExpired,
                format!("{what} returned 404: the server no longer knows this session"),
            );
            inner.finish_and_report(reason);
            return Err(Error::SessionExpired {
                target: inner.target.clone(),
                session_id: inner.endpoint.query().unwrap_or_default().to_owned(),
            });
        }
        Err(net::status_error(response, &inner.target, &what.to_string()).await)
    }

    async fn close(&self) -> Result<()> {
        self.inner.finish_and_report(CloseReason::local());
        Ok(())
    }
}
