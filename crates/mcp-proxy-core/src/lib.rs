//! The proxy core: owns the life of every registered upstream.
//!
//! - [`Manager`]: loads definitions from a [`mcp_store::Store`], follows its change feed
//!   (hot add, reload, remove), and answers live questions: statuses, aggregated
//!   tools/prompts/resources, tool calls, metrics.
//! - [`Upstream`]: one supervised upstream — connect, discovery, health checks,
//!   reconnect with [`Backoff`].
//! - [`Connector`]: how connections are made ([`TransportConnector`] in production).
//!
//! It has no HTTP server in it: any Rust service can embed it.
//!
//! ```no_run
//! # async fn run() {
//! use std::sync::Arc;
//! use mcp_proxy_core::{Manager, ManagerConfig, TransportConnector};
//! use mcp_store::{MemoryStore, Store};
//! use mcp_types::McpDefinition;
//!
//! let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
//! let manager = Manager::new(store.clone(), Arc::new(TransportConnector::default()), ManagerConfig::default());
//! manager.start().await;
//! store.create(McpDefinition::stdio("time", "uvx", &["mcp-server-time"])).await.unwrap();
//! // … once connected:
//! let result = manager.call_tool("time", "get_current_time", Some(serde_json::json!({"timezone": "UTC"}))).await;
//! # }
//! ```

mod backoff;
mod connector;
mod derived;
mod discovery;
mod error;
pub mod group;
mod live;
mod manager;
pub mod metrics;
mod session;
mod upstream;

pub use backoff::{Backoff, HEALTH_FAILURES_FOR_LOSS, HealthCounter, JITTER, MAX_BACKOFF};
pub use connector::{Connection, Connector, ResumeParams, SessionParams, TransportConnector};
pub use discovery::Catalog;
pub use error::Error;
pub use manager::{
    DEFAULT_MAX_CONNECTIONS, Listing, ListingError, Manager, ManagerConfig, MetricsSnapshot,
    Tagged, validate_definition,
};
pub use metrics::Metrics;
pub use session::{
    ClientSession, LinkSnapshot, Outbound, Outlet, Released, Reply, Resumed, SessionHub,
    SessionLimits, SessionOptions, SessionSnapshot, StreamGuard,
};
pub use upstream::Upstream;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
