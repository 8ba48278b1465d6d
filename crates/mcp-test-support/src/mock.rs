//! Mock MCP upstreams for fault injection: an in-process HTTP server (hyper) speaking
//! streamable HTTP on `/mcp` and legacy HTTP+SSE on `/sse` + `/message`, on a free
//! `127.0.0.1` port, stopped on drop.
//!
//! It answers `initialize`, `ping`, `tools/list` (two pages: `echo`, then `slow`) and
//! `tools/call` (`echo` answers with a `notifications/message` then the result; `big`
//! with `{"bytes": n}` answers with a text of `n` bytes; `ask` waits for a number of
//! concurrent `ask` calls, see the streamable module) and records
//! every request it sees. A [`Fault`] picks a misbehaviour; [`MockServer`]
//! methods inject others on demand (expire sessions, cut legacy streams).
//!
//! ```ignore
//! let mock = MockServer::start(Fault::CutStreamResumable).await;
//! let def = McpDefinition::http("m", TransportKind::StreamableHttp, mock.url());
//! ```
//!
//! The stdio counterpart is the `mock-stdio` binary (see [`crate::tools::mock_stdio`]).

mod legacy;
mod streamable;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::{CancellationToken, DropGuard};

/// How the mock misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// None: a correct server (SSE answers with event ids, no GET stream: 405).
    #[default]
    None,
    /// Streamable HTTP: requests are answered with `application/json` bodies.
    JsonResponses,
    /// Streamable HTTP: the SSE answer to `tools/call` is cut in the middle of the
    /// response event, after a priming event with an id and `retry: 50`; a GET with that
    /// `Last-Event-ID` replays the whole response.
    CutStreamResumable,
    /// Streamable HTTP: the same cut, with no event ids (the stream cannot be resumed).
    CutStreamNoIds,
    /// `tools/call` is never answered (its SSE stream stays open and silent).
    NeverAnswer,
}

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// `GET`, `POST`, `DELETE`.
    pub method: String,
    /// The path and query.
    pub path: String,
    /// Every header, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The JSON-RPC method of a POSTed request or notification.
    pub rpc_method: Option<String>,
}

impl SeenRequest {
    /// The value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

type Body = BoxBody<Bytes, std::io::Error>;
type Chunk = Result<Bytes, std::io::Error>;

#[derive(Debug, Default)]
struct State {
    fault: Fault,
    next_id: u64,
    /// Live streamable HTTP sessions.
    sessions: HashMap<String, ()>,
    /// Live legacy SSE sessions and their streams.
    legacy: HashMap<String, mpsc::Sender<Chunk>>,
    /// Full event data by the id of the event before it (for `Last-Event-ID`).
    replay: HashMap<String, (String, String)>,
    /// Streams kept open on purpose (never answered).
    held: Vec<mpsc::Sender<Chunk>>,
    /// `ask` calls waiting for their barrier: stream, message, answer, number.
    asks: Vec<(mpsc::Sender<Chunk>, String, Value, u64)>,
    seen: Vec<SeenRequest>,
}

type Shared = Arc<Mutex<State>>;

/// A running mock upstream; stopped when dropped.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    state: Shared,
    _stop: DropGuard,
}

impl MockServer {
    /// Starts the mock on a free loopback port.
    pub async fn start(fault: Fault) -> Self {
        Self::start_on(fault, 0).await
    }

    /// Starts the mock on `port` of 127.0.0.1 (0: a free one) — again on the port of one
    /// dropped before, say, to play a server restarted with no memory of its sessions.
    /// Dropping a mock cuts its open connections, as a crash would.
    pub async fn start_on(fault: Fault, port: u16) -> Self {
        // A mock dropped a moment ago lets go of its port once its task notices.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
                Ok(listener) => break listener,
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    panic!("bind 127.0.0.1:{port}: {e}")
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        };
        let addr = listener.local_addr().expect("local addr");
        let state: Shared = Arc::new(Mutex::new(State {
            fault,
            ..State::default()
        }));
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, state.clone(), stop.clone()));
        Self {
            addr,
            state,
            _stop: stop.drop_guard(),
        }
    }

    /// The streamable HTTP endpoint: `http://127.0.0.1:<port>/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The legacy SSE endpoint: `http://127.0.0.1:<port>/sse`.
    pub fn sse_url(&self) -> String {
        format!("http://{}/sse", self.addr)
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<SeenRequest> {
        lock(&self.state).seen.clone()
    }

    /// Forgets every session: later requests carrying their ids get 404.
    pub fn expire_sessions(&self) {
        let mut state = lock(&self.state);
        state.sessions.clear();
        state.legacy.clear();
    }

    /// Legacy SSE: sends half an event on every open stream, then breaks the connection.
    pub fn cut_sse_streams(&self) {
        let streams: Vec<_> = lock(&self.state).legacy.drain().collect();
        for (_, tx) in streams {
            let _ = tx.try_send(Ok(Bytes::from_static(
                b"event: message\ndata: {\"jsonrpc\":",
            )));
            let _ = tx.try_send(Err(std::io::Error::other("cut by the mock")));
        }
    }
}

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, State> {
    state.lock().expect("mock state lock")
}

async fn serve(listener: TcpListener, state: Shared, stop: CancellationToken) {
    let mut conns = JoinSet::new();
    loop {
        let (tcp, _) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        let state = state.clone();
        let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
        conns.spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
        });
        while conns.try_join_next().is_some() {}
    }
}

async fn handle(state: Shared, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = parts.uri.path().to_owned();
    lock(&state).seen.push(SeenRequest {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or(path.clone(), |p| p.to_string()),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        rpc_method: json["method"].as_str().map(str::to_owned),
    });
    let response = if path.starts_with("/mcp") {
        streamable::handle(&state, &parts, json)
    } else if path.starts_with("/sse") {
        legacy::open(&state)
    } else if path.starts_with("/message") {
        legacy::post(&state, &parts, json)
    } else {
        plain(StatusCode::NOT_FOUND, "no such path")
    };
    Ok(response)
}

/// The answer of a correct server to `msg`, or `None` for notifications and responses.
fn answer(msg: &Value) -> Option<Value> {
    let id = msg.get("id")?.clone();
    msg.get("method")?;
    let result = match msg["method"].as_str().unwrap_or_default() {
        "initialize" => json!({
            "protocolVersion": msg["params"]["protocolVersion"],
            "capabilities": {"tools": {"listChanged": true}},
            "serverInfo": {"name": "mock-http", "version": "1.0.0"},
            "instructions": "a mock for transport tests",
        }),
        "ping" => json!({}),
        "tools/list" if msg["params"]["cursor"] == "2" => {
            json!({"tools": [{"name": "slow", "inputSchema": {"type": "object"}}]})
        }
        "tools/list" => json!({
            "tools": [{"name": "echo", "inputSchema": {"type": "object"}}],
            "nextCursor": "2",
        }),
        "tools/call" if msg["params"]["name"] == "big" => {
            let bytes = msg["params"]["arguments"]["bytes"].as_u64().unwrap_or(0);
            let text = "y".repeat(usize::try_from(bytes).unwrap_or(0));
            json!({"content": [{"type": "text", "text": text}]})
        }
        "tools/call" => {
            let text = msg["params"]["arguments"]["message"].clone();
            json!({"content": [{"type": "text", "text": text}]})
        }
        other => {
            return Some(json!({"jsonrpc": "2.0", "id": id, "error": {
                "code": -32601, "message": format!("unknown method {other}"),
            }}));
        }
    };
    Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(full(text))
        .expect("valid response")
}

fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An SSE response fed by the returned sender; an `Err` chunk breaks the connection.
fn sse_response() -> (Response<Body>, mpsc::Sender<Chunk>) {
    let (tx, rx) = mpsc::channel::<Chunk>(64);
    let frames = stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((chunk.map(Frame::data), rx))
    });
    let response = Response::builder()
        .header(http::header::CONTENT_TYPE, "text/event-stream")
        .header(http::header::CACHE_CONTROL, "no-cache")
        .body(StreamBody::new(frames).boxed())
        .expect("valid response");
    (response, tx)
}

fn sse_event(id: Option<&str>, data: &str) -> Bytes {
    let mut event = String::from("event: message\n");
    if let Some(id) = id {
        event.push_str(&format!("id: {id}\n"));
    }
    event.push_str(&format!("data: {data}\n\n"));
    event.into()
}
