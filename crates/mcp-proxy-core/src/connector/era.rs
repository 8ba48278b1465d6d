//! Which era an upstream speaks, found on each new connection: `server/discover` first
//! (stdio and streamable HTTP; the legacy SSE transport is 2024-11-05 by definition),
//! `initialize` on anything that is not positive modern evidence (see
//! [`McpClient::probe`]). The answer belongs to the connection: a reconnect probes again.
//!
//! A 2025 server may end a stdio process on a request it does not know before
//! `initialize`; the probe's connection is then replaced by a fresh one, initialized
//! without a probe. While probing, the connection's end is held back from its owner,
//! which only ever sees the connection it is handed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_transport::{
    CloseReason, Handler, McpClient, Probe, Refused, RequestMeta, TransportOptions,
};
use mcp_types::mcp::{Implementation, modern};
use mcp_types::{Era, McpDefinition, Message, TransportKind};
use tracing::{debug, info};

use super::Connection;

/// Longest wait for a probe's answer; a silent server is a 2025 one.
const MAX_PROBE_WAIT: Duration = Duration::from_secs(10);
const MIN_PROBE_WAIT: Duration = Duration::from_millis(500);

/// What a connection declares: for `initialize` (2025), or as the `_meta` defaults of
/// its requests (2026-07-28).
pub(super) struct Hello<'a> {
    /// The 2025 revision offered to `initialize`.
    pub(super) version: &'a str,
    pub(super) client_info: &'a Implementation,
    pub(super) capabilities: &'a serde_json::Value,
    /// What the upstream's primary connection found, if anything.
    pub(super) hint: Option<Era>,
}

/// Connects to `def` and makes the connection usable in the upstream's era.
pub(super) async fn establish(
    def: &McpDefinition,
    opts: &TransportOptions,
    handler: Arc<dyn Handler>,
    hello: &Hello<'_>,
) -> Result<Connection, mcp_transport::Error> {
    let probes = hello.hint != Some(Era::Legacy)
        && matches!(
            def.transport,
            TransportKind::Stdio | TransportKind::StreamableHttp
        );
    if !probes {
        let client = McpClient::connect_with(def, opts, handler).await?;
        return initialized(client, hello).await;
    }
    let gate = Arc::new(Gate::new(handler.clone()));
    let client = McpClient::connect_with(def, opts, gate.clone()).await?;
    let meta = RequestMeta::new(
        modern_capabilities(hello.capabilities),
        hello.client_info.clone(),
    );
    let wait = (def.timeout / 3).clamp(MIN_PROBE_WAIT, MAX_PROBE_WAIT);
    let probed = client.probe(meta.clone(), wait).await;
    let why = match probed {
        Ok(Probe::Modern { version, result }) => {
            info!(upstream = %def.name, %version, "the upstream speaks the modern revision");
            let init = result.to_initialize_result(&version, &def.name);
            return gate.open(client, init);
        }
        Ok(Probe::Legacy(why)) => why,
        Err(e) if client.is_closed() && def.transport == TransportKind::Stdio => e.to_string(),
        Err(e) => {
            let _ = client.close().await;
            return Err(e);
        }
    };
    debug!(upstream = %def.name, reason = %why, "not a modern upstream; initializing");
    if client.is_closed() {
        // The probe ended the process: a 2025 server that takes nothing before
        // `initialize`. A fresh one gets `initialize` straight away.
        info!(upstream = %def.name, reason = %why, "the probe ended the connection; connecting again without it");
        let client = McpClient::connect_with(def, opts, handler).await?;
        return initialized(client, hello).await;
    }
    match client
        .initialize_as(
            hello.version,
            hello.client_info.clone(),
            hello.capabilities.clone(),
        )
        .await
    {
        Ok(init) => gate.open(client, init),
        // A modern server that answered after the probe gave up has settled on the
        // modern revision: it names its versions, so probe once more.
        Err(mcp_transport::Error::Rpc { error, .. })
            if error.code == modern::UNSUPPORTED_VERSION =>
        {
            match client.probe(meta, def.timeout).await {
                Ok(Probe::Modern { version, result }) => {
                    let init = result.to_initialize_result(&version, &def.name);
                    gate.open(client, init)
                }
                Ok(Probe::Legacy(why)) => {
                    let _ = client.close().await;
                    Err(mcp_transport::Error::Protocol {
                        target: client.target().clone(),
                        message: format!(
                            "initialize was refused as an unsupported version, and {why}"
                        ),
                    })
                }
                Err(e) => {
                    let _ = client.close().await;
                    Err(e)
                }
            }
        }
        Err(e) => {
            let _ = client.close().await;
            Err(e)
        }
    }
}

/// The capabilities a modern connection declares on its own: none of those a server asks
/// for with `input_required` results (sampling, elicitation, roots), which nobody behind
/// the connection's own requests could answer. A 2026-07-28 client's requests carry its
/// own `_meta`, a 2025 client's the capabilities it declared (`session::client::era`).
pub(super) fn modern_capabilities(capabilities: &serde_json::Value) -> serde_json::Value {
    let mut caps = capabilities.clone();
    if let Some(map) = caps.as_object_mut() {
        for key in modern::INPUT_CAPABILITIES {
            map.remove(*key);
        }
    } else {
        caps = serde_json::Value::Object(serde_json::Map::new());
    }
    caps
}

/// Runs `initialize` on a fresh connection; closes it when that fails.
async fn initialized(
    client: McpClient,
    hello: &Hello<'_>,
) -> Result<Connection, mcp_transport::Error> {
    match client
        .initialize_as(
            hello.version,
            hello.client_info.clone(),
            hello.capabilities.clone(),
        )
        .await
    {
        Ok(init) => Ok(Connection { client, init }),
        Err(e) => {
            let _ = client.close().await;
            Err(e)
        }
    }
}

/// The handler of a connection being probed: messages pass, but its end is held back
/// until the connection is handed over ([`Gate::open`]).
#[derive(Debug)]
struct Gate {
    inner: Arc<dyn Handler>,
    state: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    open: bool,
    closed: Option<CloseReason>,
}

impl Gate {
    fn new(inner: Arc<dyn Handler>) -> Self {
        Self {
            inner,
            state: Mutex::new(GateState::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands the connection over: from now on its end reaches the owner. A connection
    /// that ended meanwhile is an error instead.
    fn open(
        &self,
        client: McpClient,
        init: mcp_types::mcp::InitializeResult,
    ) -> Result<Connection, mcp_transport::Error> {
        let mut state = self.state();
        state.open = true;
        if let Some(reason) = state.closed.take() {
            return Err(mcp_transport::Error::Closed {
                target: client.target().clone(),
                reason,
            });
        }
        Ok(Connection { client, init })
    }
}

impl Handler for Gate {
    fn unrelated(&self, msg: Message) -> Result<(), Refused> {
        self.inner.unrelated(msg)
    }

    fn closed(&self, reason: &CloseReason) {
        {
            let mut state = self.state();
            if !state.open {
                state.closed = Some(reason.clone());
                return;
            }
        }
        self.inner.closed(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_modern_connection_declares_no_input_capabilities_of_its_own() {
        let caps = serde_json::json!({"sampling": {}, "elicitation": {}, "roots": {}, "experimental": {"x": {}}});
        assert_eq!(
            modern_capabilities(&caps),
            serde_json::json!({"experimental": {"x": {}}})
        );
        assert_eq!(
            modern_capabilities(&serde_json::Value::Null),
            serde_json::json!({})
        );
    }
}
