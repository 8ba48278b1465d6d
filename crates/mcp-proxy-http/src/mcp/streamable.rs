//! Streamable HTTP (2025-03-26 … 2025-11-25) toward clients: POST for every client
//! message, GET for the standalone stream or a resume, DELETE to end the session.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mcp_proxy_core::SessionOptions;
use mcp_types::Message;
use mcp_types::jsonrpc::Payload;
use mcp_types::mcp::{is_supported_version, methods};

use super::forward::{Holder, Replay, Via};
use super::modern;
use super::session::{Answer, HttpSession};
use super::sse::{self, AttachError, OnDrop};
use super::{Endpoint, guard};
use crate::app::App;
use crate::body::{Body, empty, full, read_limited};
use crate::error::{Error, ErrorKind, bad};
use mcp_proxy_core::metrics::SessionTransport;

/// The session header.
pub(crate) use mcp_types::mcp::SESSION_HEADER;
const VERSION_HEADER: &str = "mcp-protocol-version";
const LAST_EVENT_ID: &str = "last-event-id";
/// Sessions negotiated at or after this get a priming event on each POST stream.
const PRIMING_SINCE: &str = "2025-11-25";
/// The only revision that allows JSON-RPC batches.
const BATCH_VERSION: &str = "2025-03-26";

/// `POST /{name}/stream`: one client message (or, on 2025-03-26, a batch).
pub(crate) async fn post(
    app: &App,
    endpoint: &Endpoint,
    name: &str,
    policy: &guard::Policy,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let headers = req.headers().clone();
    let (via, uri) = (Via::of(&req), req.uri().clone());
    if !accepts(&headers, "application/json") || !accepts(&headers, "text/event-stream") {
        return Err(Error::NotAcceptable(
            "the accept header must list both application/json and text/event-stream".into(),
        ));
    }
    crate::body::require_json(&headers, crate::body::Untyped::Refused)?;
    // The era is classified by the version header first, then by the body's `_meta`.
    let header = headers
        .get(VERSION_HEADER)
        .map(|v| v.to_str().unwrap_or("").trim().to_owned());
    if let Some(h) = header.as_deref()
        && !modern::is_modern(h)
        && !is_supported_version(h)
    {
        // The answer keeps the request's id when the body says it.
        let bytes = read_limited(&headers, req.into_body(), app.config().max_body_bytes).await?;
        let id = match parse(&bytes) {
            Ok((messages, false)) => messages.first().and_then(|m| m.id().cloned()),
            _ => None,
        };
        return Ok(modern::unsupported(id.as_ref(), h));
    }
    let version = protocol_version(&headers)?;
    let bytes = read_limited(&headers, req.into_body(), app.config().max_body_bytes).await?;
    let (messages, is_batch) = parse(&bytes)?;
    // From here on, a refusal of one request answers that request's id.
    let id = match (is_batch, messages.as_slice()) {
        (false, [Message::Request(r)]) => Some(r.id.clone()),
        _ => None,
    };
    let parsed = Parsed {
        headers,
        header,
        uri,
        via,
        version,
        bytes,
        messages,
        is_batch,
    };
    match post_parsed(app, endpoint, name, policy, parsed).await {
        Err(err) if let Some(id) = id => Ok(super::refused(&endpoint.name, &err, Some(&id))),
        answer => answer,
    }
}

/// A POST whose body has been read and parsed.
struct Parsed {
    headers: HeaderMap,
    /// `MCP-Protocol-Version`, as sent.
    header: Option<String>,
    uri: http::Uri,
    via: Via,
    version: Option<String>,
    bytes: Bytes,
    messages: Vec<Message>,
    is_batch: bool,
}

async fn post_parsed(
    app: &App,
    endpoint: &Endpoint,
    name: &str,
    policy: &guard::Policy,
    parsed: Parsed,
) -> Result<Response<Body>, Error> {
    let Parsed {
        headers,
        header,
        uri,
        via,
        version,
        bytes,
        messages,
        is_batch,
    } = parsed;
    let body_modern = !is_batch && messages.first().and_then(modern::meta_version).is_some();
    if header.as_deref().is_some_and(modern::is_modern) || body_modern {
        // An input-required retry whose call waits on another live replica goes there.
        if !is_batch && let Some(to) = waiting_elsewhere(app, &via, &messages).await {
            let replay = Replay {
                method: http::Method::POST,
                uri: &uri,
                headers: &headers,
                body: bytes,
            };
            let forward = &app.inner().forward;
            return forward.send(app, name, &via, &to, replay).await;
        }
        return modern::post(app, name, &headers, header.as_deref(), messages, is_batch).await;
    }
    let initialize = messages
        .iter()
        .any(|m| m.is_request() && m.method() == Some(methods::INITIALIZE));
    if initialize {
        if is_batch {
            return Err(bad(
                ErrorKind::InitializeInBatch,
                "initialize must not be sent in a batch",
            ));
        }
        if headers.contains_key(SESSION_HEADER) {
            return Err(bad(
                ErrorKind::AlreadyInitialized,
                "initialize must be sent without mcp-session-id: this session is initialized already",
            ));
        }
        let msg = messages.into_iter().next().expect("one message");
        return initialize_session(app, endpoint, name, policy, &headers, msg).await;
    }
    let replay = Replay {
        method: http::Method::POST,
        uri: &uri,
        headers: &headers,
        body: bytes.clone(),
    };
    let session = match session_or_holder(app, endpoint, policy, &via, replay).await? {
        Ok(session) => session,
        Err(forwarded) => return Ok(forwarded),
    };
    // The client's answer to a server→client request another replica asked (its own
    // upstream connection, a shared one) goes to that replica.
    if !is_batch && let Some(to) = asked_elsewhere(app, &via, &session, &messages).await {
        let replay = Replay {
            method: http::Method::POST,
            uri: &uri,
            headers: &headers,
            body: bytes,
        };
        return app.inner().forward.send(app, name, &via, &to, replay).await;
    }
    if is_batch {
        let negotiated = session.core().protocol_version().unwrap_or_default();
        if version.as_deref().unwrap_or(&negotiated) != BATCH_VERSION {
            return Err(bad(
                ErrorKind::BatchNotSupported,
                format!(
                    "json-rpc batches are not allowed in protocol {negotiated}: send one message per request"
                ),
            ));
        }
    }
    let mut requests = Vec::new();
    for msg in messages {
        match msg {
            Message::Request(r) => requests.push(r),
            Message::Notification(n) => {
                if n.method == methods::CANCELLED
                    && let Ok(Some(id)) = mcp_types::params::request_id(n.params.as_deref())
                {
                    // No response will come: the request's stream ends here.
                    session.streams().cancel(&id);
                }
                session.core().notify(n).await;
            }
            Message::Response(r) => session.core().respond(r).await,
        }
    }
    if requests.is_empty() {
        let mut resp = Response::new(empty());
        *resp.status_mut() = StatusCode::ACCEPTED;
        return Ok(resp);
    }
    let ids: Vec<_> = requests.iter().map(|r| r.id.clone()).collect();
    let opened = session.streams().open_request_stream(&ids);
    let (stream, mut rx) = match opened {
        Ok(opened) => opened,
        Err(id) => {
            return Err(bad(
                ErrorKind::RequestIdInUse,
                format!("request id {id} is already in use by a request in flight on this session"),
            ));
        }
    };
    let keepalive = app.config().sse_keepalive;
    let priming = session
        .version_at_least(PRIMING_SINCE)
        .then(|| session.streams().priming(stream));
    if is_batch || requests.len() > 1 {
        for request in requests {
            Answer::new(&session, request).detach();
        }
        let prelude = priming.into_iter().collect();
        return Ok(sse::sse_response(prelude, Some(rx), keepalive, None));
    }
    let request = requests.pop().expect("one request");
    let mut answer = Answer::new(&session, request);
    // The answer is plain JSON when the response is the first message for the request;
    // when the upstream says something first (progress, a log line, a question for the
    // client), it becomes an event stream that ends with the response.
    let first = tokio::select! {
        biased;
        item = rx.recv() => First::Item(item),
        reply = &mut answer => First::Reply(reply),
    };
    let mut prelude: Vec<Bytes> = priming.into_iter().collect();
    match first {
        First::Reply(Some(reply)) => {
            // Filed between the two polls above: they go first, so the answer is a stream.
            let early: Vec<sse::Item> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
            if early.is_empty() {
                session.streams().forget(stream);
                return Ok(json_response(Bytes::from(reply.message.to_vec()), None));
            }
            prelude.extend(early.iter().map(sse::Item::encode));
            let id = reply
                .message
                .id()
                .cloned()
                .unwrap_or(mcp_types::RequestId::Null);
            session.deliver(reply, id);
        }
        // No answer is due here: the session ended and answered through its outlet, or
        // the request was cancelled.
        // The session's end files its error on the stream and then closes it; a
        // cancellation closes it at once: wait for either (bounded, in case neither).
        First::Reply(None) => match tokio::time::timeout(ANSWER_AFTER_END, rx.recv()).await {
            Ok(Some(item)) if item.last => {
                session.streams().forget(stream);
                return Ok(json_response(item.json, None));
            }
            Ok(Some(item)) => prelude.push(item.encode()),
            Ok(None) | Err(_) => {
                session.streams().forget(stream);
                return Ok(sse::sse_response(prelude, None, keepalive, None));
            }
        },
        First::Item(Some(item)) if item.last => {
            session.streams().forget(stream);
            return Ok(json_response(item.json, None));
        }
        First::Item(Some(item)) => {
            prelude.push(item.encode());
            answer.detach();
        }
        // The stream was closed (the session ended, or the client cancelled the request).
        First::Item(None) => {
            return Ok(match answer.await {
                Some(reply) => json_response(Bytes::from(reply.message.to_vec()), None),
                None => sse::sse_response(prelude, None, keepalive, None),
            });
        }
    }
    Ok(sse::sse_response(prelude, Some(rx), keepalive, None))
}

/// How long a request the session answers through its outlet (it ended) waits for
/// that answer to be filed on its stream.
const ANSWER_AFTER_END: std::time::Duration = std::time::Duration::from_secs(2);

/// What came first for a POSTed request.
enum First {
    /// A message filed on its stream (`None`: the stream was closed).
    Item(Option<sse::Item>),
    /// Its answer.
    Reply(Option<mcp_proxy_core::Reply>),
}

async fn initialize_session(
    app: &App,
    endpoint: &Endpoint,
    name: &str,
    policy: &guard::Policy,
    headers: &HeaderMap,
    msg: Message,
) -> Result<Response<Body>, Error> {
    let Message::Request(request) = msg else {
        return Err(Error::Internal("initialize is a request".into()));
    };
    let options = SessionOptions {
        extra_headers: guard::passthrough(policy, headers),
        path_suffix: endpoint.extra.clone(),
    };
    let inner = app.inner();
    let session = HttpSession::new(
        &inner.http_sessions,
        app.metrics(),
        SessionTransport::StreamableHttp,
        None,
        app.config().session_replay_bytes,
    );
    let core = inner.sessions.open(name, options, session.clone())?;
    session.bind(core.clone());
    if let Some(replicas) = &inner.replicas {
        session.streams().set_origin(replicas.id());
    }
    // If the client goes away before the answer, the half-made session must not linger.
    let closer = core.clone();
    let guard = OnDrop::new(move || closer.close());
    let Some(reply) = core.request(request).await else {
        return Err(Error::Internal(
            "the session ended during initialize".into(),
        ));
    };
    let json = Bytes::from(reply.message.to_vec());
    if !core.is_initialized() {
        // The answer is an error: no session is created (the guard closes it).
        return Ok(json_response(json, None));
    }
    guard.disarm();
    inner.http_sessions.insert(session.clone());
    if let Some(replicas) = &inner.replicas
        && inner.tokens.is_some()
    {
        replicas.register(&session).await;
    }
    let client_id = match &inner.tokens {
        Some(tokens) => tokens.issue(core.id(), name, headers),
        None => core.id().to_owned(),
    };
    Ok(json_response(json, Some(&client_id)))
}

/// `GET /{name}/stream`: the standalone stream, or a resume with `Last-Event-ID`.
pub(crate) async fn get(
    app: &App,
    endpoint: &Endpoint,
    policy: &guard::Policy,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let headers = req.headers();
    if modern_header(headers) {
        return Ok(modern_method_not_allowed());
    }
    if !accepts(headers, "text/event-stream") {
        return Err(Error::NotAcceptable(
            "the accept header must list text/event-stream".into(),
        ));
    }
    protocol_version(headers)?;
    let via = Via::of(&req);
    let last = headers.get(LAST_EVENT_ID).and_then(|v| v.to_str().ok());
    let replay = || Replay {
        method: http::Method::GET,
        uri: req.uri(),
        headers,
        body: Bytes::new(),
    };
    // Events another replica sent are replayed by that replica, while it lives.
    if let Some(writer) = last.and_then(sse::event_replica)
        && via.may_forward()
        && let Some(replicas) = &app.inner().replicas
        && writer != replicas.id()
        && let Ok(Some(address)) = replicas.address_of(&writer).await
    {
        let to = Holder {
            replica: writer,
            address,
        };
        let forward = &app.inner().forward;
        return forward.send(app, &endpoint.name, &via, &to, replay()).await;
    }
    let session = match session_or_holder(app, endpoint, policy, &via, replay()).await? {
        Ok(session) => session,
        Err(forwarded) => return Ok(forwarded),
    };
    let attached = session.streams().attach(last);
    match attached {
        Ok((replay, rx)) => {
            // The session does not expire while the client holds a stream open.
            let open = session.core().open_stream();
            Ok(sse::sse_response(
                replay.iter().map(sse::Item::encode).collect(),
                rx,
                app.config().sse_keepalive,
                Some(OnDrop::new(move || drop(open))),
            ))
        }
        Err(AttachError::Busy) => Err(Error::Conflict(
            "this session already has a standalone sse stream open".into(),
        )),
        Err(AttachError::Unknown) => Err(bad(
            ErrorKind::UnknownEventId,
            "last-event-id names no stream of this session that can be resumed here: its events \
             are gone from the replay buffer, or were sent by a replica that is gone; open the \
             stream again without last-event-id",
        )),
    }
}

/// `DELETE /{name}/stream`: ends the session (and its upstream session).
pub(crate) async fn delete(
    app: &App,
    endpoint: &Endpoint,
    policy: &guard::Policy,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    if modern_header(req.headers()) {
        return Ok(modern_method_not_allowed());
    }
    // A session held by another replica is resumed here first, so that its upstream
    // sessions end too; one bound to a live replica is ended there.
    let via = Via::of(&req);
    let replay = Replay {
        method: http::Method::DELETE,
        uri: req.uri(),
        headers: req.headers(),
        body: Bytes::new(),
    };
    let session = match session_or_holder(app, endpoint, policy, &via, replay).await? {
        Ok(session) => session,
        Err(forwarded) => return Ok(forwarded),
    };
    app.inner().http_sessions.remove(session.id());
    session.core().close();
    Ok(Response::new(empty()))
}

/// The replica where the call a 2026-07-28 retry's `requestState` names waits, when it
/// is another live one and the request came from a client.
async fn waiting_elsewhere(app: &App, via: &Via, messages: &[Message]) -> Option<Holder> {
    let replicas = app
        .inner()
        .replicas
        .as_ref()
        .filter(|_| via.may_forward())?;
    let Some(Message::Request(req)) = messages.first() else {
        return None;
    };
    let state = super::mrtr::request_state(req).ok().flatten()?;
    let replica = app.inner().waiting.elsewhere(&state)?;
    let address = replicas.address_of(&replica).await.ok().flatten()?;
    Some(Holder { replica, address })
}

/// The live replica that asked the server→client request `messages` (one response)
/// answers, when this replica's copy of the session cannot take the answer itself.
async fn asked_elsewhere(
    app: &App,
    via: &Via,
    session: &HttpSession,
    messages: &[Message],
) -> Option<Holder> {
    let replicas = app
        .inner()
        .replicas
        .as_ref()
        .filter(|_| via.may_forward())?;
    let [Message::Response(r)] = messages else {
        return None;
    };
    let replica = session.core().answered_elsewhere(&r.id)?;
    let address = replicas.address_of(&replica).await.ok().flatten()?;
    Some(Holder { replica, address })
}

/// The session the request names, or — when a live replica holds it and this request
/// came from a client — that replica's answer to the request.
async fn session_or_holder(
    app: &App,
    endpoint: &Endpoint,
    policy: &guard::Policy,
    via: &Via,
    replay: Replay<'_>,
) -> Result<Result<Arc<HttpSession>, Response<Body>>, Error> {
    match session_of(app, endpoint, policy, replay.headers).await {
        Err(Error::OnReplica { replica, address }) if via.may_forward() => {
            let to = Holder { replica, address };
            let forward = &app.inner().forward;
            forward
                .send(app, &endpoint.name, via, &to, replay)
                .await
                .map(Err)
        }
        other => other.map(Ok),
    }
}

/// The session the request names: held here, or (with a session registry) resumed from
/// it; a session bound to another live replica is `Error::OnReplica`.
async fn session_of(
    app: &App,
    endpoint: &Endpoint,
    policy: &guard::Policy,
    headers: &HeaderMap,
) -> Result<Arc<HttpSession>, Error> {
    let Some(id) = headers.get(SESSION_HEADER) else {
        return Err(bad(
            ErrorKind::SessionRequired,
            "missing mcp-session-id header: send initialize first and then the session id it returned",
        ));
    };
    let id = id.to_str().unwrap_or("");
    let id = match &app.inner().tokens {
        Some(tokens) => {
            tokens
                .open(id, &endpoint.name, headers)
                .map_err(|r| Error::SessionRefused {
                    reason: r.reason(),
                    message: r.message(),
                })?
        }
        None => id.to_owned(),
    };
    let inner = app.inner();
    let session =
        match inner
            .http_sessions
            .get(&endpoint.name, &id, SessionTransport::StreamableHttp)
        {
            Some(session) => session,
            None => match (&inner.replicas, &inner.tokens) {
                (Some(replicas), Some(_)) => {
                    // Its holder, looked up a moment ago: no registry read.
                    if let Some(h) = inner.forward.holder_of(&id) {
                        return Err(Error::OnReplica {
                            replica: h.replica,
                            address: h.address,
                        });
                    }
                    match replicas.resume(app, endpoint, &id, policy, headers).await {
                        Ok(session) => session,
                        Err(Error::OnReplica { replica, address }) => {
                            let holder = Holder { replica, address };
                            inner.forward.remember(&id, &holder);
                            return Err(Error::OnReplica {
                                replica: holder.replica,
                                address: holder.address,
                            });
                        }
                        Err(e) => return Err(e),
                    }
                }
                _ => return Err(Error::SessionNotFound),
            },
        };
    session.after_request();
    Ok(session)
}

/// The `MCP-Protocol-Version` header, refused when it names a version we do not speak.
fn protocol_version(headers: &HeaderMap) -> Result<Option<String>, Error> {
    let Some(v) = headers.get(VERSION_HEADER) else {
        return Ok(None);
    };
    let v = v.to_str().unwrap_or("").trim();
    if is_supported_version(v) || modern::is_modern(v) {
        Ok(Some(v.to_owned()))
    } else {
        Err(bad(
            ErrorKind::UnsupportedProtocolVersion,
            format!(
                "unsupported mcp-protocol-version {v:?}: supported are {}",
                mcp_types::mcp::SUPPORTED_PROTOCOL_VERSIONS.join(", ")
            ),
        ))
    }
}

/// Parses a body into messages; `true` when it was a batch.
pub(crate) fn parse(bytes: &[u8]) -> Result<(Vec<Message>, bool), Error> {
    match Payload::from_slice(bytes) {
        Ok(Payload::Single(m)) => Ok((vec![m], false)),
        Ok(Payload::Batch(v)) => Ok((v, true)),
        Err(e) => {
            // Malformed JSON is reported with its position; valid JSON that is not a
            // message gets the model's reason.
            crate::body::parse_json::<serde::de::IgnoredAny>(bytes)?;
            Err(bad(
                ErrorKind::InvalidMessage,
                format!("the body is not a json-rpc message: {e}"),
            ))
        }
    }
}

/// Whether the `Accept` header allows `mime` (wildcards count).
fn accepts(headers: &HeaderMap, mime: &str) -> bool {
    let (kind, _) = mime.split_once('/').unwrap_or((mime, ""));
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|m| {
            m.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .any(|m| m == mime || m == "*/*" || m == format!("{kind}/*"))
}

fn json_response(json: Bytes, session: Option<&str>) -> Response<Body> {
    let mut resp = Response::new(full(json));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(id) = session
        && let Ok(v) = HeaderValue::from_str(id)
    {
        resp.headers_mut().insert(SESSION_HEADER, v);
    }
    resp
}

/// Whether the request says it speaks a modern revision (no GET stream, no sessions).
fn modern_header(headers: &HeaderMap) -> bool {
    headers
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| modern::is_modern(v.trim()))
}

/// 405 for GET and DELETE in a modern revision: one endpoint, POST only.
fn modern_method_not_allowed() -> Response<Body> {
    let mut resp = modern::rpc_error(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        mcp_types::jsonrpc::codes::INVALID_REQUEST,
        "protocol 2026-07-28 has no GET stream and no sessions: POST each request",
        None,
    );
    resp.headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static("POST"));
    resp
}
