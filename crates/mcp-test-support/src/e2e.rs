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
pub use streamable::{McpHttp, messages, read_until};

/// Runs `tests/python/everything_client.py` with the venv's Python; fails the test with
/// its output unless every check passed.
pub async fn python_client(kind: &str, url: &str, token: Option<&str>) {
    let mut cmd = tokio::process::Command::new(tools::venv_python());
    cmd.arg(tools::workspace_root().join("tests/python/everything_client.py"))
        .arg(kind)
        .arg(url)
        .kill_on_drop(true);
    if let Some(t) = token {
        cmd.arg(t);
    }
    let out = tokio::time::timeout(Duration::from_secs(240), cmd.output())
        .await
        .expect("the python client finished in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("all ok"),
        "python client ({kind} {url}) failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
}
