//! The transport abstraction and the factory that picks one by definition.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use mcp_types::{McpDefinition, Message, TransportKind};
use tokio::sync::mpsc;

use crate::error::{Error, Target};
use crate::options::TransportOptions;
use crate::{Result, sse, stdio, streamable_http};

/// What a channel-fed transport hands [`crate::McpClient::new`]: every message from the
/// upstream, in order, then exactly one [`TransportEvent::Closed`].
#[derive(Debug)]
pub enum TransportEvent {
    /// A message from the upstream.
    Message(Message),
    /// The connection is over; nothing follows.
    Closed(CloseReason),
}

/// The receiving half of a channel-fed transport.
pub type Events = mpsc::Receiver<TransportEvent>;

/// Why a connection closed, in a category and a sentence for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// The category.
    pub kind: CloseKind,
    /// A lowercase sentence: `the process exited with status 1; last stderr: …`.
    pub message: String,
}

/// Categories of [`CloseReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseKind {
    /// We closed it ([`Transport::close`] or drop).
    Local,
    /// The stdio child exited.
    Exited,
    /// The HTTP stream or connection was lost.
    StreamLost,
    /// The server ended the session (streamable HTTP 404).
    SessionExpired,
    /// The upstream broke the protocol badly enough that we hung up.
    Protocol,
}

impl CloseReason {
    /// A reason of `kind` saying `message`.
    pub fn new(kind: CloseKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Closed by us.
    pub fn local() -> Self {
        Self::new(CloseKind::Local, "closed by the proxy")
    }

    /// Whether we closed it ourselves.
    pub fn is_local(&self) -> bool {
        self.kind == CloseKind::Local
    }

    /// Whether the server ended the session.
    pub fn is_session_expired(&self) -> bool {
        self.kind == CloseKind::SessionExpired
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Where a transport hands what the upstream sends on its shared channel (a stdio child's
/// stdout, the legacy SSE stream, the streamable-HTTP GET stream and resumed streams),
/// in arrival order, from the one task that reads it. Implementations must not block:
/// they route and return.
pub trait Inbox: Send + Sync + fmt::Debug + 'static {
    /// One message from the upstream.
    fn message(&self, msg: Message);
    /// The connection is over; nothing follows. Called once.
    fn closed(&self, reason: CloseReason);
}

/// What sending a message produced.
#[derive(Debug)]
pub enum Sent {
    /// The upstream has it; any answer comes through the [`Inbox`].
    Accepted,
    /// The upstream answered this very message inline (a streamable-HTTP JSON body): the
    /// messages in order, to be routed by the sender.
    Messages(Vec<Message>),
    /// The upstream answered with an event stream tied to this message (streamable
    /// HTTP): the sender reads it, in order, until the answer it awaits.
    Stream(crate::streamable_http::AnswerStream),
}

/// A client-side connection to one upstream MCP server.
///
/// Messages go out with [`Transport::send`] (or [`Transport::exchange`] when the answer
/// may come back inline); what comes back on the shared channel goes to the [`Inbox`]
/// given to [`connect`]. Dropping the transport tears the connection down (a stdio
/// child is killed); [`Transport::close`] does it gracefully.
#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug {
    /// Which transport this is.
    fn kind(&self) -> TransportKind;

    /// The upstream this talks to.
    fn target(&self) -> &Target;

    /// The child's process id (stdio only).
    fn pid(&self) -> Option<u32> {
        None
    }

    /// Sends one message. Returns once the upstream has it (written to stdin, or POST
    /// accepted); the answer to a request arrives through the inbox.
    async fn send(&self, msg: Message) -> Result<()>;

    /// Sends one message and returns what the upstream answered inline, if it did. The
    /// default is [`Transport::send`] then [`Sent::Accepted`].
    async fn exchange(&self, msg: Message) -> Result<Sent> {
        self.send(msg).await.map(|()| Sent::Accepted)
    }

    /// Records the protocol version negotiated by `initialize`; streamable HTTP sends it
    /// as `MCP-Protocol-Version` on every later request.
    fn set_protocol_version(&self, version: &str) {
        let _ = version;
    }

    /// Called once `notifications/initialized` has been sent; streamable HTTP then opens
    /// its GET stream for server-initiated messages.
    fn on_initialized(&self) {}

    /// Speaks the modern revision `version` (2026-07-28), or the 2025 ones again with
    /// `None`. Streamable HTTP then sends `MCP-Protocol-Version: {version}`, `Mcp-Method`
    /// and `Mcp-Name` on every POST and no session id, reads the JSON-RPC error a modern
    /// server puts in a 4xx answer, and opens no GET stream. Other transports carry
    /// everything in the message itself.
    fn set_modern(&self, version: Option<&str>) {
        let _ = version;
    }

    /// Closes gracefully: stdio closes stdin, then SIGTERM, then SIGKILL (bounded waits);
    /// streamable HTTP deletes the session. Idempotent.
    async fn close(&self) -> Result<()>;

    /// The upstream's session id (streamable HTTP, once initialized or resumed).
    fn session_id(&self) -> Option<String> {
        None
    }

    /// Lets go of the connection without ending the upstream's session, so that another
    /// process may go on with it (streamable HTTP: no DELETE). Transports whose session
    /// is the connection itself (stdio, legacy SSE) close, as [`Transport::close`].
    async fn release(&self) -> Result<()> {
        self.close().await
    }
}

/// Connects to the upstream `def` describes, with the transport it names; what the
/// upstream sends on its shared channel goes to `inbox`.
pub async fn connect(
    def: &McpDefinition,
    opts: &TransportOptions,
    inbox: Arc<dyn Inbox>,
) -> Result<Arc<dyn Transport>> {
    Ok(match def.transport {
        TransportKind::Stdio => Arc::new(stdio::StdioTransport::spawn(def, opts, inbox).await?),
        TransportKind::Sse => Arc::new(sse::SseTransport::connect(def, opts, inbox).await?),
        TransportKind::StreamableHttp => {
            Arc::new(streamable_http::StreamableHttpTransport::connect(def, opts, inbox).await?)
        }
    })
}

/// Builds [`Error::Closed`].
pub(crate) fn closed(target: &Target, reason: CloseReason) -> Error {
    Error::Closed {
        target: target.clone(),
        reason,
    }
}

/// The first reason a connection closed; later ones are ignored. Shared by the HTTP
/// transports, whose reader, writer and owner may all notice the end.
#[derive(Debug, Default)]
pub(crate) struct CloseLatch(std::sync::Mutex<Option<CloseReason>>);

impl CloseLatch {
    /// The recorded reason, once closed.
    pub(crate) fn reason(&self) -> Option<CloseReason> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records `reason` and cancels `cancel`, unless a reason is recorded already.
    /// Returns whether this call closed it (then it owns the `Closed` event).
    pub(crate) fn close(
        &self,
        reason: &CloseReason,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> bool {
        let mut closed = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if closed.is_some() {
            return false;
        }
        *closed = Some(reason.clone());
        cancel.cancel();
        true
    }

    /// [`CloseLatch::close`], then the `Closed` event to the inbox.
    pub(crate) fn close_and_report(
        &self,
        reason: CloseReason,
        cancel: &tokio_util::sync::CancellationToken,
        inbox: &dyn Inbox,
        target: &Target,
    ) {
        if self.close(&reason, cancel) {
            tracing::info!(upstream = %target.name, transport = target.kind.as_str(), reason = %reason, "connection closed");
            inbox.closed(reason);
        }
    }
}
