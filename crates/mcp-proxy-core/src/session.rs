//! Client sessions: the proxy as an MCP server to each client, and as an MCP client to the
//! upstream on each client's behalf.
//!
//! A [`SessionHub`] opens [`ClientSession`]s, bounded by the global `max_sessions` and each
//! upstream's `maxSessions`. A session answers `initialize` and `ping` itself; at the
//! client's `initialize` it obtains its upstream side (a [`link`]):
//!
//! - `per-client` mode: its own upstream session (for stdio its own process), initialized
//!   with the client's protocol version, capabilities and `clientInfo`, closed when the
//!   client session ends;
//! - `shared` mode: one upstream connection per definition, shared by every client
//!   session of that upstream.
//!
//! The data path of one request: the caller (the HTTP handler) awaits
//! [`ClientSession::request`], which registers the request on the upstream connection's
//! correlation table (fresh id and progress token, restored on the way back), writes it
//! and awaits its answer. The connection's one reader routes what the upstream sends in
//! arrival order; what belongs to the client goes, without waiting, to the session's
//! [`Outlet`] — so a progress notification is always handed over before the response it
//! precedes.

mod client;
mod rewrite;
mod snapshot;
mod told;
mod upstream_session;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mcp_types::{Message, RequestId};
use tokio::sync::{OnceCell, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use client::{ClientSession, Released, Reply, StreamGuard};
pub use snapshot::{LinkSnapshot, Resumed, SessionSnapshot};

use crate::error::Error;
use crate::manager::Manager;
use upstream_session::UpstreamSession;

/// Deadline for a notification or response a session sends upstream on its own.
pub(crate) const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Capacity of the channel behind [`SessionHub::open_channel`].
const CHANNEL_CAPACITY: usize = 64;

/// A message for the client, with where it belongs.
#[derive(Debug)]
pub struct Outbound {
    /// The message, ready to send (ids and tokens already the client's).
    pub message: Message,
    /// The client request this message relates to (its response, or a notification or
    /// request the upstream sent while serving it); `None` for unrelated messages.
    pub related: Option<RequestId>,
}

/// Where a session's messages for its client go: the client-facing transport.
///
/// Called from an upstream connection's reader: implementations must not wait. A client
/// that cannot take a message now (gone, or not keeping up) answers `false`, and its
/// session ends — one slow client never holds up the upstream or the other clients.
pub trait Outlet: Send + Sync + std::fmt::Debug + 'static {
    /// Hands a message to the client's transport.
    fn send(&self, out: Outbound) -> bool;
    /// The session ended; nothing follows. Called once.
    fn ended(&self);
    /// While serving the client's request `related`, the upstream asked for something
    /// that needs `capability`, which the client did not declare; the upstream was
    /// answered with an error. Nothing by default.
    fn unmet(&self, related: Option<&RequestId>, capability: &'static str) {
        let _ = (related, capability);
    }
}

/// Limits of client sessions; every one has a default ([`Default`]).
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// Most sessions open at once, all upstreams together (each upstream's `maxSessions`
    /// applies too).
    pub max_sessions: usize,
    /// A session without a request in flight or an open stream for this long ends (its
    /// id then answers 404, like any ended one).
    pub idle_timeout: std::time::Duration,
    /// Most requests in flight in one session; beyond it a request is refused with a
    /// JSON-RPC error.
    pub max_inflight: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_sessions: 4096,
            idle_timeout: std::time::Duration::from_secs(30 * 60),
            max_inflight: 64,
        }
    }
}

/// How a client session reaches its upstream, besides the definition.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// The client's headers named in `passthroughHeaders` (never `Authorization`).
    pub extra_headers: http::HeaderMap,
    /// `{extra}` path segments for HTTP upstreams (already percent-encoded).
    pub path_suffix: Option<String>,
}

/// Opens client sessions and enforces the session limits. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SessionHub {
    inner: Arc<HubInner>,
}

#[derive(Debug)]
struct HubInner {
    manager: Manager,
    limits: SessionLimits,
    counts: Mutex<Counts>,
    /// When the hub started: sessions keep their last activity relative to it.
    epoch: std::time::Instant,
    shared: Mutex<HashMap<String, Arc<OnceCell<Arc<UpstreamSession>>>>>,
    cancel: CancellationToken,
    /// Every task a session, a link, or the HTTP layer over them spawns (cleanup,
    /// upstream sends, watchers, answer relays, registry writes).
    tasks: TaskTracker,
    /// This replica's id, when sessions are shared with other replicas.
    replica: std::sync::OnceLock<String>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_upstream: HashMap<String, usize>,
    /// Every open session, for expiry and eviction.
    sessions: HashMap<String, std::sync::Weak<ClientSession>>,
}

/// Holds one place in the session limits; gives it back on drop.
#[derive(Debug)]
struct Permit {
    hub: Arc<HubInner>,
    name: String,
    session: Option<String>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.hub.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(id) = &self.session {
            counts.sessions.remove(id);
        }
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_upstream.get_mut(&self.name) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_upstream.remove(&self.name);
            }
        }
    }
}

/// An [`Outlet`] over a bounded channel (embedders, tests).
#[derive(Debug)]
struct ChannelOutlet(Mutex<Option<mpsc::Sender<Outbound>>>);

impl Outlet for ChannelOutlet {
    fn send(&self, out: Outbound) -> bool {
        let tx = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        tx.is_some_and(|tx| tx.try_send(out).is_ok())
    }

    fn ended(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

impl SessionHub {
    /// A hub over the manager's upstreams, allowing at most `max_sessions` sessions
    /// (other limits at their defaults).
    pub fn new(manager: Manager, max_sessions: usize) -> Self {
        Self::with_limits(
            manager,
            SessionLimits {
                max_sessions,
                ..SessionLimits::default()
            },
        )
    }

    /// A hub with these limits. Inside a tokio runtime it also starts the task that ends
    /// idle sessions.
    pub fn with_limits(manager: Manager, limits: SessionLimits) -> Self {
        let hub = Self {
            inner: Arc::new(HubInner {
                manager,
                limits,
                counts: Mutex::new(Counts::default()),
                epoch: std::time::Instant::now(),
                shared: Mutex::new(HashMap::new()),
                cancel: CancellationToken::new(),
                tasks: TaskTracker::new(),
                replica: std::sync::OnceLock::new(),
            }),
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            let weak = Arc::downgrade(&hub.inner);
            hub.spawn(expire_idle(weak.clone()));
            hub.spawn(follow_groups(weak));
        }
        hub
    }

    /// Names this replica (once; later calls are ignored): the server→client requests of
    /// replicated sessions then say which replica asked, so an answer landing on another
    /// replica can be sent to this one (see [`ClientSession::answered_elsewhere`]).
    pub fn set_replica_id(&self, id: &str) {
        let _ = self.inner.replica.set(id.to_owned());
    }

    /// This replica's id, if [`SessionHub::set_replica_id`] named it.
    pub fn replica_id(&self) -> Option<&str> {
        self.inner.replica.get().map(String::as_str)
    }

    /// The limits in force.
    pub fn limits(&self) -> &SessionLimits {
        &self.inner.limits
    }

    /// Milliseconds since the hub started (sessions' activity clock).
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.inner.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn metrics(&self) -> &crate::Metrics {
        self.inner.manager.prometheus()
    }

    /// Client sessions open now.
    pub fn active(&self) -> usize {
        self.inner
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .total
    }

    /// Opens a session on the upstream `name`; what it sends its client goes to
    /// `outlet`. It is not initialized yet: the client's first message should be
    /// `initialize`.
    pub fn open(
        &self,
        name: &str,
        options: SessionOptions,
        outlet: Arc<dyn Outlet>,
    ) -> Result<Arc<ClientSession>, Error> {
        self.open_as(name, options, outlet, false, None)
    }

    /// [`SessionHub::open`] under a given session id (a session resumed from the registry
    /// keeps the id it has there).
    pub(crate) fn open_with_id(
        &self,
        name: &str,
        options: SessionOptions,
        outlet: Arc<dyn Outlet>,
        id: Option<String>,
    ) -> Result<Arc<ClientSession>, Error> {
        self.open_as(name, options, outlet, false, id)
    }

    /// A session for one 2026-07-28 request: ready at once (no `initialize`; the client's
    /// identity and capabilities come with the request), over the upstreams' shared
    /// connections. Close it when the request is answered.
    pub async fn open_stateless(
        &self,
        name: &str,
        client_info: mcp_types::mcp::Implementation,
        capabilities: serde_json::Value,
        version: &str,
        outlet: Arc<dyn Outlet>,
    ) -> Result<Arc<ClientSession>, Error> {
        let session = self.open_as(name, SessionOptions::default(), outlet, true, None)?;
        if let Err(e) = session
            .ready_stateless(client_info, capabilities, version)
            .await
        {
            session.close();
            return Err(e);
        }
        Ok(session)
    }

    fn open_as(
        &self,
        name: &str,
        options: SessionOptions,
        outlet: Arc<dyn Outlet>,
        stateless: bool,
        id: Option<String>,
    ) -> Result<Arc<ClientSession>, Error> {
        if self.inner.cancel.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        let manager = &self.inner.manager;
        let (serves, per_endpoint) = match manager.upstream(name) {
            Some(upstream) => {
                let limit = upstream.definition().effective_max_sessions();
                (client::Serves::Upstream(upstream), limit)
            }
            None => match manager.group(name) {
                Some(group) => (client::Serves::Group(group), u32::MAX),
                None => return Err(Error::UnknownMcp(name.to_owned())),
            },
        };
        let permit = self.take_permit(name, per_endpoint)?;
        let session = ClientSession::spawn(
            self.clone(),
            serves,
            options,
            outlet,
            self.inner.cancel.child_token(),
            stateless,
            id,
        );
        let mut permit = permit;
        self.register(&session, &mut permit);
        session.hold(permit);
        self.metrics().client_session_opened();
        Ok(session)
    }

    /// [`SessionHub::open`] with the session's messages coming out of a channel (bounded:
    /// a receiver that falls behind ends the session). The channel closes when the
    /// session ends.
    pub fn open_channel(
        &self,
        name: &str,
        options: SessionOptions,
    ) -> Result<(Arc<ClientSession>, mpsc::Receiver<Outbound>), Error> {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let outlet = Arc::new(ChannelOutlet(Mutex::new(Some(tx))));
        Ok((self.open(name, options, outlet)?, rx))
    }

    fn take_permit(&self, name: &str, per_upstream: u32) -> Result<Permit, Error> {
        let limit = usize::try_from(per_upstream).unwrap_or(usize::MAX);
        // At a limit, the least recently used idle session makes room; a few rounds, in
        // case others take the place meanwhile.
        for _ in 0..4 {
            let victim = {
                let mut counts = self.inner.counts.lock().unwrap_or_else(|p| p.into_inner());
                let max = self.inner.limits.max_sessions;
                let here = counts.per_upstream.get(name).copied().unwrap_or(0);
                let (global_full, upstream_full) = (counts.total >= max, here >= limit);
                if !global_full && !upstream_full {
                    *counts.per_upstream.entry(name.to_owned()).or_default() += 1;
                    counts.total += 1;
                    return Ok(Permit {
                        hub: self.inner.clone(),
                        name: name.to_owned(),
                        session: None,
                    });
                }
                let victim = least_recently_used(&counts, upstream_full.then_some(name));
                match victim {
                    Some(v) => v,
                    None if global_full => return Err(Error::SessionLimit(max)),
                    None => {
                        return Err(Error::TooManySessions {
                            mcp: name.to_owned(),
                            limit,
                        });
                    }
                }
            };
            tracing::info!(session = %victim.id(), upstream = %victim.upstream_name(), "evicting the least recently used idle session to make room");
            victim.end(client::Ended::Evicted);
        }
        Err(Error::SessionLimit(self.inner.limits.max_sessions))
    }

    /// Records the session a permit is for (for expiry and eviction).
    fn register(&self, session: &Arc<ClientSession>, permit: &mut Permit) {
        let mut counts = self.inner.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts
            .sessions
            .insert(session.id().to_owned(), Arc::downgrade(session));
        permit.session = Some(session.id().to_owned());
    }

    /// Ends every session (shutdown). Sessions opened later are refused.
    pub fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.tasks.close();
    }

    /// Waits until every task of the hub is done (after [`SessionHub::shutdown`]), or
    /// `deadline` passes; whether they all finished.
    pub async fn wait(&self, deadline: std::time::Duration) -> bool {
        tokio::time::timeout(deadline, self.inner.tasks.wait())
            .await
            .is_ok()
    }

    /// Spawns a task owned by the hub: it stops at shutdown, and
    /// [`SessionHub::wait`] waits for it.
    pub fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let cancel = self.inner.cancel.clone();
        self.inner.tasks.spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = fut => {}
            }
        });
    }

    /// Spawns a task owned by the hub that runs to its end even at shutdown (it is
    /// bounded by its own deadlines: closing an upstream session, a last cancellation, a
    /// last write to the session registry); [`SessionHub::wait`] waits for it.
    pub fn spawn_cleanup(&self, fut: impl Future<Output = ()> + Send + 'static) {
        self.inner.tasks.spawn(fut);
    }

    /// The shared upstream connection of `upstream`, opened on first use.
    pub(crate) async fn shared_link(
        &self,
        upstream: &Arc<crate::Upstream>,
    ) -> Result<Arc<UpstreamSession>, Error> {
        let name = upstream.name().to_owned();
        loop {
            let cell = self
                .inner
                .shared
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(name.clone())
                .or_default()
                .clone();
            let link = cell
                .get_or_try_init(|| UpstreamSession::open_shared(self.clone(), upstream.clone()))
                .await?
                .clone();
            if link.is_alive() && Arc::ptr_eq(link.upstream(), upstream) {
                return Ok(link);
            }
            // A dead or replaced link: forget it (unless someone did already) and retry.
            let mut shared = self.inner.shared.lock().unwrap_or_else(|p| p.into_inner());
            if shared.get(&name).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                shared.remove(&name);
            }
            if !upstream.is_stopped() {
                continue;
            }
            return Err(Error::UnknownMcp(name));
        }
    }

    /// Forgets the shared link if it is this one.
    pub(crate) fn forget_shared(&self, name: &str, link: &UpstreamSession) {
        let mut shared = self.inner.shared.lock().unwrap_or_else(|p| p.into_inner());
        if shared
            .get(name)
            .and_then(|c| c.get())
            .is_some_and(|l| std::ptr::eq(Arc::as_ptr(l), link))
        {
            shared.remove(name);
        }
    }

    pub(crate) fn manager(&self) -> &Manager {
        &self.inner.manager
    }

    pub(crate) fn child_token(&self) -> CancellationToken {
        self.inner.cancel.child_token()
    }
}

/// The idle session (of `upstream`, when given) used least recently.
fn least_recently_used(counts: &Counts, upstream: Option<&str>) -> Option<Arc<ClientSession>> {
    counts
        .sessions
        .values()
        .filter_map(std::sync::Weak::upgrade)
        .filter(|s| upstream.is_none_or(|u| s.upstream_name() == u))
        .filter(|s| s.is_idle())
        .min_by_key(|s| s.last_active_ms())
}

/// Ends sessions idle longer than the limit, checking a few times per limit (at most
/// once a second, at least once a minute).
async fn expire_idle(hub: std::sync::Weak<HubInner>) {
    let period = {
        let Some(inner) = hub.upgrade() else { return };
        (inner.limits.idle_timeout / 4).clamp(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(60),
        )
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = hub.upgrade() else { return };
        let idle_ms = u64::try_from(inner.limits.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        let now = u64::try_from(inner.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let expired: Vec<Arc<ClientSession>> = {
            let counts = inner.counts.lock().unwrap_or_else(|p| p.into_inner());
            counts
                .sessions
                .values()
                .filter_map(std::sync::Weak::upgrade)
                .filter(|s| s.is_idle() && now.saturating_sub(s.last_active_ms()) >= idle_ms)
                .collect()
        };
        drop(inner);
        for session in expired {
            tracing::info!(session = %session.id(), upstream = %session.upstream_name(), "client session expired (idle)");
            session.end(client::Ended::Expired);
        }
    }
}

/// Keeps every group's merged catalog current as its members change, and tells the
/// group's sessions (`notifications/*/list_changed`) when what a list shows changed.
async fn follow_groups(hub: std::sync::Weak<HubInner>) {
    use mcp_types::mcp::methods;
    let Some(inner) = hub.upgrade() else { return };
    let mut changes = inner.manager.changes();
    drop(inner);
    while changes.changed().await.is_ok() {
        let Some(inner) = hub.upgrade() else { return };
        for group in inner.manager.groups() {
            let changed = group.refresh(&inner.manager);
            if !changed.contains(&true) {
                continue;
            }
            let sessions: Vec<Arc<ClientSession>> = {
                let counts = inner.counts.lock().unwrap_or_else(|p| p.into_inner());
                counts
                    .sessions
                    .values()
                    .filter_map(std::sync::Weak::upgrade)
                    .filter(|s| s.is_group() && s.upstream_name() == group.name())
                    .filter(|s| s.is_initialized())
                    .collect()
            };
            let methods = [
                methods::TOOLS_LIST_CHANGED,
                methods::PROMPTS_LIST_CHANGED,
                methods::RESOURCES_LIST_CHANGED,
            ];
            for (method, _) in methods.iter().zip(changed).filter(|(_, c)| *c) {
                tracing::debug!(group = %group.name(), %method, sessions = sessions.len(), "merged catalog changed");
                for session in &sessions {
                    session.emit(Message::notification(*method, None::<&()>), None);
                }
            }
        }
    }
}
