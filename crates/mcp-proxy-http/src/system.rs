//! `/healthz`, `/readyz` and `/admin/metrics`.

use std::time::Duration;

use http::{Response, StatusCode};

use crate::app::App;
use crate::body::{Body, json_response};

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
    let reason = reason.or_else(|| {
        (!app.inner().manager.is_loaded())
            .then(|| "definitions not loaded from the store yet".to_owned())
    });
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

/// `/admin/metrics`: the manager's live view.
pub(crate) fn admin_metrics(app: &App) -> Response<Body> {
    json_response(
        StatusCode::OK,
        &app.inner().manager.metrics(app.sessions().active()),
    )
}

/// `/metrics`: Prometheus (OpenMetrics text).
pub(crate) fn prometheus(app: &App) -> Response<Body> {
    let mut resp = Response::new(crate::body::full(app.metrics().render()));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(mcp_proxy_core::metrics::CONTENT_TYPE),
    );
    resp
}
