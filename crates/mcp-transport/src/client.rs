//! A JSON-RPC client over any [`Transport`]: ids, one correlation table per connection,
//! deadlines, cancellation on timeout, server→client requests, and the `initialize`
//! handshake.
//!
//! The connection's one reader (a stdio child's stdout, the legacy SSE stream, the
//! streamable-HTTP GET stream) hands every upstream message to the router in arrival
//! order; the router settles responses with their waiting request, sends messages that
//! belong to a forwarded request to that request's [`Sink`], and everything else to the
//! connection's [`Handler`]. A request's own task writes it and awaits its answer; an
//! answer that comes back inline (a streamable-HTTP POST) is read by that task itself.

mod call;
mod events;
mod listen;
mod modern;
mod router;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use mcp_types::jsonrpc::{Extra, to_raw};
use mcp_types::mcp::{
    Implementation, InitializeParams, InitializeResult, LATEST_PROTOCOL_VERSION,
    SUPPORTED_PROTOCOL_VERSIONS, is_supported_version, methods,
};
use mcp_types::{McpDefinition, Message, Notification, Outcome, Request, RequestId, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

pub use call::Call;
pub use events::{ClientEvent, ClientEvents, event_channel};
pub use listen::{ListenFilter, Listener};
pub use modern::{DiscoverResult, Probe, RequestMeta};

use crate::error::{Error, Target};
use crate::options::TransportOptions;
use crate::transport::{CloseReason, Events, Transport, TransportEvent, closed};
use crate::{Result, connect};
use router::Router;

/// Most pages [`McpClient::list_all`] follows before giving up.
const MAX_PAGES: usize = 1000;
/// Deadline for the best-effort messages the client sends on its own (cancel, pong).
pub(crate) const HOUSEKEEPING_TIMEOUT: Duration = Duration::from_secs(5);

/// The owner of a connection: gets what the upstream sends that no request claims.
///
/// Called from the connection's reader: implementations must not block (route, queue
/// with `try_send`, or spawn).
pub trait Handler: Send + Sync + std::fmt::Debug + 'static {
    /// A notification or a server→client request (`ping` excepted: the client answers
    /// it) that belongs to no forwarded request in flight. A request it cannot take is
    /// refused (`Err`): the client answers it with `-32601` and the reason.
    fn unrelated(&self, msg: Message) -> Result<(), Refused>;
    /// The connection is over; every pending request has failed. Called once.
    fn closed(&self, reason: &CloseReason);
}

/// Where the messages a forwarded request causes go: the client session that sent it.
///
/// Called from the connection's reader, or from the request's own task when the answer
/// came inline; must not block.
pub trait Sink: Send + Sync + std::fmt::Debug + 'static {
    /// A message the upstream sent while serving the request the client knows as
    /// `client_id`: a notification (a progress notification carries the client's own
    /// token again) or a server→client request (under the upstream's id). A request it
    /// cannot take is refused (`Err`): the client answers it with `-32601`.
    fn related(&self, client_id: &RequestId, msg: Message) -> Result<(), Refused>;
}

/// Why a server→client request cannot be taken; the upstream gets `-32601` saying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// A JSON-RPC client bound to one upstream connection. Cheap to clone; the connection
/// is torn down when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct McpClient {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    transport: Arc<dyn Transport>,
    router: Arc<Router>,
    next_id: AtomicI64,
    request_timeout: Duration,
    /// Set once the upstream speaks the modern revision: the `_meta` its requests get.
    modern: std::sync::RwLock<Option<Arc<modern::RequestMeta>>>,
    /// Stops the pump of a channel-fed transport ([`McpClient::new`]).
    _pump: Option<tokio_util::sync::DropGuard>,
}

impl McpClient {
    /// Connects to `def` with its transport; what no request claims comes out of the
    /// returned [`ClientEvents`] (bounded: drain it). Does not initialize: call
    /// [`McpClient::initialize`].
    pub async fn connect(
        def: &McpDefinition,
        opts: &TransportOptions,
    ) -> Result<(Self, ClientEvents)> {
        let (handler, events) = event_channel(opts.event_capacity);
        let client = Self::connect_with(def, opts, handler).await?;
        Ok((client, events))
    }

    /// Connects to `def`, handing what no request claims to `handler`.
    pub async fn connect_with(
        def: &McpDefinition,
        opts: &TransportOptions,
        handler: Arc<dyn Handler>,
    ) -> Result<Self> {
        let router = Arc::new(Router::new(
            crate::error::Target::new(&def.name, def.transport),
            handler,
        ));
        let transport = connect(def, opts, router.clone()).await?;
        Ok(Self::assemble(
            transport,
            router,
            opts.request_timeout_for(def),
            None,
        ))
    }

    /// Wraps a transport that delivers through a channel instead of an inbox (test
    /// doubles, custom transports). `request_timeout` is the default deadline of each
    /// request; `capacity` bounds the [`ClientEvents`] channel. Must run inside a tokio
    /// runtime (it spawns the task that pumps `events` into the router).
    pub fn new(
        transport: Box<dyn Transport>,
        events: Events,
        request_timeout: Duration,
        capacity: usize,
    ) -> (Self, ClientEvents) {
        let (handler, client_events) = event_channel(capacity);
        let client = Self::from_channel(transport, events, request_timeout, handler);
        (client, client_events)
    }

    /// [`McpClient::new`] handing what no request claims to `handler`.
    pub fn from_channel(
        transport: Box<dyn Transport>,
        mut events: Events,
        request_timeout: Duration,
        handler: Arc<dyn Handler>,
    ) -> Self {
        let target = transport.target().clone();
        let router = Arc::new(Router::new(target, handler));
        let cancel = tokio_util::sync::CancellationToken::new();
        let pump = {
            let (router, cancel) = (router.clone(), cancel.clone());
            async move {
                use crate::transport::Inbox;
                loop {
                    let event = tokio::select! {
                        () = cancel.cancelled() => return,
                        event = events.recv() => event,
                    };
                    match event {
                        Some(TransportEvent::Message(msg)) => router.message(msg),
                        Some(TransportEvent::Closed(reason)) => return router.closed(reason),
                        None => {
                            return router.closed(CloseReason::new(
                                crate::CloseKind::StreamLost,
                                "the transport stopped",
                            ));
                        }
                    }
                }
            }
        };
        tokio::spawn(pump);
        Self::assemble(
            Arc::from(transport),
            router,
            request_timeout,
            Some(cancel.drop_guard()),
        )
    }

    fn assemble(
        transport: Arc<dyn Transport>,
        router: Arc<Router>,
        request_timeout: Duration,
        pump: Option<tokio_util::sync::DropGuard>,
    ) -> Self {
        router.set_transport(&transport);
        Self {
            shared: Arc::new(Shared {
                transport,
                router,
                next_id: AtomicI64::new(1),
                request_timeout,
                modern: std::sync::RwLock::new(None),
                _pump: pump,
            }),
        }
    }

    /// The upstream.
    pub fn target(&self) -> &Target {
        self.shared.transport.target()
    }

    /// The transport underneath.
    pub fn transport(&self) -> &dyn Transport {
        self.shared.transport.as_ref()
    }

    /// The protocol version negotiated by [`McpClient::initialize`].
    pub fn protocol_version(&self) -> Option<String> {
        self.shared.router.protocol_version()
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.shared.router.close_reason()
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.router.close_reason().is_some()
    }

    /// Resolves once the connection is closed, with the reason.
    pub async fn closed(&self) -> CloseReason {
        self.shared.router.wait_closed().await
    }

    /// Requests in flight on this connection.
    pub fn pending(&self) -> usize {
        self.shared.router.pending()
    }

    /// Allocates a fresh request id of this connection.
    pub fn next_request_id(&self) -> RequestId {
        RequestId::number(self.shared.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Sends a request and waits for its response, up to the default deadline.
    ///
    /// A JSON-RPC error from the upstream is a successful [`Response`] (its outcome is
    /// the error); `Err` means the request did not complete (timeout, connection lost).
    pub async fn request(&self, method: &str, params: Option<Box<RawValue>>) -> Result<Response> {
        self.request_with_timeout(method, params, self.shared.request_timeout)
            .await
    }

    /// [`McpClient::request`] with an explicit deadline. On expiry the upstream gets
    /// `notifications/cancelled` (except for `initialize`, which must not be cancelled).
    pub async fn request_with_timeout(
        &self,
        method: &str,
        params: Option<Box<RawValue>>,
        timeout: Duration,
    ) -> Result<Response> {
        let request = Request {
            id: RequestId::Null,
            method: method.to_owned(),
            params,
            extra: Extra::new(),
        };
        self.begin(request, None)?.run(timeout).await
    }

    /// Sends a request with typed params and decodes a typed result; a JSON-RPC error
    /// becomes [`Error::Rpc`].
    pub async fn call<P: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R> {
        let response = self.request(method, Some(to_raw(&params))).await?;
        decode(self.target(), method, response)
    }

    /// Sends a notification.
    pub async fn notify(&self, method: &str, params: Option<Box<RawValue>>) -> Result<()> {
        self.send_raw(Message::Notification(Notification {
            method: method.to_owned(),
            params,
            extra: Extra::new(),
        }))
        .await
    }

    /// Answers a server→client request (received through a [`Handler`] or a [`Sink`]).
    pub async fn respond(&self, id: RequestId, outcome: Outcome) -> Result<()> {
        self.send_raw(Message::Response(Response {
            id,
            outcome,
            extra: Extra::new(),
        }))
        .await
    }

    /// Sends an arbitrary message (a notification or a response) as is. A modern
    /// upstream gets only what its revision has (`notifications/cancelled` on stdio);
    /// anything else is dropped here.
    pub async fn send_raw(&self, msg: Message) -> Result<()> {
        if !self.modern_allows(&msg) {
            tracing::debug!(upstream = %self.target().name, method = msg.method().unwrap_or("(response)"), "not sent: the upstream's revision has no such message");
            return Ok(());
        }
        self.shared.transport.send(msg).await
    }

    /// Tells the upstream to stop working on request `id` (`notifications/cancelled`) and
    /// forgets it, so a late response is discarded. Bounded by a short deadline.
    pub async fn cancel_request(&self, id: &RequestId, reason: &str) -> Result<()> {
        self.shared.router.forget(id);
        let params = serde_json::json!({ "requestId": id, "reason": reason });
        let cancel = Message::notification(methods::CANCELLED, Some(&params));
        match tokio::time::timeout(HOUSEKEEPING_TIMEOUT, self.send_raw(cancel)).await {
            Ok(sent) => sent,
            Err(_) => Err(Error::Timeout {
                target: self.target().clone(),
                what: methods::CANCELLED.to_owned(),
                after: HOUSEKEEPING_TIMEOUT,
            }),
        }
    }

    /// Runs the handshake with our latest protocol version; see
    /// [`McpClient::initialize_as`].
    pub async fn initialize(
        &self,
        client_info: Implementation,
        capabilities: Value,
    ) -> Result<InitializeResult> {
        self.initialize_as(LATEST_PROTOCOL_VERSION, client_info, capabilities)
            .await
    }

    /// Runs the handshake offering `version`: `initialize` with `client_info` and
    /// `capabilities`; checks the server's version is one we speak (else closes and
    /// fails); sends `notifications/initialized`; tells the transport the version.
    pub async fn initialize_as(
        &self,
        version: &str,
        client_info: Implementation,
        capabilities: Value,
    ) -> Result<InitializeResult> {
        let params = InitializeParams {
            protocol_version: version.to_owned(),
            capabilities,
            client_info,
            extra: serde_json::Map::new(),
        };
        let result: InitializeResult = self.call(methods::INITIALIZE, &params).await?;
        if !is_supported_version(&result.protocol_version) {
            let _ = self.close().await;
            return Err(Error::Protocol {
                target: self.target().clone(),
                message: format!(
                    "the server chose protocol version {:?}, which is not one of {}",
                    result.protocol_version,
                    SUPPORTED_PROTOCOL_VERSIONS.join(", ")
                ),
            });
        }
        self.shared
            .transport
            .set_protocol_version(&result.protocol_version);
        self.shared
            .router
            .set_protocol_version(&result.protocol_version);
        self.notify(methods::INITIALIZED, None).await?;
        self.shared.transport.on_initialized();
        Ok(result)
    }

    /// Lists every item of a paginated list (`tools/list` with key `tools`, …), following
    /// `nextCursor` until the last page.
    pub async fn list_all(&self, method: &str, key: &str) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => serde_json::json!({ "cursor": c }),
                None => serde_json::json!({}),
            };
            let mut page: mcp_types::mcp::ListPage = self.call(method, &params).await?;
            items.extend(page.take_items(key));
            match page.next_cursor {
                Some(next) if Some(&next) == cursor.as_ref() => {
                    return Err(Error::Protocol {
                        target: self.target().clone(),
                        message: format!("{method} returned the same cursor twice"),
                    });
                }
                Some(next) => cursor = Some(next),
                None => return Ok(items),
            }
        }
        Err(Error::Protocol {
            target: self.target().clone(),
            message: format!("{method} returned more than {MAX_PAGES} pages"),
        })
    }

    /// Goes on with an upstream session that was initialized elsewhere (another process
    /// of ours, which negotiated `version`): nothing is sent; the transport was opened
    /// with [`TransportOptions::resume_session`]. Streamable HTTP opens its GET stream.
    pub fn resume(&self, version: &str) {
        self.shared.transport.set_protocol_version(version);
        self.shared.router.set_protocol_version(version);
        self.shared.transport.on_initialized();
    }

    /// The upstream's session id (streamable HTTP), to go on with it elsewhere.
    pub fn session_id(&self) -> Option<String> {
        self.shared.transport.session_id()
    }

    /// Lets go of the connection, leaving the upstream's session open for another process
    /// to go on with (see [`Transport::release`]). Pending requests fail.
    pub async fn release(&self) -> Result<()> {
        let released = self.shared.transport.release().await;
        self.shared.router.close(CloseReason::local());
        released
    }

    /// Closes the connection gracefully (see [`Transport::close`]). Pending requests fail.
    pub async fn close(&self) -> Result<()> {
        let closed = self.shared.transport.close().await;
        self.shared.router.close(CloseReason::local());
        closed
    }

    fn closed_error(&self, reason: CloseReason) -> Error {
        closed(self.target(), reason)
    }
}

/// Decodes a typed result; a JSON-RPC error becomes [`Error::Rpc`].
fn decode<R: DeserializeOwned>(target: &Target, method: &str, response: Response) -> Result<R> {
    match response.outcome {
        Outcome::Result(raw) => serde_json::from_str(raw.get()).map_err(|err| Error::Protocol {
            target: target.clone(),
            message: format!("invalid {method} result: {err}"),
        }),
        Outcome::Error(error) => Err(Error::Rpc {
            target: target.clone(),
            method: method.to_owned(),
            error,
        }),
    }
}
