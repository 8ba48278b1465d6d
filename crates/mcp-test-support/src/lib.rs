//! mcp-test-support (placeholder)
