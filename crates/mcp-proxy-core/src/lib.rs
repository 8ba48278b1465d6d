//! mcp-proxy-core (placeholder)
