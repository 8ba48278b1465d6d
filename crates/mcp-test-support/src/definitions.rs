//! Definitions tests register when what matters is the proxy's bookkeeping, not a live
//! upstream.

use mcp_types::{McpDefinition, TransportKind};

/// A streamable-HTTP definition named `name` that never connects (nothing listens on
/// port 1 of the loopback) and never retries: it stays registered and disconnected.
pub fn unreachable(name: &str) -> McpDefinition {
    let mut def = McpDefinition::http(
        name,
        TransportKind::StreamableHttp,
        "http://127.0.0.1:1/mcp",
    );
    def.auto_reconnect = false;
    def
}
