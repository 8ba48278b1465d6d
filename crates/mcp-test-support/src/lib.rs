//! Test helpers for the MCP proxy workspace (dev-dependency only).
//!
//! - [`redis`]: starts a real `redis-server` on a free loopback port.
//! - [`tools`]: where the third-party MCP peers installed by `scripts/install-test-deps.sh` live.
//! - [`mock`]: mock upstreams for precise fault injection.
//! - [`proxyd`]: a real `proxyd` process on a free port.
//! - [`conformance`]: a stdio server with the conformance suite's fixtures.
//! - [`definitions`]: definitions for tests of the proxy's bookkeeping.
//! - [`assert_eventually!`]: polls a condition until it holds or a deadline passes.

pub mod conformance;
pub mod definitions;
mod eventually;
pub mod mock;
pub mod proxyd;
pub mod redis;
pub mod tools;
