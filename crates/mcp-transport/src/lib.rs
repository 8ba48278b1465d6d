//! mcp-transport (placeholder)
