//! A typed client for the MCP proxy's Admin API, for engine code (workflow runners,
//! agents) that registers the MCP servers its documents declare.
//!
//! - [`ProxyClient`]: every Admin-API call, typed errors ([`Error`]), retry with
//!   exponential back-off and jitter ([`RetryPolicy`]).
//! - [`RegisterService`]: `ensure` / `ensure_many` / `shutdown`, removing only what it
//!   registered.
//! - [`workflow`]: the `mcps:` list of workflow and agent YAML, `{{ .env.NAME }}`
//!   placeholders, and what `use_proxy` makes of each entry.
//!
//! ```no_run
//! # async fn run() -> Result<(), mcp_proxy_client::Error> {
//! use std::collections::HashMap;
//! use std::time::Duration;
//! use mcp_proxy_client::{ProxyClient, RegisterService, workflow};
//!
//! let client = ProxyClient::try_new("http://127.0.0.1:8080", "admin-token", Duration::from_secs(10))?;
//! let mcps = workflow::WorkflowMcps::from_yaml(r#"
//! mcps:
//!   - id: time
//!     command: "uvx mcp-server-time --local-timezone UTC"
//!     use_proxy: true
//! "#)?;
//! let vars: HashMap<String, String> = std::env::vars().collect();
//! let planned = workflow::plan(&mcps, &client, &vars)?;
//! let service = RegisterService::new(client.clone());
//! service.apply(&planned).await?; // registered and connected
//! let result = client.call_tool("time", "get_current_time", Some(serde_json::json!({"timezone": "UTC"}))).await?;
//! println!("{}", result.text());
//! service.shutdown().await?; // deregisters "time", and only it
//! # Ok(()) }
//! ```

mod client;
mod error;
mod model;
mod register;
mod retry;
pub mod workflow;

pub use client::ProxyClient;
pub use error::{Error, PendingMcp};
pub use model::{
    Collision, GroupEntry, GroupMember, GroupStatus, Health, ImportReport, ImportResult, Listing,
    ListingError, McpEntry, McpItem, Metrics, ToolInfo, ToolResult,
};
pub use register::{DEFAULT_PARALLELISM, Ensured, RegisterService};
pub use retry::{JITTER, RetryPolicy};

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
