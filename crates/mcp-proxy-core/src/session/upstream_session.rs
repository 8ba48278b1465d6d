//! The upstream side of client sessions: one initialized upstream connection (per client
//! session, or shared by all sessions of an upstream) and what it does with the upstream
//! messages that belong to no request in flight.
//!
//! Messages related to a client request never come here: the connection's correlation
//! table hands them to that request's session directly (see `mcp_transport::client`).
//! What comes here is session-wide (`list_changed`, `resources/updated`), a withdrawal of
//! a server→client request, or something sent while no request was in flight.
//!
//! A link to a modern (2026-07-28) upstream holds a `subscriptions/listen` open for the
//! list changes and the resource updates its sessions follow (see `modern`).

mod modern;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use mcp_transport::{CloseReason, Handler, McpClient, Refused};
use mcp_types::mcp::{Implementation, InitializeResult, LATEST_PROTOCOL_VERSION, methods};
use mcp_types::{Message, Notification, RequestId};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::SessionHub;
use super::client::ClientSession;
use crate::Upstream;
use crate::connector::{Connection, SessionParams};
use crate::error::Error;

/// Deadline for closing an upstream session gracefully.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages kept from a fresh connection until its first client is ready for them (a
/// server may ask for roots right after `initialized`).
const EARLY_CAPACITY: usize = 32;

/// One upstream connection serving client sessions.
#[derive(Debug)]
pub(crate) struct UpstreamSession {
    upstream: Arc<Upstream>,
    client: McpClient,
    init: InitializeResult,
    shared: bool,
    hub: SessionHub,
    routes: Mutex<Routes>,
    handler: Arc<UpstreamHandler>,
    cancel: CancellationToken,
    /// A modern upstream's listen, once there is something to listen for.
    listener: Mutex<Option<mcp_transport::Listener>>,
}

#[derive(Debug, Default)]
struct Routes {
    members: Vec<Weak<ClientSession>>,
    /// Upstream id of a server→client request → the session that got it, and its id there.
    server_requests: HashMap<RequestId, (Weak<ClientSession>, RequestId)>,
    closed: bool,
    /// Shared links: how many client sessions subscribed to each URI.
    subscriptions: HashMap<String, usize>,
}

/// The connection's [`Handler`]: it exists before its link does (the connection is made
/// first), so it holds early messages until the link's first client is ready.
#[derive(Debug, Default)]
pub(crate) struct UpstreamHandler {
    link: OnceLock<Weak<UpstreamSession>>,
    early: Mutex<Early>,
}

#[derive(Debug, Default)]
struct Early {
    /// `None` once released to the first client.
    messages: Option<Vec<Message>>,
    closed: Option<CloseReason>,
}

impl UpstreamHandler {
    fn new() -> Self {
        Self {
            link: OnceLock::new(),
            early: Mutex::new(Early {
                messages: Some(Vec::new()),
                closed: None,
            }),
        }
    }

    fn early(&self) -> std::sync::MutexGuard<'_, Early> {
        self.early.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn link(&self) -> Option<Arc<UpstreamSession>> {
        self.link.get().and_then(Weak::upgrade)
    }
}

impl Handler for UpstreamHandler {
    fn unrelated(&self, msg: Message) -> Result<(), Refused> {
        {
            let mut early = self.early();
            if let Some(held) = early.messages.as_mut() {
                if held.len() < EARLY_CAPACITY {
                    held.push(msg);
                    return Ok(());
                }
                return refuse(&msg, "no client session is attached yet");
            }
        }
        match self.link() {
            Some(link) => link.on_unrelated(msg),
            None => refuse(&msg, "the upstream session is closing"),
        }
    }

    fn closed(&self, reason: &CloseReason) {
        match self.link() {
            Some(link) => link.on_closed(reason),
            None => self.early().closed = Some(reason.clone()),
        }
    }
}

fn refuse(msg: &Message, why: &str) -> Result<(), Refused> {
    match msg {
        Message::Request(r) => Err(Refused(format!(
            "no client session of the proxy can answer {} now: {why}",
            r.method
        ))),
        _ => Ok(()),
    }
}

impl UpstreamSession {
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
            protocol_version: LATEST_PROTOCOL_VERSION.to_owned(),
            client_info: Implementation::new("mcp-proxy", env!("CARGO_PKG_VERSION")),
            capabilities: serde_json::json!({
                "sampling": {},
                "elicitation": {},
                "roots": { "listChanged": true },
            }),
            extra_headers: http::HeaderMap::new(),
            path_suffix: None,
            era: upstream.era(),
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
        let handler = Arc::new(UpstreamHandler::new());
        let opened = tokio::time::timeout(
            def.timeout,
            connector.open_session(def, &params, handler.clone()),
        )
        .await;
        Self::assemble(hub, upstream, opened, handler, shared).await
    }

    /// Goes on with a per-client upstream session another replica opened (see
    /// [`crate::Connector::resume_session`]).
    pub(crate) async fn resume_per_client(
        hub: &SessionHub,
        upstream: &Arc<Upstream>,
        params: SessionParams,
        resume: &crate::connector::ResumeParams,
    ) -> Result<Arc<Self>, Error> {
        let def = upstream.definition();
        let connector = hub.manager().connector();
        let handler = Arc::new(UpstreamHandler::new());
        let opened = tokio::time::timeout(
            def.timeout,
            connector.resume_session(def, &params, resume, handler.clone()),
        )
        .await;
        Self::assemble(hub.clone(), upstream.clone(), opened, handler, false).await
    }

    async fn assemble(
        hub: SessionHub,
        upstream: Arc<Upstream>,
        opened: Result<Result<Connection, mcp_transport::Error>, tokio::time::error::Elapsed>,
        handler: Arc<UpstreamHandler>,
        shared: bool,
    ) -> Result<Arc<Self>, Error> {
        let def = upstream.definition();
        let Connection { client, init } = match opened {
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
        let link = Arc::new(Self {
            cancel: hub.child_token(),
            upstream,
            client,
            init,
            shared,
            hub,
            routes: Mutex::new(Routes::default()),
            handler: handler.clone(),
            listener: Mutex::new(None),
        });
        let _ = handler.link.set(Arc::downgrade(&link));
        link.start_listening().await;
        let closed_early = handler.early().closed.take();
        if let Some(reason) = closed_early {
            link.on_closed(&reason);
        }
        // A link goes when its upstream does (removed, or replaced by a PUT); a shared
        // one outlives its sessions until then.
        let watcher = Arc::downgrade(&link);
        let (stopped, cancel) = (link.upstream.clone(), link.cancel.clone());
        link.hub.spawn(async move {
            tokio::select! {
                () = stopped.stopped() => {
                    if let Some(link) = watcher.upgrade() {
                        link.close();
                    }
                }
                () = cancel.cancelled() => {}
            }
        });
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

    /// Delivers what the upstream sent before a client was ready for it (once its first
    /// session's client is initialized, or sends its first request).
    pub(crate) fn release_early(&self) {
        let early = self.handler.early().messages.take();
        for msg in early.into_iter().flatten() {
            let method = msg.method().unwrap_or_default().to_owned();
            let id = msg.id().cloned();
            if let (Err(Refused(why)), Some(id)) = (self.on_unrelated(msg), id) {
                self.refuse_later(id, &method, why);
            }
        }
    }

    /// Answers a held server request the link cannot deliver.
    fn refuse_later(&self, id: RequestId, method: &str, why: String) {
        debug!(upstream = %self.upstream.name(), %method, reason = %why, "server request refused");
        let client = self.client.clone();
        self.hub.spawn(async move {
            let error =
                mcp_types::ErrorObject::new(mcp_types::jsonrpc::codes::METHOD_NOT_FOUND, why);
            let send = client.respond(id, mcp_types::Outcome::Error(error));
            let _ = tokio::time::timeout(super::SEND_TIMEOUT, send).await;
        });
    }

    /// Removes a session; a per-client link is closed with it.
    pub(crate) fn detach(self: &Arc<Self>, session: &ClientSession) {
        self.routes()
            .members
            .retain(|m| m.upgrade().is_some_and(|m| !std::ptr::eq(&*m, session)));
        if !self.shared {
            self.close();
        }
    }

    /// Removes a session without ending a per-client upstream session: it is let go of
    /// (see [`McpClient::release`]) for another replica to go on with.
    pub(crate) fn release(self: &Arc<Self>, session: &ClientSession) {
        self.routes()
            .members
            .retain(|m| m.upgrade().is_some_and(|m| !std::ptr::eq(&*m, session)));
        if self.shared {
            return;
        }
        {
            let mut routes = self.routes();
            if routes.closed {
                return;
            }
            routes.closed = true;
        }
        self.cancel.cancel();
        let client = self.client.clone();
        self.hub.spawn_cleanup(async move {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.release()).await;
        });
    }

    /// Closes the upstream connection (in the background, bounded).
    pub(crate) fn close(self: &Arc<Self>) {
        {
            let mut routes = self.routes();
            if routes.closed {
                return;
            }
            routes.closed = true;
        }
        self.cancel.cancel();
        if self.shared {
            self.hub.forget_shared(self.upstream.name(), self);
        }
        let client = self.client.clone();
        self.hub.spawn_cleanup(async move {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.close()).await;
        });
    }

    /// Counts a subscriber of `uri`; whether the upstream must be asked (always for a
    /// per-client link, for the first subscriber of a shared one).
    pub(crate) fn subscribe(&self, uri: &str) -> bool {
        let mut routes = self.routes();
        let n = routes.subscriptions.entry(uri.to_owned()).or_default();
        *n += 1;
        let first = *n == 1;
        drop(routes);
        if self.client.is_modern() {
            // Never asked upstream: the link's listen carries the URI, and the request
            // is answered once the listen has it (`session::client::era`).
            if first {
                self.listen_uri(uri, true);
            }
            return true;
        }
        !self.shared || first
    }

    /// Drops a subscriber of `uri`; whether the upstream must be told (always for a
    /// per-client link, for the last subscriber of a shared one).
    pub(crate) fn unsubscribe(&self, uri: &str) -> bool {
        let mut routes = self.routes();
        let modern = self.client.is_modern();
        let Some(n) = routes.subscriptions.get_mut(uri) else {
            return !self.shared || modern;
        };
        *n = n.saturating_sub(1);
        if *n == 0 {
            routes.subscriptions.remove(uri);
            drop(routes);
            if modern {
                self.listen_uri(uri, false);
            }
            return true;
        }
        !self.shared || modern
    }

    /// Remembers which session got the server→client request `upstream_id`, for a later
    /// `notifications/cancelled` from the upstream.
    pub(crate) fn note_server_request(
        &self,
        upstream_id: RequestId,
        session: Weak<ClientSession>,
        client_id: RequestId,
    ) {
        self.routes()
            .server_requests
            .insert(upstream_id, (session, client_id));
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

    /// The session of a per-client link, or the only session of a shared one.
    fn only_member(&self) -> Option<Arc<ClientSession>> {
        match self.members().as_slice() {
            [only] => Some(only.clone()),
            _ => None,
        }
    }

    fn on_unrelated(&self, msg: Message) -> Result<(), Refused> {
        match msg {
            Message::Request(request) => match self.only_member() {
                Some(session) => session.server_request(self.upstream.name(), request, None),
                None => refuse(
                    &Message::Request(request),
                    "no request of a client is in flight",
                ),
            },
            Message::Notification(n) => {
                self.on_notification(n);
                Ok(())
            }
            Message::Response(_) => Ok(()),
        }
    }

    fn on_notification(&self, n: Notification) {
        match n.method.as_str() {
            methods::CANCELLED => {
                // The upstream withdraws one of its requests to a client.
                let Ok(Some(id)) = mcp_types::params::request_id(n.params.as_deref()) else {
                    return;
                };
                let target = self.routes().server_requests.remove(&id);
                if let Some((session, client_id)) = target
                    && let Some(session) = session.upgrade()
                {
                    let reason = mcp_types::params::reason(n.params.as_deref());
                    session.cancel_server_request(&client_id, reason);
                }
            }
            methods::TOOLS_LIST_CHANGED
            | methods::PROMPTS_LIST_CHANGED
            | methods::RESOURCES_LIST_CHANGED => {
                for session in self.members() {
                    session.member_notification(self.upstream.name(), n.clone());
                }
            }
            methods::RESOURCES_UPDATED => {
                let uri = mcp_types::params::uri(n.params.as_deref())
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                for session in self.members() {
                    if !self.shared || session.is_subscribed(self.upstream.name(), &uri) {
                        session.member_notification(self.upstream.name(), n.clone());
                    }
                }
            }
            // Progress whose request already completed: the spec forbids delivering it.
            methods::PROGRESS => {}
            // Server log messages concern every client of a shared server.
            methods::LOG_MESSAGE => {
                for session in self.members() {
                    session.emit(Message::Notification(n.clone()), None);
                }
            }
            // Anything else (e.g. `notifications/elicitation/complete`) belongs to one
            // client; with several we cannot tell which, so it is not sprayed over them.
            _ => match self.only_member() {
                Some(session) => session.emit(Message::Notification(n), None),
                None => {
                    debug!(upstream = %self.upstream.name(), method = %n.method, "notification for no identifiable client session; dropped");
                }
            },
        }
    }

    /// The connection ended: unless we closed it, its sessions end (their requests in
    /// flight have failed already, with the reason).
    fn on_closed(&self, reason: &CloseReason) {
        let members = {
            let mut routes = self.routes();
            if routes.closed {
                return;
            }
            routes.closed = true;
            routes.server_requests.clear();
            std::mem::take(&mut routes.members)
        };
        self.cancel.cancel();
        info!(upstream = %self.upstream.name(), shared = self.shared, %reason, "upstream session lost; ending its client sessions");
        let message = super::told::session_ended(self.upstream.name(), reason);
        if self.shared {
            self.hub.forget_shared(self.upstream.name(), self);
        }
        for session in members.iter().filter_map(Weak::upgrade) {
            session.link_lost(self, message.clone());
        }
    }
}
