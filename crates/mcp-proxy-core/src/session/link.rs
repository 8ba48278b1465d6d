//! The upstream side of client sessions: one initialized upstream connection (per client
//! session, or shared by all sessions of an upstream) and the task that routes what the
//! upstream sends to the session it belongs to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use mcp_transport::{ClientEvent, ClientEvents, McpClient};
use mcp_types::jsonrpc::codes;
use mcp_types::mcp::{Implementation, InitializeResult, methods};
use mcp_types::{ErrorObject, Notification, Outcome, Request, RequestId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info};

use super::client::ClientSession;
use super::{Outbound, SessionHub, rewrite};
use crate::Upstream;
use crate::connector::{Connection, SessionParams};
use crate::error::Error;
use crate::upstream::OwnedInflight;

/// Deadline for closing an upstream session gracefully.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Responses waiting for the dispatcher to catch up.
const FLUSH_CAPACITY: usize = 64;

/// One upstream connection serving client sessions.
#[derive(Debug)]
pub(crate) struct Link {
    upstream: Arc<Upstream>,
    client: McpClient,
    init: InitializeResult,
    shared: bool,
    hub: SessionHub,
    routes: Mutex<Routes>,
    cancel: CancellationToken,
    flush: mpsc::Sender<Flush>,
}

/// A response to deliver once every upstream message received before it is routed (the
/// transport hands responses and other messages to different consumers; this puts them
/// back in order, so no progress notification trails its response).
#[derive(Debug)]
struct Flush {
    session: Arc<ClientSession>,
    outbound: Outbound,
    /// Keeps the upstream from being retired (PUT) until the response is handed over.
    _inflight: Option<OwnedInflight>,
}

impl Flush {
    /// Ends the request in its session (it stays "in flight", for routing, until now) and
    /// sends the response, unless the session ended meanwhile and answered it itself.
    async fn deliver(self, link: &Link) {
        let Some(id) = &self.outbound.related else {
            return;
        };
        if let Some((out, progress)) = self.session.finish_request(id) {
            if let Some(t) = &progress {
                link.forget_progress(t);
            }
            let _ = out.send(self.outbound).await;
        }
    }
}

#[derive(Debug, Default)]
struct Routes {
    members: Vec<Weak<ClientSession>>,
    /// Upstream-side progress token → where its notifications go.
    progress: HashMap<RequestId, ProgressRoute>,
    /// Upstream id of a server→client request → the session that got it, and its id there.
    server_requests: HashMap<RequestId, (Weak<ClientSession>, RequestId)>,
    next_token: u64,
    closed: bool,
    /// Shared links: how many client sessions subscribed to each URI.
    subscriptions: HashMap<String, usize>,
}

#[derive(Debug)]
struct ProgressRoute {
    session: Weak<ClientSession>,
    original: RequestId,
    request: RequestId,
}

impl Link {
    /// Opens a per-client upstream session declaring the client's capabilities.
    pub(crate) async fn open_per_client(
        hub: &SessionHub,
        upstream: &Arc<Upstream>,
        params: SessionParams,
    ) -> Result<Arc<Self>, Error> {
        Self::open(hub.clone(), upstream.clone(), params, false).await
    }

    /// Opens the shared upstream connection of `upstream`. It declares sampling,
    /// elicitation and roots: such requests are routed to a client session that declared
    /// the capability, or answered with an error.
    pub(crate) async fn open_shared(
        hub: SessionHub,
        upstream: Arc<Upstream>,
    ) -> Result<Arc<Self>, Error> {
        let params = SessionParams {
            client_info: Implementation::new("mcp-proxy", env!("CARGO_PKG_VERSION")),
            capabilities: serde_json::json!({
                "sampling": {},
                "elicitation": {},
                "roots": { "listChanged": true },
            }),
            extra_headers: http::HeaderMap::new(),
            path_suffix: None,
        };
        Self::open(hub, upstream, params, true).await
    }

    async fn open(
        hub: SessionHub,
        upstream: Arc<Upstream>,
        params: SessionParams,
        shared: bool,
    ) -> Result<Arc<Self>, Error> {
        let def = upstream.definition();
        let connector = hub.manager().connector();
        let opened = tokio::time::timeout(def.timeout, connector.open_session(def, &params)).await;
        let Connection {
            client,
            events,
            init,
        } = match opened {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(Error::Upstream(e)),
            Err(_) => {
                return Err(Error::Timeout {
                    mcp: def.name.clone(),
                    what: "opening a session".into(),
                    after: def.timeout,
                });
            }
        };
        let (flush, flush_rx) = mpsc::channel(FLUSH_CAPACITY);
        let link = Arc::new(Self {
            flush,
            cancel: hub.inner.cancel.child_token(),
            upstream,
            client,
            init,
            shared,
            hub,
            routes: Mutex::new(Routes::default()),
        });
        let span =
            tracing::info_span!("session_upstream", upstream = %link.upstream.name(), shared);
        tokio::spawn(dispatch(link.clone(), events, flush_rx).instrument(span));
        Ok(link)
    }

    pub(crate) fn client(&self) -> &McpClient {
        &self.client
    }

    pub(crate) fn init(&self) -> &InitializeResult {
        &self.init
    }

    pub(crate) fn upstream(&self) -> &Arc<Upstream> {
        &self.upstream
    }

    pub(crate) fn is_shared(&self) -> bool {
        self.shared
    }

    pub(crate) fn is_alive(&self) -> bool {
        !self.routes().closed && !self.client.is_closed()
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a client session to those this link serves.
    pub(crate) fn attach(&self, session: &Arc<ClientSession>) {
        self.routes().members.push(Arc::downgrade(session));
    }

    /// Removes a session; a per-client link (or a shared one left alone after its
    /// upstream went away) is closed.
    pub(crate) fn detach(self: &Arc<Self>, session: &ClientSession) {
        let mut routes = self.routes();
        routes
            .members
            .retain(|m| m.upgrade().is_some_and(|m| !std::ptr::eq(&*m, session)));
        drop(routes);
        if !self.shared {
            self.close();
        }
    }

    /// Closes the upstream connection (in the background, bounded).
    pub(crate) fn close(self: &Arc<Self>) {
        self.routes().closed = true;
        self.cancel.cancel();
        if self.shared {
            self.hub.forget_shared(self.upstream.name(), self);
        }
        let client = self.client.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.close()).await;
        });
    }

    /// Maps a client's progress token to a fresh upstream one.
    pub(crate) fn register_progress(
        &self,
        session: &Arc<ClientSession>,
        original: RequestId,
        request: RequestId,
    ) -> RequestId {
        let mut routes = self.routes();
        routes.next_token += 1;
        let token = rewrite::fresh_token(&original, routes.next_token);
        routes.progress.insert(
            token.clone(),
            ProgressRoute {
                session: Arc::downgrade(session),
                original,
                request,
            },
        );
        token
    }

    /// Sends a response to the client after every upstream message that came before it,
    /// then forgets its progress token (later progress is dropped, as the spec asks).
    pub(crate) async fn deliver_response(
        &self,
        session: Arc<ClientSession>,
        outbound: Outbound,
        inflight: Option<OwnedInflight>,
    ) {
        let flush = Flush {
            session,
            outbound,
            _inflight: inflight,
        };
        if let Err(mpsc::error::SendError(f)) = self.flush.send(flush).await {
            f.deliver(self).await;
        }
    }

    /// Counts a subscriber of `uri`; whether the upstream must be asked (always for a
    /// per-client link, for the first subscriber of a shared one).
    pub(crate) fn subscribe(&self, uri: &str) -> bool {
        let mut routes = self.routes();
        let n = routes.subscriptions.entry(uri.to_owned()).or_default();
        *n += 1;
        !self.shared || *n == 1
    }

    /// Drops a subscriber of `uri`; whether the upstream must be told (always for a
    /// per-client link, for the last subscriber of a shared one).
    pub(crate) fn unsubscribe(&self, uri: &str) -> bool {
        let mut routes = self.routes();
        let Some(n) = routes.subscriptions.get_mut(uri) else {
            return !self.shared;
        };
        *n = n.saturating_sub(1);
        if *n == 0 {
            routes.subscriptions.remove(uri);
            return true;
        }
        !self.shared
    }

    pub(crate) fn forget_progress(&self, token: &RequestId) {
        self.routes().progress.remove(token);
    }

    pub(crate) fn forget_server_request(&self, upstream_id: &RequestId) {
        self.routes().server_requests.remove(upstream_id);
    }

    fn members(&self) -> Vec<Arc<ClientSession>> {
        self.routes()
            .members
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// The session a server message belongs to, with the client request it relates to:
    /// the session whose request started most recently and is still in flight; with
    /// nothing in flight, the only session (per-client mode, or a lone shared client).
    fn pick(&self) -> Option<(Arc<ClientSession>, Option<RequestId>)> {
        let members = self.members();
        let busy = members
            .iter()
            .filter_map(|s| s.latest_inflight().map(|(seq, id)| (seq, s, id)))
            .max_by_key(|(seq, ..)| *seq);
        if let Some((_, s, id)) = busy {
            return Some((s.clone(), Some(id)));
        }
        match members.as_slice() {
            [only] => Some((only.clone(), None)),
            _ => None,
        }
    }

    async fn on_request(self: &Arc<Self>, request: Request) {
        let upstream_id = request.id.clone();
        let refusal = match self.pick() {
            None => Some(format!(
                "no client session of the proxy can answer {} now",
                request.method
            )),
            Some((session, related)) => {
                if let Some(missing) = session.lacks_capability_for(&request.method) {
                    Some(format!(
                        "the client did not declare the {missing} capability"
                    ))
                } else {
                    let client_id = session.next_server_request_id();
                    self.routes().server_requests.insert(
                        upstream_id.clone(),
                        (Arc::downgrade(&session), client_id.clone()),
                    );
                    session
                        .deliver_server_request(self.clone(), request, client_id, related)
                        .await;
                    None
                }
            }
        };
        if let Some(message) = refusal {
            debug!(upstream = %self.upstream.name(), %message, "server request refused");
            let error = ErrorObject::new(codes::METHOD_NOT_FOUND, message);
            let _ = tokio::time::timeout(
                CLOSE_TIMEOUT,
                self.client.respond(upstream_id, Outcome::Error(error)),
            )
            .await;
        }
    }

    async fn on_notification(&self, mut n: Notification) {
        match n.method.as_str() {
            methods::PROGRESS => {
                let token = rewrite::notification_progress_token(n.params.as_deref());
                let route = token.and_then(|t| {
                    let routes = self.routes();
                    let r = routes.progress.get(&t)?;
                    Some((r.session.upgrade()?, r.original.clone(), r.request.clone()))
                });
                let Some((session, original, request)) = route else {
                    debug!(upstream = %self.upstream.name(), "progress for no request in flight; dropped");
                    return;
                };
                if let Some(p) = &n.params {
                    n.params = Some(rewrite::set_notification_progress_token(p, &original));
                }
                session.emit_notification(n, Some(request)).await;
            }
            methods::CANCELLED => {
                // The upstream withdraws one of its requests to a client.
                let Some(id) = rewrite::cancelled_request_id(n.params.as_deref()) else {
                    return;
                };
                let target = self.routes().server_requests.remove(&id);
                if let Some((session, client_id)) = target
                    && let Some(session) = session.upgrade()
                {
                    let reason = rewrite::cancelled_reason(n.params.as_deref());
                    session.cancel_server_request(&client_id, reason).await;
                }
            }
            methods::TOOLS_LIST_CHANGED
            | methods::PROMPTS_LIST_CHANGED
            | methods::RESOURCES_LIST_CHANGED => {
                for session in self.members() {
                    session.emit_notification(n.clone(), None).await;
                }
            }
            "notifications/resources/updated" => {
                let uri = rewrite::param_uri(n.params.as_deref()).unwrap_or_default();
                for session in self.members() {
                    if !self.shared || session.is_subscribed(&uri) {
                        session.emit_notification(n.clone(), None).await;
                    }
                }
            }
            _ => match self.pick() {
                Some((session, related)) => session.emit_notification(n, related).await,
                // Server log messages concern every client of a shared server; anything
                // else (e.g. `notifications/elicitation/complete`) belongs to one client
                // we cannot tell, so it is not sprayed over the others.
                None if n.method == "notifications/message" => {
                    for session in self.members() {
                        session.emit_notification(n.clone(), None).await;
                    }
                }
                None => {
                    debug!(upstream = %self.upstream.name(), method = %n.method, "notification for no identifiable client session; dropped");
                }
            },
        }
    }
}

/// Routes the upstream's messages until the connection ends; then ends the sessions it
/// served (their requests in flight get a JSON-RPC error).
async fn dispatch(link: Arc<Link>, mut events: ClientEvents, mut flush: mpsc::Receiver<Flush>) {
    let reason = 'run: loop {
        let event = tokio::select! {
            () = link.cancel.cancelled() => return,
            () = link.upstream.stopped() => {
                // Removed or replaced: its sessions end on their own; the connection goes.
                link.close();
                return;
            }
            ev = events.recv() => ev,
            Some(f) = flush.recv() => {
                // Everything the transport received before this response is queued by
                // now: route it first.
                let mut ended = None;
                while let Ok(ev) = events.try_recv() {
                    match ev {
                        ClientEvent::Request(r) => link.on_request(r).await,
                        ClientEvent::Notification(n) => link.on_notification(n).await,
                        ClientEvent::Closed(reason) => {
                            ended = Some(reason.to_string());
                            break;
                        }
                    }
                }
                f.deliver(&link).await;
                if let Some(reason) = ended {
                    break 'run reason;
                }
                continue;
            }
        };
        match event {
            Some(ClientEvent::Request(r)) => link.on_request(r).await,
            Some(ClientEvent::Notification(n)) => link.on_notification(n).await,
            Some(ClientEvent::Closed(reason)) => break reason.to_string(),
            None => break "the connection's event channel closed".to_owned(),
        }
    };
    // Responses already handed over still go out, before the sessions end.
    flush.close();
    while let Some(f) = flush.recv().await {
        f.deliver(&link).await;
    }
    if link.cancel.is_cancelled() {
        return;
    }
    info!(upstream = %link.upstream.name(), shared = link.shared, %reason, "upstream session lost; ending its client sessions");
    link.routes().closed = true;
    if link.shared {
        link.hub.forget_shared(link.upstream.name(), &link);
    }
    let message = format!(
        "upstream {:?}: the upstream session ended: {reason}",
        link.upstream.name()
    );
    for session in link.members() {
        session.terminate(Some(message.clone())).await;
    }
}
