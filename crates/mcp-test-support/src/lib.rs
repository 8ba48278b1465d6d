//! Test helpers for the MCP proxy workspace (dev-dependency only).
//!
//! - [`redis`]: starts a real `redis-server` on a free loopback port.
//! - [`tools`]: where the third-party MCP peers installed by `scripts/install-test-deps.sh` live.
//! - [`mock`]: mock upstreams for precise fault injection.
//! - [`proxyd`]: a real `proxyd` process on a free port.
//! - [`conformance`]: servers with the conformance suite's fixtures, and a runner of the suite.
//! - [`definitions`]: definitions for tests of the proxy's bookkeeping.
//! - [`e2e`]: end-to-end helpers: the Admin API, raw streamable HTTP and HTTP/1.1, the
//!   Python SDK client, process probes.
//! - [`assert_eventually!`]: polls a condition until it holds or a deadline passes;
//!   [`eventually`] the same for waits that return a value.

pub mod conformance;
pub mod definitions;
pub mod e2e;
mod eventually;
pub use eventually::eventually;
pub mod mock;
pub mod proxyd;
pub mod redis;
pub mod tools;
