//! Errors of the types crate.

use crate::jsonrpc::ErrorObject;
use crate::validate::ValidationErrors;

/// Errors raised while parsing or validating protocol and schema values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not valid JSON, or not the expected shape.
    #[error("invalid json: {0}")]
    Json(#[source] serde_json::Error),
    /// The JSON is well formed but not a valid JSON-RPC message.
    #[error("invalid json-rpc message: {0}")]
    InvalidMessage(String),
    /// The peer answered with a JSON-RPC error.
    #[error("json-rpc error {}: {}", .0.code, .0.message)]
    Rpc(ErrorObject),
    /// A definition failed validation.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// A name does not follow the naming rules.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
}
