//! Client side of the three MCP transports, behind one [`Transport`] trait, plus a small
//! JSON-RPC [`McpClient`] on top. The proxy core uses it to talk to upstream MCP servers.
//!
//! - [`stdio`]: a child process speaking newline-delimited JSON-RPC.
//! - [`sse`]: the legacy HTTP+SSE transport (2024-11-05).
//! - [`streamable_http`]: the streamable HTTP transport (2025-03-26 … 2025-11-25, and
//!   2026-07-28 once [`McpClient::probe`] finds the upstream modern).
//!
//! ```no_run
//! use mcp_transport::{McpClient, TransportOptions};
//! use mcp_types::McpDefinition;
//! use mcp_types::mcp::Implementation;
//!
//! # async fn run() -> mcp_transport::Result<()> {
//! let def = McpDefinition::stdio("time", "uvx", &["mcp-server-time"]);
//! let (client, mut events) = McpClient::connect(&def, &TransportOptions::default()).await?;
//! let init = client
//!     .initialize(Implementation::new("mcp-proxy", "0.1.0"), serde_json::json!({}))
//!     .await?;
//! println!("connected to {}", init.server_info.name);
//! let tools = client.list_all("tools/list", "tools").await?;
//! println!("{} tools", tools.len());
//! client.close().await?;
//! # drop(events.recv().await);
//! # Ok(()) }
//! ```

pub mod client;
mod error;
mod net;
mod options;
pub mod sse;
pub mod stdio;
pub mod streamable_http;
mod transport;

pub use client::{
    Call, ClientEvent, ClientEvents, DiscoverResult, Handler, ListenFilter, Listener, McpClient,
    Probe, Refused, RequestMeta, Sink, event_channel,
};
pub use error::{Error, Target};
pub use options::{DEFAULT_MAX_MESSAGE_BYTES, TransportOptions};
pub use streamable_http::AnswerStream;
pub use transport::{
    CloseKind, CloseReason, Events, Inbox, Sent, Transport, TransportEvent, connect,
};

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
