//! How a supervisor obtains an initialized connection. The default goes through
//! `mcp-transport`; tests substitute their own to inject failures under paused time.
//!
//! Each connection finds out which era its upstream speaks (see `era`): a 2026-07-28
//! upstream answers `server/discover` and needs no handshake; anything else is initialized
//! as before.

mod era;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use mcp_transport::{Handler, McpClient, TransportOptions};
use mcp_types::mcp::{Implementation, InitializeResult, LATEST_PROTOCOL_VERSION};
use mcp_types::{Era, McpDefinition};

/// An initialized upstream connection (or, for a modern upstream, one that answered
/// `server/discover`: [`McpClient::is_modern`]).
#[derive(Debug)]
pub struct Connection {
    /// The JSON-RPC client.
    pub client: McpClient,
    /// What the upstream answered to `initialize`; for a modern upstream, its
    /// `server/discover` answer in that shape (version 2026-07-28).
    pub init: InitializeResult,
}

/// Opens initialized connections to upstreams.
#[async_trait]
pub trait Connector: Send + Sync + fmt::Debug + 'static {
    /// Connects and initializes (`initialize` + `notifications/initialized`) the
    /// upstream's primary connection, offering the newest protocol version; what no
    /// request claims goes to `handler`. The caller bounds the whole attempt with the
    /// definition's `timeout`.
    async fn connect(
        &self,
        def: &McpDefinition,
        handler: Arc<dyn Handler>,
    ) -> Result<Connection, mcp_transport::Error>;

    /// Opens an upstream session on behalf of client sessions: initialized declaring
    /// `params.capabilities` and `params.client_info`, offering
    /// `params.protocol_version`, with the client's passthrough headers and `{extra}`
    /// path. The caller bounds it with the definition's `timeout`.
    ///
    /// The default ignores `params` and opens a connection like [`Connector::connect`]
    /// (enough for test connectors).
    async fn open_session(
        &self,
        def: &McpDefinition,
        params: &SessionParams,
        handler: Arc<dyn Handler>,
    ) -> Result<Connection, mcp_transport::Error> {
        let _ = params;
        self.connect(def, handler).await
    }

    /// Goes on with the upstream session `resume` names, which another replica opened
    /// with `params` (streamable HTTP: its `Mcp-Session-Id`; nothing is sent). The
    /// default refuses: test connectors open fresh sessions instead.
    async fn resume_session(
        &self,
        def: &McpDefinition,
        params: &SessionParams,
        resume: &ResumeParams,
        handler: Arc<dyn Handler>,
    ) -> Result<Connection, mcp_transport::Error> {
        let _ = (params, resume, handler);
        Err(mcp_transport::Error::Protocol {
            target: mcp_transport::Target::new(&def.name, def.transport),
            message: "this connector cannot resume upstream sessions".into(),
        })
    }
}

/// An upstream session opened elsewhere, to go on with.
#[derive(Debug, Clone)]
pub struct ResumeParams {
    /// The upstream's `Mcp-Session-Id`.
    pub session_id: String,
    /// The protocol version negotiated with the upstream.
    pub protocol_version: String,
    /// What the upstream answered to `initialize` then.
    pub init: InitializeResult,
}

/// How an upstream session opened for clients is initialized.
#[derive(Debug, Clone)]
pub struct SessionParams {
    /// The protocol version offered upstream: a `per-client` session offers the version
    /// its client negotiated, so the client never gets an upstream behaviour it did not
    /// ask for; shared connections offer the newest.
    pub protocol_version: String,
    /// Declared upstream as `clientInfo`.
    pub client_info: Implementation,
    /// Declared upstream as the client capabilities.
    pub capabilities: serde_json::Value,
    /// HTTP upstreams: headers added to every request (the client's passthrough headers).
    pub extra_headers: http::HeaderMap,
    /// HTTP upstreams: path segments appended to the URL path (already percent-encoded).
    pub path_suffix: Option<String>,
    /// The era the upstream's primary connection found, when it found one: a legacy
    /// upstream is initialized without a probe (a silent 2025 server would make every
    /// session wait out the probe); otherwise the session probes for itself.
    pub era: Option<Era>,
}

/// What the primary connection declares: sampling, elicitation and roots.
static PRIMARY_CAPABILITIES: std::sync::LazyLock<serde_json::Value> = std::sync::LazyLock::new(
    || serde_json::json!({"sampling": {}, "elicitation": {}, "roots": {"listChanged": true}}),
);

/// The real connector: the definition's transport, then `initialize`.
#[derive(Debug, Clone)]
pub struct TransportConnector {
    options: TransportOptions,
    client_info: Implementation,
}

impl TransportConnector {
    /// A connector with these transport options, announcing itself as `mcp-proxy`.
    pub fn new(options: TransportOptions) -> Self {
        Self {
            options,
            client_info: Implementation::new("mcp-proxy", env!("CARGO_PKG_VERSION")),
        }
    }
}

impl Default for TransportConnector {
    fn default() -> Self {
        Self::new(TransportOptions::default())
    }
}

#[async_trait]
impl Connector for TransportConnector {
    async fn connect(
        &self,
        def: &McpDefinition,
        handler: Arc<dyn Handler>,
    ) -> Result<Connection, mcp_transport::Error> {
        // The primary connection serves discovery, health checks and the Admin API, never
        // a user. It declares the client capabilities most clients have, so discovery
        // sees the tools servers offer to such clients (groups serve that catalog);
        // server→client requests on it are refused.
        let hello = era::Hello {
            version: LATEST_PROTOCOL_VERSION,
            client_info: &self.client_info,
            capabilities: &PRIMARY_CAPABILITIES,
            hint: None,
        };
        era::establish(def, &self.options, handler, &hello).await
    }

    async fn open_session(
        &self,
        def: &McpDefinition,
        params: &SessionParams,
        handler: Arc<dyn Handler>,
    ) -> Result<Connection, mcp_transport::Error> {
        let mut options = self.options.clone();
        options.extra_headers.clone_from(&params.extra_headers);
        options.path_suffix.clone_from(&params.path_suffix);
        let hello = era::Hello {
            version: &params.protocol_version,
            client_info: &params.client_info,
            capabilities: &params.capabilities,
            hint: params.era,
        };
        era::establish(def, &options, handler, &hello).await
    }

    async fn resume_session(
        &self,
        def: &McpDefinition,
        params: &SessionParams,
        resume: &ResumeParams,
        handler: Arc<dyn Handler>,
    ) -> Result<Connection, mcp_transport::Error> {
        let mut options = self.options.clone();
        options.extra_headers.clone_from(&params.extra_headers);
        options.path_suffix.clone_from(&params.path_suffix);
        options.resume_session = Some(resume.session_id.clone());
        let client = McpClient::connect_with(def, &options, handler).await?;
        client.resume(&resume.protocol_version);
        Ok(Connection {
            client,
            init: resume.init.clone(),
        })
    }
}
