//! The manager: owns every upstream, follows the store's change feed, and answers the
//! Admin API's live questions (statuses, tools, calls, metrics).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mcp_store::{Store, StoreEvent};
use mcp_types::mcp::{CallToolParams, methods};
use mcp_types::{ConnectionState, McpDefinition, McpStatus};
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::connector::Connector;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::upstream::Upstream;

mod groups;
mod registration;
mod table;

pub use registration::validate_definition;

use table::Table;

/// Settings of the manager.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Most upstream definitions: [`Manager::register`] refuses one more (its docs say
    /// how this holds across replicas), and a replica never runs more.
    pub max_connections: usize,
    /// Serve the built-in group of every upstream (`/mcp`).
    pub aggregate_all: bool,
    /// Keep the built-in group's names within `^[A-Za-z0-9_-]{1,64}$`.
    pub strict_names: bool,
    /// When non-empty, the only programs stdio definitions may name (checked at
    /// registration; the connector checks again before each spawn, see
    /// `mcp_transport::TransportOptions::allowed_commands`).
    pub stdio_allowed_commands: Vec<String>,
}

/// Default `max_connections` (upstream definitions).
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            aggregate_all: true,
            strict_names: false,
            stdio_allowed_commands: Vec::new(),
        }
    }
}

/// An item of an aggregated listing, tagged with its upstream.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tagged<T> {
    /// The item, as the upstream sent it.
    #[serde(flatten)]
    pub item: T,
    /// The upstream's name.
    pub mcp_name: String,
}

/// An upstream that could not contribute to a listing.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListingError {
    /// The upstream's name.
    pub mcp_name: String,
    /// Why.
    pub error: String,
}

/// An aggregated listing with its partial failures.
#[derive(Debug, Clone, Serialize)]
pub struct Listing<T> {
    /// The items.
    pub items: Vec<Tagged<T>>,
    /// Upstreams that are down or failed to list.
    pub errors: Vec<ListingError>,
}

/// The JSON metrics snapshot (`/admin/metrics`).
#[derive(Debug, Clone, Serialize)]
pub struct MetricsSnapshot {
    /// Upstream definitions.
    pub total_clients: usize,
    /// Upstreams connected.
    pub connected: usize,
    /// Upstreams connecting.
    pub connecting: usize,
    /// Upstreams in error.
    pub errored: usize,
    /// Upstreams disconnected.
    pub disconnected: usize,
    /// Requests forwarded, all upstreams.
    pub total_requests: u64,
    /// Failed requests, all upstreams.
    pub total_errors: u64,
    /// The cap on definitions.
    pub max_connections: usize,
    /// Client sessions open.
    pub active_sessions: usize,
    /// Seconds since the manager started.
    pub uptime_seconds: u64,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    connector: Arc<dyn Connector>,
    config: ManagerConfig,
    table: RwLock<Table<Upstream>>,
    /// Upstreams served without being in the store (see [`Manager::apply_unstored`]).
    unstored: Mutex<HashSet<String>>,
    cancel: CancellationToken,
    /// Every task the manager owns: the change-feed follower, each upstream's supervisor
    /// and status writes, retiring connections. [`Manager::shutdown`] awaits them.
    tasks: TaskTracker,
    /// Held from the count to the write of a registration (see [`registration`]).
    registering: tokio::sync::Mutex<()>,
    loaded: AtomicBool,
    started: Instant,
    prometheus: Arc<Metrics>,
    /// Groups by name (see [`crate::group`]), with the versions applied.
    groups: RwLock<Table<crate::group::Group>>,
    /// Bumped when any upstream's catalog or state changes, or a group changes.
    changes: Arc<tokio::sync::watch::Sender<u64>>,
}

/// Owns the upstreams. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Manager {
    inner: Arc<Inner>,
}

impl Manager {
    /// A manager over `store`, connecting through `connector`. Call [`Manager::start`].
    pub fn new(
        store: Arc<dyn Store>,
        connector: Arc<dyn Connector>,
        config: ManagerConfig,
    ) -> Self {
        let cancel = CancellationToken::new();
        let mut groups = Table::default();
        if config.aggregate_all {
            let all = crate::group::Group::everything(config.strict_names, &cancel);
            groups.running.insert(all.name().to_owned(), Arc::new(all));
        }
        Self {
            inner: Arc::new(Inner {
                store,
                connector,
                config,
                table: RwLock::new(Table::default()),
                unstored: Mutex::default(),
                cancel,
                tasks: TaskTracker::new(),
                registering: tokio::sync::Mutex::new(()),
                loaded: AtomicBool::new(false),
                started: Instant::now(),
                prometheus: Arc::new(Metrics::new()),
                groups: RwLock::new(groups),
                changes: Arc::new(tokio::sync::watch::channel(0).0),
            }),
        }
    }

    /// Loads every stored definition and group and follows the store's change feed. Never fails:
    /// an upstream that cannot connect does not stop the others, and an unreachable store
    /// is retried in the background (see [`Manager::is_loaded`]).
    pub async fn start(&self) {
        let mut feed = self.inner.store.watch();
        if let Err(e) = self.resync().await {
            warn!(error = %e, "cannot load definitions yet; retrying in the background");
        }
        let me = self.clone();
        self.inner.tasks.spawn(async move {
            let mut retry = tokio::time::interval(Duration::from_secs(2));
            retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = me.inner.cancel.cancelled() => break,
                    ev = feed.next() => match ev {
                        Some(StoreEvent::Put(def)) => me.apply_put(def),
                        Some(StoreEvent::Deleted { name, version }) => me.apply_delete(&name, version),
                        Some(StoreEvent::GroupPut(group)) => me.apply_group_put(group),
                        Some(StoreEvent::GroupDeleted { name, version }) => {
                            me.apply_group_delete(&name, version);
                        }
                        Some(StoreEvent::Resync) => {
                            if let Err(e) = me.resync().await {
                                warn!(error = %e, "resync failed");
                            }
                        }
                        None => {
                            warn!("the store's change feed ended; re-subscribing");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            feed = me.inner.store.watch();
                        }
                    },
                    _ = retry.tick(), if !me.is_loaded() => {
                        if me.resync().await.is_ok() {
                            info!("definitions loaded");
                        }
                    }
                }
            }
        });
    }

    /// Whether the definitions and groups have been loaded from the store at least once.
    pub fn is_loaded(&self) -> bool {
        self.inner.loaded.load(Ordering::Acquire)
    }

    /// Makes the running upstreams and groups match the store. What this replica applied
    /// after the listings were read (its own writes meanwhile) stays: the listings reflect
    /// the writes up to the store's version read before them, and only names missing from
    /// them that run at that version or older are taken as deleted.
    pub async fn resync(&self) -> Result<(), Error> {
        let listed_at = self.inner.store.version().await?;
        let defs = self.inner.store.list().await?;
        let groups = self.inner.store.list_groups().await?;
        let names: Vec<String> = defs.iter().map(|d| d.name.clone()).collect();
        for def in defs {
            self.apply_put(def);
        }
        let unstored = self.unstored().clone();
        let stale: Vec<String> = self
            .read()
            .running
            .keys()
            .filter(|n| !names.contains(n) && !unstored.contains(*n))
            .cloned()
            .collect();
        for name in stale {
            self.apply_delete(&name, Some(listed_at));
        }
        self.resync_groups(groups, listed_at);
        self.inner.loaded.store(true, Ordering::Release);
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table<Upstream>> {
        self.inner.table.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table<Upstream>> {
        self.inner.table.write().unwrap_or_else(|p| p.into_inner())
    }

    fn unstored(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.inner
            .unstored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Adds the upstream, or replaces it when its configuration changed (hot reload).
    /// Idempotent: the same definition twice changes nothing. A definition whose version
    /// is not newer than the last change applied to its name (a definition, or its
    /// deletion) is ignored, so the interleaving of this replica's own writes and the
    /// change feed never brings an older definition back.
    pub fn apply_put(&self, def: McpDefinition) {
        self.unstored().remove(&def.name);
        self.apply(def);
    }

    /// Serves `def` although the store does not hold it: a declared server while the store
    /// cannot be reached. A resync leaves it running while the store lacks it; an
    /// [`apply_put`](Self::apply_put) of that name (once it is stored) takes it over, and
    /// with the same configuration nothing restarts.
    pub fn apply_unstored(&self, def: McpDefinition) {
        self.unstored().insert(def.name.clone());
        self.apply(def);
    }

    fn apply(&self, def: McpDefinition) {
        if self.inner.cancel.is_cancelled() {
            return;
        }
        let mut table = self.write();
        if !table.admits_put(&def.name, def.version) {
            debug!(upstream = %def.name, version = ?def.version, "ignoring a definition no newer than the last change applied");
            return;
        }
        let old = table.running.get(&def.name).cloned();
        if let Some(old) = &old
            && old.definition().same_config(&def)
        {
            table.record(&def.name, def.version);
            return;
        }
        if old.is_none() && table.running.len() >= self.inner.config.max_connections {
            warn!(upstream = %def.name, max = self.inner.config.max_connections, "max_connections reached; not starting");
            return;
        }
        let name = def.name.clone();
        let version = def.version;
        let up = Upstream::spawn(
            def,
            self.inner.connector.clone(),
            self.inner.store.clone(),
            self.inner.prometheus.clone(),
            &self.inner.cancel,
            self.inner.changes.clone(),
            &self.inner.tasks,
        );
        table.running.insert(name.clone(), up);
        table.record(&name, version);
        drop(table);
        match old {
            Some(old) => {
                old.detach_metrics();
                info!(upstream = %name, "definition changed; replacing the connection");
                let grace = old.definition().timeout;
                self.inner
                    .tasks
                    .spawn(async move { old.retire(grace).await });
            }
            None => info!(upstream = %name, "upstream added"),
        }
    }

    /// Removes the upstream and stops its connection. A deletion whose version (the
    /// store's, see [`mcp_store::StoreEvent::Deleted`]) is older than the definition
    /// applied is ignored.
    pub fn apply_delete(&self, name: &str, version: Option<u64>) {
        self.unstored().remove(name);
        let mut table = self.write();
        if !table.admits_delete(name, version) {
            debug!(upstream = %name, version = ?version, "ignoring a deletion older than the definition applied");
            return;
        }
        let old = table.running.remove(name);
        table.record(name, version);
        drop(table);
        if old.is_some() {
            self.inner.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
        if let Some(old) = old {
            info!(upstream = %name, "upstream removed");
            old.detach_metrics();
            old.stop();
            self.inner.prometheus.forget_upstream(name);
        }
    }

    /// The settings this manager was made with.
    pub fn config(&self) -> &ManagerConfig {
        &self.inner.config
    }

    /// The connector upstream connections are opened with (client sessions use it too).
    pub fn connector(&self) -> Arc<dyn Connector> {
        self.inner.connector.clone()
    }

    /// Whether `max_connections` leaves room for one more definition.
    pub fn has_room(&self) -> bool {
        self.read().running.len() < self.inner.config.max_connections
    }

    /// The upstream of that name.
    pub fn upstream(&self, name: &str) -> Option<Arc<Upstream>> {
        self.read().running.get(name).cloned()
    }

    /// Every upstream, sorted by name.
    pub fn upstreams(&self) -> Vec<Arc<Upstream>> {
        let mut v: Vec<_> = self.read().running.values().cloned().collect();
        v.sort_by(|a, b| a.name().cmp(b.name()));
        v
    }

    /// The live status of an upstream.
    pub fn status(&self, name: &str) -> Option<McpStatus> {
        self.upstream(name).map(|u| u.status())
    }

    /// Forces a fresh connection.
    pub fn reconnect(&self, name: &str) -> Result<(), Error> {
        let up = self
            .upstream(name)
            .ok_or_else(|| Error::UnknownMcp(name.to_owned()))?;
        up.reconnect();
        Ok(())
    }

    fn listing<T>(&self, pick: impl Fn(&Upstream) -> Vec<T>) -> Listing<T> {
        let mut items = Vec::new();
        let mut errors = Vec::new();
        for up in self.upstreams() {
            let catalog = up.catalog();
            if up.state() != ConnectionState::Connected || !catalog.is_loaded {
                errors.push(ListingError {
                    mcp_name: up.name().to_owned(),
                    error: up.not_connected().to_string(),
                });
                continue;
            }
            for e in &catalog.errors {
                errors.push(ListingError {
                    mcp_name: up.name().to_owned(),
                    error: e.clone(),
                });
            }
            items.extend(pick(&up).into_iter().map(|item| Tagged {
                item,
                mcp_name: up.name().to_owned(),
            }));
        }
        Listing { items, errors }
    }

    /// Every visible tool of every upstream (tool filters applied).
    pub fn tools(&self) -> Listing<mcp_types::mcp::Tool> {
        self.listing(|up| {
            up.catalog()
                .tools
                .iter()
                .filter(|t| up.definition().permits_tool(&t.name))
                .cloned()
                .collect()
        })
    }

    /// Every prompt of every upstream.
    pub fn prompts(&self) -> Listing<Value> {
        self.listing(|up| up.catalog().prompts.clone())
    }

    /// Every resource of every upstream.
    pub fn resources(&self) -> Listing<Value> {
        self.listing(|up| up.catalog().resources.clone())
    }

    /// Calls a tool and returns the whole `CallToolResult`, as the upstream sent it.
    pub async fn call_tool(
        &self,
        mcp: &str,
        tool: &str,
        arguments: Option<Value>,
    ) -> Result<Value, Error> {
        let up = self
            .upstream(mcp)
            .ok_or_else(|| Error::UnknownMcp(mcp.to_owned()))?;
        if !up.definition().permits_tool(tool) {
            return Err(Error::ToolBlocked {
                mcp: mcp.to_owned(),
                tool: tool.to_owned(),
            });
        }
        if up.client().is_none() {
            return Err(up.not_connected());
        }
        let catalog = up.catalog();
        if catalog.is_loaded && catalog.errors.is_empty() && !catalog.has_tool(tool) {
            return Err(Error::UnknownTool {
                mcp: mcp.to_owned(),
                tool: tool.to_owned(),
            });
        }
        let params = CallToolParams {
            name: tool.to_owned(),
            arguments,
            extra: serde_json::Map::new(),
        };
        let raw = up
            .request(
                methods::TOOLS_CALL,
                Some(mcp_types::jsonrpc::to_raw(&params)),
            )
            .await?;
        serde_json::from_str(raw.get()).map_err(|e| Error::Rpc {
            mcp: mcp.to_owned(),
            method: methods::TOOLS_CALL.to_owned(),
            error: mcp_types::ErrorObject::new(
                mcp_types::jsonrpc::codes::INTERNAL_ERROR,
                format!("the upstream's result is not JSON: {e}"),
            ),
        })
    }

    /// The Prometheus metrics, shared with the HTTP layer.
    pub fn prometheus(&self) -> &Arc<Metrics> {
        &self.inner.prometheus
    }

    /// The JSON metrics snapshot.
    pub fn metrics(&self, active_sessions: usize) -> MetricsSnapshot {
        let ups = self.upstreams();
        let mut m = MetricsSnapshot {
            total_clients: ups.len(),
            connected: 0,
            connecting: 0,
            errored: 0,
            disconnected: 0,
            total_requests: 0,
            total_errors: 0,
            max_connections: self.inner.config.max_connections,
            active_sessions,
            uptime_seconds: self.inner.started.elapsed().as_secs(),
        };
        for up in ups {
            let s = up.status();
            match s.state {
                ConnectionState::Connected => m.connected += 1,
                ConnectionState::Connecting => m.connecting += 1,
                ConnectionState::Error => m.errored += 1,
                ConnectionState::Disconnected => m.disconnected += 1,
            }
            m.total_requests += s.total_requests;
            m.total_errors += s.total_errors;
        }
        m
    }

    /// Stops every upstream and the change-feed follower, and waits (at most `grace`)
    /// for every task the manager owns to end: supervisors closing their connections
    /// (stdio children: stdin closed, SIGTERM, SIGKILL), retiring connections, status
    /// writes. Returns whether they all ended in time; those that did not are left to
    /// the runtime (their children are killed on drop).
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.inner.cancel.cancel();
        self.inner.tasks.close();
        drop(std::mem::take(&mut self.write().running));
        let ended = tokio::time::timeout(grace, self.inner.tasks.wait())
            .await
            .is_ok();
        if !ended {
            warn!(
                left = self.inner.tasks.len(),
                grace = %mcp_types::duration::format(grace),
                "upstream tasks still running after the shutdown deadline"
            );
        }
        ended
    }
}

#[cfg(test)]
mod tests {
    use mcp_store::MemoryStore;
    use mcp_test_support::definitions::unreachable as def;

    use super::*;
    use crate::TransportConnector;

    #[tokio::test]
    async fn an_unstored_upstream_survives_resyncs_until_the_store_takes_it_over() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let manager = Manager::new(
            store.clone(),
            Arc::new(TransportConnector::default()),
            ManagerConfig::default(),
        );
        manager.apply_unstored(def("declared"));
        let first = manager.upstream("declared").unwrap();
        manager.resync().await.unwrap();
        assert!(
            manager.upstream("declared").is_some(),
            "not removed for missing from the store"
        );
        let stored = store.create(def("declared")).await.unwrap();
        manager.apply_put(stored);
        assert!(
            Arc::ptr_eq(&first, &manager.upstream("declared").unwrap()),
            "the same configuration, stored, does not restart it"
        );
        store.delete("declared").await.unwrap();
        manager.resync().await.unwrap();
        assert!(
            manager.upstream("declared").is_none(),
            "once stored, it follows the store like any definition"
        );
        manager.shutdown(Duration::from_secs(1)).await;
    }
}
