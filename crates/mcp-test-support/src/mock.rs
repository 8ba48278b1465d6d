//! Mock MCP upstreams for fault injection (filled in by the transport work).
