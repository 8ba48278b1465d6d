//! A client session as HTTP sees it: the core session, and the [`Outlet`] its messages
//! go to (streamable HTTP: the request streams and the standalone stream, with replay;
//! legacy SSE: the one event stream).

use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};

use bytes::Bytes;
use mcp_proxy_core::metrics::SessionTransport;
use mcp_proxy_core::{ClientSession, Metrics, Outbound, Outlet, Reply};
use mcp_types::{Message, RequestId};
use tokio::sync::mpsc;
use tracing::debug;

use super::Registry;
use super::sse::{Item, Streams};

/// An HTTP client session.
#[derive(Debug)]
pub(crate) struct HttpSession {
    core: OnceLock<Arc<ClientSession>>,
    transport: SessionTransport,
    streams: Mutex<Streams>,
    /// Legacy SSE: the event stream.
    legacy: Mutex<Option<mpsc::Sender<Item>>>,
    registry: Weak<Registry>,
    metrics: Arc<Metrics>,
    /// Its entry in the session registry, when other replicas may continue it.
    replication: OnceLock<super::replicas::Replication>,
}

impl HttpSession {
    /// The HTTP side of a session about to be opened; [`HttpSession::bind`] it to its
    /// core session once that exists.
    pub(crate) fn new(
        registry: &Arc<Registry>,
        metrics: &Arc<Metrics>,
        transport: SessionTransport,
        legacy: Option<mpsc::Sender<Item>>,
        replay_bytes: usize,
    ) -> Arc<Self> {
        metrics.session_opened(transport);
        Arc::new(Self {
            core: OnceLock::new(),
            transport,
            streams: Mutex::new(Streams::with_budget(replay_bytes)),
            legacy: Mutex::new(legacy),
            registry: Arc::downgrade(registry),
            metrics: metrics.clone(),
            replication: OnceLock::new(),
        })
    }

    /// Other replicas may continue the session (it is in the session registry).
    pub(crate) fn replicate(&self, replication: super::replicas::Replication) {
        let _ = self.replication.set(replication);
    }

    /// Whether the session is in the session registry (other replicas may continue it).
    pub(crate) fn is_replicated(&self) -> bool {
        self.replication.get().is_some()
    }

    /// After each client request: keeps the registry entry current (in the background,
    /// rarely).
    pub(crate) fn after_request(&self) {
        if let Some(r) = self.replication.get() {
            r.after_request(self);
        }
    }

    pub(crate) fn bind(&self, core: Arc<ClientSession>) {
        let _ = self.core.set(core);
    }

    pub(crate) fn core(&self) -> &Arc<ClientSession> {
        self.core.get().expect("bound right after it was opened")
    }

    pub(crate) fn id(&self) -> &str {
        self.core().id()
    }

    pub(crate) fn upstream_name(&self) -> &str {
        self.core().upstream_name()
    }

    pub(crate) fn transport(&self) -> SessionTransport {
        self.transport
    }

    pub(crate) fn is_ended(&self) -> bool {
        self.core.get().is_none_or(|c| c.is_ended())
    }

    pub(crate) fn streams(&self) -> std::sync::MutexGuard<'_, Streams> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The negotiated version is at least `version` (dates compare as strings).
    pub(crate) fn version_at_least(&self, version: &str) -> bool {
        self.core()
            .protocol_version()
            .is_some_and(|v| v.as_str() >= version)
    }

    /// Files a reply on the request's stream (streamable) or the event stream (legacy).
    pub(crate) fn deliver(&self, reply: Reply, id: RequestId) {
        self.send(Outbound {
            message: reply.message,
            related: Some(id),
        });
    }
}

impl Outlet for HttpSession {
    fn send(&self, out: Outbound) -> bool {
        let json = Bytes::from(out.message.to_vec());
        match self.transport {
            SessionTransport::StreamableHttp => {
                let filed =
                    self.streams()
                        .push(json, out.related.as_ref(), out.message.is_response());
                if !filed {
                    debug!("response for a stream that is gone; dropped");
                }
                true
            }
            SessionTransport::Sse => {
                let live = self
                    .legacy
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                let item = Item {
                    id: None,
                    json,
                    last: false,
                };
                // The event stream is the session: a client too slow to read it (its
                // queue is full) is disconnected rather than waited for.
                live.is_some_and(|live| live.try_send(item).is_ok())
            }
        }
    }

    fn ended(&self) {
        if let (Some(registry), Some(core)) = (self.registry.upgrade(), self.core.get()) {
            registry.remove(core.id());
        }
        if let (Some(r), Some(core)) = (self.replication.get(), self.core.get()) {
            r.ended(core.id(), core.released());
        }
        self.metrics.session_closed(self.transport);
        self.streams().close_all();
        self.legacy.lock().unwrap_or_else(|p| p.into_inner()).take();
        debug!("http session closed");
    }
}

type ReplyFuture = Pin<Box<dyn Future<Output = Option<Reply>> + Send>>;

/// A client request being answered by the HTTP handler that received it. If the handler
/// stops waiting (the client disconnected, or the answer will go on an event stream),
/// the request runs on in a task of its own and its answer is filed on the session:
/// disconnecting is not cancelling.
pub(crate) struct Answer {
    fut: Option<ReplyFuture>,
    session: Arc<HttpSession>,
    id: RequestId,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer").field("id", &self.id).finish()
    }
}

impl Answer {
    pub(crate) fn new(session: &Arc<HttpSession>, request: mcp_types::Request) -> Self {
        let id = request.id.clone();
        let core = session.core().clone();
        Self {
            fut: Some(Box::pin(async move { core.request(request).await })),
            session: session.clone(),
            id,
        }
    }

    /// Lets the request finish in the background, its answer filed on the session.
    pub(crate) fn detach(mut self) {
        self.spawn_rest();
    }

    fn spawn_rest(&mut self) {
        let Some(fut) = self.fut.take() else { return };
        let (session, id) = (self.session.clone(), self.id.clone());
        if tokio::runtime::Handle::try_current().is_ok() {
            let tasks = session.core().hub().clone();
            tasks.spawn(async move {
                if let Some(reply) = fut.await {
                    session.deliver(reply, id);
                }
            });
        }
    }
}

impl Future for Answer {
    type Output = Option<Reply>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(fut) = self.fut.as_mut() else {
            return Poll::Ready(None);
        };
        let out = std::task::ready!(fut.as_mut().poll(cx));
        self.fut = None;
        if let Some(reply) = &out
            && let Message::Response(r) = &reply.message
            && matches!(r.outcome, mcp_types::Outcome::Error(_))
            && let Some(replication) = self.session.replication.get()
        {
            // The session may have ended on another replica (DELETE there): then the
            // upstream refuses this copy's requests; the registry tells.
            replication.check_ended(&self.session);
        }
        Poll::Ready(out)
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        self.spawn_rest();
    }
}
