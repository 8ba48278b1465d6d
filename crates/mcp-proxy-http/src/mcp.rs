//! The MCP proxy endpoints of each upstream `name`:
//!
//! - legacy HTTP+SSE (2024-11-05): `GET /{name}/sse[/{extra}]`, `POST /{name}/message`;
//! - streamable HTTP (2025-03-26 … 2025-11-25): `POST|GET|DELETE /{name}/stream[/{extra}]`
//!   and the alias `/{name}/mcp`.
//!
//! Each request passes the per-server [`guard`] (Origin, allowed IPs, tokens) first. A
//! client session is a [`mcp_proxy_core::ClientSession`]; this module carries its messages
//! over HTTP ([`session`]), in SSE events with replay buffers ([`sse`]).

pub(crate) mod forward;
mod guard;
mod legacy_sse;
mod modern;
pub(crate) mod mrtr;
pub(crate) mod replicas;
mod seal;
mod session;
mod sse;
mod streamable;
pub(crate) mod token;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::header::{HeaderValue, WWW_AUTHENTICATE};
use http::{Method, Request, Response};
use hyper::body::Incoming;

use crate::app::App;
use crate::body::Body;
use crate::error::{Error, ErrorKind};
use crate::security::ClientAddr;
use mcp_proxy_core::metrics::SessionTransport;
use mcp_types::RequestId;
use session::HttpSession;

/// Names that can never be upstream names (they are the proxy's own paths).
const RESERVED: &[&str] = mcp_types::name::RESERVED_NAMES;

/// Which proxy endpoint a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// The upstream.
    pub(crate) name: String,
    /// The transport side.
    pub(crate) kind: Kind,
    /// `{extra}` path segments, still percent-encoded.
    pub(crate) extra: Option<String>,
}

/// The kinds of proxy endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `GET /{name}/sse[/{extra}]`.
    Sse,
    /// `POST /{name}/message`.
    Message,
    /// `/{name}/stream[/{extra}]` and `/{name}/mcp`.
    Stream,
}

impl Endpoint {
    /// The endpoint's route template, for metrics.
    pub(crate) fn template(&self, path: &str) -> &'static str {
        if path == "/mcp" {
            return "/mcp";
        }
        let alias_mcp = path.ends_with("/mcp");
        match (self.kind, self.extra.is_some()) {
            (Kind::Sse, false) => "/{name}/sse",
            (Kind::Sse, true) => "/{name}/sse/{extra}",
            (Kind::Message, _) => "/{name}/message",
            (Kind::Stream, false) if alias_mcp => "/{name}/mcp",
            (Kind::Stream, false) => "/{name}/stream",
            (Kind::Stream, true) => "/{name}/stream/{extra}",
        }
    }

    /// Matches `/{name}/{sse|message|stream|mcp}[/{extra}]`; other paths are not ours.
    pub(crate) fn parse(path: &str) -> Option<Self> {
        if path == "/mcp" {
            // The built-in group of every upstream (`aggregate_all`).
            return Some(Self {
                name: mcp_proxy_core::group::BUILT_IN.to_owned(),
                kind: Kind::Stream,
                extra: None,
            });
        }
        let rest = path.strip_prefix('/')?;
        let (name, rest) = rest.split_once('/')?;
        if name.is_empty() || RESERVED.contains(&name) {
            return None;
        }
        let (what, extra) = match rest.split_once('/') {
            Some((what, extra)) => (what, Some(extra.trim_end_matches('/'))),
            None => (rest, None),
        };
        let extra = extra.filter(|e| !e.is_empty()).map(str::to_owned);
        let kind = match what {
            "sse" => Kind::Sse,
            "stream" => Kind::Stream,
            "message" if extra.is_none() => Kind::Message,
            "mcp" if extra.is_none() => Kind::Stream,
            _ => return None,
        };
        Some(Self {
            name: name.to_owned(),
            kind,
            extra,
        })
    }
}

/// The HTTP sessions of the proxy endpoints, by session id.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    sessions: Mutex<HashMap<String, Arc<HttpSession>>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<HttpSession>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn insert(&self, session: Arc<HttpSession>) {
        self.lock().insert(session.id().to_owned(), session);
    }

    /// Every session held now (a copy of the list).
    pub(crate) fn all(&self) -> Vec<Arc<HttpSession>> {
        self.lock().values().cloned().collect()
    }

    /// The session `id` of upstream `name` on `transport`, if it is still open.
    pub(crate) fn get(
        &self,
        name: &str,
        id: &str,
        transport: SessionTransport,
    ) -> Option<Arc<HttpSession>> {
        self.lock()
            .get(id)
            .filter(|s| s.upstream_name() == name && s.transport() == transport && !s.is_ended())
            .cloned()
    }

    pub(crate) fn remove(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// Serves one proxy-endpoint request. Every error is answered with a JSON-RPC error
/// object (MCP clients read those), with the HTTP status of [`Error::parts`].
pub(crate) async fn handle(
    app: &App,
    endpoint: Endpoint,
    req: Request<Incoming>,
    client: ClientAddr,
) -> Result<Response<Body>, Error> {
    Ok(match serve(app, &endpoint, req, client).await {
        Ok(resp) => resp,
        Err(err) => refused(&endpoint.name, &err, None),
    })
}

/// Logs a refused or failed MCP-endpoint request and answers it with its JSON-RPC error,
/// for request `id` when it is known.
pub(crate) fn refused(endpoint: &str, err: &Error, id: Option<&RequestId>) -> Response<Body> {
    let (status, kind, _) = err.parts();
    let code = kind.as_str();
    if status.is_server_error() {
        tracing::warn!(upstream = %endpoint, code, error = %err, "mcp request failed");
    } else {
        tracing::debug!(upstream = %endpoint, code, error = %err, "mcp request refused");
    }
    jsonrpc_error_for(err, id)
}

/// The answer for a name that is not registered. To a caller without credentials it is
/// the same 401 a protected server gives, so the difference does not tell which names
/// exist; 404 when no server asks for credentials at all, or to a caller with a valid
/// global token.
fn unknown(app: &App, endpoint: &Endpoint, headers: &http::HeaderMap) -> Error {
    let cfg = app.config();
    let manager = &app.inner().manager;
    let protected = !cfg.global_auth_tokens.is_empty()
        || manager.upstreams().iter().any(|u| {
            u.derived(|def| guard::Policy::new(def, cfg))
                .requires_auth()
        })
        || manager.groups().iter().any(|g| {
            g.derived(|def| guard::Policy::for_group(def, cfg))
                .requires_auth()
        });
    if protected {
        match crate::security::check_bearer(headers, &cfg.global_auth_tokens) {
            Ok(()) => {}
            Err(f) => return Error::Unauthorized(f.message()),
        }
    }
    Error::McpNotFound(endpoint.name.clone())
}

/// The JSON-RPC error object for an error on an MCP endpoint: `-32700` for a body that
/// is not JSON, `-32603` for the proxy's own failures (5xx), `-32600` for every other
/// refusal; `data.code` carries the machine-readable code (`session_not_found`, …) and
/// `data.details` any details. The id is `null`: the request it answers may not be known
/// (see [`jsonrpc_error_for`] when it is).
pub(crate) fn jsonrpc_error_response(err: &Error) -> Response<Body> {
    jsonrpc_error_for(err, None)
}

/// [`jsonrpc_error_response`] answering request `id` (`null` when `None`).
pub(crate) fn jsonrpc_error_for(err: &Error, id: Option<&RequestId>) -> Response<Body> {
    use mcp_types::jsonrpc::codes;
    let (status, code, details) = err.parts();
    let rpc_code = match err {
        Error::InvalidJson { .. } => codes::PARSE_ERROR,
        _ if status.is_server_error() => codes::INTERNAL_ERROR,
        _ => codes::INVALID_REQUEST,
    };
    let mut data = serde_json::json!({ "code": code });
    if let Some(d) = details {
        data["details"] = d;
    }
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": rpc_code, "message": err.to_string(), "data": data},
    });
    let mut resp = crate::body::json_response(status, &body);
    match err {
        Error::Unauthorized(_) => {
            resp.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"mcp-proxy\""),
            );
        }
        Error::MethodNotAllowed { allow, .. } => {
            let list = allow.iter().map(Method::as_str).collect::<Vec<_>>();
            if let Ok(v) = HeaderValue::from_str(&list.join(", ")) {
                resp.headers_mut().insert(http::header::ALLOW, v);
            }
        }
        _ => {}
    }
    resp
}

async fn serve(
    app: &App,
    endpoint: &Endpoint,
    mut req: Request<Incoming>,
    client: ClientAddr,
) -> Result<Response<Body>, Error> {
    // A request another replica forwarded carries the client's address it determined.
    let via = app
        .inner()
        .forward
        .inbound(&mut req, client, app.replica_id())?;
    let client = via.client;
    req.extensions_mut().insert(via);
    let manager = &app.inner().manager;
    let (policy, is_http) = if let Some(upstream) = manager.upstream(&endpoint.name) {
        let policy = upstream.derived(|def| guard::Policy::new(def, app.config()));
        (policy, upstream.definition().transport.is_http())
    } else if let Some(group) = manager.group(&endpoint.name) {
        (
            group.derived(|def| guard::Policy::for_group(def, app.config())),
            false,
        )
    } else {
        return Err(unknown(app, endpoint, req.headers()));
    };
    guard::check(
        app.config(),
        app.inner().manager.prometheus(),
        &policy,
        req.headers(),
        client,
    )?;
    if let Some(extra) = &endpoint.extra
        && let Err(why) = mcp_types::validate::check_path_suffix(extra)
    {
        return Err(crate::error::bad(ErrorKind::InvalidPath, why));
    }
    if endpoint.extra.is_some() && !is_http {
        return Err(Error::RouteNotFound(format!(
            "{}: {{extra}} path segments need an http upstream; {:?} is not one",
            req.uri().path(),
            endpoint.name
        )));
    }
    let name = endpoint.name.as_str();
    const STREAM_METHODS: &[Method] = &[Method::GET, Method::POST, Method::DELETE];
    match (endpoint.kind, req.method()) {
        (Kind::Stream, &Method::POST) => streamable::post(app, endpoint, name, &policy, req).await,
        (Kind::Stream, &Method::GET) => streamable::get(app, endpoint, &policy, req).await,
        (Kind::Stream, &Method::DELETE) => streamable::delete(app, endpoint, &policy, req).await,
        (Kind::Sse, &Method::GET) => legacy_sse::open(app, endpoint, name, &policy, req),
        (Kind::Message, &Method::POST) => legacy_sse::post(app, endpoint, req).await,
        (kind, method) => Err(Error::MethodNotAllowed {
            method: method.clone(),
            path: req.uri().path().to_owned(),
            allow: match kind {
                Kind::Stream => STREAM_METHODS,
                Kind::Sse => &[Method::GET],
                Kind::Message => &[Method::POST],
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_matched() {
        let e = Endpoint::parse("/fs/mcp").unwrap();
        assert_eq!(
            (e.name.as_str(), e.kind, e.extra),
            ("fs", Kind::Stream, None)
        );
        let e = Endpoint::parse("/fs/stream/a/b").unwrap();
        assert_eq!(e.extra.as_deref(), Some("a/b"));
        let e = Endpoint::parse("/fs/sse/x").unwrap();
        assert_eq!((e.kind, e.extra.as_deref()), (Kind::Sse, Some("x")));
        assert_eq!(Endpoint::parse("/fs/message").unwrap().kind, Kind::Message);
        for not_ours in [
            "/admin/mcp",
            "/healthz",
            "/fs",
            "/fs/other",
            "/metrics/sse",
            "/fs/mcp/x",
        ] {
            assert_eq!(Endpoint::parse(not_ours), None, "{not_ours}");
        }
    }
}
