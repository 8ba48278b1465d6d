//! Owns the child: notices its exit at once, stops it on request (stdin closed → SIGTERM
//! → SIGKILL, each after a bounded wait), kills it on a fatal protocol error, and emits the
//! single `Closed` event with a reason a human can act on.

use std::collections::VecDeque;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::reader::StdoutReport;
use crate::transport::{CloseKind, CloseReason, Inbox};

/// How long output still in the pipes is awaited after the child exited.
const DRAIN_WAIT: Duration = Duration::from_secs(1);

pub(super) struct Supervisor {
    pub(super) child: Child,
    pub(super) pid: Option<u32>,
    pub(super) name: String,
    pub(super) grace: Duration,
    pub(super) shutdown: Arc<Notify>,
    pub(super) fatal: mpsc::Receiver<String>,
    pub(super) stdout: JoinHandle<StdoutReport>,
    pub(super) stderr: JoinHandle<VecDeque<String>>,
    pub(super) inbox: std::sync::Arc<dyn Inbox>,
    pub(super) closed: watch::Sender<Option<CloseReason>>,
    pub(super) cancel: CancellationToken,
}

enum End {
    Exited(std::io::Result<ExitStatus>),
    Stopped(Option<ExitStatus>),
    Fatal(String),
}

pub(super) async fn supervise(mut s: Supervisor) {
    let end = tokio::select! {
        status = s.child.wait() => End::Exited(status),
        () = s.shutdown.notified() => End::Stopped(stop(&mut s.child, s.pid, s.grace).await),
        Some(why) = s.fatal.recv() => {
            tracing::warn!(upstream = %s.name, error = %why, "killing stdio upstream");
            signal_group(s.pid, "KILL").await;
            let _ = s.child.start_kill();
            let _ = tokio::time::timeout(s.grace, s.child.wait()).await;
            End::Fatal(why)
        }
        () = s.cancel.cancelled() => {
            // The transport was dropped: kill_on_drop does the rest.
            signal_group(s.pid, "KILL").await;
            let _ = s.child.start_kill();
            let _ = s.closed.send(Some(CloseReason::local()));
            s.inbox.closed(CloseReason::local());
            return;
        }
    };
    // Let the readers deliver what the child wrote before it went away.
    let report = tokio::time::timeout(DRAIN_WAIT, s.stdout)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let stderr = tokio::time::timeout(DRAIN_WAIT, s.stderr)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let reason = describe(end, &report, &stderr);
    tracing::info!(upstream = %s.name, pid = ?s.pid, reason = %reason, "stdio upstream closed");
    let _ = s.closed.send(Some(reason.clone()));
    s.inbox.closed(reason);
}

/// stdin is already closed (or closing): wait, SIGTERM, wait, SIGKILL.
async fn stop(child: &mut Child, pid: Option<u32>, grace: Duration) -> Option<ExitStatus> {
    if let Ok(status) = tokio::time::timeout(grace, child.wait()).await {
        return status.ok();
    }
    signal_group(pid, "TERM").await;
    if let Ok(status) = tokio::time::timeout(grace, child.wait()).await {
        return status.ok();
    }
    signal_group(pid, "KILL").await;
    let _ = child.start_kill();
    tokio::time::timeout(grace, child.wait())
        .await
        .ok()
        .and_then(Result::ok)
}

/// Sends `sig` to the child's process group (it leads its own group) with the system
/// `kill` command: this crate forbids `unsafe`, and the group reaches grandchildren that
/// wrappers such as `npx` leave behind.
async fn signal_group(pid: Option<u32>, sig: &str) {
    let Some(pid) = pid else { return };
    let run = Command::new("kill")
        .args(["-s", sig, "--", &format!("-{pid}")])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(2), run).await;
}

fn describe(end: End, report: &StdoutReport, stderr: &VecDeque<String>) -> CloseReason {
    let garbage = report.non_json.as_ref().map(|(line, n)| {
        let more = if *n > 1 {
            format!(" and {} more non-JSON lines", n - 1)
        } else {
            String::new()
        };
        format!("printed non-JSON on stdout ({line:?}{more}) and ")
    });
    let garbage = garbage.as_deref().unwrap_or("");
    let (kind, mut message) = match end {
        // It printed, but never one JSON-RPC message: not an MCP server (`echo`, a CLI).
        End::Exited(Ok(status)) if report.messages == 0 && report.non_json.is_some() => {
            let (line, n) = report.non_json.as_ref().expect("checked");
            let more = if *n > 1 {
                format!(" and {} more lines", n - 1)
            } else {
                String::new()
            };
            (
                CloseKind::Exited,
                format!(
                    "the program does not speak MCP over stdio: it printed non-JSON on stdout \
                     ({line:?}{more}) and exited {} without sending a JSON-RPC message; \
                     command must start an MCP server",
                    status_text(status)
                ),
            )
        }
        End::Exited(Ok(status)) if report.messages == 0 => (
            CloseKind::Exited,
            format!(
                "the process exited {} before sending any JSON-RPC message",
                status_text(status)
            ),
        ),
        End::Exited(Ok(status)) => (
            CloseKind::Exited,
            format!("the process {garbage}exited {}", status_text(status)),
        ),
        End::Exited(Err(err)) => (
            CloseKind::Exited,
            format!("the process {garbage}could not be waited for: {err}"),
        ),
        End::Stopped(status) => (
            CloseKind::Local,
            format!(
                "closed by the proxy; the process {}",
                status.map_or("did not exit".to_owned(), |s| format!(
                    "exited {}",
                    status_text(s)
                ))
            ),
        ),
        End::Fatal(why) => (
            CloseKind::Protocol,
            format!("{why}; the process was killed"),
        ),
    };
    if !stderr.is_empty() && kind != CloseKind::Local {
        let lines: Vec<&str> = stderr.iter().map(String::as_str).collect();
        message.push_str("; last stderr: ");
        message.push_str(&lines.join(" | "));
    }
    CloseReason::new(kind, message)
}

fn status_text(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("with status {code}"),
        (None, Some(sig)) => format!("on signal {sig}"),
        (None, None) => format!("({status})"),
    }
}
