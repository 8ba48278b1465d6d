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
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use mcp_types::{McpDefinition, Message, TransportKind};
use tokio::process::Command;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::Instrument;

use crate::Result;
use crate::error::{Error, Target};
use crate::options::TransportOptions;
use crate::transport::{CloseKind, CloseReason, Events, Transport, closed};

/// Environment variables copied from the proxy into every child.
pub const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG", "TMPDIR"];

/// Messages waiting to be written to the child's stdin.
const WRITE_QUEUE: usize = 64;

/// A running stdio upstream.
#[derive(Debug)]
pub struct StdioTransport {
    target: Target,
    pid: Option<u32>,
    /// Queue to the stdin writer; `None` once closing.
    writer: Mutex<Option<mpsc::Sender<Vec<u8>>>>,
    shutdown: std::sync::Arc<Notify>,
    closed: watch::Receiver<Option<CloseReason>>,
    write_timeout: Duration,
    close_timeout: Duration,
    _tasks: DropGuard,
}

impl StdioTransport {
    /// Spawns the child `def` describes and starts reading its output.
    pub async fn spawn(def: &McpDefinition, opts: &TransportOptions) -> Result<(Self, Events)> {
        let target = Target::new(&def.name, TransportKind::Stdio);
        let Some((program, args)) = def.argv() else {
            return Err(Error::Config {
                target,
                reason: "stdio needs a command".into(),
            });
        };
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
        let (events_tx, events_rx) = mpsc::channel(opts.event_capacity.max(1));
        let (write_tx, write_rx) = mpsc::channel(WRITE_QUEUE);
        let (closed_tx, closed_rx) = watch::channel(None);
        let shutdown = std::sync::Arc::new(Notify::new());

        tokio::spawn(
            reader::write_stdin(stdin, write_rx, cancel.clone(), def.name.clone())
                .instrument(span.clone()),
        );
        let stderr_task = tokio::spawn(
            reader::read_stderr(
                stderr,
                opts.stderr_lines,
                def.log_enabled.then(|| def.name.clone()),
            )
            .instrument(span.clone()),
        );
        let (fatal_tx, fatal_rx) = tokio::sync::oneshot::channel();
        let stdout_task = tokio::spawn(
            reader::read_stdout(
                stdout,
                events_tx.clone(),
                fatal_tx,
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
            events: events_tx,
            closed: closed_tx,
            cancel: cancel.clone(),
        });
        tokio::spawn(supervise.instrument(span));

        let transport = Self {
            target,
            pid,
            writer: Mutex::new(Some(write_tx)),
            shutdown,
            closed: closed_rx,
            write_timeout: opts.request_timeout_for(def),
            close_timeout: opts.shutdown_grace * 3 + Duration::from_secs(2),
            _tasks: cancel.drop_guard(),
        };
        Ok((transport, events_rx))
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
        let Some(tx) = self.writer.lock().expect("writer lock").clone() else {
            let reason = self.closed.borrow().clone();
            return Err(closed(
                &self.target,
                reason.unwrap_or_else(CloseReason::local),
            ));
        };
        // Compact JSON never contains a raw newline, so one message is one line.
        let mut line = msg.to_vec();
        line.push(b'\n');
        match tokio::time::timeout(self.write_timeout, tx.send(line)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => {
                // The writer stopped because the child is going away: wait briefly for
                // the supervisor's reason (exit status, stderr) rather than guess.
                let mut closed = self.closed.clone();
                let wait = closed.wait_for(Option::is_some);
                let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
                Err(self.closed_error())
            }
            Err(_) => Err(Error::Timeout {
                target: self.target.clone(),
                what: "writing to stdin".into(),
                after: self.write_timeout,
            }),
        }
    }

    async fn close(&self) -> Result<()> {
        // Dropping the queue's sender lets the writer flush, then close stdin.
        self.writer.lock().expect("writer lock").take();
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
