//! `/admin/groups`: create, read, update and delete groups ("virtual servers"), with the
//! conventions of `/admin/mcps` (every failing field, `ETag` / `If-Match`, secrets shown as
//! handles). The built-in group of every upstream (`mcp`, served at `/mcp`) is listed and
//! readable, never changed: PUT and DELETE on it answer 409 `read_only`.

use http::header::{HeaderValue, LOCATION};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use mcp_proxy_core::group::{BUILT_IN, GroupStatus};
use mcp_types::GroupDefinition;
use mcp_types::validate::GroupDraft;
use serde::Serialize;
use tracing::info;

use super::etag::{IfMatch, precondition_failed, set_etag};
use super::{invalid, read_body, renamed, stale};
use crate::app::App;
use crate::body::{self, Body, json_response};
use crate::error::Error;
use crate::router::Route;

/// One group as the Admin API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    /// The definition, secrets as handles.
    group: GroupDefinition,
    /// Members and their state, catalog sizes, collisions, unknown overrides.
    status: GroupStatus,
    /// The built-in group, which the Admin API does not change.
    read_only: bool,
    /// Whether its endpoints ask clients for a bearer token.
    auth_required: bool,
}

impl Entry {
    fn new(app: &App, def: &GroupDefinition, status: GroupStatus, read_only: bool) -> Self {
        Self {
            auth_required: def.require_auth
                || !def.auth_tokens.is_empty()
                || !app.config().global_auth_tokens.is_empty(),
            group: def.redacted(),
            status,
            read_only,
        }
    }

    /// A stored group, with this replica's view of its members.
    fn stored(app: &App, def: &GroupDefinition) -> Self {
        Self::new(app, def, app.inner().manager.group_status(def), false)
    }
}

/// Handles `/admin/groups` and `/admin/groups/{name}`.
pub(crate) async fn groups(
    app: &App,
    route: Route,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    match (route, req.method().clone()) {
        (Route::Groups, Method::GET | Method::HEAD) => list(app).await,
        (Route::Groups, Method::POST) => create(app, req).await,
        (Route::Group(name), Method::GET | Method::HEAD) => fetch(app, &name).await,
        (Route::Group(name), Method::PUT) => update(app, &name, req).await,
        (Route::Group(name), Method::DELETE) => delete(app, &name, &req).await,
        (route, method) => Err(Error::Internal(format!(
            "group handler reached with {method} {route:?}"
        ))),
    }
}

/// The built-in group's entry, when it is served (`aggregate_all`).
fn built_in(app: &App, name: &str) -> Option<Entry> {
    let manager = &app.inner().manager;
    let group = manager.group(name).filter(|g| g.is_built_in())?;
    Some(Entry::new(
        app,
        &group.definition(),
        group.status(manager),
        true,
    ))
}

/// Refuses a change to the built-in group.
fn refuse_built_in(app: &App, name: &str) -> Result<(), Error> {
    match built_in(app, name) {
        Some(_) => Err(Error::ReadOnly(name.to_owned())),
        None => Ok(()),
    }
}

fn listing(entries: Vec<Entry>) -> Response<Body> {
    json_response(
        StatusCode::OK,
        &serde_json::json!({ "count": entries.len(), "groups": entries }),
    )
}

async fn list(app: &App) -> Result<Response<Body>, Error> {
    let manager = &app.inner().manager;
    let mut entries: Vec<Entry> = match app.inner().store.list_groups().await {
        Ok(defs) => defs.iter().map(|d| Entry::stored(app, d)).collect(),
        Err(e) if e.is_retryable() => {
            // The store is down: show what this replica runs.
            let mut entries: Vec<Entry> = manager
                .groups()
                .iter()
                .filter(|g| !g.is_built_in())
                .map(|g| Entry::new(app, &g.definition(), g.status(manager), false))
                .collect();
            entries.extend(built_in(app, BUILT_IN));
            entries.sort_by(|a, b| a.group.name.cmp(&b.group.name));
            return Ok(stale(listing(entries), &e));
        }
        Err(e) => return Err(e.into()),
    };
    entries.extend(built_in(app, BUILT_IN));
    entries.sort_by(|a, b| a.group.name.cmp(&b.group.name));
    Ok(listing(entries))
}

async fn fetch(app: &App, name: &str) -> Result<Response<Body>, Error> {
    if let Some(entry) = built_in(app, name) {
        return Ok(json_response(StatusCode::OK, &entry));
    }
    let def = match app.inner().store.get_group(name).await {
        Ok(def) => def.ok_or_else(|| Error::GroupNotFound(name.to_owned()))?,
        Err(e) if e.is_retryable() => match app.inner().manager.group(name) {
            Some(group) => {
                let def = group.definition();
                let entry = Entry::new(app, &def, group.status(&app.inner().manager), false);
                let mut resp = json_response(StatusCode::OK, &entry);
                set_etag(resp.headers_mut(), &*def);
                return Ok(stale(resp, &e));
            }
            None => return Err(e.into()),
        },
        Err(e) => return Err(e.into()),
    };
    let mut resp = json_response(StatusCode::OK, &Entry::stored(app, &def));
    set_etag(resp.headers_mut(), &def);
    Ok(resp)
}

/// A failed store write as the HTTP error; a version mismatch is the 412 of `If-Match`.
fn write_error(e: mcp_store::Error) -> Error {
    use mcp_store::Error as S;
    match e {
        S::GroupNotFound(n) => Error::GroupNotFound(n),
        e @ (S::GroupAlreadyExists(_) | S::NameTaken { .. }) => Error::Exists(e.to_string()),
        S::VersionMismatch { name, current, .. } => precondition_failed("group", &name, current),
        other => Error::Store(other),
    }
}

/// Reads a group from the body, leniently (see [`GroupDraft`]); the server-set fields a
/// client sends (timestamps, version) are ignored.
async fn read_draft(app: &App, req: Request<Incoming>) -> Result<GroupDraft, Error> {
    let mut draft: GroupDraft = body::parse_draft(&read_body(app, req).await?)?;
    draft.definition_mut().clear_server_fields();
    Ok(draft)
}

async fn create(app: &App, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let group = read_draft(app, req)
        .await?
        .finish(|_, _| {})
        .map_err(invalid)?;
    let store = &app.inner().store;
    let max = app.inner().manager.config().max_connections;
    if store.list_groups().await?.len() >= max {
        return Err(Error::TooManyGroups(max));
    }
    let stored = store.create_group(group).await.map_err(write_error)?;
    info!(group = %stored.name, members = stored.members.len(), "group created");
    // The change feed brings the same event; applying it now makes the answer current.
    app.inner().manager.apply_group_put(stored.clone());
    let mut resp = json_response(StatusCode::CREATED, &Entry::stored(app, &stored));
    set_etag(resp.headers_mut(), &stored);
    if let Ok(v) = HeaderValue::from_str(&format!("/admin/groups/{}", stored.name)) {
        resp.headers_mut().insert(LOCATION, v);
    }
    Ok(resp)
}

async fn update(app: &App, name: &str, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    refuse_built_in(app, name)?;
    let if_match = IfMatch::parse(req.headers());
    let mut draft = read_draft(app, req).await?;
    let sent = &draft.definition().name;
    if draft.is_readable("name") && sent != name {
        return Err(renamed("a group", sent, name));
    }
    let store = &app.inner().store;
    let existing = store
        .get_group(name)
        .await?
        .ok_or_else(|| Error::GroupNotFound(name.to_owned()))?;
    if draft.is_readable("name") {
        draft.definition_mut().restore_secrets(&existing);
    }
    let group = draft.finish(|_, _| {}).map_err(invalid)?;
    // An invalid body is a 400 whatever the precondition; the store checks the version
    // again, atomically with the write.
    let expected = if_match.check(&existing)?;
    let stored = store
        .update_group_if(group, expected)
        .await
        .map_err(write_error)?;
    info!(group = %stored.name, "group updated");
    app.inner().manager.apply_group_put(stored.clone());
    let mut resp = json_response(StatusCode::OK, &Entry::stored(app, &stored));
    set_etag(resp.headers_mut(), &stored);
    Ok(resp)
}

async fn delete(app: &App, name: &str, req: &Request<Incoming>) -> Result<Response<Body>, Error> {
    refuse_built_in(app, name)?;
    let store = &app.inner().store;
    let if_match = IfMatch::parse(req.headers());
    let expected = match store.get_group(name).await? {
        Some(existing) => if_match.check(&existing)?,
        // Not found: the delete says so.
        None => None,
    };
    let version = store
        .delete_group_if(name, expected)
        .await
        .map_err(write_error)?;
    info!(group = %name, "group deleted");
    app.inner().manager.apply_group_delete(name, Some(version));
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}
