//! Client sessions through a real `proxyd`, by concern:
//!
//! - [`python_sdk`]: the official Python SDK client over legacy SSE and streamable HTTP in
//!   front of server-everything (stdio and streamable HTTP upstreams, shared mode);
//! - [`matrix`]: the security and malformed-input status matrix, as a table;
//! - [`rejections`]: trusted proxies, blocked tools, session limits;
//! - [`lifecycle`]: deleted and dead upstreams, cancellation, resumption, shutdown;
//! - [`forwarding`]: the `{extra}` path, passthrough headers, batches;
//! - [`legacy_sse`]: the legacy HTTP+SSE endpoint;
//! - [`shared_mode`]: multiplexing many client sessions over one upstream session.

mod forwarding;
mod legacy_sse;
mod lifecycle;
mod matrix;
mod python_sdk;
mod rejections;
mod shared_mode;

use mcp_test_support::proxyd::Proxyd;

const BIN: &str = env!("CARGO_BIN_EXE_proxyd");

const GLOBAL_TOKEN: &str = "global-proxy-token-0123456789";

/// A proxyd that asks every client for [`GLOBAL_TOKEN`].
async fn proxyd_with_global_token() -> Proxyd {
    let tokens = format!("[\"{GLOBAL_TOKEN}\"]");
    Proxyd::start_with_env(BIN, &[], &[("MCP_PROXY_GLOBAL_AUTH_TOKENS", &tokens)])
        .await
        .unwrap()
}
