//! The HTTP face of the MCP proxy: routing, the Admin API, system endpoints and the security
//! layers (admin tokens, IP allow-lists, trusted proxies, the `Host` check).
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use mcp_proxy_http::{App, HttpConfig, serve};
//!
//! let store: Arc<dyn mcp_store::Store> = Arc::new(mcp_store::MemoryStore::new());
//! let connector = Arc::new(mcp_proxy_core::TransportConnector::default());
//! let manager = mcp_proxy_core::Manager::new(store.clone(), connector, Default::default());
//! manager.start().await;
//! let app = App::new(HttpConfig::default(), store, manager);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! serve(listener, app, std::future::pending()).await
//! # }
//! ```

mod admin;
mod app;
mod body;
mod config;
mod error;
mod mcp;
mod router;
pub mod security;
mod server;
mod system;

pub use admin::import;
pub use app::App;
pub use config::{
    DEFAULT_INPUT_WAIT, DEFAULT_MAX_BODY_BYTES, DEFAULT_SESSION_TOKEN_LIFETIME, HttpConfig,
    ListenerLimits, StateKey,
};
pub use error::{Error, ErrorKind};
pub use server::serve;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
