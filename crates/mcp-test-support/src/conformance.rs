//! The conformance fixtures: servers offering the tools, resources and prompts the
//! conformance suite's server scenarios call.
//!
//! - `conformance-fixture` (`src/bin/conformance-fixture.rs`): a 2025-11-25 stdio server.
//! - `tests/python/fixture_2026.py`: a dual-era server on the official Python SDK (`mcp`
//!   2.3.0), with the 2026-07-28 scenarios' fixtures, over stdio or streamable HTTP. A real
//!   SDK rather than ours: what a modern server answers is decided by code nobody here
//!   wrote.
//!
//! ```ignore
//! let def = conformance::fixture_def("fixture"); // register it, then run the suite
//! let modern = conformance::Fixture2026::start().await; // modern.url(), modern.def("m")
//! ```
//!
//! [`suite`] runs the official conformance suite itself against a URL.

pub mod suite;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use mcp_types::{McpDefinition, TransportKind};
use tokio::process::{Child, Command};

use crate::tools::{free_port, venv_python, workspace_root};

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

/// The script of the 2026-07-28 fixture.
pub fn fixture_2026_script() -> PathBuf {
    workspace_root().join("tests/python/fixture_2026.py")
}

/// A stdio definition running the 2026-07-28 fixture.
pub fn fixture_2026_def(name: &str) -> McpDefinition {
    let mut def = McpDefinition::stdio(name, venv_python().to_string_lossy(), &[]);
    def.args = vec![fixture_2026_script().to_string_lossy().into_owned()];
    def
}

/// The 2026-07-28 fixture serving streamable HTTP on a free `127.0.0.1` port (`/mcp`);
/// killed on drop.
#[derive(Debug)]
pub struct Fixture2026 {
    _child: Child,
    port: u16,
}

impl Fixture2026 {
    /// Starts it and waits (at most 30 s) until it accepts connections.
    pub async fn start() -> Self {
        let port = free_port();
        let mut child = Command::new(venv_python())
            .arg(fixture_2026_script())
            .args(["--http", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the 2026 fixture");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the 2026 fixture exited before listening: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "the 2026 fixture did not listen on {addr}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            _child: child,
            port,
        }
    }

    /// `http://127.0.0.1:{port}/mcp`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// A streamable-HTTP definition for it.
    pub fn def(&self, name: &str) -> McpDefinition {
        McpDefinition::http(name, TransportKind::StreamableHttp, self.url())
    }
}
