//! mcp-proxy-client (placeholder)
