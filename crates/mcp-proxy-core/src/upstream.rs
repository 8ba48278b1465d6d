//! One upstream: its definition, live status, discovery cache and current connection, with
//! the supervisor task that keeps it connected.

mod supervisor;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use mcp_store::Store;
use mcp_transport::McpClient;
use mcp_types::mcp::InitializeResult;
use mcp_types::{ConnectionState, McpDefinition, McpStatus, Outcome, Response};
use serde_json::value::RawValue;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connector::Connector;
use crate::discovery::Catalog;
use crate::error::Error;
use crate::live::LiveStatus;
use crate::metrics::{Metrics, RequestOutcome};

/// A supervised upstream. Shared (`Arc`) between the manager, the supervisor and callers.
#[derive(Debug)]
pub struct Upstream {
    def: McpDefinition,
    status: LiveStatus,
    catalog: RwLock<Arc<Catalog>>,
    client: RwLock<Option<McpClient>>,
    init: RwLock<Option<Arc<InitializeResult>>>,
    reconnect: Notify,
    cancel: CancellationToken,
    inflight: AtomicUsize,
    idle: Notify,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    /// False once replaced or removed: its state no longer speaks for the name.
    reporting: std::sync::atomic::AtomicBool,
    /// What another layer derived from the definition, once (see [`Upstream::derived`]).
    derived: crate::derived::Derived,
    /// Bumped whenever its catalog or state changes (groups recompute their catalogs).
    changes: Arc<tokio::sync::watch::Sender<u64>>,
    /// Its owner's tasks (the manager's): the supervisor and the status writes.
    tasks: TaskTracker,
}

/// Counts a request in flight; wakes retirement when the last one ends.
struct InflightGuard<'a>(&'a Upstream);

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// [`InflightGuard`] that owns its upstream, to travel with a response across tasks.
#[derive(Debug)]
pub(crate) struct OwnedInflight(Arc<Upstream>);

impl Drop for OwnedInflight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

impl Upstream {
    /// One request in flight fewer; wakes retirement when it was the last.
    fn request_ended(&self) {
        if self.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Creates the upstream and spawns its supervisor, which connects right away.
    pub(crate) fn spawn(
        def: McpDefinition,
        connector: Arc<dyn Connector>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        parent: &CancellationToken,
        changes: Arc<tokio::sync::watch::Sender<u64>>,
        tasks: &TaskTracker,
    ) -> Arc<Self> {
        let up = Arc::new(Self {
            def,
            status: LiveStatus::default(),
            catalog: RwLock::new(Arc::new(Catalog::default())),
            client: RwLock::new(None),
            init: RwLock::new(None),
            reconnect: Notify::new(),
            cancel: parent.child_token(),
            inflight: AtomicUsize::new(0),
            idle: Notify::new(),
            store,
            metrics,
            reporting: std::sync::atomic::AtomicBool::new(true),
            derived: crate::derived::Derived::default(),
            changes,
            tasks: tasks.clone(),
        });
        // Connecting from the first moment, so a registration's answer says so.
        up.status.set_state(ConnectionState::Connecting);
        up.report_state(ConnectionState::Connecting);
        up.tasks.spawn(supervisor::run(up.clone(), connector));
        up
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// The definition this upstream runs with.
    pub fn definition(&self) -> &McpDefinition {
        &self.def
    }

    /// Data a layer above derives from the definition (the HTTP layer's parsed
    /// allow-list, token digests and passthrough header names), built the first time it
    /// is asked for and kept as long as this upstream runs this definition: work that
    /// depends only on configuration is not redone per request. One type per upstream;
    /// asking for another type builds it afresh each time.
    pub fn derived<T: Send + Sync + 'static>(
        &self,
        build: impl FnOnce(&McpDefinition) -> T,
    ) -> Arc<T> {
        self.derived.get(|| build(&self.def))
    }

    /// The live status.
    pub fn status(&self) -> McpStatus {
        self.status.snapshot()
    }

    /// The connection state.
    pub fn state(&self) -> ConnectionState {
        self.status.state()
    }

    /// The era its primary connection found (the last one's while reconnecting); `None`
    /// until it first connected.
    pub fn era(&self) -> Option<mcp_types::Era> {
        self.status.era()
    }

    /// The discovery cache.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What the upstream answered to `initialize`, while connected.
    pub fn initialize_result(&self) -> Option<Arc<InitializeResult>> {
        self.init.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The current connection, if connected.
    pub fn client(&self) -> Option<McpClient> {
        self.client
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Asks for a fresh connection now, resetting the attempt count (also wakes an upstream
    /// resting in `error`).
    pub fn reconnect(&self) {
        self.reconnect.notify_one();
    }

    /// Sends a request on the primary connection, bounded by the definition's `timeout`.
    ///
    /// A JSON-RPC error from the upstream becomes [`Error::Rpc`].
    #[tracing::instrument(
        name = "upstream_request",
        skip_all,
        fields(upstream = %self.def.name, method = %method)
    )]
    pub async fn request(
        &self,
        method: &str,
        params: Option<Box<RawValue>>,
    ) -> Result<Box<RawValue>, Error> {
        let Some(client) = self.client() else {
            return Err(self.not_connected());
        };
        let _guard = self.track_inflight();
        let request = mcp_types::Request {
            id: mcp_types::RequestId::Null,
            method: method.to_owned(),
            params,
            extra: mcp_types::jsonrpc::Extra::new(),
        };
        let call = client.begin(request, None).map_err(Error::Upstream)?;
        match self.exchange(method, call).await {
            Ok(Response {
                outcome: Outcome::Result(raw),
                ..
            }) => Ok(raw),
            Ok(Response {
                outcome: Outcome::Error(error),
                ..
            }) => Err(Error::Rpc {
                mcp: self.def.name.clone(),
                method: method.to_owned(),
                error,
            }),
            Err(e) if e.is_timeout() => Err(Error::Timeout {
                mcp: self.def.name.clone(),
                what: method.to_owned(),
                after: self.def.timeout,
            }),
            Err(e) => Err(Error::Upstream(e)),
        }
    }

    /// Runs one request to this upstream, on any of its connections (the primary one or
    /// a client session's), with the definition's `timeout`. The one place every
    /// forwarded request is recorded: Prometheus counters and latency by method and
    /// outcome, and the live status (`totalRequests`, `totalErrors`, average latency).
    pub(crate) async fn exchange(
        &self,
        method: &str,
        call: mcp_transport::Call,
    ) -> Result<Response, mcp_transport::Error> {
        let started = Instant::now();
        let result = call.run(self.def.timeout).await;
        let elapsed = started.elapsed();
        let outcome = match &result {
            Ok(Response {
                outcome: Outcome::Result(_),
                ..
            }) => RequestOutcome::Ok,
            Ok(_) => RequestOutcome::Error,
            Err(e) if e.is_timeout() => RequestOutcome::Timeout,
            Err(_) => RequestOutcome::Unavailable,
        };
        self.metrics
            .record_request(&self.def.name, method, outcome, elapsed);
        self.status
            .record_request(elapsed, outcome == RequestOutcome::Ok);
        result
    }

    fn track_inflight(&self) -> InflightGuard<'_> {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        InflightGuard(self)
    }

    /// Counts a client session's request in flight on this upstream until the returned
    /// guard drops; a PUT retires the old upstream only once they have all finished (or
    /// after its `timeout`).
    pub(crate) fn track_inflight_owned(self: &Arc<Self>) -> OwnedInflight {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        OwnedInflight(self.clone())
    }

    pub(crate) fn not_connected(&self) -> Error {
        Error::NotConnected {
            mcp: self.def.name.clone(),
            state: self.status.state(),
            last_error: self.status.last_error(),
        }
    }

    /// Stops the supervisor and closes the connection (stdio: the child is stopped).
    pub(crate) fn stop(&self) {
        self.cancel.cancel();
    }

    /// Stops once the requests in flight have finished, or after `grace`.
    pub(crate) async fn retire(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        while self.inflight.load(Ordering::Acquire) > 0 {
            let idle = self.idle.notified();
            if self.inflight.load(Ordering::Acquire) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                break;
            }
        }
        self.stop();
    }

    /// Sets the state gauges, unless this upstream has been replaced or removed.
    pub(crate) fn report_state(&self, state: ConnectionState) {
        if self.reporting.load(Ordering::Acquire) {
            self.metrics.set_state(&self.def.name, state);
        }
    }

    /// Stops reporting state to the metrics (the name now belongs to a successor or
    /// to nobody).
    pub(crate) fn detach_metrics(&self) {
        self.reporting.store(false, Ordering::Release);
    }

    /// Resolves once the upstream is stopped (deleted, replaced by a PUT, shut down).
    pub async fn stopped(&self) {
        self.cancel.cancelled().await;
    }

    /// Whether the supervisor has been told to stop.
    pub fn is_stopped(&self) -> bool {
        self.cancel.is_cancelled()
    }

    fn set_client(&self, client: Option<McpClient>, init: Option<Arc<InitializeResult>>) {
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = client;
        *self.init.write().unwrap_or_else(|p| p.into_inner()) = init;
    }

    fn set_catalog(&self, catalog: Catalog) {
        let visible = catalog
            .tools
            .iter()
            .filter(|t| self.def.permits_tool(&t.name))
            .count();
        self.status
            .set_tool_count(Some(u32::try_from(visible).unwrap_or(u32::MAX)));
        *self.catalog.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(catalog);
        self.changed();
    }

    /// Tells whoever follows the upstreams (groups) that something changed.
    pub(crate) fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Writes the status to the store in the background (best effort, bounded).
    fn persist_status(self: &Arc<Self>) {
        self.report_state(self.status.state());
        self.changed();
        let up = self.clone();
        self.tasks.spawn(async move {
            let snapshot = up.status.snapshot();
            let save = up.store.save_status(&up.def.name, &snapshot);
            match tokio::time::timeout(Duration::from_secs(5), save).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(upstream = %up.def.name, error = %e, "status not saved")
                }
                Err(_) => tracing::debug!(upstream = %up.def.name, "status save timed out"),
            }
        });
    }
}
