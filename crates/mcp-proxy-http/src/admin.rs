//! `/admin/mcps`: create, read, update and delete upstream definitions; `mcps:import`
//! brings in a client's `mcpServers` document ([`import`]); groups (`groups`); the live
//! calls (discovery listings, tool calls, reconnect: `live`).

pub mod import;

use http::header::{HeaderValue, LOCATION};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use mcp_types::validate::Draft;
use mcp_types::{McpDefinition, McpStatus, ValidationErrors};
use serde::Serialize;

use crate::app::App;
use crate::body::{self, Body, json_response};
use crate::error::Error;
use crate::router::Route;

mod etag;
mod groups;
pub(crate) mod live;

use etag::{IfMatch, precondition_failed, set_etag};
pub(crate) use groups::groups;

/// One entry of the Admin API: a redacted definition, its status, and whether its proxy
/// endpoints ask clients for a token (`requireAuth`, `authTokens` or `global_auth_tokens`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    definition: McpDefinition,
    status: McpStatus,
    auth_required: bool,
}

impl Entry {
    fn new(app: &App, def: &McpDefinition, status: McpStatus) -> Self {
        Self {
            auth_required: def.require_auth
                || !def.auth_tokens.is_empty()
                || !app.config().global_auth_tokens.is_empty(),
            definition: def.redacted(),
            status,
        }
    }
}

/// Handles `/admin/mcps` and `/admin/mcps/{name}`.
pub(crate) async fn mcps(
    app: &App,
    route: Route,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    match (route, req.method().clone()) {
        (Route::Mcps, Method::GET | Method::HEAD) => list(app).await,
        (Route::Mcps, Method::POST) => create(app, req).await,
        (Route::Import, Method::POST) => import::handle(app, req).await,
        (Route::Mcp(name), Method::GET | Method::HEAD) => fetch(app, &name).await,
        (Route::Mcp(name), Method::PUT) => update(app, &name, req).await,
        (Route::Mcp(name), Method::DELETE) => delete(app, &name, &req).await,
        (route, method) => Err(Error::Internal(format!(
            "admin handler reached with {method} {route:?}"
        ))),
    }
}

/// The definition with this replica's live status; the stored status (another replica's
/// view) when this replica does not run the upstream.
async fn entry(app: &App, def: McpDefinition) -> Result<Entry, Error> {
    let status = match app.inner().manager.status(&def.name) {
        Some(live) => live,
        None => app
            .inner()
            .store
            .load_status(&def.name)
            .await?
            .unwrap_or_default(),
    };
    Ok(Entry::new(app, &def, status))
}

/// Header set on answers served from this replica's memory because the store is down.
const STALE_HEADER: &str = "x-mcp-proxy-store-unavailable";

async fn list(app: &App) -> Result<Response<Body>, Error> {
    let defs = match app.inner().store.list().await {
        Ok(defs) => defs,
        Err(e) if e.is_retryable() => {
            // The store is down but the upstreams run on: show what this replica runs.
            let mcps: Vec<Entry> = app
                .inner()
                .manager
                .upstreams()
                .iter()
                .map(|up| Entry::new(app, up.definition(), up.status()))
                .collect();
            let body = serde_json::json!({ "count": mcps.len(), "mcps": mcps });
            return Ok(stale(json_response(StatusCode::OK, &body), &e));
        }
        Err(e) => return Err(e.into()),
    };
    let mut mcps = Vec::with_capacity(defs.len());
    for def in defs {
        mcps.push(entry(app, def).await?);
    }
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "count": mcps.len(), "mcps": mcps }),
    ))
}

async fn fetch(app: &App, name: &str) -> Result<Response<Body>, Error> {
    let def = match app.inner().store.get(name).await {
        Ok(def) => def.ok_or_else(|| Error::McpNotFound(name.to_owned()))?,
        Err(e) if e.is_retryable() => match app.inner().manager.upstream(name) {
            Some(up) => {
                let entry = Entry::new(app, up.definition(), up.status());
                let mut resp = json_response(StatusCode::OK, &entry);
                set_etag(resp.headers_mut(), up.definition());
                return Ok(stale(resp, &e));
            }
            None => return Err(e.into()),
        },
        Err(e) => return Err(e.into()),
    };
    let mut resp = json_response(StatusCode::OK, &entry(app, def.clone()).await?);
    set_etag(resp.headers_mut(), &def);
    Ok(resp)
}

/// A failed store write as the HTTP error; a version mismatch is the 412 of `If-Match`.
fn write_error(e: mcp_store::Error) -> Error {
    match e {
        mcp_store::Error::NotFound(n) => Error::McpNotFound(n),
        mcp_store::Error::AlreadyExists(n) => Error::AlreadyExists(n),
        e @ mcp_store::Error::NameTaken { .. } => Error::Exists(e.to_string()),
        mcp_store::Error::VersionMismatch { name, current, .. } => {
            precondition_failed("mcp", &name, current)
        }
        other => Error::Store(other),
    }
}

/// Marks an answer as served from memory, saying why.
fn stale(mut resp: Response<Body>, why: &mcp_store::Error) -> Response<Body> {
    let text = why.to_string().replace(['\r', '\n'], " ");
    if let Ok(v) = HeaderValue::from_str(&text) {
        resp.headers_mut().insert(STALE_HEADER, v);
    }
    resp
}

/// The JSON body of a write, within `max_body_bytes`.
async fn read_body(app: &App, req: Request<Incoming>) -> Result<bytes::Bytes, Error> {
    let (parts, incoming) = req.into_parts();
    body::require_json(&parts.headers, body::Untyped::Json)?;
    body::read_limited(&parts.headers, incoming, app.config().max_body_bytes).await
}

/// Reads a definition from the body, leniently (see [`Draft`]); the server-set fields a
/// client sends (timestamps, version, source) are ignored.
async fn read_draft(app: &App, req: Request<Incoming>) -> Result<Draft, Error> {
    let mut draft: Draft = body::parse_draft(&read_body(app, req).await?)?;
    draft.definition_mut().clear_server_fields();
    Ok(draft)
}

/// The 400 for a PUT body naming `sent` at the path of `name`: `what` (a definition, a
/// group) cannot be renamed.
fn renamed(what: &str, sent: &str, name: &str) -> Error {
    Error::Invalid {
        message: format!(
            "the body names {sent:?} but the path names {name:?}: {what} cannot be renamed"
        ),
        details: serde_json::json!([{ "field": "name", "message": "must match the path" }]),
    }
}

/// Every problem of the draft at once (reading, [`McpDefinition::validate`], the
/// manager's [`extra_checks`](mcp_proxy_core::Manager::extra_checks)), or the definition
/// to register.
fn finish(app: &App, draft: Draft) -> Result<McpDefinition, Error> {
    let manager = &app.inner().manager;
    draft
        .finish(|def, errors| errors.0.extend(manager.extra_checks(def)))
        .map_err(invalid)
}

/// A failed registration (see [`mcp_proxy_core::Manager::register`]) as the HTTP error:
/// store refusals as for every write, the rest as the core said.
fn registration_error(e: mcp_proxy_core::Error) -> Error {
    match e {
        mcp_proxy_core::Error::Store(s) => write_error(s),
        e => Error::Core(e),
    }
}

/// The 400 answer for failing fields.
pub(crate) fn invalid(errors: ValidationErrors) -> Error {
    Error::Invalid {
        message: errors.to_string(),
        details: serde_json::to_value(errors.0).expect("field errors serialize"),
    }
}

async fn create(app: &App, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    // Nothing is stored: a placeholder for a kept secret stands for nothing, and
    // validation refuses it.
    let def = finish(app, read_draft(app, req).await?)?;
    let stored = app
        .inner()
        .manager
        .register(def)
        .await
        .map_err(registration_error)?;
    let location = format!("/admin/mcps/{}", stored.name);
    let mut resp = json_response(StatusCode::CREATED, &entry(app, stored.clone()).await?);
    set_etag(resp.headers_mut(), &stored);
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(LOCATION, v);
    }
    Ok(resp)
}

async fn update(app: &App, name: &str, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let if_match = IfMatch::parse(req.headers());
    let mut draft = read_draft(app, req).await?;
    let sent = &draft.definition().name;
    if draft.is_readable("name") && sent != name {
        return Err(renamed("a definition", sent, name));
    }
    let manager = &app.inner().manager;
    let existing = manager.registered(name).await.map_err(registration_error)?;
    if draft.is_readable("name") {
        draft.definition_mut().restore_secrets(&existing);
    }
    let def = finish(app, draft)?;
    // An invalid body is a 400 whatever the precondition; the store checks the version
    // again, atomically with the write.
    let expected = if_match.check(&existing)?;
    let stored = manager
        .update(def, expected)
        .await
        .map_err(registration_error)?;
    let mut resp = json_response(StatusCode::OK, &entry(app, stored.clone()).await?);
    set_etag(resp.headers_mut(), &stored);
    Ok(resp)
}

async fn delete(app: &App, name: &str, req: &Request<Incoming>) -> Result<Response<Body>, Error> {
    let manager = &app.inner().manager;
    let existing = manager.registered(name).await.map_err(registration_error)?;
    let expected = IfMatch::parse(req.headers()).check(&existing)?;
    manager
        .remove(name, expected)
        .await
        .map_err(registration_error)?;
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}
