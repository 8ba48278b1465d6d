//! mcp-proxy-http (placeholder)
