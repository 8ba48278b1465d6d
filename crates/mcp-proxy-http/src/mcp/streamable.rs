//! Streamable HTTP (2025-03-26 … 2025-11-25) toward clients: POST for every client
//! message, GET for the standalone stream or a resume, DELETE to end the session.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mcp_proxy_core::SessionOptions;
use mcp_types::jsonrpc::Payload;
use mcp_types::mcp::{is_supported_version, methods};
use mcp_types::{McpDefinition, Message};

use super::session::{HttpSession, Transport};
use super::sse::{self, AttachError, OnDrop};
use super::{Endpoint, guard};
use crate::app::App;
use crate::body::{Body, empty, full, read_limited};
use crate::error::Error;

/// The session header.
pub(crate) const SESSION_HEADER: &str = "mcp-session-id";
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
    def: &McpDefinition,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let headers = req.headers().clone();
    if !accepts(&headers, "application/json") || !accepts(&headers, "text/event-stream") {
        return Err(Error::NotAcceptable(
            "the accept header must list both application/json and text/event-stream".into(),
        ));
    }
    require_json_content(&headers)?;
    let version = protocol_version(&headers)?;
    let bytes = read_limited(&headers, req.into_body(), app.config().max_body_bytes).await?;
    let (messages, is_batch) = parse(&bytes)?;
    let initialize = messages
        .iter()
        .any(|m| m.is_request() && m.method() == Some(methods::INITIALIZE));
    if initialize {
        if is_batch {
            return Err(bad(
                "initialize_in_batch",
                "initialize must not be sent in a batch",
            ));
        }
        if headers.contains_key(SESSION_HEADER) {
            return Err(bad(
                "already_initialized",
                "initialize must be sent without mcp-session-id: this session is initialized already",
            ));
        }
        let msg = messages.into_iter().next().expect("one message");
        return initialize_session(app, endpoint, def, &headers, msg).await;
    }
    let session = session_of(app, endpoint, &headers)?;
    if is_batch {
        let negotiated = session.core().protocol_version().unwrap_or_default();
        if version.as_deref().unwrap_or(&negotiated) != BATCH_VERSION {
            return Err(bad(
                "batch_not_supported",
                format!(
                    "json-rpc batches are not allowed in protocol {negotiated}: send one message per request"
                ),
            ));
        }
    }
    let ids: Vec<_> = messages
        .iter()
        .filter(|m| m.is_request())
        .filter_map(|m| m.id().cloned())
        .collect();
    if ids.is_empty() {
        for msg in messages {
            if msg.method() == Some(methods::CANCELLED)
                && let Some(id) = cancelled_id(&msg)
            {
                // No response will come: the request's stream ends here.
                session.streams().cancel(&id);
            }
            session.core().handle(msg)?;
        }
        let mut resp = Response::new(empty());
        *resp.status_mut() = StatusCode::ACCEPTED;
        return Ok(resp);
    }
    let (stream, mut rx) = session.streams().open_request_stream(&ids);
    for msg in messages {
        session.core().handle(msg)?;
    }
    let Some(first) = rx.recv().await else {
        return Err(Error::SessionNotFound);
    };
    if first.last && !is_batch {
        return Ok(json_response(first.json, None));
    }
    let mut prelude = Vec::new();
    if session.version_at_least(PRIMING_SINCE) {
        prelude.push(sse::priming(stream));
    }
    prelude.push(first.encode());
    Ok(sse::sse_response(
        prelude,
        Some(rx),
        app.config().sse_keepalive,
        None,
    ))
}

async fn initialize_session(
    app: &App,
    endpoint: &Endpoint,
    def: &McpDefinition,
    headers: &HeaderMap,
    msg: Message,
) -> Result<Response<Body>, Error> {
    let options = SessionOptions {
        extra_headers: guard::passthrough(def, headers),
        path_suffix: endpoint.extra.clone(),
    };
    let (core, outbound) = app.inner().sessions.open(&def.name, options)?;
    let session = HttpSession::start(app, core.clone(), outbound, Transport::Streamable, None);
    let id = msg.id().cloned().expect("a request has an id");
    let (_, mut rx) = session.streams().open_request_stream(&[id]);
    // If the client goes away before the answer, the half-made session must not linger.
    let closer = core.clone();
    let guard = OnDrop::new(move || spawn_close(closer));
    core.handle(msg)?;
    let Some(first) = rx.recv().await else {
        return Err(Error::Internal(
            "the session ended during initialize".into(),
        ));
    };
    if !core.is_initialized() {
        // The answer is an error: no session is created.
        return Ok(json_response(first.json, None));
    }
    guard.disarm();
    app.inner().mcp.insert(session);
    Ok(json_response(first.json, Some(core.id())))
}

/// `GET /{name}/stream`: the standalone stream, or a resume with `Last-Event-ID`.
pub(crate) fn get(
    app: &App,
    endpoint: &Endpoint,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let headers = req.headers();
    if !accepts(headers, "text/event-stream") {
        return Err(Error::NotAcceptable(
            "the accept header must list text/event-stream".into(),
        ));
    }
    protocol_version(headers)?;
    let session = session_of(app, endpoint, headers)?;
    let last = headers.get(LAST_EVENT_ID).and_then(|v| v.to_str().ok());
    let attached = session.streams().attach(last);
    match attached {
        Ok((replay, rx)) => Ok(sse::sse_response(
            replay.iter().map(sse::Item::encode).collect(),
            rx,
            app.config().sse_keepalive,
            None,
        )),
        Err(AttachError::Busy) => Err(Error::Conflict(
            "this session already has a standalone sse stream open".into(),
        )),
        Err(AttachError::Unknown) => Err(bad(
            "unknown_event_id",
            "last-event-id names no stream of this session that can be resumed",
        )),
    }
}

/// `DELETE /{name}/stream`: ends the session (and its upstream session).
pub(crate) async fn delete(
    app: &App,
    endpoint: &Endpoint,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let session = session_of(app, endpoint, req.headers())?;
    app.inner().mcp.remove(session.id());
    session.core().close().await;
    Ok(Response::new(empty()))
}

fn session_of(
    app: &App,
    endpoint: &Endpoint,
    headers: &HeaderMap,
) -> Result<Arc<HttpSession>, Error> {
    let Some(id) = headers.get(SESSION_HEADER) else {
        return Err(bad(
            "session_required",
            "missing mcp-session-id header: send initialize first and then the session id it returned",
        ));
    };
    let id = id.to_str().unwrap_or("");
    app.inner()
        .mcp
        .get(&endpoint.name, id, Transport::Streamable)
        .ok_or(Error::SessionNotFound)
}

/// The `MCP-Protocol-Version` header, refused when it names a version we do not speak.
fn protocol_version(headers: &HeaderMap) -> Result<Option<String>, Error> {
    let Some(v) = headers.get(VERSION_HEADER) else {
        return Ok(None);
    };
    let v = v.to_str().unwrap_or("").trim();
    if is_supported_version(v) {
        Ok(Some(v.to_owned()))
    } else {
        Err(bad(
            "unsupported_protocol_version",
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
                "invalid_message",
                format!("the body is not a json-rpc message: {e}"),
            ))
        }
    }
}

fn cancelled_id(msg: &Message) -> Option<mcp_types::RequestId> {
    #[derive(serde::Deserialize)]
    struct P {
        #[serde(rename = "requestId")]
        id: mcp_types::RequestId,
    }
    serde_json::from_str::<P>(msg.params()?.get())
        .ok()
        .map(|p| p.id)
}

pub(crate) fn bad(code: &'static str, message: impl Into<String>) -> Error {
    Error::BadRequest {
        code,
        message: message.into(),
    }
}

fn require_json_content(headers: &HeaderMap) -> Result<(), Error> {
    let ct = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(Error::UnsupportedMediaType(ct.to_owned()))
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

pub(crate) fn spawn_close(core: Arc<mcp_proxy_core::ClientSession>) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move { core.close().await });
    }
}
