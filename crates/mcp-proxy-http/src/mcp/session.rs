//! A client session as HTTP sees it: the core session, and where its outbound messages
//! go (streamable HTTP: request streams and the standalone stream with replay; legacy
//! SSE: the one event stream).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use mcp_proxy_core::metrics::SessionTransport;
use mcp_proxy_core::{ClientSession, Outbound};
use tokio::sync::mpsc;
use tracing::debug;

use super::Registry;
use super::sse::{Item, Streams};
use crate::app::App;

/// How long a legacy SSE client may leave its event stream unread before its session ends.
const LEGACY_SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The transport side of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Streamable,
    Legacy,
}

impl Transport {
    fn metric(self) -> SessionTransport {
        match self {
            Self::Streamable => SessionTransport::StreamableHttp,
            Self::Legacy => SessionTransport::Sse,
        }
    }
}

/// An HTTP client session.
#[derive(Debug)]
pub(crate) struct HttpSession {
    core: Arc<ClientSession>,
    transport: Transport,
    streams: Mutex<Streams>,
    /// Legacy SSE: the event stream.
    legacy: Mutex<Option<mpsc::Sender<Item>>>,
}

impl HttpSession {
    /// Wraps a core session and starts moving its messages to HTTP.
    pub(crate) fn start(
        app: &App,
        core: Arc<ClientSession>,
        outbound: mpsc::Receiver<Outbound>,
        transport: Transport,
        legacy: Option<mpsc::Sender<Item>>,
    ) -> Arc<Self> {
        let session = Arc::new(Self {
            core,
            transport,
            streams: Mutex::new(Streams::default()),
            legacy: Mutex::new(legacy),
        });
        app.inner()
            .manager
            .prometheus()
            .session_opened(transport.metric());
        let app = app.clone();
        // Ends when the core session ends (its sender is dropped): on close, upstream loss,
        // removal of the upstream, or shutdown of the hub.
        tokio::spawn(pump(app, session.clone(), outbound));
        session
    }

    pub(crate) fn id(&self) -> &str {
        self.core.id()
    }

    pub(crate) fn core(&self) -> &Arc<ClientSession> {
        &self.core
    }

    pub(crate) fn upstream_name(&self) -> &str {
        self.core.upstream_name()
    }

    pub(crate) fn transport(&self) -> Transport {
        self.transport
    }

    pub(crate) fn is_ended(&self) -> bool {
        self.core.is_ended()
    }

    pub(crate) fn streams(&self) -> std::sync::MutexGuard<'_, Streams> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The negotiated version is at least `version` (dates compare as strings).
    pub(crate) fn version_at_least(&self, version: &str) -> bool {
        self.core
            .protocol_version()
            .is_some_and(|v| v.as_str() >= version)
    }

    async fn route(&self, out: Outbound) {
        let json = Bytes::from(out.message.to_vec());
        match self.transport {
            Transport::Streamable => {
                let filed =
                    self.streams()
                        .push(json, out.related.as_ref(), out.message.is_response());
                if !filed {
                    debug!(session = %self.id(), "response for a stream that is gone; dropped");
                }
            }
            Transport::Legacy => {
                let live = self
                    .legacy
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                let item = Item {
                    id: None,
                    json,
                    last: false,
                };
                // A reader stuck this long is gone for practical purposes; waiting longer
                // would hold up everything behind it.
                let delivered = match live {
                    Some(live) => matches!(
                        tokio::time::timeout(LEGACY_SEND_TIMEOUT, live.send(item)).await,
                        Ok(Ok(()))
                    ),
                    None => false,
                };
                if !delivered {
                    // The event stream is the session: without it, nothing can reach the
                    // client any more.
                    let core = self.core.clone();
                    tokio::spawn(async move { core.close().await });
                }
            }
        }
    }
}

async fn pump(app: App, session: Arc<HttpSession>, mut outbound: mpsc::Receiver<Outbound>) {
    while let Some(out) = outbound.recv().await {
        session.route(out).await;
    }
    registry(&app).remove(session.id());
    app.inner()
        .manager
        .prometheus()
        .session_closed(session.transport.metric());
    session.streams().close_all();
    session
        .legacy
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    debug!(session = %session.id(), "http session closed");
}

fn registry(app: &App) -> &Registry {
    &app.inner().mcp
}
