//! Streamable-HTTP sessions that survive a replica: with `session_keys` and a session
//! registry (Redis), a session one replica started is written to the registry, and a
//! request for it landing on another replica resumes it there.
//!
//! - **Written when it changes.** At `initialize`, then when its upstream links change (a
//!   group member opened); its TTL (the idle timeout plus a quarter) is refreshed in the
//!   background at most once a quarter of the idle timeout per replica — never a Redis
//!   round trip on a forwarded message.
//! - **Resume.** A replica that does not hold the session reads its entry and opens it
//!   from the snapshot: HTTP upstream sessions go on under the same upstream session id
//!   (no `initialize` upstream). A session with an upstream bound to its owner's process
//!   (a `per-client` stdio child, a legacy SSE stream) stays with its owner while the
//!   owner's heartbeat is current (requests for it are forwarded there, see
//!   [`super::forward`]); once it is gone, the first replica to see the session
//!   takes it over (atomic in the registry), opens a fresh upstream session and sends the
//!   client `notifications/tools/list_changed`.
//! - **Ending.** DELETE on any replica removes the entry and ends the upstream sessions.
//!   A copy that ends only here (idle here, evicted, this replica shutting down) lets go
//!   of its upstream sessions instead of ending them; an idle copy ends them only when
//!   the registry says no replica used the session meanwhile.
//! - **Redis away.** Sessions a replica holds go on from memory; resuming on another
//!   replica fails with a JSON-RPC error (503, `session_registry_unavailable`).
//! - **Redis back empty.** A replica whose heartbeat vanished from Redis while it was
//!   current (a restart without persistence, a flush), or that could not renew it for a
//!   while, writes back the entries missing of the sessions it holds, so they can move
//!   again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderMap;
use mcp_proxy_core::{Released, SessionOptions, SessionSnapshot};
use mcp_store::SessionRegistry;
use tracing::{debug, info, warn};

use super::session::HttpSession;
use super::{Endpoint, guard};
use crate::app::App;
use crate::error::Error;
use mcp_proxy_core::metrics::SessionTransport;

/// How often a replica renews its heartbeat, and how long one lasts.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(3);
const HEARTBEAT_TTL: Duration = Duration::from_secs(10);

/// This replica in the session registry.
#[derive(Debug)]
pub(crate) struct Replicas {
    registry: Arc<dyn SessionRegistry>,
    /// This replica's id (unique per process).
    me: String,
    /// Where other replicas reach it.
    address: String,
    /// The sessions' idle timeout.
    idle: Duration,
    /// The client sessions of this replica.
    hub: mcp_proxy_core::SessionHub,
    /// Their HTTP side (weak: the application owns it).
    held: std::sync::Weak<super::Registry>,
    /// Resumes on this replica, one at a time (two requests for one session resume it once).
    resuming: tokio::sync::Mutex<()>,
    epoch: Instant,
}

/// What an HTTP session keeps of its registry entry.
#[derive(Debug)]
pub(crate) struct Replication {
    replicas: Arc<Replicas>,
    /// The snapshot last written (or read, for a resumed session).
    saved: Mutex<SessionSnapshot>,
    /// When this replica last refreshed the entry's TTL (ms on the replicas' clock).
    touched: AtomicU64,
}

impl Replicas {
    pub(crate) fn new(
        registry: Arc<dyn SessionRegistry>,
        me: String,
        address: String,
        idle: Duration,
        hub: mcp_proxy_core::SessionHub,
        held: std::sync::Weak<super::Registry>,
    ) -> Arc<Self> {
        Arc::new(Self {
            registry,
            me,
            address,
            idle,
            hub,
            held,
            resuming: tokio::sync::Mutex::new(()),
            epoch: Instant::now(),
        })
    }

    pub(crate) fn id(&self) -> &str {
        &self.me
    }

    /// The address of replica `replica` while its heartbeat is current.
    pub(crate) async fn address_of(&self, replica: &str) -> mcp_store::Result<Option<String>> {
        self.registry.replica(replica).await
    }

    /// A registry entry's time to live: the idle timeout, plus the refresh period.
    fn ttl(&self) -> Duration {
        self.idle + self.period()
    }

    /// How often one replica refreshes a session it serves.
    fn period(&self) -> Duration {
        self.idle / 4
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Renews this replica's heartbeat while it exists, until the session hub shuts
    /// down (the sessions end first; [`Replicas::retire`] then removes the heartbeat).
    pub(crate) fn spawn_heartbeat(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        self.hub.spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            // When the heartbeat was last renewed: until its TTL it must be in Redis.
            let mut renewed: Option<Instant> = None;
            loop {
                tick.tick().await;
                let Some(me) = me.upgrade() else { return };
                let current =
                    renewed.is_some_and(|t| t.elapsed() + HEARTBEAT_EVERY < HEARTBEAT_TTL);
                let vanished = current && matches!(me.registry.replica(&me.me).await, Ok(None));
                match me
                    .registry
                    .heartbeat(&me.me, &me.address, HEARTBEAT_TTL)
                    .await
                {
                    Ok(()) if failing || vanished => {
                        if failing {
                            info!(replica = %me.me, "replica heartbeat renewed again");
                        }
                        failing = false;
                        renewed = Some(Instant::now());
                        // In a task of its own: many sessions must not delay the
                        // next heartbeat.
                        let me = me.clone();
                        me.hub
                            .clone()
                            .spawn(async move { me.write_back(vanished).await });
                    }
                    Ok(()) => renewed = Some(Instant::now()),
                    Err(e) if !failing => {
                        failing = true;
                        warn!(replica = %me.me, error = %e, "cannot renew the replica heartbeat");
                    }
                    Err(_) => {}
                }
            }
        });
    }

    /// Writes back the registry entries missing of the sessions this replica holds (Redis
    /// came back empty, or was away). An entry still there is left as it is.
    async fn write_back(&self, vanished: bool) {
        let Some(held) = self.held.upgrade() else {
            return;
        };
        let mut written = 0usize;
        for session in held.all() {
            if !session.is_replicated() || session.is_ended() {
                continue;
            }
            let Some(snapshot) = session.core().snapshot() else {
                continue;
            };
            let Ok(state) = serde_json::to_string(&snapshot) else {
                continue;
            };
            let id = session.id();
            match self.registry.session(id).await {
                Ok(None) => {}
                Ok(Some(_)) => continue,
                Err(e) => {
                    debug!(session = %id, error = %e, "cannot read the session registry; not written back");
                    return;
                }
            }
            match self
                .registry
                .put_session(id, &self.me, &state, self.ttl())
                .await
            {
                Ok(()) => written += 1,
                Err(e) => {
                    debug!(session = %id, error = %e, "cannot write the session back to the registry");
                    return;
                }
            }
        }
        let why = if vanished {
            "the registry came back empty"
        } else {
            "the registry was away"
        };
        info!(replica = %self.me, written, "{why}: wrote back the missing entries of the sessions held here");
    }

    /// Removes this replica's heartbeat (a clean shutdown).
    pub(crate) async fn retire(&self) {
        if let Err(e) = self.registry.retire(&self.me).await {
            debug!(error = %e, "cannot remove the replica heartbeat");
        }
    }

    /// Writes a freshly initialized session to the registry; the session is replicated
    /// from then on. A failure is logged: the session stays on this replica only.
    pub(crate) async fn register(self: &Arc<Self>, session: &HttpSession) {
        let Some(snapshot) = session.core().snapshot() else {
            return;
        };
        let Ok(state) = serde_json::to_string(&snapshot) else {
            return;
        };
        let id = session.id();
        match self
            .registry
            .put_session(id, &self.me, &state, self.ttl())
            .await
        {
            Ok(()) => {
                session.core().set_replicated(true);
                session.replicate(Replication {
                    replicas: self.clone(),
                    saved: Mutex::new(snapshot),
                    touched: AtomicU64::new(self.now_ms()),
                });
            }
            Err(e) => {
                warn!(session = %id, error = %e, "cannot write the session to the registry: it lives on this replica only");
            }
        }
    }

    /// Resumes session `id` (named by a genuine token) on this replica, or says why not.
    pub(crate) async fn resume(
        self: &Arc<Self>,
        app: &App,
        endpoint: &Endpoint,
        id: &str,
        policy: &guard::Policy,
        headers: &HeaderMap,
    ) -> Result<Arc<HttpSession>, Error> {
        let _one_at_a_time = self.resuming.lock().await;
        let inner = app.inner();
        if let Some(session) =
            inner
                .http_sessions
                .get(&endpoint.name, id, SessionTransport::StreamableHttp)
        {
            return Ok(session);
        }
        let unavailable = |e: mcp_store::Error| {
            Error::RegistryUnavailable(format!(
                "this replica does not hold the session and cannot read the session registry ({e}); \
                 retry, or initialize a new session"
            ))
        };
        let Some(entry) = self.registry.session(id).await.map_err(unavailable)? else {
            return Err(Error::SessionNotFound);
        };
        let snapshot: SessionSnapshot = match serde_json::from_str(&entry.state) {
            Ok(s) => s,
            Err(e) => {
                warn!(session = %id, error = %e, "unreadable session in the registry");
                return Err(Error::SessionNotFound);
            }
        };
        if snapshot.endpoint != endpoint.name {
            return Err(Error::SessionNotFound);
        }
        let mut owner = entry.owner;
        if snapshot.is_bound() && owner != self.me {
            // The upstream session lives in the owner's process: it stays there while the
            // owner lives; a dead owner's session is taken over by the first to see it.
            if let Some(address) = self.registry.replica(&owner).await.map_err(unavailable)? {
                // The caller forwards the request there.
                return Err(Error::OnReplica {
                    replica: owner,
                    address,
                });
            }
            let taken = self
                .registry
                .take_over(id, &owner, &self.me, None, self.ttl())
                .await
                .map_err(unavailable)?;
            if !taken {
                return Err(Error::SessionElsewhere(
                    "another replica took this session over a moment ago: retry".into(),
                ));
            }
            info!(session = %id, from = %owner, "took over the session of a replica that is gone");
            owner.clone_from(&self.me);
        }
        let options = SessionOptions {
            extra_headers: guard::passthrough(policy, headers),
            path_suffix: snapshot.path_suffix.clone(),
        };
        let session = HttpSession::new(
            &inner.http_sessions,
            app.metrics(),
            SessionTransport::StreamableHttp,
            None,
            app.config().session_replay_bytes,
        );
        let (core, resumed) = inner
            .sessions
            .resume(id, &snapshot, options, session.clone())
            .await?;
        session.bind(core);
        session.streams().set_origin(&self.me);
        session.replicate(Replication {
            replicas: self.clone(),
            saved: Mutex::new(snapshot),
            touched: AtomicU64::new(0),
        });
        inner.http_sessions.insert(session.clone());
        info!(session = %id, endpoint = %endpoint.name, %owner, fresh = resumed.fresh, "resumed a session started on another replica");
        if resumed.fresh {
            // New upstream sessions: the registry must name them.
            session.after_request();
        }
        Ok(session)
    }
}

impl Replication {
    /// After a request: the entry is rewritten when the links changed, its TTL refreshed
    /// when this replica has not done so for a while. Both in the background.
    pub(crate) fn after_request(&self, session: &HttpSession) {
        let r = &self.replicas;
        let now = r.now_ms();
        let period = u64::try_from(r.period().as_millis()).unwrap_or(u64::MAX);
        let changed = session.core().snapshot().filter(|s| {
            s.fingerprint()
                != self
                    .saved
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .fingerprint()
        });
        let last = self.touched.load(Ordering::Relaxed);
        let due = now.saturating_sub(last) >= period;
        if changed.is_none() && !due {
            return;
        }
        self.touched.store(now, Ordering::Relaxed);
        let (registry, id, me, ttl) = (
            r.registry.clone(),
            session.id().to_owned(),
            r.me.clone(),
            r.ttl(),
        );
        let state = changed.as_ref().and_then(|s| serde_json::to_string(s).ok());
        if let Some(s) = changed {
            *self.saved.lock().unwrap_or_else(|p| p.into_inner()) = s;
        }
        r.hub.spawn_cleanup(async move {
            let done = match state {
                Some(state) => registry.put_session(&id, &me, &state, ttl).await,
                None => registry.touch_session(&id, ttl).await.map(drop),
            };
            if let Err(e) = done {
                debug!(session = %id, error = %e, "cannot refresh the session in the registry");
            }
        });
    }

    /// After an error from upstream: when the registry no longer has the session (it
    /// ended on another replica), this copy ends too, so its next request gets 404. In
    /// the background; a Redis round trip on error answers only.
    pub(crate) fn check_ended(&self, session: &HttpSession) {
        let registry = self.replicas.registry.clone();
        let core = session.core().clone();
        self.replicas.hub.spawn(async move {
            if let Ok(None) = registry.session(core.id()).await {
                debug!(session = %core.id(), "the session ended on another replica; ending this copy");
                core.close();
            }
        });
    }

    /// The session's copy here ended. Ended for good (DELETE, upstream gone): the entry
    /// goes. Idle here: when no replica used it within the idle timeout, the entry goes
    /// and its upstream sessions are ended. Otherwise the entry stays.
    pub(crate) fn ended(&self, id: &str, released: Option<Released>) {
        let r = self.replicas.clone();
        let id = id.to_owned();
        let snapshot = self.saved.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.replicas.hub.spawn_cleanup(async move {
            match released {
                None => {
                    if let Err(e) = r.registry.delete_session(&id).await {
                        warn!(session = %id, error = %e, "cannot remove the ended session from the registry; it expires there by itself");
                    }
                }
                Some(Released::Expired) => {
                    let left = match r.registry.session_ttl(&id).await {
                        Ok(left) => left,
                        Err(e) => {
                            debug!(session = %id, error = %e, "cannot read the session's ttl");
                            return;
                        }
                    };
                    if left.is_some_and(|left| left > r.period()) {
                        debug!(session = %id, "idle here but used on another replica: kept");
                        return;
                    }
                    let _ = r.registry.delete_session(&id).await;
                    if snapshot.is_bound() {
                        // Its upstream lived in this copy, and ended with it.
                        return;
                    }
                    // End the upstream sessions: continue them here, then close.
                    let outlet = Arc::new(Discard);
                    match r
                        .hub
                        .resume(&id, &snapshot, SessionOptions::default(), outlet)
                        .await
                    {
                        Ok((core, _)) => {
                            core.set_replicated(false);
                            core.close();
                            debug!(session = %id, "idle on every replica: ended");
                        }
                        Err(e) => {
                            debug!(session = %id, error = %e, "cannot end the upstream sessions of an idle session")
                        }
                    }
                }
                Some(Released::Evicted | Released::Shutdown) => {}
            }
        });
    }
}

/// An outlet for a session opened only to end it.
#[derive(Debug)]
struct Discard;

impl mcp_proxy_core::Outlet for Discard {
    fn send(&self, _: mcp_proxy_core::Outbound) -> bool {
        true
    }

    fn ended(&self) {}
}
