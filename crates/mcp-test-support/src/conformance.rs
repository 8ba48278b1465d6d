//! The conformance fixture: a stdio MCP server (`src/bin/conformance-fixture.rs`) offering
//! the tools, resources and prompts the conformance suite's server scenarios call.
//!
//! ```ignore
//! let def = conformance::fixture_def("fixture"); // register it, then run the suite
//! ```

use std::path::PathBuf;

use mcp_types::McpDefinition;

/// The `conformance-fixture` binary of this crate, built on first use (cargo does not
/// build the binaries of a dev-dependency).
pub fn fixture() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| crate::tools::cargo_bin("mcp-test-support", "conformance-fixture"))
        .clone()
}

/// A stdio definition running the conformance fixture.
pub fn fixture_def(name: &str) -> McpDefinition {
    McpDefinition::stdio(name, fixture().to_string_lossy(), &[])
}
