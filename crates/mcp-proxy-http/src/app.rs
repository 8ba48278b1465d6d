//! The application: shared state and request dispatch (security, then routing, then the
//! handler).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Method, Request, Response};
use hyper::body::Incoming;
use mcp_proxy_core::Manager;
use mcp_proxy_core::Metrics;
use mcp_proxy_core::metrics::{AuthFailure, Direction};
use mcp_store::Store;
use tracing::{debug, warn};

use crate::admin::live;
use crate::body::{Body, error_response};
use crate::config::HttpConfig;
use crate::error::Error;
use crate::router::{self, Route};
use crate::security::{self, ClientAddr};
use crate::{admin, mcp, system};

/// The HTTP application: cheap to clone, shared by every connection.
#[derive(Debug, Clone)]
pub struct App {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: HttpConfig,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) manager: Manager,
    pub(crate) started: Instant,
    /// The client sessions (core side: limits, upstream links).
    pub(crate) sessions: mcp_proxy_core::SessionHub,
    /// The same sessions as HTTP sees them, by session id.
    pub(crate) http_sessions: Arc<mcp::Registry>,
    /// Upstream calls waiting for a 2026-07-28 client's input-required retry.
    pub(crate) waiting: Arc<mcp::mrtr::Waiting>,
    /// Session tokens as client session ids (with `session_keys`).
    pub(crate) tokens: Option<mcp::token::Tokens>,
    /// This replica in the session registry (with `session_keys` and Redis).
    pub(crate) replicas: Option<Arc<mcp::replicas::Replicas>>,
    /// Requests forwarded to the replica holding what they need, and from other replicas.
    pub(crate) forward: mcp::forward::Forwarder,
}

impl App {
    /// Builds the application over a store and the manager of the upstreams it holds.
    pub fn new(config: HttpConfig, store: Arc<dyn Store>, manager: Manager) -> Self {
        let sessions = mcp_proxy_core::SessionHub::with_limits(
            manager.clone(),
            mcp_proxy_core::SessionLimits {
                max_sessions: config.max_sessions,
                idle_timeout: config.session_idle_timeout,
                max_inflight: config.max_inflight_per_session,
            },
        );
        Self {
            inner: Arc::new(Inner {
                sessions,
                http_sessions: Arc::default(),
                waiting: mcp::mrtr::Waiting::new(&config.session_keys, config.input_wait),
                tokens: mcp::token::Tokens::new(
                    &config.session_keys,
                    config.session_token_lifetime,
                ),
                replicas: None,
                forward: mcp::forward::Forwarder::new(&config.session_keys),
                config,
                store,
                manager,
                started: Instant::now(),
            }),
        }
    }

    /// Shares streamable-HTTP sessions with the other replicas through `registry`, as
    /// replica `replica_id` reachable at `address` (see `docs/deployment.md`); it renews
    /// the replica's heartbeat from now on. Needs `session_keys` (session tokens):
    /// without them it does nothing. Call it before the application serves.
    pub fn with_registry(
        mut self,
        registry: Arc<dyn mcp_store::SessionRegistry>,
        replica_id: &str,
        address: &str,
    ) -> Self {
        let Some(inner) = Arc::get_mut(&mut self.inner) else {
            warn!("the session registry must be set before the application is shared; ignored");
            return self;
        };
        if inner.tokens.is_none() {
            warn!(
                "a session registry without session_keys is not used: sessions stay on the replica that started them"
            );
            return self;
        }
        inner.sessions.set_replica_id(replica_id);
        let replicas = mcp::replicas::Replicas::new(
            registry,
            replica_id.to_owned(),
            address.to_owned(),
            inner.config.session_idle_timeout,
            inner.sessions.clone(),
            Arc::downgrade(&inner.http_sessions),
        );
        replicas.spawn_heartbeat();
        inner.waiting.set_replica(replica_id);
        inner.replicas = Some(replicas);
        self
    }

    /// This replica's id in the session registry, if it has one.
    pub fn replica_id(&self) -> Option<&str> {
        self.inner
            .replicas
            .as_deref()
            .map(mcp::replicas::Replicas::id)
    }

    /// Removes this replica's heartbeat (call at a clean shutdown: sessions bound to it
    /// may be taken over at once).
    pub async fn retire(&self) {
        if let Some(r) = &self.inner.replicas {
            r.retire().await;
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &HttpConfig {
        &self.inner.config
    }

    /// The client sessions of the proxy endpoints (to end them at shutdown).
    pub fn sessions(&self) -> &mcp_proxy_core::SessionHub {
        &self.inner.sessions
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Handles one request from `peer`. Never fails: errors become responses.
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let span = tracing::debug_span!(
            "http",
            %method,
            %path,
            %peer,
            client = tracing::field::Empty
        );
        let metrics = self.metrics().clone();
        if let Some(n) = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            metrics.bytes(Direction::In, n);
        }
        let started = Instant::now();
        let route = route_template(&path);
        let dispatch = tracing::Instrument::instrument(self.dispatch(req, peer), span);
        let within = self.inner.config.listener.body_read_timeout;
        let resp = match crate::body::BODY_READ_TIMEOUT.scope(within, dispatch).await {
            Ok(resp) => resp,
            Err(err) => {
                let (status, kind, _) = err.parts();
                let code = kind.as_str();
                if status.is_server_error() {
                    warn!(%method, %path, code, error = %err, "request failed");
                } else {
                    debug!(%method, %path, code, error = %err, "request refused");
                }
                error_response(&err)
            }
        };
        metrics.record_http(route, &method, resp.status().as_u16(), started.elapsed());
        if method == Method::HEAD {
            let (parts, _) = resp.into_parts();
            return Response::from_parts(parts, crate::body::empty());
        }
        resp.map(|body| {
            http_body_util::BodyExt::boxed_unsync(http_body_util::BodyExt::map_frame(
                body,
                move |frame| {
                    if let Some(data) = frame.data_ref() {
                        metrics.bytes(Direction::Out, data.len() as u64);
                    }
                    frame
                },
            ))
        })
    }

    /// The Prometheus metrics (shared with the core).
    pub fn metrics(&self) -> &Arc<Metrics> {
        self.inner.manager.prometheus()
    }

    async fn dispatch(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response<Body>, Error> {
        let cfg = &self.inner.config;
        let path = req.uri().path().to_owned();
        let endpoint = mcp::Endpoint::parse(&path);
        if cfg.check_host && !security::host_allowed(req.uri(), req.headers(), &cfg.extra_hosts) {
            self.metrics().auth_failure(AuthFailure::HostNotAllowed);
            let err =
                Error::Forbidden("host not allowed: the Host header must name this proxy".into());
            // MCP clients read JSON-RPC errors, even this early.
            return match endpoint {
                Some(_) => Ok(mcp::jsonrpc_error_response(&err)),
                None => Err(err),
            };
        }
        let client = security::client_addr(peer.ip(), req.headers(), &cfg.trusted_proxies);
        tracing::Span::current().record("client", tracing::field::display(client));
        if client == ClientAddr::Unknown {
            debug!("x-forwarded-for from a trusted proxy cannot be read: client unknown");
        }
        // The MCP proxy endpoints (`/{name}/sse|message|stream|mcp`) have their own
        // security (per-server tokens, IPs, Origin) and protocol rules.
        if let Some(endpoint) = endpoint {
            return mcp::handle(self, endpoint, req, client).await;
        }
        // Authorise on the resolved route, never on the raw path: every spelling that
        // reaches an admin route needs admin credentials. Unknown paths under /admin need
        // them too, so that they reveal nothing to unauthenticated callers; the method is
        // checked after, for the same reason.
        let route = Route::parse(&path);
        let needs_admin = match &route {
            Some(route) => route.requires_admin(cfg.metrics_public),
            None => router::is_under_admin(&path),
        };
        if needs_admin {
            self.authorize_admin(&req, client)?;
        }
        let route = route.ok_or_else(|| Error::RouteNotFound(path.clone()))?;
        let route = router::check_method(route, req.method(), &path)?;
        match route {
            Route::Healthz => Ok(system::healthz(self)),
            Route::Readyz => Ok(system::readyz(self).await),
            Route::AdminMetrics => Ok(system::admin_metrics(self)),
            Route::PrometheusMetrics => Ok(system::prometheus(self)),
            Route::Mcps | Route::Mcp(_) | Route::Import => admin::mcps(self, route, req).await,
            Route::Groups | Route::Group(_) => admin::groups(self, route, req).await,
            Route::Reconnect(name) => live::reconnect(self, &name),
            Route::Tools => live::tools(self, req.uri().query()),
            Route::Prompts => Ok(live::prompts(self)),
            Route::Resources => Ok(live::resources(self)),
            Route::ToolsCall => live::call_tool(self, req).await,
        }
    }

    fn authorize_admin(&self, req: &Request<Incoming>, client: ClientAddr) -> Result<(), Error> {
        let cfg = &self.inner.config;
        if !cfg.admin_allow_ips.contains(client) {
            self.metrics().auth_failure(AuthFailure::IpNotAllowed);
            return Err(Error::Forbidden(match client {
                _ if cfg.admin_allow_ips.is_empty() => {
                    "the admin api is closed to every client: admin_allow_ips is empty".into()
                }
                ClientAddr::Known(ip) => {
                    format!("client address {ip} is not allowed to use the admin api")
                }
                ClientAddr::Unknown => "client address unknown (a trusted proxy forwarded an \
                    unreadable X-Forwarded-For): not allowed to use the admin api"
                    .into(),
            }));
        }
        security::check_bearer(req.headers(), &cfg.admin_tokens).map_err(|f| {
            self.metrics().auth_failure(f.metric());
            Error::Unauthorized(f.message())
        })
    }
}

/// The route template of `path`, for metrics: a bounded label, never the raw path.
fn route_template(path: &str) -> &'static str {
    if let Some(endpoint) = mcp::Endpoint::parse(path) {
        return endpoint.template(path);
    }
    Route::parse(path).map_or("unmatched", |r| r.template())
}
