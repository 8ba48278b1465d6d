//! MCP 2026-07-28 on the same endpoints as 2025: stateless requests, each carrying the
//! client's protocol version, identity and capabilities in `params._meta`.
//!
//! A request is modern when its `MCP-Protocol-Version` header says so (checked first),
//! or when its `_meta` names a modern version (then the header must say the same). It is
//! served by a session that lives as long as the request, over the upstreams' shared
//! connections; nothing is kept between requests, so any replica can serve the next one.
//! `server/discover` is answered here; `subscriptions/listen` holds its stream open and
//! carries the change notifications asked for.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use mcp_proxy_core::{ClientSession, Outbound, Outlet};
use mcp_types::jsonrpc::{codes, to_raw};
use mcp_types::mcp::{methods, modern};
use mcp_types::params::Members;
use mcp_types::{Message, Outcome, Request, RequestId};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use super::{mrtr, sse};
use crate::app::App;
use crate::body::{Body, full};
use crate::error::Error;

/// The modern revisions this proxy serves.
pub(crate) const MODERN_VERSIONS: &[&str] = &["2026-07-28"];
/// `_meta` keys of the revision.
const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
const META_CLIENT: &str = "io.modelcontextprotocol/clientInfo";
const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
const META_SERVER: &str = "io.modelcontextprotocol/serverInfo";
const META_SUBSCRIPTION: &str = "io.modelcontextprotocol/subscriptionId";
/// Error codes of the revision.
const HEADER_MISMATCH: i64 = -32020;
const MISSING_CAPABILITY: i64 = -32021;
const UNSUPPORTED_VERSION: i64 = -32022;
/// Methods the revision removed; with a modern header they are unknown (404, `-32601`).
const REMOVED: &[&str] = &[
    methods::INITIALIZE,
    methods::PING,
    methods::LOGGING_SET_LEVEL,
    methods::RESOURCES_SUBSCRIBE,
    methods::RESOURCES_UNSUBSCRIBE,
];
/// Methods a modern client may send through the proxy.
const FORWARDED: &[&str] = &[
    methods::TOOLS_LIST,
    methods::TOOLS_CALL,
    methods::PROMPTS_LIST,
    methods::PROMPTS_GET,
    methods::RESOURCES_LIST,
    methods::RESOURCES_READ,
    methods::RESOURCE_TEMPLATES_LIST,
    methods::COMPLETION_COMPLETE,
];
/// Results that carry caching hints.
const CACHEABLE: &[&str] = &[
    methods::TOOLS_LIST,
    methods::PROMPTS_LIST,
    methods::RESOURCES_LIST,
    methods::RESOURCES_READ,
    methods::RESOURCE_TEMPLATES_LIST,
    modern::DISCOVER,
];
/// Log levels, least severe first (RFC 5424 names, as MCP uses them).
const LEVELS: &[&str] = &[
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// Whether a protocol version is a modern one.
pub(crate) fn is_modern(version: &str) -> bool {
    MODERN_VERSIONS.contains(&version)
}

/// The modern protocol version a message's `_meta` names, if any.
pub(crate) fn meta_version(msg: &Message) -> Option<String> {
    let params = msg.params()?;
    if !params.get().contains("modelcontextprotocol") {
        return None;
    }
    let members = Members::parse(params).ok()?;
    let meta = Members::parse(members.get("_meta")?).ok()?;
    meta.string(META_VERSION).ok().flatten()
}

/// A JSON-RPC error answer with an HTTP status.
pub(crate) fn rpc_error(
    status: StatusCode,
    id: Option<&RequestId>,
    code: i64,
    message: impl Into<String>,
    data: Option<Value>,
) -> Response<Body> {
    let mut error = serde_json::json!({ "code": code, "message": message.into() });
    if let Some(d) = data {
        error["data"] = d;
    }
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id.map_or(Value::Null, |i| serde_json::to_value(i).unwrap_or(Value::Null)),
        "error": error,
    });
    crate::body::json_response(status, &body)
}

/// Decodes a header value that may use the `=?base64?…?=` sentinel form.
fn header_text(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?.trim();
    if let Some(inner) = text
        .strip_prefix("=?base64?")
        .and_then(|t| t.strip_suffix("?="))
    {
        let bytes = base64_decode(inner)?;
        return String::from_utf8(bytes).ok();
    }
    Some(text.to_owned())
}

fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let clean: Vec<u8> = input.bytes().filter(|b| *b != b'=').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len().max(1)]);
    }
    Some(out)
}

/// What a modern request's `_meta` says about its client.
struct Client {
    version: String,
    capabilities: Value,
    info: mcp_types::mcp::Implementation,
    log_level: Option<usize>,
}

/// Serves one modern POST (already parsed; `header` is its `MCP-Protocol-Version`).
pub(crate) async fn post(
    app: &App,
    name: &str,
    headers: &HeaderMap,
    header: Option<&str>,
    messages: Vec<Message>,
    is_batch: bool,
) -> Result<Response<Body>, Error> {
    let bad = |id: Option<&RequestId>, code: i64, message: String, data: Option<Value>| {
        Ok(rpc_error(StatusCode::BAD_REQUEST, id, code, message, data))
    };
    if is_batch || messages.len() != 1 {
        return bad(
            None,
            codes::INVALID_REQUEST,
            "2026-07-28 requests are sent one per POST, never in a batch".into(),
            None,
        );
    }
    let msg = messages.into_iter().next().expect("one message");
    let req = match msg {
        Message::Request(req) => req,
        // The revision defines no client notifications over HTTP: accepted, nothing to do.
        Message::Notification(_) => {
            let mut resp = Response::new(crate::body::empty());
            *resp.status_mut() = StatusCode::ACCEPTED;
            return Ok(resp);
        }
        Message::Response(_) => {
            return bad(
                None,
                codes::INVALID_REQUEST,
                "a 2026-07-28 client sends no responses: answers to input requests go in inputResponses".into(),
                None,
            );
        }
    };
    let id = req.id.clone();
    // Removed and unknown methods are 404 with -32601, whatever else is wrong.
    let known = FORWARDED.contains(&req.method.as_str())
        || req.method == modern::DISCOVER
        || req.method == modern::LISTEN;
    if REMOVED.contains(&req.method.as_str()) || !known {
        let why = if REMOVED.contains(&req.method.as_str()) {
            format!("{} does not exist in protocol 2026-07-28", req.method)
        } else {
            format!("method {:?} not found", req.method)
        };
        return Ok(rpc_error(
            StatusCode::NOT_FOUND,
            Some(&id),
            codes::METHOD_NOT_FOUND,
            why,
            None,
        ));
    }
    let client = match client_of(&req, header, headers) {
        Ok(c) => c,
        Err(resp) => return Ok(*resp),
    };
    // Input-required retries: the answers are checked first, then the state.
    let responses = match mrtr::input_responses(&req) {
        Ok(r) => r,
        Err(message) => return bad(Some(&id), codes::INVALID_PARAMS, message, None),
    };
    let state = match mrtr::request_state(&req) {
        Ok(s) => s,
        Err(message) => return bad(Some(&id), codes::INVALID_PARAMS, message, None),
    };
    if let Some(state) = state.filter(|s| s.starts_with(mrtr::STATE_PREFIX)) {
        return Ok(resume(
            app,
            name,
            headers,
            req,
            &state,
            responses.unwrap_or_default(),
        )
        .await);
    }
    let hub = &app.inner().sessions;
    let (tx, rx) = mpsc::channel(sse::LIVE_CAPACITY);
    let listen = req.method == modern::LISTEN;
    let outlet = Arc::new(RequestOutlet {
        tx: Mutex::new(Some(tx)),
        log_level: client.log_level,
        listen: listen.then(|| Listen::from(&req)),
        subscription: listen.then(|| id.clone()),
        parked: AtomicBool::new(false),
    });
    let session = match hub
        .open_stateless(
            name,
            client.info.clone(),
            client.capabilities.clone(),
            &client.version,
            outlet.clone(),
        )
        .await
    {
        Ok(s) => s,
        Err(e) => {
            let err = Error::Core(e);
            let (status, code, _) = err.parts();
            return Ok(rpc_error(
                status,
                Some(&id),
                codes::INTERNAL_ERROR,
                err.to_string(),
                Some(serde_json::json!({ "code": code })),
            ));
        }
    };
    let closer = session.clone();
    let guard = sse::OnDrop::new(move || closer.close());
    match req.method.as_str() {
        modern::DISCOVER => {
            let (capabilities, server_info, instructions) = session.identity();
            let mut result = serde_json::json!({
                "supportedVersions": MODERN_VERSIONS,
                "capabilities": capabilities,
            });
            if let Some(i) = instructions {
                result["instructions"] = Value::String(i);
            }
            let response = Message::result(id, &result);
            let json = finish(response, modern::DISCOVER, &server_info, None);
            drop(guard);
            Ok(json_answer(json))
        }
        modern::LISTEN => Ok(listen_stream(app, session, outlet, id, rx, guard)),
        _ => {
            let method = req.method.clone();
            let binding = mrtr::Binding::of(name, headers, &req);
            let call = Call::start(
                session, outlet, rx, guard, &method,
                // The request goes as the client sent it: the session fits its
                // `_meta` to the era of the upstream it reaches.
                req, binding,
            );
            Ok(answer_stream(app, call).await)
        }
    }
}

/// A retry carrying a `requestState` of ours: the call it names takes the answers and
/// goes on.
async fn resume(
    app: &App,
    name: &str,
    headers: &HeaderMap,
    req: Request,
    state: &str,
    responses: Map<String, Value>,
) -> Response<Body> {
    let waiting = &app.inner().waiting;
    let binding = mrtr::Binding::of(name, headers, &req);
    let refuse = |why: mrtr::Refusal| {
        rpc_error(
            StatusCode::BAD_REQUEST,
            Some(&req.id),
            codes::INVALID_PARAMS,
            why.message(),
            Some(serde_json::json!({ "code": why.code() })),
        )
    };
    let mut call = match waiting
        .check(state, &binding)
        .and_then(|w| waiting.take(&w, &binding))
    {
        Ok(call) => call,
        Err(why) => return refuse(why),
    };
    call.reply_id = req.id.clone();
    call.answer_with(responses).await;
    answer_stream(app, call).await
}

/// Reads and checks the request's `_meta`: the version (equal to the header, one we
/// serve), the client's capabilities (required), its info (optional), its log level.
fn client_of(
    req: &Request,
    header: Option<&str>,
    headers: &HeaderMap,
) -> Result<Client, Box<Response<Body>>> {
    let id = Some(&req.id);
    let invalid = |message: String| {
        Box::new(rpc_error(
            StatusCode::BAD_REQUEST,
            id,
            codes::INVALID_PARAMS,
            message,
            None,
        ))
    };
    let mismatch = |message: String| {
        Box::new(rpc_error(
            StatusCode::BAD_REQUEST,
            id,
            HEADER_MISMATCH,
            message,
            None,
        ))
    };
    let Some(params) = req.params.as_deref() else {
        return Err(invalid(format!(
            "params._meta is required in protocol 2026-07-28 ({META_VERSION}, {META_CAPABILITIES})"
        )));
    };
    let members = Members::parse(params).map_err(|e| invalid(e.to_string()))?;
    let Some(meta) = members.get("_meta") else {
        return Err(invalid(format!(
            "params._meta is required ({META_VERSION}, {META_CAPABILITIES})"
        )));
    };
    let meta = Members::parse(meta).map_err(|e| invalid(format!("_meta: {e}")))?;
    let version = match meta.string(META_VERSION) {
        Ok(Some(v)) => v,
        Ok(None) => return Err(invalid(format!("_meta.{META_VERSION} is required"))),
        Err(e) => return Err(invalid(e.to_string())),
    };
    match header {
        Some(h) if h != version => {
            return Err(mismatch(format!(
                "MCP-Protocol-Version {h:?} does not match _meta {META_VERSION} {version:?}"
            )));
        }
        None => {
            return Err(mismatch(format!(
                "MCP-Protocol-Version is required and must be {version:?}"
            )));
        }
        Some(_) => {}
    }
    if !is_modern(&version) {
        return Err(Box::new(unsupported(id, &version)));
    }
    let capabilities = match meta.get(META_CAPABILITIES) {
        Some(raw) => match serde_json::from_str::<Value>(raw.get()) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Err(invalid(format!(
                    "_meta.{META_CAPABILITIES} must be an object"
                )));
            }
        },
        None => return Err(invalid(format!("_meta.{META_CAPABILITIES} is required"))),
    };
    let info = meta
        .get(META_CLIENT)
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .unwrap_or_else(|| mcp_types::mcp::Implementation::new("unknown-client", "0"));
    let log_level = match meta.string(META_LOG_LEVEL) {
        Ok(Some(level)) => match LEVELS.iter().position(|l| *l == level) {
            Some(i) => Some(i),
            None => return Err(invalid(format!("unknown log level {level:?}"))),
        },
        Ok(None) => None,
        Err(e) => return Err(invalid(e.to_string())),
    };
    // The standard headers are required and must say what the body says (a gateway
    // in front may have routed on them).
    let m = match headers.get("mcp-method") {
        None => return Err(mismatch("the Mcp-Method header is required".into())),
        Some(v) => header_text(v).ok_or_else(|| mismatch("Mcp-Method is not readable".into()))?,
    };
    if m != req.method {
        return Err(mismatch(format!(
            "Mcp-Method {m:?} does not match the method {:?}",
            req.method
        )));
    }
    let named = [
        methods::TOOLS_CALL,
        methods::PROMPTS_GET,
        methods::RESOURCES_READ,
    ]
    .contains(&req.method.as_str());
    match headers.get("mcp-name") {
        None if named => {
            return Err(mismatch(format!(
                "the Mcp-Name header is required for {}",
                req.method
            )));
        }
        None => {}
        Some(v) => {
            let n = header_text(v).ok_or_else(|| mismatch("Mcp-Name is not readable".into()))?;
            let key = if req.method == methods::RESOURCES_READ {
                "uri"
            } else {
                "name"
            };
            let body = members.string(key).ok().flatten();
            if body.as_deref() != Some(n.as_str()) {
                return Err(mismatch(format!(
                    "Mcp-Name {n:?} does not match params.{key} {body:?}"
                )));
            }
        }
    }
    if let Err(message) = check_param_headers(headers, &members) {
        return Err(mismatch(message));
    }
    Ok(Client {
        version,
        capabilities,
        info,
        log_level,
    })
}

/// `Mcp-Param-{Name}` headers mirror top-level tool arguments: each one present must
/// match `params.arguments.{Name}` (names compared without case).
fn check_param_headers(headers: &HeaderMap, members: &Members<'_>) -> Result<(), String> {
    let mut params = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().strip_prefix("mcp-param-")?.to_owned(), v)))
        .peekable();
    if params.peek().is_none() {
        return Ok(());
    }
    let arguments = members
        .get("arguments")
        .and_then(|a| serde_json::from_str::<Map<String, Value>>(a.get()).ok())
        .unwrap_or_default();
    for (name, value) in params {
        let Some(text) = header_text(value) else {
            return Err(format!("Mcp-Param-{name} is not readable"));
        };
        let body = arguments
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&name))
            .map(|(_, v)| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        if body.as_deref() != Some(text.as_str()) {
            return Err(format!(
                "Mcp-Param-{name} {text:?} does not match the argument {body:?}"
            ));
        }
    }
    Ok(())
}

/// `-32022` with the versions served, HTTP 400. They are the versions `server/discover`
/// lists (the 2025 ones need no listing: `initialize` negotiates them).
pub(crate) fn unsupported(id: Option<&RequestId>, version: &str) -> Response<Body> {
    let supported: Vec<&str> = MODERN_VERSIONS.to_vec();
    rpc_error(
        StatusCode::BAD_REQUEST,
        id,
        UNSUPPORTED_VERSION,
        format!("unsupported protocol version {version:?}"),
        Some(serde_json::json!({
            "supported": supported,
            "requested": version,
            "code": crate::ErrorKind::UnsupportedProtocolVersion,
        })),
    )
}

/// The response as a modern client reads it: `resultType` on every result,
/// `serverInfo` in its `_meta`, caching hints on cacheable results, and for a listen
/// stream the subscription id.
fn finish(
    message: Message,
    method: &str,
    server_info: &mcp_types::mcp::Implementation,
    subscription: Option<&RequestId>,
) -> Bytes {
    let Message::Response(mut response) = message else {
        return Bytes::from(message.to_vec());
    };
    if let Outcome::Result(raw) = &response.outcome
        && let Ok(mut result) = serde_json::from_str::<Map<String, Value>>(raw.get())
    {
        result
            .entry("resultType")
            .or_insert_with(|| Value::String("complete".into()));
        let meta = result
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(meta) = meta {
            meta.insert(
                META_SERVER.into(),
                serde_json::to_value(server_info).unwrap_or(Value::Null),
            );
            if let Some(sub) = subscription {
                meta.insert(
                    META_SUBSCRIPTION.into(),
                    serde_json::to_value(sub).unwrap_or(Value::Null),
                );
            }
        }
        if CACHEABLE.contains(&method) {
            // What passes through the proxy is shaped by its own policy (filters,
            // overrides, auth): nothing may be cached beyond this client and request.
            result.insert("ttlMs".into(), Value::from(0));
            result.insert("cacheScope".into(), Value::String("private".into()));
        }
        response.outcome = Outcome::Result(to_raw(&result));
    }
    Bytes::from(Message::Response(response).to_vec())
}

fn json_answer(json: Bytes) -> Response<Body> {
    json_answer_with(StatusCode::OK, json)
}

fn json_answer_with(status: StatusCode, json: Bytes) -> Response<Body> {
    let mut resp = Response::new(full(json));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The HTTP status of an answer: errors the revision gives a status keep it, wherever
/// they came from (an upstream over stdio cannot say it): `404` for an unknown method,
/// `400` for the revision's request errors. Everything else is `200`.
fn error_status(message: &Message) -> StatusCode {
    match message {
        Message::Response(mcp_types::Response {
            outcome: Outcome::Error(e),
            ..
        }) => match e.code {
            codes::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
            HEADER_MISMATCH | MISSING_CAPABILITY | UNSUPPORTED_VERSION => StatusCode::BAD_REQUEST,
            _ => StatusCode::OK,
        },
        _ => StatusCode::OK,
    }
}

/// A forwarded request in progress: the session serving it, what its upstream sent so
/// far, the answer to come, and (for a 2025 upstream asking a 2026-07-28 client for
/// input) the requests asked and not answered yet. It outlives one HTTP exchange when it
/// waits for an input-required retry; dropping it ends its session (and so cancels the
/// upstream request).
pub(crate) struct Call {
    session: Arc<ClientSession>,
    outlet: Arc<RequestOutlet>,
    rx: mpsc::Receiver<Item>,
    answer: oneshot::Receiver<Option<mcp_proxy_core::Reply>>,
    /// Ends the session when the call goes.
    _guard: sse::OnDrop,
    method: String,
    /// The id the answer goes out under: the original request's, then each retry's.
    pub(crate) reply_id: RequestId,
    /// Input requests asked of the client and not answered, by key.
    asked: BTreeMap<String, Value>,
    /// Notifications that came while input requests were gathered.
    held: Vec<Bytes>,
    /// A capability the upstream asked for, which the client did not declare (the
    /// upstream was refused; if the call then fails, this is why).
    unmet: Option<&'static str>,
    binding: mrtr::Binding,
}

/// What a call did next.
enum Step {
    /// A notification for the client.
    Note(Bytes),
    /// The upstream asked for input (now in `asked`).
    Inputs,
    /// The answer (`None`: the session ended without one).
    Done(Option<mcp_proxy_core::Reply>),
}

/// How long more input requests are waited for once one came, so a server that asks
/// several things at once gets them asked in one round (each one that comes restarts
/// the wait, up to [`GATHER_MAX`]).
const GATHER: std::time::Duration = std::time::Duration::from_millis(50);
const GATHER_MAX: std::time::Duration = std::time::Duration::from_millis(500);

impl Call {
    fn start(
        session: Arc<ClientSession>,
        outlet: Arc<RequestOutlet>,
        rx: mpsc::Receiver<Item>,
        guard: sse::OnDrop,
        method: &str,
        req: Request,
        binding: mrtr::Binding,
    ) -> Self {
        let (tx, answer) = oneshot::channel();
        let reply_id = req.id.clone();
        let serving = session.clone();
        session.hub().spawn(async move {
            let _ = tx.send(serving.request(req).await);
        });
        Self {
            session,
            outlet,
            rx,
            answer,
            _guard: guard,
            method: method.to_owned(),
            reply_id,
            asked: BTreeMap::new(),
            held: Vec::new(),
            unmet: None,
            binding,
        }
    }

    /// The owner of the tasks spawned for this call.
    pub(crate) fn hub(&self) -> &mcp_proxy_core::SessionHub {
        self.session.hub()
    }

    pub(crate) fn set_parked(&self, parked: bool) {
        self.outlet.parked.store(parked, Ordering::Relaxed);
    }

    /// Hands the client's answers to the upstream, for the keys asked (others are
    /// ignored); the keys left unanswered are asked again.
    async fn answer_with(&mut self, mut responses: Map<String, Value>) {
        let keys: Vec<String> = self.asked.keys().cloned().collect();
        for key in keys {
            let Some(result) = responses.remove(&key) else {
                continue;
            };
            self.asked.remove(&key);
            let response = mcp_types::Response {
                id: RequestId::String(key),
                outcome: Outcome::Result(to_raw(&result)),
                extra: Default::default(),
            };
            self.session.respond(response).await;
        }
    }

    async fn next(&mut self) -> Step {
        loop {
            if !self.held.is_empty() {
                return Step::Note(self.held.remove(0));
            }
            let item = tokio::select! {
                biased;
                item = self.rx.recv() => item,
                reply = &mut self.answer => return Step::Done(reply.ok().flatten()),
            };
            match item {
                Some(Item::Note(note)) => return Step::Note(note),
                Some(Item::Unmet(capability)) => self.unmet = Some(capability),
                Some(Item::Input(key, request)) => {
                    self.asked.insert(key, request);
                    return self.gather().await;
                }
                None => return Step::Done((&mut self.answer).await.ok().flatten()),
            }
        }
    }

    /// Takes the input requests that follow the first closely. The answer coming
    /// meanwhile wins: the questions then need no asking.
    async fn gather(&mut self) -> Step {
        let until = tokio::time::Instant::now() + GATHER_MAX;
        loop {
            let wait = GATHER.min(until.saturating_duration_since(tokio::time::Instant::now()));
            let item = tokio::select! {
                biased;
                reply = &mut self.answer => return Step::Done(reply.ok().flatten()),
                item = tokio::time::timeout(wait, self.rx.recv()) => item,
            };
            match item {
                Ok(Some(Item::Input(key, request))) => {
                    self.asked.insert(key, request);
                }
                Ok(Some(Item::Note(note))) => self.held.push(note),
                Ok(Some(Item::Unmet(capability))) => self.unmet = Some(capability),
                Ok(None) | Err(_) => return Step::Inputs,
            }
        }
    }

    /// What comes first on a retry that left questions unanswered: the answer if it is
    /// already there, otherwise the questions again.
    fn after_retry(&mut self) -> Step {
        match self.answer.try_recv() {
            Ok(reply) => Step::Done(reply),
            Err(oneshot::error::TryRecvError::Closed) => Step::Done(None),
            Err(oneshot::error::TryRecvError::Empty) => Step::Inputs,
        }
    }

    /// Notifications already queued.
    fn drain_notes(&mut self) -> Vec<Bytes> {
        let mut notes = std::mem::take(&mut self.held);
        while let Ok(item) = self.rx.try_recv() {
            if let Item::Note(n) = item {
                notes.push(n);
            }
        }
        notes
    }

    /// The last message of an exchange, and its status when it is the whole answer. An
    /// input-required answer parks the call until its retry.
    fn conclude(self, app: &App, step: Step) -> (Bytes, StatusCode) {
        let (_, server_info, _) = self.session.identity();
        match step {
            Step::Done(Some(reply)) => match (reply.message, self.unmet) {
                (Message::Response(r), Some(capability)) if failed(&r.outcome) => {
                    // It failed after asking for what the client cannot give.
                    let message =
                        missing_capability_message(self.reply_id.clone(), capability, &r.outcome);
                    (Bytes::from(message.to_vec()), StatusCode::BAD_REQUEST)
                }
                (Message::Response(mut r), _) => {
                    r.id = self.reply_id.clone();
                    let message = Message::Response(r);
                    let status = error_status(&message);
                    (finish(message, &self.method, &server_info, None), status)
                }
                (other, _) => (
                    finish(other, &self.method, &server_info, None),
                    StatusCode::OK,
                ),
            },
            Step::Done(None) => {
                let message = Message::error(
                    self.reply_id.clone(),
                    codes::INTERNAL_ERROR,
                    "the request ended without an answer: its session was closed",
                );
                (Bytes::from(message.to_vec()), StatusCode::OK)
            }
            Step::Inputs => {
                let requests: Map<String, Value> = self
                    .asked
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let id = self.reply_id.clone();
                let method = self.method.clone();
                let binding = self.binding.clone();
                let state = app.inner().waiting.park(self, binding);
                let result = serde_json::json!({
                    "resultType": "input_required",
                    "inputRequests": requests,
                    "requestState": state,
                });
                (
                    finish(Message::result(id, &result), &method, &server_info, None),
                    StatusCode::OK,
                )
            }
            Step::Note(note) => (note, StatusCode::OK),
        }
    }
}

/// The answer to a forwarded request: plain JSON when nothing came before the last
/// message, otherwise an event stream (no event ids: the revision has no resumption) of
/// the request's notifications, ending with it. Closing the stream ends the request: it
/// is the revision's cancellation.
async fn answer_stream(app: &App, mut call: Call) -> Response<Body> {
    let first = if call.asked.is_empty() {
        call.next().await
    } else {
        // Answers were missing from the retry.
        call.after_retry()
    };
    let stream = |prelude: Vec<Bytes>, live| {
        let mut resp = sse::sse_response(prelude, live, app.config().sse_keepalive, None);
        resp.headers_mut()
            .insert("x-accel-buffering", HeaderValue::from_static("no"));
        resp
    };
    match first {
        Step::Note(note) => {
            // Something came first: relay the rest as it comes, then the last message.
            let (tx, live) = mpsc::channel(sse::LIVE_CAPACITY);
            let app = app.clone();
            // Runs to its end at shutdown too: the session's end is its last message.
            let tasks = call.session.hub().clone();
            tasks.spawn_cleanup(async move {
                let send = |json: Bytes, last: bool| {
                    let tx = tx.clone();
                    async move {
                        tx.send(sse::Item {
                            id: None,
                            json,
                            last,
                        })
                        .await
                        .is_ok()
                    }
                };
                loop {
                    let step = tokio::select! {
                        biased;
                        () = tx.closed() => return,
                        step = call.next() => step,
                    };
                    match step {
                        Step::Note(note) => {
                            if !send(note, false).await {
                                return;
                            }
                        }
                        step => {
                            for note in call.drain_notes() {
                                send(note, false).await;
                            }
                            let (json, _) = call.conclude(&app, step);
                            send(json, true).await;
                            return;
                        }
                    }
                }
            });
            stream(vec![event(&note)], Some(live))
        }
        step => {
            let early = call.drain_notes();
            let (json, status) = call.conclude(app, step);
            if early.is_empty() {
                let mut resp = json_answer(json);
                *resp.status_mut() = status;
                resp
            } else {
                let mut events: Vec<Bytes> = early.iter().map(event).collect();
                events.push(event(&json));
                stream(events, None)
            }
        }
    }
}

/// An SSE event without an id.
fn event(json: &Bytes) -> Bytes {
    sse::Item {
        id: None,
        json: json.clone(),
        last: false,
    }
    .encode()
}

/// `subscriptions/listen`: the acknowledgement first, then the change notifications
/// asked for, each tagged with the subscription id, until the client closes the stream;
/// when the session ends from our side (shutdown, the upstream gone), a `complete`
/// result closes it.
fn listen_stream(
    app: &App,
    session: Arc<ClientSession>,
    outlet: Arc<RequestOutlet>,
    id: RequestId,
    rx: mpsc::Receiver<Item>,
    guard: sse::OnDrop,
) -> Response<Body> {
    let listen = outlet.listen.clone().unwrap_or_default();
    let mut accepted = Map::new();
    if listen.tools {
        accepted.insert("toolsListChanged".into(), Value::Bool(true));
    }
    if listen.prompts {
        accepted.insert("promptsListChanged".into(), Value::Bool(true));
    }
    if listen.resources {
        accepted.insert("resourcesListChanged".into(), Value::Bool(true));
    }
    if !listen.uris.is_empty() {
        accepted.insert(
            "resourceSubscriptions".into(),
            Value::from(listen.uris.clone()),
        );
    }
    let ack = serde_json::json!({
        "jsonrpc": "2.0",
        "method": modern::LISTEN_ACKNOWLEDGED,
        "params": {
            "_meta": { META_SUBSCRIPTION: id },
            "notifications": accepted,
        },
    });
    // Resource subscriptions go upstream through the session (shared connections count
    // their subscribers).
    for uri in &listen.uris {
        let subscribe = Request {
            id: RequestId::String(format!("listen-{uri}")),
            method: methods::RESOURCES_SUBSCRIBE.into(),
            params: Some(to_raw(&serde_json::json!({ "uri": uri }))),
            extra: mcp_types::jsonrpc::Extra::new(),
        };
        let serving = session.clone();
        session.hub().spawn(async move {
            let _ = serving.request(subscribe).await;
        });
    }
    let first = event(&Bytes::from(ack.to_string()));
    let (tx, live) = mpsc::channel(sse::LIVE_CAPACITY);
    // Relay the outlet's messages to the response; when the session ends (not by the
    // client: dropping the response closes the session through `guard`), say so with a
    // complete result (at shutdown too).
    session.hub().spawn_cleanup(async move {
        let mut rx = rx;
        while let Some(item) = rx.recv().await {
            let Item::Note(json) = item else { continue };
            let item = sse::Item {
                id: None,
                json,
                last: false,
            };
            if tx.send(item).await.is_err() {
                return;
            }
        }
        let done = serde_json::json!({
            "jsonrpc": "2.0",
            "id": id,
            "result": { "resultType": "complete", "_meta": { META_SUBSCRIPTION: id } },
        });
        let _ = tx
            .send(sse::Item {
                id: None,
                json: Bytes::from(done.to_string()),
                last: true,
            })
            .await;
    });
    let mut resp = sse::sse_response(
        vec![first],
        Some(live),
        app.config().sse_keepalive,
        Some(guard),
    );
    resp.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// What a `subscriptions/listen` asked for.
#[derive(Debug, Clone, Default)]
struct Listen {
    tools: bool,
    prompts: bool,
    resources: bool,
    uris: Vec<String>,
}

impl Listen {
    fn from(req: &Request) -> Self {
        let filter = req
            .params
            .as_deref()
            .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
            .and_then(|v| v.get("notifications").cloned())
            .unwrap_or(Value::Null);
        let flag = |k: &str| filter.get(k).and_then(Value::as_bool).unwrap_or(false);
        Self {
            tools: flag("toolsListChanged"),
            prompts: flag("promptsListChanged"),
            resources: flag("resourcesListChanged"),
            uris: filter
                .get("resourceSubscriptions")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|u| u.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// What the outlet passes on to a modern request's exchange.
#[derive(Debug)]
pub(crate) enum Item {
    /// A notification, encoded.
    Note(Bytes),
    /// An upstream request for input (sampling, elicitation, roots): its key (the id the
    /// session gave it) and `{method, params}`.
    Input(String, Value),
    /// The upstream asked for input needing a capability the client did not declare.
    Unmet(&'static str),
}

/// Where a stateless session's messages go: the request's own exchange. Log messages
/// only at or above the level the request asked for (none without one); on a listen
/// stream only the notification kinds asked for, tagged with the subscription id. While
/// its call waits for a retry (parked), notifications are dropped: no one could take them.
#[derive(Debug)]
pub(crate) struct RequestOutlet {
    tx: Mutex<Option<mpsc::Sender<Item>>>,
    log_level: Option<usize>,
    listen: Option<Listen>,
    subscription: Option<RequestId>,
    parked: AtomicBool,
}

/// Server→client requests a 2026-07-28 client answers as `inputRequests`.
const INPUT_METHODS: &[&str] = &[
    methods::ELICITATION_CREATE,
    methods::SAMPLING_CREATE_MESSAGE,
    methods::ROOTS_LIST,
];

impl RequestOutlet {
    fn wanted(&self, msg: &Message) -> bool {
        let Some(method) = msg.method() else {
            return false; // responses are the request's own answer, handed over directly
        };
        if let Some(listen) = &self.listen {
            return match method {
                methods::TOOLS_LIST_CHANGED => listen.tools,
                methods::PROMPTS_LIST_CHANGED => listen.prompts,
                methods::RESOURCES_LIST_CHANGED => listen.resources,
                methods::RESOURCES_UPDATED => mcp_types::params::uri(msg.params())
                    .ok()
                    .flatten()
                    .is_some_and(|u| listen.uris.contains(&u)),
                _ => false,
            };
        }
        if self.parked.load(Ordering::Relaxed) {
            return false;
        }
        match method {
            methods::LOG_MESSAGE => {
                let Some(min) = self.log_level else {
                    return false;
                };
                let level = msg
                    .params()
                    .and_then(|p| Members::parse(p).ok()?.string("level").ok()?)
                    .and_then(|l| LEVELS.iter().position(|x| *x == l))
                    .unwrap_or(0);
                level >= min
            }
            methods::PROGRESS => true,
            _ => false,
        }
    }

    fn push(&self, item: Item) -> bool {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
        tx.is_some_and(|tx| tx.try_send(item).is_ok())
    }
}

impl Outlet for RequestOutlet {
    fn send(&self, out: Outbound) -> bool {
        if let Message::Request(r) = &out.message {
            if self.listen.is_some() || !INPUT_METHODS.contains(&r.method.as_str()) {
                return true;
            }
            let RequestId::String(key) = r.id.clone() else {
                return true; // the session names them `mcp-proxy-N`
            };
            let params = r
                .params
                .as_deref()
                .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
                .unwrap_or_else(|| Value::Object(Map::new()));
            let request = serde_json::json!({ "method": r.method, "params": params });
            return self.push(Item::Input(key, request));
        }
        if !self.wanted(&out.message) {
            return true;
        }
        let mut message = out.message;
        if let (Some(sub), Message::Notification(n)) = (&self.subscription, &mut message)
            && let Some(params) = n.params.as_deref()
            && let Ok(members) = Members::parse(params)
        {
            let mut meta = members
                .get("_meta")
                .and_then(|m| serde_json::from_str::<Map<String, Value>>(m.get()).ok())
                .unwrap_or_default();
            meta.insert(
                META_SUBSCRIPTION.into(),
                serde_json::to_value(sub).unwrap_or(Value::Null),
            );
            n.params = Some(members.with("_meta", &to_raw(&meta)));
        } else if let (Some(sub), Message::Notification(n)) = (&self.subscription, &mut message) {
            n.params = Some(to_raw(
                &serde_json::json!({ "_meta": { META_SUBSCRIPTION: sub } }),
            ));
        }
        self.push(Item::Note(Bytes::from(message.to_vec())))
    }

    fn ended(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn unmet(&self, _related: Option<&RequestId>, capability: &'static str) {
        if self.listen.is_none() {
            self.push(Item::Unmet(capability));
        }
    }
}

/// Whether an outcome is a failure: a JSON-RPC error, or a tool result marked `isError`.
fn failed(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Error(_) => true,
        Outcome::Result(raw) => Members::parse(raw)
            .ok()
            .and_then(|m| m.get("isError").map(|v| v.get() == "true"))
            .unwrap_or(false),
    }
}

/// `-32021`: the request needs a capability the client did not declare (the upstream
/// asked for it, was refused, and failed; what it answered is in `data.upstream`).
fn missing_capability_message(id: RequestId, needed: &str, upstream: &Outcome) -> Message {
    let mut error = mcp_types::ErrorObject::new(
        MISSING_CAPABILITY,
        format!("this request needs the client capability {needed:?}"),
    );
    let answered = match upstream {
        Outcome::Error(e) => {
            serde_json::json!({ "error": { "code": e.code, "message": e.message } })
        }
        Outcome::Result(raw) => serde_json::json!({
            "result": serde_json::from_str::<Value>(raw.get()).unwrap_or(Value::Null)
        }),
    };
    error.data = Some(to_raw(&serde_json::json!({
        "requiredCapabilities": { needed: {} },
        "upstream": answered,
    })));
    Message::Response(mcp_types::Response {
        id,
        outcome: Outcome::Error(error),
        extra: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_sentinels_decode() {
        let v = HeaderValue::from_static("=?base64?aMOpbGxv?=");
        assert_eq!(header_text(&v).as_deref(), Some("héllo"));
        assert_eq!(
            header_text(&HeaderValue::from_static("plain")).as_deref(),
            Some("plain")
        );
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
    }

    #[test]
    fn revision_errors_keep_their_http_status() {
        let answer = |code: i64| error_status(&Message::error(RequestId::number(1), code, "m"));
        assert_eq!(answer(MISSING_CAPABILITY), StatusCode::BAD_REQUEST);
        assert_eq!(answer(UNSUPPORTED_VERSION), StatusCode::BAD_REQUEST);
        assert_eq!(answer(codes::METHOD_NOT_FOUND), StatusCode::NOT_FOUND);
        assert_eq!(answer(codes::INVALID_PARAMS), StatusCode::OK);
        let ok = Message::result(
            RequestId::number(1),
            &serde_json::json!({"error": {"code": -32601}}),
        );
        assert_eq!(error_status(&ok), StatusCode::OK);
    }

    #[test]
    fn results_get_result_type_server_info_and_hints() {
        let msg = Message::result(RequestId::number(1), &serde_json::json!({"tools": []}));
        let out = finish(
            msg,
            methods::TOOLS_LIST,
            &mcp_types::mcp::Implementation::new("up", "1"),
            None,
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["result"]["resultType"], "complete");
        assert_eq!(v["result"]["_meta"][META_SERVER]["name"], "up");
        assert_eq!(v["result"]["cacheScope"], "private");
        assert_eq!(v["result"]["ttlMs"], 0);
    }
}
