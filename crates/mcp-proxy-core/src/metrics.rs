//! Prometheus metrics. Label sets stay bounded: upstream names (capped by
//! `max_connections`), a fixed list of methods (anything else is `other`), and small enums;
//! never session ids or arguments.

mod connections;

use std::time::Duration;

pub use connections::{ConnectionClose, ConnectionMetrics};
use mcp_types::ConnectionState;
use mcp_types::mcp::methods;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Methods that get their own label value; every other method is `other`.
const KNOWN_METHODS: &[&str] = &[
    methods::INITIALIZE,
    methods::PING,
    methods::TOOLS_LIST,
    methods::TOOLS_CALL,
    methods::PROMPTS_LIST,
    methods::PROMPTS_GET,
    methods::RESOURCES_LIST,
    methods::RESOURCES_READ,
    methods::RESOURCE_TEMPLATES_LIST,
    methods::RESOURCES_SUBSCRIBE,
    methods::RESOURCES_UNSUBSCRIBE,
    methods::COMPLETION_COMPLETE,
    methods::LOGGING_SET_LEVEL,
    methods::SAMPLING_CREATE_MESSAGE,
    methods::ELICITATION_CREATE,
    methods::ROOTS_LIST,
    methods::TASKS_GET,
    methods::TASKS_RESULT,
    methods::TASKS_LIST,
    methods::TASKS_CANCEL,
];

/// How a forwarded request ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum RequestOutcome {
    /// A result.
    Ok,
    /// A JSON-RPC error from the upstream.
    Error,
    /// No answer within the deadline.
    Timeout,
    /// The connection failed or was not there.
    Unavailable,
}

/// Why a request was refused by the security layers.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum AuthFailure {
    /// No bearer token.
    MissingToken,
    /// A wrong bearer token.
    InvalidToken,
    /// The client address is not allowed.
    IpNotAllowed,
    /// The `Host` header names another site.
    HostNotAllowed,
    /// The `Origin` header is not allowed.
    OriginNotAllowed,
}

/// Which client-facing transport a session uses.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum SessionTransport {
    /// Streamable HTTP.
    StreamableHttp,
    /// Legacy HTTP+SSE.
    Sse,
}

/// Why a client session ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum SessionEnd {
    /// The client ended it (DELETE, or its legacy event stream closed).
    Client,
    /// The client did not keep up with its messages.
    SlowClient,
    /// Idle longer than `session_idle_timeout`.
    Expired,
    /// Idle, and its place was needed for a new session at a limit.
    Evicted,
    /// Its upstream session died.
    UpstreamLost,
    /// Its upstream was removed or replaced.
    Removed,
    /// The proxy shut down.
    Shutdown,
}

/// Bytes direction, seen from the proxy's HTTP server.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Direction {
    /// Request bodies received.
    In,
    /// Response bodies sent.
    Out,
}

/// Snake-case label values for the enums above.
macro_rules! label_values {
    ($($ty:ty { $($variant:ident => $text:literal),+ $(,)? })+) => {$(
        impl $ty {
            /// The label value.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }
        impl EncodeLabelValue for $ty {
            fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
                std::fmt::Write::write_str(encoder, self.as_str())
            }
        }
    )+};
}

label_values! {
    RequestOutcome { Ok => "ok", Error => "error", Timeout => "timeout", Unavailable => "unavailable" }
    AuthFailure {
        MissingToken => "missing_token",
        InvalidToken => "invalid_token",
        IpNotAllowed => "ip_not_allowed",
        HostNotAllowed => "host_not_allowed",
        OriginNotAllowed => "origin_not_allowed",
    }
    SessionTransport { StreamableHttp => "streamable_http", Sse => "sse" }
    SessionEnd {
        Client => "client",
        SlowClient => "slow_client",
        Expired => "expired",
        Evicted => "evicted",
        UpstreamLost => "upstream_lost",
        Removed => "removed",
        Shutdown => "shutdown",
    }
    Direction { In => "in", Out => "out" }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    upstream: String,
    method: String,
    outcome: RequestOutcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    upstream: String,
    method: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    upstream: String,
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: AuthFailure,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabels {
    transport: SessionTransport,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: Direction,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndLabels {
    reason: SessionEnd,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpRouteLabels {
    route: &'static str,
    method: &'static str,
}

fn duration_histogram() -> Histogram {
    // 1 ms … ~65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn http_histogram() -> Histogram {
    // 50 µs … ~52 s: the proxy's own answers are fast, forwarded ones take the upstream's time
    Histogram::new(exponential_buckets(0.000_05, 2.0, 21))
}

/// The label value of an HTTP method: the standard ones, else `other`.
fn http_method_label(method: &http::Method) -> &'static str {
    const KNOWN: &[&str] = &["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"];
    KNOWN
        .iter()
        .find(|m| **m == method.as_str())
        .copied()
        .unwrap_or("other")
}

/// Every metric of the proxy, in one registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<MethodLabels, Histogram, fn() -> Histogram>,
    states: Family<StateLabels, Gauge>,
    reconnects: Family<UpstreamLabels, Counter>,
    sessions: Family<TransportLabels, Gauge>,
    bytes: Family<DirectionLabels, Counter>,
    auth_failures: Family<ReasonLabels, Counter>,
    http_requests: Family<HttpLabels, Counter>,
    http_durations: Family<HttpRouteLabels, Histogram, fn() -> Histogram>,
    sessions_opened: Counter,
    sessions_ended: Family<EndLabels, Counter>,
    connections: ConnectionMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `mcp_proxy` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mcp_proxy");
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<MethodLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        let states = Family::<StateLabels, Gauge>::default();
        let reconnects = Family::<UpstreamLabels, Counter>::default();
        let sessions = Family::<TransportLabels, Gauge>::default();
        let bytes = Family::<DirectionLabels, Counter>::default();
        let auth_failures = Family::<ReasonLabels, Counter>::default();
        let sessions_opened = Counter::default();
        let sessions_ended = Family::<EndLabels, Counter>::default();
        registry.register(
            "client_sessions_opened",
            "Client sessions opened",
            sessions_opened.clone(),
        );
        registry.register(
            "client_sessions_ended",
            "Client sessions ended, by reason",
            sessions_ended.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_durations =
            Family::<HttpRouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                http_histogram,
            );
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, up to the response head (an event stream is \
             counted when it starts), by route template and method",
            http_durations.clone(),
        );
        registry.register(
            "upstream_requests",
            "Requests forwarded to upstreams, by upstream, method and outcome",
            requests.clone(),
        );
        registry.register(
            "upstream_request_duration_seconds",
            "Time for an upstream to answer a forwarded request",
            durations.clone(),
        );
        registry.register(
            "upstream_state",
            "1 for the state each upstream is in, 0 for the others",
            states.clone(),
        );
        registry.register(
            "upstream_reconnects",
            "Reconnect attempts after a failure or a lost connection",
            reconnects.clone(),
        );
        registry.register(
            "client_sessions",
            "Client sessions open, by client-facing transport",
            sessions.clone(),
        );
        registry.register(
            "http_body_bytes",
            "HTTP body bytes received (as declared by Content-Length) and sent",
            bytes.clone(),
        );
        registry.register(
            "auth_failures",
            "Requests refused by the security layers, by reason",
            auth_failures.clone(),
        );
        let connections = ConnectionMetrics::register(&mut registry);
        Self {
            registry,
            connections,
            requests,
            durations,
            states,
            reconnects,
            sessions,
            bytes,
            auth_failures,
            http_requests,
            http_durations,
            sessions_opened,
            sessions_ended,
        }
    }

    /// A client session was opened (counted by the core, whatever the transport).
    pub fn client_session_opened(&self) {
        self.sessions_opened.inc();
    }

    /// A client session ended, and why.
    pub fn client_session_ended(&self, reason: SessionEnd) {
        self.sessions_ended
            .get_or_create(&EndLabels { reason })
            .inc();
    }

    /// Counts an HTTP request answered on `route` (a template such as
    /// `/{name}/mcp`, never the raw path) with `status` after `elapsed`.
    pub fn record_http(
        &self,
        route: &'static str,
        method: &http::Method,
        status: u16,
        elapsed: Duration,
    ) {
        let method = http_method_label(method);
        self.http_requests
            .get_or_create(&HttpLabels {
                route,
                method,
                status,
            })
            .inc();
        self.http_durations
            .get_or_create(&HttpRouteLabels { route, method })
            .observe(elapsed.as_secs_f64());
    }

    fn method_label(method: &str) -> String {
        if KNOWN_METHODS.contains(&method) {
            method.to_owned()
        } else {
            "other".to_owned()
        }
    }

    /// Counts a forwarded request.
    pub fn record_request(
        &self,
        upstream: &str,
        method: &str,
        outcome: RequestOutcome,
        elapsed: Duration,
    ) {
        let method = Self::method_label(method);
        self.requests
            .get_or_create(&RequestLabels {
                upstream: upstream.to_owned(),
                method: method.clone(),
                outcome,
            })
            .inc();
        self.durations
            .get_or_create(&MethodLabels {
                upstream: upstream.to_owned(),
                method,
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Sets the state gauges of an upstream.
    pub fn set_state(&self, upstream: &str, state: ConnectionState) {
        for s in [
            ConnectionState::Disconnected,
            ConnectionState::Connecting,
            ConnectionState::Connected,
            ConnectionState::Error,
        ] {
            self.states
                .get_or_create(&StateLabels {
                    upstream: upstream.to_owned(),
                    state: s.as_str().to_owned(),
                })
                .set(i64::from(s == state));
        }
    }

    /// Counts a reconnect attempt.
    pub fn reconnect(&self, upstream: &str) {
        self.reconnects
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_owned(),
            })
            .inc();
    }

    /// Drops every series of a removed upstream, so label sets do not grow forever.
    pub fn forget_upstream(&self, upstream: &str) {
        let u = upstream.to_owned();
        self.reconnects.remove(&UpstreamLabels {
            upstream: u.clone(),
        });
        for s in ["disconnected", "connecting", "connected", "error"] {
            self.states.remove(&StateLabels {
                upstream: u.clone(),
                state: s.to_owned(),
            });
        }
        for method in KNOWN_METHODS.iter().copied().chain(["other"]) {
            let labels = MethodLabels {
                upstream: u.clone(),
                method: method.to_owned(),
            };
            self.durations.remove(&labels);
            for outcome in [
                RequestOutcome::Ok,
                RequestOutcome::Error,
                RequestOutcome::Timeout,
                RequestOutcome::Unavailable,
            ] {
                self.requests.remove(&RequestLabels {
                    upstream: u.clone(),
                    method: method.to_owned(),
                    outcome,
                });
            }
        }
    }

    /// A client session opened.
    pub fn session_opened(&self, transport: SessionTransport) {
        self.sessions
            .get_or_create(&TransportLabels { transport })
            .inc();
    }

    /// A client session ended.
    pub fn session_closed(&self, transport: SessionTransport) {
        self.sessions
            .get_or_create(&TransportLabels { transport })
            .dec();
    }

    /// The client connection series.
    pub fn connections(&self) -> &ConnectionMetrics {
        &self.connections
    }

    /// Counts HTTP body bytes.
    pub fn bytes(&self, direction: Direction, n: u64) {
        self.bytes
            .get_or_create(&DirectionLabels { direction })
            .inc_by(n);
    }

    /// Counts a refused request.
    pub fn auth_failure(&self, reason: AuthFailure) {
        self.auth_failures
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// The metrics in the OpenMetrics text format (which Prometheus reads).
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_bounded_series() {
        let m = Metrics::new();
        m.record_request(
            "fs",
            "tools/call",
            RequestOutcome::Ok,
            Duration::from_millis(3),
        );
        m.record_request(
            "fs",
            "x-custom/whatever",
            RequestOutcome::Error,
            Duration::ZERO,
        );
        m.set_state("fs", ConnectionState::Connected);
        m.auth_failure(AuthFailure::InvalidToken);
        let text = m.render();
        assert!(
            text.contains(
                r#"mcp_proxy_upstream_requests_total{upstream="fs",method="tools/call",outcome="ok"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"method="other""#), "{text}");
        assert!(!text.contains("x-custom"), "{text}");
        assert!(
            text.contains(r#"mcp_proxy_upstream_state{upstream="fs",state="connected"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"mcp_proxy_auth_failures_total{reason="invalid_token"} 1"#));
        m.forget_upstream("fs");
        assert!(!m.render().contains(r#"upstream="fs""#));
    }
}
