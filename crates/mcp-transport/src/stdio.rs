//! stdio: the upstream is a child process speaking newline-delimited JSON-RPC on its
//! stdin and stdout.
//!
//! The child gets a clean environment (`PATH`, `HOME`, `LANG`, `TMPDIR` and the
//! definition's `env`), runs in its own process group and is killed when the transport is
//! dropped. Its stderr is read continuously, logged when `logEnabled`, and its last lines
//! go into the close reason.

mod reader;
mod supervisor;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mcp_types::{McpDefinition, Message, TransportKind};
use tokio::io::AsyncWriteExt;
use tokio::process::{ChildStdin, Command};
use tokio::sync::{Mutex, Notify, mpsc, watch};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::Instrument;

use crate::Result;
use crate::error::{Error, Target};
use crate::options::TransportOptions;
use crate::transport::{CloseKind, CloseReason, Inbox, Transport, closed};

/// Environment variables copied from the proxy into every child.
pub const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG", "TMPDIR"];

/// A running stdio upstream.
///
/// Each sender writes its own line to the child's stdin (one at a time, under a lock): no
/// writer task, no queue. The one reader of stdout hands every message to the inbox.
#[derive(Debug)]
pub struct StdioTransport {
    target: Target,
    pid: Option<u32>,
    /// The child's stdin; `None` once closing (dropping it is EOF for the child).
    stdin: Mutex<Option<ChildStdin>>,
    /// Tells the supervisor the pipe is unusable (a line was cut short): kill the child.
    fatal: mpsc::Sender<String>,
    shutdown: Arc<Notify>,
    closed: watch::Receiver<Option<CloseReason>>,
    write_timeout: Duration,
    close_timeout: Duration,
    _tasks: DropGuard,
}

impl StdioTransport {
    /// Spawns the child `def` describes and starts reading its output.
    pub async fn spawn(
        def: &McpDefinition,
        opts: &TransportOptions,
        inbox: Arc<dyn Inbox>,
    ) -> Result<Self> {
        let target = Target::new(&def.name, TransportKind::Stdio);
        let Some((program, args)) = def.argv() else {
            return Err(Error::Config {
                target,
                reason: "stdio needs a command".into(),
            });
        };
        let refused = mcp_types::validate::check_stdio_allowed(def, &opts.allowed_commands);
        if !refused.is_empty() {
            return Err(Error::Config {
                target,
                reason: mcp_types::ValidationErrors(refused).to_string(),
            });
        }
        let mut cmd = Command::new(program);
        cmd.args(&args)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        for key in INHERITED_ENV {
            if let Some(value) = std::env::var_os(key) {
                cmd.env(key, value);
            }
        }
        for (key, value) in &def.env {
            cmd.env(key, value.expose());
        }
        if let Some(cwd) = &def.cwd {
            cmd.current_dir(cwd);
        }
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            target: target.clone(),
            program: program.to_owned(),
            source,
        })?;
        let pid = child.id();
        let span =
            tracing::info_span!("upstream", upstream = %def.name, transport = "stdio", pid = ?pid);
        tracing::info!(parent: &span, program, "stdio upstream started");

        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            unreachable!("stdin, stdout and stderr are piped");
        };
        let cancel = CancellationToken::new();
        let (closed_tx, closed_rx) = watch::channel(None);
        let shutdown = Arc::new(Notify::new());
        let stderr_task = tokio::spawn(
            reader::read_stderr(
                stderr,
                opts.stderr_lines,
                def.log_enabled.then(|| def.name.clone()),
            )
            .instrument(span.clone()),
        );
        let (fatal_tx, fatal_rx) = mpsc::channel(2);
        let stdout_task = tokio::spawn(
            reader::read_stdout(
                stdout,
                inbox.clone(),
                fatal_tx.clone(),
                opts.max_message_bytes,
                def.name.clone(),
            )
            .instrument(span.clone()),
        );
        let supervise = supervisor::supervise(supervisor::Supervisor {
            child,
            pid,
            name: def.name.clone(),
            grace: opts.shutdown_grace,
            shutdown: shutdown.clone(),
            fatal: fatal_rx,
            stdout: stdout_task,
            stderr: stderr_task,
            inbox,
            closed: closed_tx,
            cancel: cancel.clone(),
        });
        tokio::spawn(supervise.instrument(span));

        Ok(Self {
            target,
            pid,
            stdin: Mutex::new(Some(stdin)),
            fatal: fatal_tx,
            shutdown,
            closed: closed_rx,
            write_timeout: opts.request_timeout_for(def),
            close_timeout: opts.shutdown_grace * 3 + Duration::from_secs(2),
            _tasks: cancel.drop_guard(),
        })
    }

    fn closed_error(&self) -> Error {
        let reason = self.closed.borrow().clone().unwrap_or_else(|| {
            CloseReason::new(CloseKind::Exited, "the process stopped reading its stdin")
        });
        closed(&self.target, reason)
    }
}

#[async_trait]
impl Transport for StdioTransport {
    fn kind(&self) -> TransportKind {
        TransportKind::Stdio
    }

    fn target(&self) -> &Target {
        &self.target
    }

    fn pid(&self) -> Option<u32> {
        self.pid
    }

    async fn send(&self, msg: Message) -> Result<()> {
        if self.closed.borrow().is_some() {
            return Err(self.closed_error());
        }
        // A serialized message holds no raw line break, so one message is one line.
        let mut line = msg.to_vec();
        line.push(b'\n');
        let mut stdin = self.stdin.lock().await;
        let Some(pipe) = stdin.as_mut() else {
            let reason = self.closed.borrow().clone();
            return Err(closed(
                &self.target,
                reason.unwrap_or_else(CloseReason::local),
            ));
        };
        // If this future is dropped mid-line, the framing of every later line is lost.
        let mut cut = CutLine(Some(&self.fatal));
        let written = tokio::time::timeout(self.write_timeout, pipe.write_all(&line)).await;
        cut.0 = None;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => {
                // The child is going away: wait briefly for the supervisor's reason (exit
                // status, stderr) rather than guess.
                stdin.take();
                drop(stdin);
                let mut closed = self.closed.clone();
                let wait = closed.wait_for(Option::is_some);
                let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
                Err(self.closed_error())
            }
            Err(_) => {
                stdin.take();
                let _ = self.fatal.try_send(format!(
                    "the process did not read its stdin for {}",
                    crate::error::fmt_duration(self.write_timeout)
                ));
                Err(Error::Timeout {
                    target: self.target.clone(),
                    what: "writing to stdin".into(),
                    after: self.write_timeout,
                })
            }
        }
    }

    async fn close(&self) -> Result<()> {
        // Dropping stdin is EOF for the child; a write in progress finishes first.
        self.stdin.lock().await.take();
        self.shutdown.notify_one();
        let mut closed = self.closed.clone();
        match tokio::time::timeout(self.close_timeout, closed.wait_for(Option::is_some)).await {
            Ok(_) => Ok(()),
            Err(_) => Err(Error::Timeout {
                target: self.target.clone(),
                what: "stopping the process".into(),
                after: self.close_timeout,
            }),
        }
    }
}

/// Reports a line cut short when the write that owns it is dropped before it finished.
struct CutLine<'a>(Option<&'a mpsc::Sender<String>>);

impl Drop for CutLine<'_> {
    fn drop(&mut self) {
        if let Some(fatal) = self.0 {
            let _ = fatal.try_send("a message to its stdin was cut short".into());
        }
    }
}
