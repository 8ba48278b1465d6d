//! One client session: answers `initialize` and `ping`, forwards everything else to its
//! upstream link, and takes what the upstream sends for its client (as the [`Sink`] of
//! its forwarded requests).

mod end;
mod era;
mod group;
mod input;
mod relay;
mod resume;

pub use resume::Released;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use mcp_transport::{Refused, Sink};
use mcp_types::jsonrpc::{Extra, codes, to_raw};
use mcp_types::mcp::{
    InitializeParams, InitializeResult, LATEST_PROTOCOL_VERSION, is_supported_version, methods,
};
use mcp_types::{Message, Notification, Request, RequestId, Response, SessionMode};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::upstream_session::UpstreamSession;
use super::{Outbound, Outlet, Permit, SessionHub, SessionOptions};
use crate::Upstream;
use crate::connector::SessionParams;
use crate::upstream::OwnedInflight;

/// A client session. Created by [`SessionHub::open`]; ends on [`ClientSession::close`],
/// when its upstream session dies, or when its upstream is removed or replaced.
#[derive(Debug)]
pub struct ClientSession {
    id: String,
    me: Weak<ClientSession>,
    hub: SessionHub,
    serves: Serves,
    options: SessionOptions,
    state: Mutex<State>,
    /// Opening member links one at a time (two requests never open the same one twice).
    opening: tokio::sync::Mutex<()>,
    /// Serves one 2026-07-28 request (no `initialize`): its upstream links are the shared
    /// ones whatever the mode, since nothing of the client lives on between requests.
    stateless: bool,
    cancel: CancellationToken,
    /// Its place in the session limits, given back when the session ends.
    permit: Mutex<Option<Permit>>,
    /// When it last did something (ms on the hub's clock): expiry and eviction.
    last_active: AtomicU64,
    /// Event streams the client holds open (a GET stream, say): not idle meanwhile.
    streams: AtomicUsize,
    /// Whether other replicas may go on with it, and how it let go of its upstreams.
    replica: resume::Replica,
}

/// An event stream the client holds open; the session is not idle while it lives.
#[derive(Debug)]
pub struct StreamGuard(Arc<ClientSession>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
    }
}

/// Why a session ends, and what its requests in flight are told.
#[derive(Debug, Clone)]
pub(crate) enum Ended {
    /// The client ended it: no answer is due.
    Client,
    /// The client did not keep up with its messages.
    SlowClient,
    /// Idle past the limit.
    Expired,
    /// Idle, and its place was needed.
    Evicted,
    /// The proxy is shutting down.
    Shutdown,
    /// Its upstream was removed or replaced.
    Removed(mcp_types::ErrorObject),
    /// Its upstream session died.
    UpstreamLost(mcp_types::ErrorObject),
}

impl Ended {
    fn metric(&self) -> crate::metrics::SessionEnd {
        use crate::metrics::SessionEnd as E;
        match self {
            Self::Client => E::Client,
            Self::SlowClient => E::SlowClient,
            Self::Expired => E::Expired,
            Self::Evicted => E::Evicted,
            Self::Shutdown => E::Shutdown,
            Self::Removed(_) => E::Removed,
            Self::UpstreamLost(_) => E::UpstreamLost,
        }
    }

    /// The error requests in flight get (`None`: none is due, the client left).
    fn error(&self) -> Option<mcp_types::ErrorObject> {
        let text = |t: &str| Some(mcp_types::ErrorObject::new(codes::CONNECTION_CLOSED, t));
        match self {
            Self::Client | Self::SlowClient => None,
            Self::Expired => text("the session expired"),
            Self::Evicted => text("the session was evicted to make room for another"),
            Self::Shutdown => text("the proxy is shutting down"),
            Self::Removed(e) | Self::UpstreamLost(e) => Some(e.clone()),
        }
    }
}

/// The answer to a client request, to hand to the client.
#[derive(Debug)]
pub struct Reply {
    /// The response, under the client's id.
    pub message: Message,
    /// Keeps the upstream from being retired (PUT) until the answer is handed over.
    _inflight: Option<OwnedInflight>,
}

impl Reply {
    fn new(message: Message) -> Self {
        Self {
            message,
            _inflight: None,
        }
    }
}

/// What a session serves: one upstream, or a group of them.
#[derive(Debug, Clone)]
pub(crate) enum Serves {
    /// The endpoint of one upstream: its one member is itself.
    Upstream(Arc<Upstream>),
    /// A group: members' links open when first needed.
    Group(Arc<crate::group::Group>),
}

impl Serves {
    /// The endpoint's name (the upstream's or the group's).
    pub(crate) fn name(&self) -> &str {
        match self {
            Self::Upstream(u) => u.name(),
            Self::Group(g) => g.name(),
        }
    }
}

/// What the client declared at `initialize`, for member links opened later.
#[derive(Debug, Clone)]
struct Declared {
    client_info: mcp_types::mcp::Implementation,
    capabilities: Value,
    version: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    New,
    Initializing,
    Ready,
    Ended,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    outlet: Option<Arc<dyn Outlet>>,
    /// Upstream links by member name (one, named after the upstream, for an upstream's
    /// endpoint).
    links: HashMap<String, Arc<UpstreamSession>>,
    protocol_version: Option<String>,
    capabilities: Value,
    declared: Option<Declared>,
    /// The level asked with `logging/setLevel` (groups pass it to links opened later).
    log_level: Option<Box<serde_json::value::RawValue>>,
    /// Client request id → the request in flight.
    inflight: HashMap<RequestId, Inflight>,
    /// Id we gave a server→client request → the member and the upstream's id for it.
    server_requests: HashMap<RequestId, (String, RequestId)>,
    /// Id of a request the proxy itself asked the client (a modern upstream's input
    /// request, see `input`) → where its answer goes.
    asked: HashMap<RequestId, tokio::sync::oneshot::Sender<mcp_types::Outcome>>,
    next_server_id: i64,
    /// Subscribed resources: (member, the member's URI).
    subscriptions: HashSet<(String, String)>,
}

#[derive(Debug)]
struct Inflight {
    /// The member it went to and the id the upstream knows it by, once registered there.
    upstream: Option<(String, RequestId)>,
    token: CancellationToken,
}

impl ClientSession {
    pub(super) fn spawn(
        hub: SessionHub,
        serves: Serves,
        options: SessionOptions,
        outlet: Arc<dyn Outlet>,
        cancel: CancellationToken,
        stateless: bool,
        id: Option<String>,
    ) -> Arc<Self> {
        let now = hub.now_ms();
        let session = Arc::new_cyclic(|me| Self {
            id: id.unwrap_or_else(|| format!("{:032x}", rand::random::<u128>())),
            me: me.clone(),
            hub,
            serves,
            options,
            opening: tokio::sync::Mutex::new(()),
            stateless,
            state: Mutex::new(State {
                phase: Phase::New,
                outlet: Some(outlet),
                links: HashMap::new(),
                protocol_version: None,
                capabilities: Value::Null,
                declared: None,
                log_level: None,
                inflight: HashMap::new(),
                server_requests: HashMap::new(),
                asked: HashMap::new(),
                next_server_id: 0,
                subscriptions: HashSet::new(),
            }),
            cancel,
            permit: Mutex::new(None),
            last_active: AtomicU64::new(now),
            streams: AtomicUsize::new(0),
            replica: resume::Replica::default(),
        });
        // Ends the session when its upstream or group is removed or replaced, or at
        // shutdown.
        let weak = Arc::downgrade(&session);
        let (serves, cancel) = (session.serves.clone(), session.cancel.clone());
        session.hub.spawn_cleanup(async move {
            let removed = async {
                match &serves {
                    Serves::Upstream(u) => u.stopped().await,
                    Serves::Group(g) => g.stopped().await,
                }
            };
            let ended = tokio::select! {
                () = removed => {
                    let what = match &serves {
                        Serves::Upstream(_) => "mcp",
                        Serves::Group(_) => "group",
                    };
                    let text = format!("{what} {:?} was removed or replaced", serves.name());
                    Ended::Removed(mcp_types::ErrorObject::new(codes::CONNECTION_CLOSED, text))
                }
                () = cancel.cancelled() => Ended::Shutdown,
            };
            if let Some(session) = weak.upgrade() {
                session.end(ended);
            }
        });
        session
    }

    /// The hub it belongs to: the owner of the tasks spawned on its behalf.
    pub fn hub(&self) -> &SessionHub {
        &self.hub
    }

    /// Takes its place in the limits (given back when the session ends).
    pub(super) fn hold(&self, permit: Permit) {
        *self.permit.lock().unwrap_or_else(|p| p.into_inner()) = Some(permit);
    }

    /// Marks the session active now.
    fn touch(&self) {
        self.last_active.store(self.hub.now_ms(), Ordering::Relaxed);
    }

    /// When it was last active (ms on the hub's clock).
    pub(crate) fn last_active_ms(&self) -> u64 {
        self.last_active.load(Ordering::Relaxed)
    }

    /// Whether it is idle: open, no request in flight, no stream held open, not
    /// initializing.
    pub(crate) fn is_idle(&self) -> bool {
        if self.streams.load(Ordering::Acquire) > 0 {
            return false;
        }
        let state = self.state();
        matches!(state.phase, Phase::New | Phase::Ready) && state.inflight.is_empty()
    }

    /// The client holds an event stream of this session open (until the guard drops):
    /// the session does not expire meanwhile.
    pub fn open_stream(self: &Arc<Self>) -> StreamGuard {
        self.streams.fetch_add(1, Ordering::AcqRel);
        self.touch();
        StreamGuard(self.clone())
    }

    /// Whether another request may start now (the per-session in-flight limit).
    pub fn has_room(&self) -> bool {
        self.state().inflight.len() < self.hub.limits().max_inflight
    }

    /// The session id (128 random bits, hex).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The endpoint's name: the upstream's, or the group's.
    pub fn upstream_name(&self) -> &str {
        self.serves.name()
    }

    /// Whether it serves a group.
    pub fn is_group(&self) -> bool {
        matches!(self.serves, Serves::Group(_))
    }

    /// The protocol version negotiated with the client, once initialized.
    pub fn protocol_version(&self) -> Option<String> {
        self.state().protocol_version.clone()
    }

    /// Whether `initialize` succeeded.
    pub fn is_initialized(&self) -> bool {
        self.state().phase == Phase::Ready
    }

    /// Whether the session is over.
    pub fn is_ended(&self) -> bool {
        self.state().phase == Phase::Ended
    }

    /// Whether request `id` of the client is in flight (a second request with the same
    /// id would be ambiguous).
    pub fn is_in_flight(&self, id: &RequestId) -> bool {
        self.state().inflight.contains_key(id)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers one client request: `ping` and `initialize` here, everything else through
    /// the upstream. `None` when no answer is due: the client cancelled the request or
    /// ended the session, or the answer went out another way (the session ended and
    /// answered it through its outlet).
    pub async fn request(self: &Arc<Self>, req: Request) -> Option<Reply> {
        self.touch();
        let phase = self.state().phase;
        let refusal = match (req.method.as_str(), phase) {
            (_, Phase::Ended) => {
                let msg = "the session has ended: initialize a new one";
                return Some(Reply::new(Message::error(
                    req.id,
                    codes::INVALID_REQUEST,
                    msg,
                )));
            }
            (methods::PING, _) => {
                let pong = Message::result(req.id, &serde_json::json!({}));
                return Some(Reply::new(pong));
            }
            (methods::INITIALIZE, Phase::New) => {
                self.state().phase = Phase::Initializing;
                let cancel = self.cancel.clone();
                return tokio::select! {
                    () = cancel.cancelled() => None,
                    reply = self.initialize(req) => Some(reply),
                };
            }
            (methods::INITIALIZE, _) => "the session is already initialized",
            (_, Phase::Ready) => return self.forward(req).await,
            _ => "the session is not initialized: send initialize first",
        };
        Some(Reply::new(Message::error(
            req.id,
            codes::INVALID_REQUEST,
            refusal,
        )))
    }

    /// Takes a notification from the client: `notifications/cancelled` is translated to
    /// the upstream's id (and ends the request: no answer is due), others are forwarded.
    pub async fn notify(self: &Arc<Self>, n: Notification) {
        self.touch();
        let links: Vec<(String, Arc<UpstreamSession>)> = {
            let state = self.state();
            if state.phase != Phase::Ready {
                return;
            }
            state
                .links
                .iter()
                .map(|(m, l)| (m.clone(), l.clone()))
                .collect()
        };
        match n.method.as_str() {
            // What the upstream sent before the client was ready (a `roots/list` right
            // after `initialized`, say) reaches it now, after its `initialize` answer.
            methods::INITIALIZED => {
                for (_, link) in &links {
                    link.release_early();
                }
            }
            methods::CANCELLED => {
                let Ok(Some(id)) = mcp_types::params::request_id(n.params.as_deref()) else {
                    return;
                };
                let reason = mcp_types::params::reason(n.params.as_deref())
                    .unwrap_or_else(|| "cancelled by the client".into());
                let entry = self.state().inflight.remove(&id);
                if let Some(entry) = entry {
                    entry.token.cancel();
                    if let Some((member, upstream_id)) = entry.upstream
                        && let Some((_, link)) = links.iter().find(|(m, _)| *m == member)
                    {
                        let _ = link.client().cancel_request(&upstream_id, &reason).await;
                    }
                }
            }
            // Anything else (`notifications/roots/list_changed`, …) concerns every
            // upstream session the client has.
            _ => {
                for (_, link) in links {
                    let send = link.client().send_raw(Message::Notification(n.clone()));
                    let _ = tokio::time::timeout(super::SEND_TIMEOUT, send).await;
                }
            }
        }
    }

    /// Takes the client's answer to a server→client request and returns it to the
    /// upstream under the upstream's id.
    pub async fn respond(self: &Arc<Self>, r: Response) {
        self.touch();
        let (target, links) = {
            let mut state = self.state();
            if let Some(waiting) = state.asked.remove(&r.id) {
                drop(state);
                let _ = waiting.send(r.outcome);
                return;
            }
            (state.server_requests.remove(&r.id), state.links.clone())
        };
        // A replicated session's client may answer on another replica than the one that
        // asked: the id says where the answer goes.
        let target = target.or_else(|| self.foreign_server_request(&r.id));
        let Some((member, upstream_id)) = target else {
            debug!(session = %self.id, id = %r.id, "response to no request of ours; ignored");
            return;
        };
        let Some(link) = links.get(&member) else {
            debug!(session = %self.id, %member, "response for an upstream session that is gone; dropped");
            return;
        };
        link.forget_server_request(&upstream_id);
        let send = link.client().respond(upstream_id, r.outcome);
        let _ = tokio::time::timeout(super::SEND_TIMEOUT, send).await;
    }

    /// Takes one message from the client without waiting: the work happens in a task of
    /// the hub, and what the client gets back goes to the outlet.
    pub fn handle(self: &Arc<Self>, msg: Message) -> Result<(), crate::Error> {
        if self.is_ended() {
            return Err(crate::Error::SessionEnded(self.id.clone()));
        }
        let me = self.clone();
        match msg {
            Message::Request(req) => self.hub.spawn(async move {
                let id = req.id.clone();
                if let Some(reply) = me.request(req).await {
                    me.emit(reply.message, Some(id));
                }
            }),
            Message::Notification(n) => self.hub.spawn(async move { me.notify(n).await }),
            Message::Response(r) => self.hub.spawn(async move { me.respond(r).await }),
        }
        Ok(())
    }

    async fn initialize(self: &Arc<Self>, req: Request) -> Reply {
        let params: Result<InitializeParams, _> = req.params.as_deref().map_or_else(
            || serde_json::from_str("null"),
            |p| serde_json::from_str(p.get()),
        );
        let params = match params {
            Ok(p) => p,
            Err(e) => {
                self.state().phase = Phase::New;
                let msg = format!("invalid initialize params: {e}");
                return Reply::new(Message::error(req.id, codes::INVALID_PARAMS, msg));
            }
        };
        let version = if is_supported_version(&params.protocol_version) {
            params.protocol_version.clone()
        } else {
            LATEST_PROTOCOL_VERSION.to_owned()
        };
        let declared = Declared {
            client_info: params.client_info.clone(),
            capabilities: params.capabilities.clone(),
            version: version.clone(),
        };
        let (result, link) = match &self.serves {
            Serves::Upstream(upstream) => {
                let link = match self.open_link(upstream, &declared).await {
                    Ok(link) => link,
                    Err(e) => {
                        tracing::warn!(session = %self.id, upstream = %upstream.name(), error = %e, "cannot open the upstream session");
                        self.state().phase = Phase::New;
                        let error =
                            super::told::open_failed(upstream.name(), codes::INTERNAL_ERROR, &e);
                        return Reply::new(Message::Response(mcp_types::Response {
                            id: req.id,
                            outcome: mcp_types::Outcome::Error(error),
                            extra: mcp_types::jsonrpc::Extra::new(),
                        }));
                    }
                };
                let init = link.init();
                let result = InitializeResult {
                    protocol_version: version.clone(),
                    capabilities: init.capabilities.clone(),
                    server_info: init.server_info.clone(),
                    instructions: init.instructions.clone(),
                    extra: serde_json::Map::new(),
                };
                (result, Some(link))
            }
            Serves::Group(group) => {
                let manager = self.hub.manager();
                if !group.is_available(manager) {
                    self.state().phase = Phase::New;
                    let msg = format!(
                        "group {:?} is unavailable: a member is down (failMode: closed)",
                        group.name()
                    );
                    return Reply::new(Message::error(req.id, codes::CONNECTION_CLOSED, msg));
                }
                // No member link yet: each opens when the client first needs it.
                let result = InitializeResult {
                    protocol_version: version.clone(),
                    capabilities: group.capabilities(manager),
                    server_info: mcp_types::mcp::Implementation::new(
                        group.name(),
                        env!("CARGO_PKG_VERSION"),
                    ),
                    instructions: group.definition().description.clone(),
                    extra: serde_json::Map::new(),
                };
                (result, None)
            }
        };
        {
            let mut state = self.state();
            if state.phase == Phase::Ended {
                drop(state);
                if let Some(link) = link {
                    link.detach(self);
                }
                let msg = "the session ended during initialize";
                return Reply::new(Message::error(req.id, codes::INTERNAL_ERROR, msg));
            }
            state.phase = Phase::Ready;
            if let Some(link) = &link {
                state
                    .links
                    .insert(self.serves.name().to_owned(), link.clone());
            }
            state.protocol_version = Some(version);
            state.capabilities = params.capabilities;
            state.declared = Some(declared);
        }
        debug!(session = %self.id, endpoint = %self.serves.name(), group = self.is_group(), "client session initialized");
        if let Some(link) = link {
            link.attach(self);
        }
        Reply::new(Message::result(req.id, &result))
    }

    /// Makes a stateless session ready without `initialize`: the client's identity and
    /// capabilities come with its request (2026-07-28 `_meta`).
    pub(crate) async fn ready_stateless(
        self: &Arc<Self>,
        client_info: mcp_types::mcp::Implementation,
        capabilities: Value,
        version: &str,
    ) -> Result<(), crate::Error> {
        let declared = Declared {
            client_info,
            capabilities: capabilities.clone(),
            version: LATEST_PROTOCOL_VERSION.to_owned(),
        };
        let link = match &self.serves {
            Serves::Upstream(upstream) => Some(self.open_link(upstream, &declared).await?),
            Serves::Group(group) => {
                if !group.is_available(self.hub.manager()) {
                    return Err(crate::Error::NotConnected {
                        mcp: group.name().to_owned(),
                        state: mcp_types::ConnectionState::Error,
                        last_error: Some("a member is down (failMode: closed)".into()),
                    });
                }
                None
            }
        };
        {
            let mut state = self.state();
            if state.phase == Phase::Ended {
                return Err(crate::Error::SessionEnded(self.id.clone()));
            }
            state.phase = Phase::Ready;
            if let Some(link) = &link {
                state
                    .links
                    .insert(self.serves.name().to_owned(), link.clone());
            }
            state.protocol_version = Some(version.to_owned());
            state.capabilities = capabilities;
            state.declared = Some(declared);
        }
        if let Some(link) = link {
            link.attach(self);
            link.release_early();
        }
        Ok(())
    }

    /// What `server/discover` reports for this endpoint: capabilities, `serverInfo` and
    /// instructions (the upstream's, or the group's merged ones).
    pub fn identity(&self) -> (Value, mcp_types::mcp::Implementation, Option<String>) {
        match &self.serves {
            Serves::Upstream(upstream) => {
                let link = self.state().links.get(upstream.name()).cloned();
                let init = link
                    .map(|l| l.init().clone())
                    .or_else(|| upstream.initialize_result().map(|i| (*i).clone()));
                match init {
                    Some(init) => (init.capabilities, init.server_info, init.instructions),
                    None => (
                        Value::Object(serde_json::Map::new()),
                        mcp_types::mcp::Implementation::new(upstream.name(), "unknown"),
                        None,
                    ),
                }
            }
            Serves::Group(group) => (
                group.capabilities(self.hub.manager()),
                mcp_types::mcp::Implementation::new(group.name(), env!("CARGO_PKG_VERSION")),
                group.definition().description.clone(),
            ),
        }
    }

    /// Opens an upstream link for this session: its own (per-client), or the shared one.
    async fn open_link(
        &self,
        upstream: &Arc<Upstream>,
        declared: &Declared,
    ) -> Result<Arc<UpstreamSession>, crate::Error> {
        if self.stateless {
            return self.hub.shared_link(upstream).await;
        }
        match upstream.definition().session_mode {
            SessionMode::PerClient => {
                let sp = SessionParams {
                    protocol_version: declared.version.clone(),
                    client_info: declared.client_info.clone(),
                    capabilities: declared.capabilities.clone(),
                    extra_headers: self.options.extra_headers.clone(),
                    path_suffix: self.options.path_suffix.clone(),
                    era: upstream.era(),
                };
                UpstreamSession::open_per_client(&self.hub, upstream, sp).await
            }
            SessionMode::Shared => self.hub.shared_link(upstream).await,
        }
    }

    /// The live link to `member`, opened now when there is none (or it died, or its
    /// upstream was replaced): a group's member sessions open on first use, and one that
    /// died is opened again transparently.
    pub(crate) async fn link_for(
        self: &Arc<Self>,
        member: &str,
    ) -> Result<Arc<UpstreamSession>, crate::Error> {
        let current = |me: &Self| {
            let state = me.state();
            state.links.get(member).cloned()
        };
        let fresh = |link: &Arc<UpstreamSession>| {
            link.is_alive()
                && self
                    .hub
                    .manager()
                    .upstream(member)
                    .is_some_and(|u| Arc::ptr_eq(&u, link.upstream()))
        };
        if let Some(link) = current(self).filter(fresh) {
            return Ok(link);
        }
        if let Serves::Upstream(_) = &self.serves {
            // An upstream's endpoint has the one link made at initialize; when it is gone,
            // the session is over.
            return current(self).ok_or_else(|| crate::Error::SessionEnded(self.id.clone()));
        }
        let _opening = self.opening.lock().await;
        if let Some(link) = current(self).filter(fresh) {
            return Ok(link);
        }
        let upstream = self
            .hub
            .manager()
            .upstream(member)
            .ok_or_else(|| crate::Error::UnknownMcp(member.to_owned()))?;
        let declared = self
            .state()
            .declared
            .clone()
            .ok_or_else(|| crate::Error::SessionEnded(self.id.clone()))?;
        let link = self.open_link(&upstream, &declared).await?;
        let (old, level) = {
            let mut state = self.state();
            if state.phase == Phase::Ended {
                drop(state);
                link.detach(self);
                return Err(crate::Error::SessionEnded(self.id.clone()));
            }
            (
                state.links.insert(member.to_owned(), link.clone()),
                state.log_level.clone(),
            )
        };
        if let Some(old) = old {
            old.detach(self);
        }
        link.attach(self);
        link.release_early();
        if let Some(level) = level {
            let set = link.client().request_with_timeout(
                methods::LOGGING_SET_LEVEL,
                Some(level),
                super::SEND_TIMEOUT,
            );
            let _ = set.await;
        }
        debug!(session = %self.id, group = %self.serves.name(), %member, "member session opened");
        Ok(link)
    }

    /// A link of this session lost its upstream session. An upstream's endpoint ends
    /// with it; a group drops that member's link (its requests in flight have failed)
    /// and opens a new one on next use.
    pub(crate) fn link_lost(
        self: &Arc<Self>,
        link: &UpstreamSession,
        error: mcp_types::ErrorObject,
    ) {
        match &self.serves {
            Serves::Upstream(_) => self.end(Ended::UpstreamLost(error)),
            Serves::Group(_) => {
                let mut state = self.state();
                state
                    .links
                    .retain(|_, l| !std::ptr::eq(Arc::as_ptr(l), link));
                debug!(session = %self.id, group = %self.serves.name(), member = %link.upstream().name(), "member session lost; it opens again on next use");
            }
        }
    }

    /// Sends a message to the client (never waits). A client that cannot take it ends
    /// the session.
    pub(crate) fn emit(&self, message: Message, related: Option<RequestId>) {
        let outlet = self.state().outlet.clone();
        let Some(outlet) = outlet else { return };
        if !outlet.send(Outbound { message, related })
            && let Some(me) = self.me.upgrade()
        {
            debug!(session = %self.id, "the client cannot take more messages; ending its session");
            me.end(Ended::SlowClient);
        }
    }

    /// The client capability `method` needs and this client did not declare.
    fn lacks_capability_for(&self, method: &str) -> Option<&'static str> {
        let needed = match method {
            methods::SAMPLING_CREATE_MESSAGE => "sampling",
            methods::ELICITATION_CREATE => "elicitation",
            methods::ROOTS_LIST => "roots",
            _ => return None,
        };
        let state = self.state();
        state
            .capabilities
            .get(needed)
            .is_none_or(Value::is_null)
            .then_some(needed)
    }

    pub(crate) fn is_subscribed(&self, member: &str, uri: &str) -> bool {
        self.state()
            .subscriptions
            .contains(&(member.to_owned(), uri.to_owned()))
    }

    /// A session-wide notification from a member's link: as it is for an upstream's
    /// endpoint; for a group, member `list_changed` gives way to the group's own (sent
    /// when the merged catalog changes) and resource URIs take their group form.
    pub(crate) fn member_notification(&self, member: &str, mut n: Notification) {
        if let Serves::Group(group) = &self.serves {
            match n.method.as_str() {
                methods::TOOLS_LIST_CHANGED
                | methods::PROMPTS_LIST_CHANGED
                | methods::RESOURCES_LIST_CHANGED => return,
                methods::RESOURCES_UPDATED => {
                    let Ok(Some(uri)) = mcp_types::params::uri(n.params.as_deref()) else {
                        return;
                    };
                    let shown = group.catalog().client_uri(member, &uri);
                    if let Some(p) = n.params.as_deref()
                        && let Ok(members) = mcp_types::params::Members::parse(p)
                    {
                        n.params = Some(members.with("uri", &to_raw(&shown)));
                    }
                }
                _ => {}
            }
        }
        self.emit(Message::Notification(n), None);
    }

    /// Sends a server→client request to the client under a fresh id of this session
    /// (`mcp-proxy-N`); its answer goes back under the upstream's id.
    pub(crate) fn server_request(
        &self,
        member: &str,
        mut request: Request,
        related: Option<RequestId>,
    ) -> Result<(), Refused> {
        if let Some(missing) = self.lacks_capability_for(&request.method) {
            let outlet = self.state().outlet.clone();
            if let Some(outlet) = outlet {
                outlet.unmet(related.as_ref(), missing);
            }
            return Err(Refused(format!(
                "the client did not declare the {missing} capability"
            )));
        }
        let (client_id, link) = {
            let mut state = self.state();
            if state.phase == Phase::Ended {
                return Err(Refused("the client session has ended".into()));
            }
            state.next_server_id += 1;
            let client_id = self.server_request_id(state.next_server_id, member, &request.id);
            state
                .server_requests
                .insert(client_id.clone(), (member.to_owned(), request.id.clone()));
            (client_id, state.links.get(member).cloned())
        };
        if let Some(link) = link {
            link.note_server_request(request.id.clone(), self.me.clone(), client_id.clone());
        }
        request.id = client_id;
        self.emit(Message::Request(request), related);
        Ok(())
    }

    /// Tells the client the upstream withdrew the request it knows as `client_id`.
    pub(crate) fn cancel_server_request(&self, client_id: &RequestId, reason: Option<String>) {
        self.state().server_requests.remove(client_id);
        let mut params = serde_json::json!({ "requestId": client_id });
        if let Some(r) = reason {
            params["reason"] = Value::String(r);
        }
        let n = Notification {
            method: methods::CANCELLED.to_owned(),
            params: Some(to_raw(&params)),
            extra: Extra::new(),
        };
        self.emit(Message::Notification(n), None);
    }
}

impl Sink for ClientSession {
    fn related(&self, client_id: &RequestId, msg: Message) -> Result<(), Refused> {
        match msg {
            Message::Request(request) => {
                let member = self
                    .state()
                    .inflight
                    .get(client_id)
                    .and_then(|e| e.upstream.as_ref().map(|(m, _)| m.clone()))
                    .unwrap_or_else(|| self.serves.name().to_owned());
                self.server_request(&member, request, Some(client_id.clone()))
            }
            other => {
                self.emit(other, Some(client_id.clone()));
                Ok(())
            }
        }
    }
}
