//! Embeds the proxy's HTTP layer in a service of your own: the host serves its own page
//! at `/`, and mounts the whole proxy (Admin API, MCP endpoints, health) under
//! `/gateway`, behind its own authentication (an `X-Api-Key` header). The proxy's own
//! rules still hold inside: the Admin API wants its admin token.
//!
//! ```text
//! cargo run -p mcp-proxy-http --example embed_http -- [-- PROGRAM ARGS…]
//! ```
//!
//! The example then acts as a client of its own service, and exits non-zero when any
//! answer is not the one expected: the host's page, a 401 from the host without the key,
//! the proxy's `/healthz` under the prefix, an Admin API registration of the upstream
//! (`PROGRAM ARGS…`, default `uvx mcp-server-time`), an MCP session through
//! `/gateway/clock/mcp` that calls `get_current_time`, and the removal.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mcp_proxy_core::{Manager, ManagerConfig, TransportConnector};
use mcp_proxy_http::security::TokenSet;
use mcp_proxy_http::{App, HttpConfig};
use mcp_store::{MemoryStore, Store};
use mcp_types::Secret;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Where the proxy is mounted in the host's URL space.
const PREFIX: &str = "/gateway";
/// The host's own credential, checked before anything reaches the proxy.
const API_KEY: &str = "host-key-for-the-example";
/// The proxy's admin token (its own rule, inside the host's).
const ADMIN_TOKEN: &str = "proxy-admin-token-for-the-example";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let body = http_body_util::Full::new(Bytes::from_static(body.as_bytes()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp
}

/// The path below [`PREFIX`], when the request is for the proxy.
fn below_prefix(uri: &Uri) -> Option<String> {
    let rest = uri.path().strip_prefix(PREFIX)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let path = if rest.is_empty() { "/" } else { rest };
    Some(match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    })
}

/// The host service: its own page, its own authentication, the proxy under [`PREFIX`].
async fn host(app: App, mut req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let Some(inner) = below_prefix(req.uri()) else {
        return match req.uri().path() {
            "/" => text(StatusCode::OK, "the host service\n"),
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        };
    };
    if req.headers().get("x-api-key").and_then(|v| v.to_str().ok()) != Some(API_KEY) {
        return text(StatusCode::UNAUTHORIZED, "the host wants its x-api-key\n");
    }
    // The host's credential is the host's: it does not travel further.
    req.headers_mut().remove("x-api-key");
    let Ok(uri) = inner.parse::<Uri>() else {
        return text(StatusCode::BAD_REQUEST, "bad path\n");
    };
    *req.uri_mut() = uri;
    app.handle(req, peer).await
}

/// Serves the host on `listener` until the returned set is dropped or aborted.
fn spawn_host(listener: TcpListener, app: App) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        let mut connections = JoinSet::new();
        while let Ok((stream, peer)) = listener.accept().await {
            let app = app.clone();
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let app = app.clone();
                    async move { Ok::<_, std::convert::Infallible>(host(app, req, peer).await) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
            });
            // Finished connections are reaped as new ones come.
            while connections.try_join_next().is_some() {}
        }
    });
    tasks
}

/// A client of the host, with the host's key on every request.
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("x-api-key", API_KEY)
    }

    fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.request(method, &format!("{PREFIX}{path}"))
            .bearer_auth(ADMIN_TOKEN)
    }

    /// One JSON-RPC message to the MCP endpoint; the answer whether it comes as JSON or
    /// as an SSE stream, or `None` for an accepted notification.
    async fn mcp(
        &self,
        session: Option<&str>,
        message: Value,
    ) -> anyhow::Result<(Option<String>, Option<Value>)> {
        let mut req = self
            .request(reqwest::Method::POST, &format!("{PREFIX}/clock/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&message);
        if let Some(id) = session {
            req = req.header("mcp-session-id", id).header(
                "mcp-protocol-version",
                mcp_types::mcp::LATEST_PROTOCOL_VERSION,
            );
        }
        let resp = req.send().await?;
        let status = resp.status();
        let id = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let is_sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        let body = resp.text().await?;
        ensure!(
            status.is_success(),
            "{} answered {status}: {body}",
            message["method"]
        );
        if status == StatusCode::ACCEPTED {
            return Ok((id, None));
        }
        let json = if is_sse {
            body.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .find(|v| v.get("id") == message.get("id"))
                .context("no answer on the event stream")?
        } else {
            serde_json::from_str(&body)?
        };
        Ok((id, Some(json)))
    }
}

async fn run(client: &Client, command: &[String]) -> anyhow::Result<()> {
    let get = |path: &str| client.http.get(format!("{}{path}", client.base)).send();
    let page = get("/").await?;
    ensure!(
        page.status() == StatusCode::OK,
        "/ answered {}",
        page.status()
    );
    println!("host page: {}", page.text().await?.trim());

    let refused = get(&format!("{PREFIX}/healthz")).await?.status();
    ensure!(
        refused == StatusCode::UNAUTHORIZED,
        "without the key: {refused}"
    );
    println!("without x-api-key: {refused} from the host");

    let health = client
        .request(reqwest::Method::GET, &format!("{PREFIX}/healthz"))
        .send()
        .await?;
    ensure!(
        health.status() == StatusCode::OK,
        "healthz: {}",
        health.status()
    );
    println!("proxy healthz under {PREFIX}: {}", health.status());

    let no_token = client
        .request(reqwest::Method::GET, &format!("{PREFIX}/admin/mcps"))
        .send()
        .await?
        .status();
    ensure!(
        no_token == StatusCode::UNAUTHORIZED,
        "admin without token: {no_token}"
    );
    println!("admin api without its token: {no_token} from the proxy");

    let (program, args) = command.split_first().context("empty command")?;
    let def = json!({"name": "clock", "transport": "stdio", "command": program, "args": args});
    let created = client
        .admin(reqwest::Method::POST, "/admin/mcps")
        .json(&def)
        .send()
        .await?;
    ensure!(
        created.status() == StatusCode::CREATED,
        "register: {}",
        created.text().await?
    );
    println!("registered clock through {PREFIX}/admin/mcps");

    let started = Instant::now();
    loop {
        let entry: Value = client
            .admin(reqwest::Method::GET, "/admin/mcps/clock")
            .send()
            .await?
            .json()
            .await?;
        if entry["status"]["state"] == "connected" {
            break;
        }
        if started.elapsed() > CONNECT_TIMEOUT {
            bail!(
                "clock did not connect within {CONNECT_TIMEOUT:?}: {}",
                entry["status"]
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": mcp_types::mcp::LATEST_PROTOCOL_VERSION,
        "capabilities": {}, "clientInfo": {"name": "embed_http", "version": "0"}}});
    let (session, answer) = client.mcp(None, init).await?;
    let session = session.context("no Mcp-Session-Id on the initialize answer")?;
    let answer = answer.context("no initialize answer")?;
    println!(
        "mcp session through {PREFIX}/clock/mcp: server {}",
        answer["result"]["serverInfo"]["name"]
    );
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    client.mcp(Some(&session), initialized).await?;
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "get_current_time", "arguments": {"timezone": "UTC"}}});
    let (_, answer) = client.mcp(Some(&session), call).await?;
    let result = &answer.context("no tools/call answer")?["result"];
    ensure!(result["isError"] != true, "the tool failed: {result}");
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    println!("get_current_time → {text}");

    let gone = client
        .admin(reqwest::Method::DELETE, "/admin/mcps/clock")
        .send()
        .await?
        .status();
    ensure!(gone == StatusCode::NO_CONTENT, "remove: {gone}");
    println!("removed clock");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut command: Vec<String> = std::env::args().skip_while(|a| a != "--").skip(1).collect();
    if command.is_empty() {
        command = vec!["uvx".into(), "mcp-server-time".into()];
    }
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let manager = Manager::new(
        store.clone(),
        Arc::new(TransportConnector::default()),
        ManagerConfig::default(),
    );
    manager.start().await;
    let config = HttpConfig {
        admin_tokens: TokenSet::new([&Secret::new(ADMIN_TOKEN)]),
        // Links the proxy writes (the legacy SSE `endpoint` event) carry the prefix.
        base_path: PREFIX.into(),
        ..HttpConfig::default()
    };
    let app = App::new(config, store, manager.clone());
    let outcome = async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        println!("host listening on {base}, the proxy under {PREFIX}");
        let mut server = spawn_host(listener, app.clone());
        let client = Client {
            http: reqwest::Client::new(),
            base,
        };
        let outcome = run(&client, &command).await;
        server.abort_all();
        outcome
    }
    .await;
    app.sessions().shutdown();
    manager.shutdown(Duration::from_secs(5)).await;
    match outcome {
        Ok(()) => {
            println!("embed_http: all checks passed");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("embed_http: {e:#}");
            ExitCode::FAILURE
        }
    }
}
