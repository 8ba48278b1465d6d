//! mcp-store (placeholder)
