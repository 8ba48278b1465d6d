//! The supervisor task: connect, watch, reconnect with back-off, stop.

use std::sync::Arc;
use std::time::Duration;

use mcp_transport::{ClientEvent, ClientEvents, ListenFilter, McpClient};
use mcp_types::jsonrpc::codes;
use mcp_types::mcp::{methods, modern};
use mcp_types::{ConnectionState, Era, ErrorObject, Outcome};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::Upstream;
use crate::backoff::{Backoff, HealthCounter};
use crate::connector::{Connection, Connector};
use crate::discovery::{self, Catalog, Lists};

/// Upstream messages the primary connection's owner may have waiting.
const EVENT_CAPACITY: usize = 64;
/// Longest wait for a modern upstream to acknowledge the listen that keeps discovery
/// current, before discovery runs anyway.
const LISTEN_ACK_WAIT: Duration = Duration::from_secs(5);

/// How a connected period ended.
enum End {
    Shutdown,
    Reconnect,
    SessionExpired(String),
    Lost(String),
}

pub(super) async fn run(up: Arc<Upstream>, connector: Arc<dyn Connector>) {
    let def = up.def.clone();
    let name = def.name.clone();
    let backoff = Backoff::new(def.reconnect_delay, def.max_reconnects);
    let mut failures: u32 = 0;
    let mut first = true;
    loop {
        if up.cancel.is_cancelled() {
            break;
        }
        if !first && up.reporting.load(std::sync::atomic::Ordering::Acquire) {
            up.metrics.reconnect(&name);
        }
        first = false;
        if up.status.set_state(ConnectionState::Connecting) {
            up.persist_status();
        }
        let (handler, events) = mcp_transport::event_channel(EVENT_CAPACITY);
        let attempt = tokio::select! {
            () = up.cancel.cancelled() => break,
            r = tokio::time::timeout(def.timeout, connector.connect(&def, handler)) => r,
        };
        match attempt {
            Ok(Ok(conn)) => match serve_connection(&up, conn, events).await {
                End::Shutdown => break,
                End::Reconnect => {
                    info!(upstream = %name, "reconnecting on request");
                    failures = 0;
                    continue;
                }
                End::SessionExpired(msg) => {
                    info!(upstream = %name, reason = %msg, "session expired; initializing again");
                    up.status.failed(msg, 0);
                    up.persist_status();
                    failures = 0;
                    continue;
                }
                End::Lost(msg) => {
                    warn!(upstream = %name, reason = %msg, "connection lost");
                    up.status.failed(msg, 0);
                    up.persist_status();
                    failures = 0;
                }
            },
            Ok(Err(e)) => {
                failures += 1;
                warn!(upstream = %name, attempt = failures, error = %e, "connect failed");
                up.status.failed(e.to_string(), failures);
                up.persist_status();
            }
            Err(_) => {
                failures += 1;
                let msg = format!(
                    "upstream {name:?}: connect timed out after {}",
                    mcp_types::duration::format(def.timeout)
                );
                warn!(upstream = %name, attempt = failures, "connect timed out");
                up.status.failed(msg, failures);
                up.persist_status();
            }
        }
        if !def.auto_reconnect || backoff.is_exhausted(failures) {
            info!(upstream = %name, failures, "not reconnecting until asked (PUT or /reconnect)");
            tokio::select! {
                () = up.cancel.cancelled() => break,
                () = up.reconnect.notified() => {
                    failures = 0;
                    continue;
                }
            }
        }
        let delay = backoff.delay_random(failures);
        debug!(upstream = %name, delay = ?delay, "waiting before reconnecting");
        tokio::select! {
            () = up.cancel.cancelled() => break,
            () = up.reconnect.notified() => failures = 0,
            () = tokio::time::sleep(delay) => {}
        }
    }
    up.set_client(None, None);
    up.status.set_state(ConnectionState::Disconnected);
    up.report_state(ConnectionState::Disconnected);
    debug!(upstream = %name, "supervisor stopped");
}

/// Runs one connected period: discovery, then events and health checks until it ends.
async fn serve_connection(up: &Arc<Upstream>, conn: Connection, mut events: ClientEvents) -> End {
    let Connection { client, init } = conn;
    let name = up.def.name.clone();
    let capabilities = init.capabilities.clone();
    // A modern upstream sends its list changes on a listen, opened before the lists are
    // read so no change falls between the two.
    let era = if client.is_modern() {
        Era::Modern
    } else {
        Era::Legacy
    };
    let _listener = if era.is_modern() {
        let listener = client.listen(ListenFilter::for_capabilities(&capabilities));
        if !listener
            .acknowledged(LISTEN_ACK_WAIT.min(up.def.timeout))
            .await
        {
            warn!(upstream = %name, "the upstream did not acknowledge subscriptions/listen; list changes may be missed");
        }
        Some(listener)
    } else {
        None
    };
    let mut catalog = Catalog::default();
    discovery::refresh(&client, &capabilities, Lists::All, &mut catalog).await;
    for e in &catalog.errors {
        warn!(upstream = %name, error = %e, "discovery failed");
    }
    up.set_catalog(catalog);
    up.status.connected(
        init.protocol_version.clone(),
        era,
        serde_json::to_value(&init.server_info).unwrap_or_default(),
        client.transport().pid(),
    );
    up.set_client(Some(client.clone()), Some(Arc::new(init)));
    up.persist_status();
    info!(upstream = %name, era = era.as_str(), "connected");

    let end = watch(up, &client, &mut events, &capabilities).await;
    up.set_client(None, None);
    if !matches!(end, End::Lost(_) | End::SessionExpired(_)) || !client.is_closed() {
        let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
    }
    end
}

async fn watch(
    up: &Arc<Upstream>,
    client: &McpClient,
    events: &mut ClientEvents,
    capabilities: &serde_json::Value,
) -> End {
    let def = &up.def;
    let mut tasks: JoinSet<Task> = JoinSet::new();
    let mut health = HealthCounter::default();
    let mut ping_pending = false;
    // A zero period would panic the ticker; validation refuses it, and this keeps a
    // definition from an older store entry from taking the supervisor down.
    let interval = def.health_check_interval.max(Duration::from_millis(100));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = up.cancel.cancelled() => return End::Shutdown,
            () = up.reconnect.notified() => return End::Reconnect,
            ev = events.recv() => match ev {
                None => return End::Lost("the connection's event channel closed".into()),
                Some(ClientEvent::Closed(reason)) => {
                    return if reason.is_session_expired() {
                        End::SessionExpired(reason.message)
                    } else {
                        End::Lost(reason.message)
                    };
                }
                Some(ClientEvent::Notification(n)) => {
                    if let Some(which) = Lists::for_notification(&n.method) {
                        let (client, caps, current) = (client.clone(), capabilities.clone(), up.catalog());
                        tasks.spawn(async move {
                            let mut catalog = (*current).clone();
                            discovery::refresh(&client, &caps, which, &mut catalog).await;
                            Task::Catalog(catalog)
                        });
                    }
                }
                Some(ClientEvent::Request(r)) => {
                    // Nobody is behind the primary connection to answer sampling,
                    // elicitation or roots.
                    let client = client.clone();
                    tasks.spawn(async move {
                        let error = ErrorObject::new(
                            codes::METHOD_NOT_FOUND,
                            format!("{} is not supported on the proxy's own connection", r.method),
                        );
                        let _ = client.respond(r.id, Outcome::Error(error)).await;
                        Task::Done
                    });
                }
            },
            _ = ticker.tick(), if def.health_check_enabled && !ping_pending => {
                ping_pending = true;
                let client = client.clone();
                let deadline = def.timeout.min(interval);
                // Any answer means alive. The modern revision has no `ping`; its
                // `server/discover` is as cheap.
                let probe = if client.is_modern() { modern::DISCOVER } else { methods::PING };
                tasks.spawn(async move {
                    let r = client.request_with_timeout(probe, None, deadline).await;
                    Task::Ping(r.map(|_| ()).map_err(|e| e.to_string()))
                });
            }
            Some(done) = tasks.join_next() => match done {
                Ok(Task::Catalog(catalog)) => up.set_catalog(catalog),
                Ok(Task::Ping(result)) => {
                    ping_pending = false;
                    let ok = result.is_ok();
                    if let Err(e) = &result {
                        warn!(upstream = %def.name, error = %e, "health check failed");
                    }
                    if health.record(ok) {
                        return End::Lost(format!(
                            "health check failed twice in a row: {}",
                            result.err().unwrap_or_default()
                        ));
                    }
                }
                Ok(Task::Done) | Err(_) => {}
            },
        }
    }
}

enum Task {
    Catalog(Catalog),
    Ping(Result<(), String>),
    Done,
}
