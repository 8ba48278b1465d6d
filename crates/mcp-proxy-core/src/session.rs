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
mod link;
mod rewrite;
mod told;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mcp_types::{Message, RequestId};
use tokio::sync::{OnceCell, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use client::{ClientSession, Reply};

use crate::error::Error;
use crate::manager::Manager;
use link::Link;

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
    max_sessions: usize,
    counts: Mutex<Counts>,
    shared: Mutex<HashMap<String, Arc<OnceCell<Arc<Link>>>>>,
    cancel: CancellationToken,
    /// Every task a session or link spawns (cleanup, upstream sends, watchers).
    tasks: TaskTracker,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_upstream: HashMap<String, usize>,
}

/// Holds one place in the session limits; gives it back on drop.
#[derive(Debug)]
struct Permit {
    hub: Arc<HubInner>,
    name: String,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.hub.counts.lock().unwrap_or_else(|p| p.into_inner());
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
    /// A hub over the manager's upstreams, allowing at most `max_sessions` sessions.
    pub fn new(manager: Manager, max_sessions: usize) -> Self {
        Self {
            inner: Arc::new(HubInner {
                manager,
                max_sessions,
                counts: Mutex::new(Counts::default()),
                shared: Mutex::new(HashMap::new()),
                cancel: CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
        }
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
        if self.inner.cancel.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        let upstream = self
            .inner
            .manager
            .upstream(name)
            .ok_or_else(|| Error::UnknownMcp(name.to_owned()))?;
        let permit = self.take_permit(name, upstream.definition().effective_max_sessions())?;
        Ok(ClientSession::spawn(
            self.clone(),
            upstream,
            options,
            outlet,
            permit,
            self.inner.cancel.child_token(),
        ))
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
        let mut counts = self.inner.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.total >= self.inner.max_sessions {
            return Err(Error::SessionLimit(self.inner.max_sessions));
        }
        let n = counts.per_upstream.entry(name.to_owned()).or_default();
        if *n >= limit {
            return Err(Error::TooManySessions {
                mcp: name.to_owned(),
                limit,
            });
        }
        *n += 1;
        counts.total += 1;
        Ok(Permit {
            hub: self.inner.clone(),
            name: name.to_owned(),
        })
    }

    /// Ends every session (shutdown). Sessions opened later are refused.
    pub fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.tasks.close();
    }

    /// Waits until every task of the hub's sessions is done (after
    /// [`SessionHub::shutdown`]), or `deadline` passes; whether they all finished.
    pub async fn wait(&self, deadline: std::time::Duration) -> bool {
        tokio::time::timeout(deadline, self.inner.tasks.wait())
            .await
            .is_ok()
    }

    /// Spawns a task owned by the hub: it stops at shutdown.
    pub(crate) fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let cancel = self.inner.cancel.clone();
        self.inner.tasks.spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = fut => {}
            }
        });
    }

    /// Spawns a task owned by the hub that runs to its end even at shutdown (it is
    /// bounded by its own deadlines: closing an upstream session, a last cancellation).
    pub(crate) fn spawn_cleanup(&self, fut: impl Future<Output = ()> + Send + 'static) {
        self.inner.tasks.spawn(fut);
    }

    /// The shared upstream connection of `upstream`, opened on first use.
    pub(crate) async fn shared_link(
        &self,
        upstream: &Arc<crate::Upstream>,
    ) -> Result<Arc<Link>, Error> {
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
                .get_or_try_init(|| Link::open_shared(self.clone(), upstream.clone()))
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
    pub(crate) fn forget_shared(&self, name: &str, link: &Link) {
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
