//! A small JSON-RPC client over any [`Transport`]: ids, response correlation with
//! deadlines, cancellation on timeout, server→client requests, and the `initialize`
//! handshake.

mod forward;
mod router;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
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
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::Instrument;

use crate::error::{Error, Target};
use crate::options::TransportOptions;
use crate::transport::{CloseReason, Events, Transport, closed};
use crate::{Result, connect};

/// Most pages [`McpClient::list_all`] follows before giving up.
const MAX_PAGES: usize = 1000;
/// Deadline for the best-effort messages the client sends on its own (cancel, pong).
const HOUSEKEEPING_TIMEOUT: Duration = Duration::from_secs(5);

/// What the upstream sends that is not a response to one of our requests.
#[derive(Debug)]
pub enum ClientEvent {
    /// A server→client request (sampling, elicitation, roots, …); answer it with
    /// [`McpClient::respond`]. `ping` is answered by the client itself.
    Request(Request),
    /// A notification (progress, logging, list_changed, …).
    Notification(Notification),
    /// The connection is over; nothing follows. Every pending request has failed.
    Closed(CloseReason),
}

/// The receiving half of an [`McpClient`]. Drain it: it is bounded, and a full channel
/// holds back the responses behind it.
pub type ClientEvents = mpsc::Receiver<ClientEvent>;

type Waiter = oneshot::Sender<std::result::Result<Response, CloseReason>>;

#[derive(Debug, Default)]
struct State {
    pending: HashMap<RequestId, Waiter>,
    closed: Option<CloseReason>,
    protocol_version: Option<String>,
}

#[derive(Debug)]
struct Shared {
    transport: Box<dyn Transport>,
    next_id: AtomicI64,
    state: Mutex<State>,
    request_timeout: Duration,
}

/// A JSON-RPC client bound to one upstream connection. Cheap to clone; the connection
/// is torn down when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct McpClient {
    shared: Arc<Shared>,
    _router: Arc<DropGuard>,
}

impl McpClient {
    /// Connects to `def` with its transport and wraps the connection in a client.
    /// Does not initialize: call [`McpClient::initialize`].
    pub async fn connect(
        def: &McpDefinition,
        opts: &TransportOptions,
    ) -> Result<(Self, ClientEvents)> {
        let (transport, events) = connect(def, opts).await?;
        Ok(Self::new(
            transport,
            events,
            opts.request_timeout_for(def),
            opts.event_capacity,
        ))
    }

    /// Wraps a connected transport. `request_timeout` is the default deadline of each
    /// request; `capacity` bounds the [`ClientEvents`] channel. Must run inside a tokio
    /// runtime (it spawns the routing task).
    pub fn new(
        transport: Box<dyn Transport>,
        events: Events,
        request_timeout: Duration,
        capacity: usize,
    ) -> (Self, ClientEvents) {
        let shared = Arc::new(Shared {
            transport,
            next_id: AtomicI64::new(1),
            state: Mutex::new(State::default()),
            request_timeout,
        });
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let cancel = CancellationToken::new();
        let target = shared.transport.target();
        let span = tracing::info_span!("upstream", upstream = %target.name, transport = target.kind.as_str());
        tokio::spawn(router::route(shared.clone(), events, tx, cancel.clone()).instrument(span));
        let client = Self {
            shared,
            _router: Arc::new(cancel.drop_guard()),
        };
        (client, rx)
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
        self.state().protocol_version.clone()
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.state().closed.clone()
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.state().closed.is_some()
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
        let id = RequestId::number(self.shared.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.state();
            if let Some(reason) = &state.closed {
                return Err(closed(self.target(), reason.clone()));
            }
            state.pending.insert(id.clone(), tx);
        }
        let _pending = PendingGuard {
            shared: &self.shared,
            id: &id,
        };
        let msg = Message::Request(Request {
            id: id.clone(),
            method: method.to_owned(),
            params,
            extra: Extra::new(),
        });
        let exchange = async {
            self.shared.transport.send(msg).await?;
            match rx.await {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(reason)) => Err(closed(self.target(), reason)),
                Err(_) => Err(closed(self.target(), CloseReason::local())),
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => {
                tracing::debug!(upstream = %self.target().name, %id, method, "request timed out");
                if method != methods::INITIALIZE && !self.is_closed() {
                    let params = serde_json::json!({
                        "requestId": id,
                        "reason": format!("timed out after {}", crate::error::fmt_duration(timeout)),
                    });
                    let cancel = Message::notification(methods::CANCELLED, Some(&params));
                    let send = self.shared.transport.send(cancel);
                    let _ = tokio::time::timeout(HOUSEKEEPING_TIMEOUT, send).await;
                }
                Err(Error::Timeout {
                    target: self.target().clone(),
                    what: method.to_owned(),
                    after: timeout,
                })
            }
        }
    }

    /// Sends a request with typed params and decodes a typed result; a JSON-RPC error
    /// becomes [`Error::Rpc`].
    pub async fn call<P: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R> {
        let response = self.request(method, Some(to_raw(&params))).await?;
        match response.outcome {
            Outcome::Result(raw) => {
                serde_json::from_str(raw.get()).map_err(|err| Error::Protocol {
                    target: self.target().clone(),
                    message: format!("invalid {method} result: {err}"),
                })
            }
            Outcome::Error(error) => Err(Error::Rpc {
                target: self.target().clone(),
                method: method.to_owned(),
                error,
            }),
        }
    }

    /// Sends a notification.
    pub async fn notify(&self, method: &str, params: Option<Box<RawValue>>) -> Result<()> {
        self.shared
            .transport
            .send(Message::Notification(Notification {
                method: method.to_owned(),
                params,
                extra: Extra::new(),
            }))
            .await
    }

    /// Answers a server→client request received as [`ClientEvent::Request`].
    pub async fn respond(&self, id: RequestId, outcome: Outcome) -> Result<()> {
        self.shared
            .transport
            .send(Message::Response(Response {
                id,
                outcome,
                extra: Extra::new(),
            }))
            .await
    }

    /// Runs the handshake: `initialize` with `client_info`, `capabilities` and our latest
    /// protocol version; checks the server's version is one we speak (else closes and
    /// fails); sends `notifications/initialized`; tells the transport the version.
    pub async fn initialize(
        &self,
        client_info: Implementation,
        capabilities: Value,
    ) -> Result<InitializeResult> {
        let params = InitializeParams {
            protocol_version: LATEST_PROTOCOL_VERSION.to_owned(),
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
        self.state().protocol_version = Some(result.protocol_version.clone());
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

    /// Closes the connection gracefully (see [`Transport::close`]). Pending requests fail.
    pub async fn close(&self) -> Result<()> {
        let closed = self.shared.transport.close().await;
        self.shared.fail_all(CloseReason::local());
        closed
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().expect("client state lock")
    }
}

impl Shared {
    /// Marks the client closed (the first reason wins) and fails every pending request
    /// at once. Returns the reason in force.
    fn fail_all(&self, reason: CloseReason) -> CloseReason {
        let (reason, pending) = {
            let mut state = self.state.lock().expect("client state lock");
            let reason = state.closed.get_or_insert(reason).clone();
            (reason, std::mem::take(&mut state.pending))
        };
        if !pending.is_empty() {
            tracing::debug!(upstream = %self.transport.target().name, count = pending.len(), reason = %reason, "failing pending requests");
        }
        for (_, waiter) in pending {
            let _ = waiter.send(Err(reason.clone()));
        }
        reason
    }
}

/// Forgets a pending request when its caller stops waiting.
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: &'a RequestId,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.pending.remove(self.id);
        }
    }
}
