//! Runtime settings of the HTTP layer, already validated by the caller.

use std::time::Duration;

use crate::security::{IpSet, TokenSet};

/// Default `max_body_bytes`: 4 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Default `input_wait`: 5 minutes (a person may be answering).
pub const DEFAULT_INPUT_WAIT: Duration = Duration::from_secs(300);
/// Default `session_token_lifetime`: 24 hours.
pub const DEFAULT_SESSION_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Limits and deadlines of client connections (`[listener]` in `proxyd.toml`).
///
/// Every deadline is a bound on what one client can hold: a connection that sends
/// nothing, headers that trickle, a body that never ends, an idle keep-alive connection.
/// See `docs/configuration.md` for what each one does when crossed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Most client connections served at once.
    pub max_connections: usize,
    /// How long a connection beyond `max_connections` waits for a free slot before it is
    /// closed; zero closes it at once.
    pub connection_wait: Duration,
    /// How long a new connection may take to send its first byte.
    pub first_byte_timeout: Duration,
    /// How long a client may take to send request headers, from their first byte.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a whole request body.
    pub body_read_timeout: Duration,
    /// How long a connection with no request in flight stays open (HTTP/1 keep-alive,
    /// HTTP/2 without streams).
    pub idle_timeout: Duration,
    /// Interval of HTTP/2 keep-alive pings; zero sends none.
    pub http2_keepalive_interval: Duration,
    /// How long an HTTP/2 keep-alive ping may go unanswered before the connection closes.
    pub http2_keepalive_timeout: Duration,
    /// After an answer that leaves a request body unread (413, 408, an early refusal),
    /// how long the rest is read and discarded before the connection closes, so that the
    /// client reads the answer instead of a reset.
    pub linger_timeout: Duration,
    /// The most bytes read and discarded that way.
    pub linger_max_bytes: u64,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            connection_wait: Duration::from_secs(1),
            first_byte_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            http2_keepalive_interval: Duration::from_secs(20),
            http2_keepalive_timeout: Duration::from_secs(10),
            linger_timeout: Duration::from_secs(10),
            linger_max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// What the HTTP layer needs to know. Built by `proxyd` from its validated configuration.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Tokens accepted on the Admin API.
    pub admin_tokens: TokenSet,
    /// Client addresses allowed on the Admin API (after trusted-proxy resolution). Empty:
    /// nobody (the Admin API is closed; the proxy endpoints are not affected).
    pub admin_allow_ips: IpSet,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: IpSet,
    /// Tokens accepted on every proxy endpoint.
    pub global_auth_tokens: TokenSet,
    /// Hosts accepted in `Host` besides loopback names (the host of `base_url`).
    pub extra_hosts: Vec<String>,
    /// Refuse requests whose `Host` is neither loopback nor in `extra_hosts` (set when
    /// listening on loopback, against DNS rebinding).
    pub check_host: bool,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Serve `/metrics` without admin credentials.
    pub metrics_public: bool,
    /// Limits and deadlines of client connections.
    pub listener: ListenerLimits,
    /// How long in-flight requests get to finish at shutdown.
    pub shutdown_timeout: Duration,
    /// Origins accepted on the proxy endpoints (`scheme://host[:port]`; an entry without a
    /// port accepts any port). Empty: `http(s)://localhost`, `http(s)://127.0.0.1`,
    /// `http(s)://[::1]` on any port, plus the hosts in `extra_hosts`.
    pub allowed_origins: Vec<String>,
    /// Interval of SSE keep-alive comments.
    pub sse_keepalive: Duration,
    /// The path of `base_url` without a trailing slash (`""` or `/prefix`), put in front of
    /// the legacy SSE `endpoint` URI.
    pub base_path: String,
    /// Most client sessions open at once, all upstreams together.
    pub max_sessions: usize,
    /// A client session idle this long (no request in flight, no open stream) ends.
    pub session_idle_timeout: Duration,
    /// Most requests in flight in one client session.
    pub max_inflight_per_session: usize,
    /// Bytes of events one streamable-HTTP session keeps for `Last-Event-ID` replay.
    pub session_replay_bytes: usize,
    /// Keys that seal what clients bring back (`requestState`): the first seals, all
    /// open. Empty: a key made at start, good for this process only.
    pub session_keys: Vec<StateKey>,
    /// How long an upstream call asking a 2026-07-28 client for input waits for the
    /// client's retry (the `requestState`'s lifetime too).
    pub input_wait: Duration,
    /// With `session_keys`: how long a streamable-HTTP session token (the client's
    /// `Mcp-Session-Id`) stays valid after `initialize`, however active the session.
    pub session_token_lifetime: Duration,
}

impl Default for HttpConfig {
    /// Loopback-only defaults with no admin token: every admin request is refused until
    /// tokens are set.
    fn default() -> Self {
        Self {
            admin_tokens: TokenSet::default(),
            admin_allow_ips: IpSet::parse(&["127.0.0.1", "::1"]).expect("valid literals"),
            trusted_proxies: IpSet::default(),
            global_auth_tokens: TokenSet::default(),
            extra_hosts: Vec::new(),
            check_host: true,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            metrics_public: false,
            listener: ListenerLimits::default(),
            shutdown_timeout: Duration::from_secs(10),
            allowed_origins: Vec::new(),
            sse_keepalive: Duration::from_secs(15),
            base_path: String::new(),
            max_sessions: 4096,
            session_idle_timeout: Duration::from_secs(30 * 60),
            max_inflight_per_session: 64,
            session_replay_bytes: 4 * 1024 * 1024,
            session_keys: Vec::new(),
            input_wait: DEFAULT_INPUT_WAIT,
            session_token_lifetime: DEFAULT_SESSION_TOKEN_LIFETIME,
        }
    }
}

/// One key of `session_keys`: its id and 32 bytes.
#[derive(Clone)]
pub struct StateKey {
    /// Short id carried in what the key seals, so keys can rotate.
    pub id: String,
    /// The key material.
    pub key: [u8; 32],
}

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}
