//! Paths of the third-party MCP peers installed by `scripts/install-test-deps.sh`.
