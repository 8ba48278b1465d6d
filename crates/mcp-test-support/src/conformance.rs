//! The conformance fixture: a stdio MCP server (`src/bin/conformance-fixture.rs`) offering
//! the tools, resources and prompts the conformance suite's server scenarios call.
//!
//! ```ignore
//! let def = conformance::fixture_def("fixture"); // register it, then run the suite
//! ```

use std::path::{Path, PathBuf};

use mcp_types::McpDefinition;

/// The `conformance-fixture` binary of this crate, built on first use (cargo does not
/// build the binaries of a dev-dependency).
pub fn fixture() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| build_bin("conformance-fixture"))
        .clone()
}

/// A stdio definition running the conformance fixture.
pub fn fixture_def(name: &str) -> McpDefinition {
    McpDefinition::stdio(name, fixture().to_string_lossy(), &[])
}

fn build_bin(bin: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // <target>/<profile>/deps/<test-binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in <target>/<profile>/deps");
    let target_dir = profile_dir.parent().expect("target dir");
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "mcp-test-support", "--bin", bin])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(crate::tools::workspace_root());
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "building {bin} failed: {status}");
    let path = profile_dir.join(bin);
    assert!(path.exists(), "{} missing after the build", path.display());
    path
}
