//! The child's output pipes: the stdout message reader (the connection's one reader) and
//! the stderr log reader.

use std::collections::VecDeque;

use std::sync::Arc;

use futures_util::StreamExt;
use mcp_types::jsonrpc::Payload;
use tokio::io::AsyncReadExt;
use tokio::process::{ChildStderr, ChildStdout};
use tokio::sync::mpsc;
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, FramedRead};

use crate::transport::Inbox;

/// Longest stderr line kept (longer lines are cut).
const STDERR_LINE_MAX: usize = 2048;
/// Longest preview of a bad stdout line in logs and errors.
const PREVIEW_MAX: usize = 120;

/// What the stdout reader saw, for the close reason.
#[derive(Debug, Default)]
pub(super) struct StdoutReport {
    /// The first line that was not a JSON-RPC message (cut), and how many there were.
    pub(super) non_json: Option<(String, usize)>,
    /// JSON-RPC messages read: none means the program never spoke MCP.
    pub(super) messages: usize,
}

/// Reads newline-delimited messages and hands each to the inbox, in order. Lines that are
/// not JSON-RPC are logged and counted; a line over `max` bytes or a read error is fatal
/// and reported on `fatal` (the supervisor then kills the child).
pub(super) async fn read_stdout(
    stdout: ChildStdout,
    inbox: Arc<dyn Inbox>,
    fatal: mpsc::Sender<String>,
    max: usize,
    name: String,
) -> StdoutReport {
    let codec = AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), Vec::new(), max);
    let mut lines = FramedRead::new(stdout, codec);
    let mut report = StdoutReport::default();
    while let Some(line) = lines.next().await {
        let line = match line {
            Ok(line) => line,
            Err(AnyDelimiterCodecError::MaxChunkLengthExceeded) => {
                let _ = fatal.try_send(format!(
                    "the process sent a message larger than the limit of {max} bytes"
                ));
                return report;
            }
            Err(AnyDelimiterCodecError::Io(err)) => {
                let _ = fatal.try_send(format!("reading its stdout failed: {err}"));
                return report;
            }
        };
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match Payload::from_slice(line) {
            Ok(payload) => {
                report.messages += 1;
                for msg in payload.into_messages() {
                    inbox.message(msg);
                }
            }
            Err(err) => {
                let text = preview(line);
                tracing::warn!(upstream = %name, line = %text, error = %err, "upstream printed non-JSON-RPC on stdout");
                match &mut report.non_json {
                    Some((_, n)) => *n += 1,
                    None => report.non_json = Some((text, 1)),
                }
            }
        }
    }
    report
}

/// Reads stderr to its end, never blocking the child; logs each line when `log_as` is set
/// and returns the last `keep` lines.
pub(super) async fn read_stderr(
    mut stderr: ChildStderr,
    keep: usize,
    log_as: Option<String>,
) -> VecDeque<String> {
    let mut last = VecDeque::with_capacity(keep.min(64));
    let mut buf = vec![0u8; 8192];
    let mut line: Vec<u8> = Vec::new();
    let push = |line: &mut Vec<u8>, last: &mut VecDeque<String>| {
        let text = String::from_utf8_lossy(line).trim_end().to_owned();
        line.clear();
        if text.is_empty() {
            return;
        }
        if let Some(name) = &log_as {
            tracing::info!(upstream = %name, stderr = %text, "upstream stderr");
        }
        if keep > 0 {
            if last.len() == keep {
                last.pop_front();
            }
            last.push_back(text);
        }
    };
    loop {
        let n = match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                push(&mut line, &mut last);
            } else if line.len() < STDERR_LINE_MAX {
                line.push(b);
            }
        }
    }
    push(&mut line, &mut last);
    last
}

/// A short, printable preview of a line.
pub(super) fn preview(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut out: String = text.chars().take(PREVIEW_MAX).collect();
    if text.chars().count() > PREVIEW_MAX {
        out.push('…');
    }
    out
}
