//! What another replica needs to continue a client session: a [`SessionSnapshot`]
//! (serialisable, kept in the session registry) and [`SessionHub::resume`], which opens
//! a session from one.
//!
//! Per upstream link it keeps the upstream's own session id (streamable HTTP), the
//! version negotiated with it and what it answered to `initialize`, so that a replica
//! continuing the session goes on with the same upstream session and sends no new
//! `initialize`. A link whose upstream session is the connection itself (a `per-client`
//! stdio process, a legacy SSE stream) is *bound* to the replica that opened it: only
//! that replica can go on with it; another one can only open a fresh upstream session.

use std::sync::Arc;

use mcp_types::mcp::{Implementation, InitializeResult};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::ClientSession;
use super::{Outlet, SessionHub, SessionOptions};
use crate::error::Error;

/// A client session as the registry keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSnapshot {
    /// The endpoint (upstream or group name).
    pub endpoint: String,
    /// The version negotiated with the client.
    pub protocol_version: String,
    /// The client's `clientInfo`.
    pub client_info: Implementation,
    /// The client's capabilities.
    pub capabilities: Value,
    /// `{extra}` path segments of the endpoint the client initialized on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_suffix: Option<String>,
    /// Its upstream links, by member.
    pub links: Vec<LinkSnapshot>,
}

/// One upstream link of a session.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkSnapshot {
    /// The member (upstream) name.
    pub member: String,
    /// The shared connection of the upstream (nothing of the client's lives upstream).
    #[serde(default)]
    pub shared: bool,
    /// The upstream session lives in the connection (stdio, legacy SSE): only the replica
    /// that opened it can go on with it.
    #[serde(default)]
    pub bound: bool,
    /// The upstream's `Mcp-Session-Id` (streamable HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The version negotiated with the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    /// What the upstream answered to `initialize`.
    pub init: InitializeResult,
}

impl SessionSnapshot {
    /// Whether some link is bound to the replica that opened it.
    pub fn is_bound(&self) -> bool {
        self.links.iter().any(|l| l.bound)
    }

    /// A short fingerprint of what changes over a session's life (its links and their
    /// upstream sessions), to tell whether the registry needs a new write.
    pub fn fingerprint(&self) -> String {
        self.links
            .iter()
            .map(|l| format!("{}={}", l.member, l.session_id.as_deref().unwrap_or("-")))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// How a session was resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resumed {
    /// Some upstream session could not be continued (it was bound to another replica) and
    /// a fresh one was opened: its state is gone, and the client was sent
    /// `notifications/tools/list_changed`.
    pub fresh: bool,
}

impl SessionHub {
    /// Opens session `id` on this replica from its snapshot: ready at once (no
    /// `initialize`), its upstream sessions continued where they can be, fresh where they
    /// cannot (see [`Resumed`]). What it sends its client goes to `outlet`.
    pub async fn resume(
        &self,
        id: &str,
        snapshot: &SessionSnapshot,
        options: SessionOptions,
        outlet: Arc<dyn Outlet>,
    ) -> Result<(Arc<ClientSession>, Resumed), Error> {
        let session =
            self.open_with_id(&snapshot.endpoint, options, outlet, Some(id.to_owned()))?;
        match session.restore(snapshot).await {
            Ok(resumed) => {
                session.set_replicated(true);
                Ok((session, resumed))
            }
            Err(e) => {
                session.close();
                Err(e)
            }
        }
    }
}
