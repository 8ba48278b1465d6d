//! Message model and schema of the MCP proxy.
//!
//! - [`jsonrpc`]: a lossless JSON-RPC 2.0 model (ids keep their type, unknown members and
//!   raw `params`/`result` survive a round trip).
//! - [`mcp`]: the few typed MCP messages the proxy reads itself.
//! - [`McpDefinition`]: the upstream definition of the Admin API, with [validation] that
//!   reports every failing field at once.
//! - [`McpStatus`]: the live status of an upstream.
//!
//! ```
//! use mcp_types::McpDefinition;
//!
//! let def: McpDefinition = serde_json::from_str(
//!     r#"{"name":"time","transport":"stdio","command":"uvx","args":["mcp-server-time"]}"#,
//! ).unwrap();
//! def.validate().unwrap();
//! assert_eq!(def.timeout, std::time::Duration::from_secs(30));
//! ```
//!
//! [validation]: McpDefinition::validate

pub mod definition;
pub mod duration;
mod error;
pub mod group;
pub mod jsonrpc;
pub mod mcp;
pub mod name;
mod object;
pub mod params;
mod secret;
pub mod status;
mod time;
pub mod validate;

pub use definition::{
    CommandSpec, DefinitionSource, FilterMode, McpDefinition, SessionMode, ToolFilter,
    TransportKind,
};
pub use error::Error;
pub use group::{FailMode, GroupDefinition, PrefixMode, ToolOverride};
pub use jsonrpc::{
    ErrorObject, Message, Notification, Outcome, Payload, Request, RequestId, Response,
};
pub use name::McpName;
pub use secret::{HANDLE_PREFIX, REDACTED, Secret};
pub use status::{ConnectionState, Era, McpStatus};
pub use time::Timestamp;
pub use validate::{FieldError, ValidationErrors};

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
