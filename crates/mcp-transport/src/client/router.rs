//! The connection's correlation table and the routing of every upstream message, in the
//! order the connection's reader hands them over.
//!
//! One table per connection: upstream request id → who waits for the answer and, for a
//! forwarded request, the client's id, its progress token and the [`Sink`] its related
//! messages go to. Responses settle their entry; `notifications/progress` follows its
//! token; other request-related messages go to the request they arrived with (an inline
//! answer stream) or, when the transport cannot say (stdio, legacy SSE, the GET stream),
//! to the forwarded request sent most recently that is still in flight — one order for the
//! whole connection. Session-wide messages go to the [`Handler`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use mcp_types::jsonrpc::{Extra, codes, to_raw};
use mcp_types::mcp::methods;
use mcp_types::{Message, Notification, Outcome, Request, RequestId, Response};
use tokio::sync::{oneshot, watch};

use super::{HOUSEKEEPING_TIMEOUT, Handler, Refused, Sink};
use crate::error::Target;
use crate::transport::{CloseReason, Inbox, Transport};

/// What a waiting request receives.
pub(super) type Answer = Result<Response, CloseReason>;

/// Notifications that concern the whole session, never one request.
const SESSION_WIDE: &[&str] = &[
    methods::TOOLS_LIST_CHANGED,
    methods::PROMPTS_LIST_CHANGED,
    methods::RESOURCES_LIST_CHANGED,
    methods::RESOURCES_UPDATED,
    methods::CANCELLED,
];

/// How a message relates to the requests in flight.
#[derive(Debug, Clone, Copy)]
pub(super) enum Relation<'a> {
    /// The transport cannot say: the connection-wide rule applies.
    Unknown,
    /// It came on the answer stream of this upstream request.
    Request(&'a RequestId),
}

/// A forwarded request: where its related messages go.
#[derive(Debug, Clone)]
pub(super) struct Forward {
    pub(super) client_id: RequestId,
    pub(super) sink: Arc<dyn Sink>,
    /// (upstream token, the client's token) of `_meta.progressToken`.
    pub(super) progress: Option<(RequestId, RequestId)>,
    /// Whether it takes part in the connection-wide order that claims messages the
    /// transport cannot place (a `subscriptions/listen` does not: what belongs to it is
    /// tagged with its id).
    pub(super) in_order: bool,
}

#[derive(Debug)]
struct Pending {
    waiter: Option<oneshot::Sender<Answer>>,
    forward: Option<Forward>,
    /// Position in the connection-wide order of forwarded requests.
    seq: u64,
}

#[derive(Debug, Default)]
struct Table {
    pending: HashMap<RequestId, Pending>,
    /// Upstream progress token → upstream request id.
    tokens: HashMap<RequestId, RequestId>,
    /// Forwarded requests in flight, by the order they were sent.
    order: BTreeMap<u64, RequestId>,
    next_seq: u64,
    next_token: u64,
    closed: Option<CloseReason>,
    protocol_version: Option<String>,
}

impl Table {
    fn remove(&mut self, id: &RequestId) -> Option<Pending> {
        let entry = self.pending.remove(id)?;
        if let Some(f) = &entry.forward {
            self.order.remove(&entry.seq);
            if let Some((token, _)) = &f.progress {
                self.tokens.remove(token);
            }
        }
        Some(entry)
    }
}

/// The routing half of a connection (the transport's [`Inbox`]).
#[derive(Debug)]
pub(super) struct Router {
    target: Target,
    table: Mutex<Table>,
    handler: Arc<dyn Handler>,
    /// For answering `ping` from the upstream.
    transport: OnceLock<Weak<dyn Transport>>,
    closed: watch::Sender<Option<CloseReason>>,
}

impl Router {
    pub(super) fn new(target: Target, handler: Arc<dyn Handler>) -> Self {
        Self {
            target,
            table: Mutex::new(Table::default()),
            handler,
            transport: OnceLock::new(),
            closed: watch::channel(None).0,
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn set_transport(&self, transport: &Arc<dyn Transport>) {
        let _ = self.transport.set(Arc::downgrade(transport));
    }

    pub(super) fn protocol_version(&self) -> Option<String> {
        self.table().protocol_version.clone()
    }

    pub(super) fn set_protocol_version(&self, version: &str) {
        self.table().protocol_version = Some(version.to_owned());
    }

    pub(super) fn close_reason(&self) -> Option<CloseReason> {
        self.table().closed.clone()
    }

    pub(super) async fn wait_closed(&self) -> CloseReason {
        let mut rx = self.closed.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(r) => r.clone().unwrap_or_else(CloseReason::local),
            Err(_) => CloseReason::local(),
        }
    }

    pub(super) fn pending(&self) -> usize {
        self.table().pending.len()
    }

    /// Registers a request about to be sent; `Err` with the reason once closed.
    pub(super) fn register(
        &self,
        id: RequestId,
        forward: Option<Forward>,
    ) -> Result<oneshot::Receiver<Answer>, CloseReason> {
        let (tx, rx) = oneshot::channel();
        let mut table = self.table();
        if let Some(reason) = &table.closed {
            return Err(reason.clone());
        }
        table.next_seq += 1;
        let seq = table.next_seq;
        if let Some(f) = &forward {
            if f.in_order {
                table.order.insert(seq, id.clone());
            }
            if let Some((token, _)) = &f.progress {
                table.tokens.insert(token.clone(), id.clone());
            }
        }
        table.pending.insert(
            id,
            Pending {
                waiter: Some(tx),
                forward,
                seq,
            },
        );
        Ok(rx)
    }

    /// A fresh upstream progress token number.
    pub(super) fn next_token(&self) -> u64 {
        let mut table = self.table();
        table.next_token += 1;
        table.next_token
    }

    /// Forgets a request (answered inline, cancelled, or its caller stopped waiting).
    pub(super) fn forget(&self, id: &RequestId) {
        self.table().remove(id);
    }

    /// Routes one upstream message.
    pub(super) fn route(&self, msg: Message, relation: Relation<'_>) {
        match msg {
            Message::Response(response) => self.settle(response),
            Message::Request(request) if request.method == methods::PING => self.pong(request),
            Message::Request(request) => {
                let id = request.id.clone();
                let taken = match self.related_forward(relation, &request.method) {
                    Some(f) => f.sink.related(&f.client_id, Message::Request(request)),
                    None => self.handler.unrelated(Message::Request(request)),
                };
                if let Err(Refused(why)) = taken {
                    tracing::debug!(upstream = %self.target.name, reason = %why, "server request refused");
                    let error = mcp_types::ErrorObject::new(codes::METHOD_NOT_FOUND, why);
                    self.reply(id, Outcome::Error(error));
                }
            }
            Message::Notification(n) if n.method == methods::PROGRESS => self.progress(n),
            Message::Notification(n) if super::listen::is_tagged(&n) => self.subscribed(n),
            Message::Notification(n) => {
                let forward = if SESSION_WIDE.contains(&n.method.as_str()) {
                    None
                } else {
                    self.related_forward(relation, &n.method)
                };
                let _ = match forward {
                    Some(f) => f.sink.related(&f.client_id, Message::Notification(n)),
                    None => self.handler.unrelated(Message::Notification(n)),
                };
            }
        }
    }

    fn settle(&self, response: Response) {
        let entry = self.table().remove(&response.id);
        match entry.and_then(|mut e| e.waiter.take()) {
            Some(waiter) => {
                let _ = waiter.send(Ok(response));
            }
            None => {
                tracing::debug!(upstream = %self.target.name, id = %response.id, "response to no pending request (late or cancelled)");
            }
        }
    }

    /// The forwarded request a message belongs to: the one whose answer stream it came on,
    /// or (when the transport cannot tell) the one sent most recently and still in flight.
    fn related_forward(&self, relation: Relation<'_>, method: &str) -> Option<Forward> {
        let table = self.table();
        let entry = match relation {
            Relation::Request(id) => table.pending.get(id),
            Relation::Unknown => table
                .order
                .values()
                .next_back()
                .and_then(|id| table.pending.get(id)),
        };
        let forward = entry.and_then(|e| e.forward.clone());
        if forward.is_none() {
            tracing::trace!(upstream = %self.target.name, method, "no forwarded request claims the message");
        }
        forward
    }

    fn progress(&self, mut n: Notification) {
        let Ok(Some(token)) = mcp_types::params::progress_token(n.params.as_deref()) else {
            tracing::debug!(upstream = %self.target.name, "progress without a readable token; dropped");
            return;
        };
        let forward = {
            let table = self.table();
            table
                .tokens
                .get(&token)
                .and_then(|id| table.pending.get(id))
                .and_then(|e| e.forward.clone())
        };
        let Some(Forward {
            client_id,
            sink,
            progress: Some((_, original)),
            ..
        }) = forward
        else {
            // Not a forwarded request's: the owner's own request, or one that completed
            // (the owner drops those, as the spec asks).
            let _ = self.handler.unrelated(Message::Notification(n));
            return;
        };
        if let Some(params) = &n.params {
            match mcp_types::params::set_progress_token(params, &original) {
                Ok(p) => n.params = Some(p),
                Err(_) => return,
            }
        }
        let _ = sink.related(&client_id, Message::Notification(n));
    }

    /// A notification of a `subscriptions/listen` (tagged with its id): change
    /// notifications go to the connection's owner without the tag (it names our request,
    /// nobody else's); the rest (the acknowledgement) to the listen request itself.
    fn subscribed(&self, mut n: Notification) {
        let Some(id) = super::listen::subscription_id(&n) else {
            return;
        };
        if SESSION_WIDE.contains(&n.method.as_str()) {
            super::listen::untag(&mut n);
            let _ = self.handler.unrelated(Message::Notification(n));
            return;
        }
        let forward = self
            .table()
            .pending
            .get(&id)
            .and_then(|e| e.forward.clone());
        match forward {
            Some(f) => {
                let _ = f.sink.related(&f.client_id, Message::Notification(n));
            }
            None => {
                tracing::debug!(upstream = %self.target.name, method = %n.method, subscription = %id, "message of no listen in flight; dropped");
            }
        }
    }

    /// Answers the upstream's `ping`.
    fn pong(&self, request: Request) {
        self.reply(request.id, Outcome::Result(to_raw(&serde_json::json!({}))));
    }

    /// Answers a server request in the background: the reader never waits on a write,
    /// or a child blocked on a full stdout could never drain its stdin.
    fn reply(&self, id: RequestId, outcome: Outcome) {
        let Some(transport) = self.transport.get().and_then(Weak::upgrade) else {
            return;
        };
        let answer = Message::Response(Response {
            id,
            outcome,
            extra: Extra::new(),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = tokio::time::timeout(HOUSEKEEPING_TIMEOUT, transport.send(answer)).await;
            });
        }
    }

    /// Marks the connection closed (the first reason wins), fails every pending request
    /// at once and tells the handler.
    pub(super) fn close(&self, reason: CloseReason) {
        let (reason, pending, first) = {
            let mut table = self.table();
            let first = table.closed.is_none();
            let reason = table.closed.get_or_insert(reason).clone();
            table.order.clear();
            table.tokens.clear();
            (reason, std::mem::take(&mut table.pending), first)
        };
        if !pending.is_empty() {
            tracing::debug!(upstream = %self.target.name, count = pending.len(), reason = %reason, "failing pending requests");
        }
        for (_, mut entry) in pending {
            if let Some(waiter) = entry.waiter.take() {
                let _ = waiter.send(Err(reason.clone()));
            }
        }
        if first {
            self.closed.send_replace(Some(reason.clone()));
            self.handler.closed(&reason);
        }
    }
}

impl Inbox for Router {
    fn message(&self, msg: Message) {
        self.route(msg, Relation::Unknown);
    }

    fn closed(&self, reason: CloseReason) {
        self.close(reason);
    }
}
