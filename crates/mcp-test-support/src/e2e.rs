//! Helpers for end-to-end tests against a running [`Proxyd`](crate::proxyd::Proxyd): its
//! Admin API, raw streamable HTTP requests that read JSON or SSE answers, raw HTTP/1.1 for
//! clients that misbehave on purpose, the official Python SDK client, and probes of the
//! process (memory, descriptors, log lines, signals).
//!
//! ```ignore
//! const BIN: &str = env!("CARGO_BIN_EXE_proxyd");
//! let proxyd = Proxyd::start(BIN, &[]).await?;
//! let admin = Admin::new(&proxyd);
//! admin.register(serde_json::to_value(tools::mock_stdio_def("echo", &["echo"]))?).await;
//! let sid = McpHttp::new().open_session(&format!("{}/echo/mcp", proxyd.url()), "2025-11-25").await;
//! ```

mod admin;
mod process;
pub mod raw;
mod streamable;

use std::time::Duration;

use crate::tools;

pub use admin::Admin;
pub use process::{
    Baseline, FD_SLACK, RSS_SLACK_KIB, alive, log_count, log_line, open_fds, pid_in, rss_kib,
    signal,
};
pub use streamable::{McpHttp, messages, read_until, tool_call};

/// Runs `tests/python/everything_client.py KIND URL [TOKEN]` (the official Python SDK
/// against server-everything through the proxy); see [`python_script`].
pub async fn python_client(kind: &str, url: &str, token: Option<&str>) {
    let mut args = vec![kind, url];
    args.extend(token);
    python_script("everything_client.py", &args).await;
}

/// Runs `tests/python/SCRIPT ARGS…` with the venv's Python (at most 240 s); fails the test
/// with its output unless it exits 0 and prints `all ok`.
pub async fn python_script(script: &str, args: &[&str]) {
    let mut cmd = tokio::process::Command::new(tools::venv_python());
    cmd.arg(tools::workspace_root().join("tests/python").join(script))
        .args(args)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(240), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{script} {args:?} did not finish within 240 s"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("all ok"),
        "{script} {args:?} failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
}
