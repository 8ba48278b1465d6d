//! Legacy HTTP+SSE (2024-11-05) toward clients: `GET /{name}/sse` opens the session's one
//! event stream (first event `endpoint`), `POST /{name}/message?sessionId=` carries each
//! client message (202), and answers come back as `message` events. Losing the stream ends
//! the session; its upstream requests are cancelled.
//!
//! With a session registry the endpoint uri also names the replica holding the stream
//! (`&replica=`): a `POST /message` that lands on another replica is forwarded to that
//! one while it lives ([`super::forward`]), and its answer arrives on the stream; once it
//! is gone, so is the session (404).

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mcp_proxy_core::SessionOptions;
use mcp_types::Message;
use tokio::sync::mpsc;

use super::forward::{Holder, Replay, Via};
use super::session::HttpSession;
use super::sse::{self, LIVE_CAPACITY, OnDrop};
use super::streamable::parse;
use super::{Endpoint, guard};
use crate::app::App;
use crate::body::{Body, full, read_limited, require_json};
use crate::error::{Error, ErrorKind, bad};
use mcp_proxy_core::metrics::SessionTransport;

/// `GET /{name}/sse[/{extra}]`.
pub(crate) fn open(
    app: &App,
    endpoint: &Endpoint,
    name: &str,
    policy: &guard::Policy,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let options = SessionOptions {
        extra_headers: guard::passthrough(policy, req.headers()),
        path_suffix: endpoint.extra.clone(),
    };
    let inner = app.inner();
    let (tx, rx) = mpsc::channel(LIVE_CAPACITY);
    let session = HttpSession::new(
        &inner.http_sessions,
        app.metrics(),
        SessionTransport::Sse,
        Some(tx),
        0,
    );
    let core = inner.sessions.open(name, options, session.clone())?;
    session.bind(core.clone());
    inner.http_sessions.insert(session);
    let mut uri = format!(
        "{}/{}/message?sessionId={}",
        app.config().base_path,
        name,
        core.id()
    );
    if let Some(me) = app.replica_id() {
        uri.push_str("&replica=");
        uri.extend(url::form_urlencoded::byte_serialize(me.as_bytes()));
    }
    tracing::debug!(session = %core.id(), endpoint = %name, "legacy sse session opened");
    // The event stream is the session: it does not expire while the stream is open, and
    // ends when the client drops it.
    let open = core.open_stream();
    let guard = OnDrop::new(move || {
        drop(open);
        core.close();
    });
    Ok(sse::sse_response(
        vec![sse::named_event("endpoint", &uri)],
        Some(rx),
        app.config().sse_keepalive,
        Some(guard),
    ))
}

/// `POST /{name}/message?sessionId=…` (also `session_id=`, as the Python SDK spells it).
pub(crate) async fn post(
    app: &App,
    endpoint: &Endpoint,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let query = |names: &[&str]| {
        req.uri().query().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| names.contains(&k.as_ref()))
                .map(|(_, v)| v.into_owned())
        })
    };
    let id = query(&["sessionId", "session_id"]);
    let holder = query(&["replica"]);
    let via = Via::of(&req);
    let Some(id) = id else {
        return Err(bad(
            ErrorKind::SessionRequired,
            "missing sessionId query parameter: use the endpoint uri sent by GET /{name}/sse",
        ));
    };
    let Some(session) = app
        .inner()
        .http_sessions
        .get(&endpoint.name, &id, SessionTransport::Sse)
    else {
        let (replica, address) = match not_here(app, &id, holder.as_deref()).await {
            Error::OnReplica { replica, address } if via.may_forward() => (replica, address),
            err => return Err(err),
        };
        let (headers, uri) = (req.headers().clone(), req.uri().clone());
        let body = read_limited(&headers, req.into_body(), app.config().max_body_bytes).await?;
        let replay = Replay {
            method: http::Method::POST,
            uri: &uri,
            headers: &headers,
            body,
        };
        let to = Holder { replica, address };
        let forward = &app.inner().forward;
        return forward.send(app, &endpoint.name, &via, &to, replay).await;
    };
    require_json(req.headers(), crate::body::Untyped::Json)?;
    let headers = req.headers().clone();
    let bytes = read_limited(&headers, req.into_body(), app.config().max_body_bytes).await?;
    let (messages, is_batch) = parse(&bytes)?;
    if is_batch {
        return Err(bad(
            ErrorKind::BatchNotSupported,
            "json-rpc batches are not part of the 2024-11-05 sse transport",
        ));
    }
    let core = session.core();
    let requests = messages.iter().filter(|m| m.is_request()).count();
    if requests > 0 && !core.has_room() {
        // Answered now rather than queued: memory does not grow at the client's pace.
        return Err(Error::TooManyRequests(format!(
            "too many requests in flight in this session (at most {}): wait for answers on the event stream",
            app.config().max_inflight_per_session
        )));
    }
    for msg in messages {
        match msg {
            // Answered on the event stream; the request runs in a task of its own.
            Message::Request(_) => core.handle(msg)?,
            // Handed upstream before the 202: a fast client waits for a slow upstream.
            Message::Notification(n) => core.notify(n).await,
            Message::Response(r) => core.respond(r).await,
        }
    }
    let mut resp = Response::new(full("Accepted"));
    *resp.status_mut() = StatusCode::ACCEPTED;
    Ok(resp)
}

/// Why a legacy session is not served here: its stream is on another replica that lives
/// (`OnReplica`: forwarded there), or it is gone (404).
async fn not_here(app: &App, id: &str, holder: Option<&str>) -> Error {
    let (Some(replicas), Some(holder)) = (&app.inner().replicas, holder) else {
        return Error::SessionNotFound;
    };
    if holder == replicas.id() {
        return Error::SessionNotFound;
    }
    let forward = &app.inner().forward;
    if let Some(h) = forward.holder_of(id).filter(|h| h.replica == holder) {
        return Error::OnReplica {
            replica: h.replica,
            address: h.address,
        };
    }
    match replicas.address_of(holder).await {
        Ok(Some(address)) => {
            let h = Holder {
                replica: holder.to_owned(),
                address,
            };
            forward.remember(id, &h);
            Error::OnReplica {
                replica: h.replica,
                address: h.address,
            }
        }
        // The replica that held the stream is gone, and the session with it.
        Ok(None) => Error::SessionNotFound,
        Err(e) => Error::RegistryUnavailable(format!(
            "this replica does not hold the session and cannot read the session registry ({e}); \
             retry, or open a new event stream"
        )),
    }
}
