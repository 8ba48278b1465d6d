//! Storage of MCP definitions, their status and groups, with a change feed.
//!
//! - [`Store`]: the trait every back-end implements; [`StoreEvent`] / [`WatchStream`]: its
//!   change feed.
//! - [`MemoryStore`]: in this process only (the default).
//! - [`RedisStore`]: shared by several replicas through Redis; see [`redis`] for the key
//!   layout and the failure behaviour.
//! - [`SessionRegistry`]: client sessions any replica can continue, and replica
//!   heartbeats; implemented by [`RedisStore`] and [`MemorySessions`].
//!
//! ```
//! use futures_util::StreamExt;
//! use mcp_store::{MemoryStore, Store, StoreEvent};
//! use mcp_types::McpDefinition;
//!
//! # tokio_test_runtime(async {
//! let store = MemoryStore::new();
//! let mut changes = store.watch();
//! let stored = store.create(McpDefinition::stdio("time", "uvx", &["mcp-server-time"])).await?;
//! assert_eq!(stored.created_at, stored.updated_at);
//! assert!(matches!(changes.next().await, Some(StoreEvent::Put(def)) if def.name == "time"));
//! assert!(store.create(stored).await.unwrap_err().is_already_exists());
//! # Ok::<_, mcp_store::Error>(())
//! # });
//! # fn tokio_test_runtime<F: std::future::Future<Output = mcp_store::Result<()>>>(f: F) {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f).unwrap()
//! # }
//! ```

mod error;
mod memory;
pub mod redis;
pub mod sessions;
mod store;

pub use error::{Error, Kind};
pub use memory::MemoryStore;
pub use redis::{RedisConfig, RedisStore};
pub use sessions::{MemorySessions, SessionEntry, SessionRegistry};
pub use store::{Store, StoreEvent, WatchStream};

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
