//! `/healthz`, `/readyz` and `/admin/metrics`.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{Response, StatusCode};
use mcp_types::ConnectionState;
use serde::Serialize;

use crate::app::App;
use crate::body::{Body, json_response};
use crate::error::Error;

const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness: the process serves requests.
pub(crate) fn healthz(app: &App) -> Response<Body> {
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "uptimeSeconds": app.inner().started.elapsed().as_secs(),
        }),
    )
}

/// Readiness: the store answers within a bounded time.
pub(crate) async fn readyz(app: &App) -> Response<Body> {
    let store = &app.inner().store;
    let probe = tokio::time::timeout(STORE_PROBE_TIMEOUT, store.ping()).await;
    let reason = match probe {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("store ({}) not ready: {e}", store.backend())),
        Err(_) => Some(format!(
            "store ({}) did not answer within {}",
            store.backend(),
            mcp_types::duration::format(STORE_PROBE_TIMEOUT)
        )),
    };
    match reason {
        None => json_response(
            StatusCode::OK,
            &serde_json::json!({ "status": "ready", "store": store.backend() }),
        ),
        Some(reason) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "status": "unavailable", "reason": reason }),
        ),
    }
}

/// The JSON metrics snapshot of DESIGN §2.4.
#[derive(Debug, Serialize)]
struct MetricsSnapshot {
    total_clients: usize,
    connected: usize,
    connecting: usize,
    errored: usize,
    disconnected: usize,
    total_requests: u64,
    total_errors: u64,
    max_connections: usize,
    active_sessions: usize,
    uptime_seconds: u64,
}

/// `/admin/metrics`, computed from the stored definitions and statuses.
pub(crate) async fn admin_metrics(app: &App) -> Result<Response<Body>, Error> {
    let inner = app.inner();
    let defs = inner.store.list().await?;
    let mut by_state: BTreeMap<&'static str, usize> = BTreeMap::new();
    let (mut total_requests, mut total_errors) = (0, 0);
    for def in &defs {
        let status = inner
            .store
            .load_status(&def.name)
            .await?
            .unwrap_or_default();
        *by_state.entry(status.state.as_str()).or_default() += 1;
        total_requests += status.total_requests;
        total_errors += status.total_errors;
    }
    let count = |s: ConnectionState| by_state.get(s.as_str()).copied().unwrap_or(0);
    let snapshot = MetricsSnapshot {
        total_clients: defs.len(),
        connected: count(ConnectionState::Connected),
        connecting: count(ConnectionState::Connecting),
        errored: count(ConnectionState::Error),
        disconnected: count(ConnectionState::Disconnected),
        total_requests,
        total_errors,
        max_connections: inner.config.max_connections,
        // Client sessions arrive with the proxy endpoints; none can exist before them.
        active_sessions: 0,
        uptime_seconds: inner.started.elapsed().as_secs(),
    };
    Ok(json_response(StatusCode::OK, &snapshot))
}
