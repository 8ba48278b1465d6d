//! A stdio server driven over its pipes, with no HTTP: the ceiling a stdio gateway can
//! approach. One child is one MCP session (one `initialize`); the bench's sessions are
//! concurrent callers on it, told apart by their request ids.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, anyhow, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::oneshot;

use super::{Answer, SessionOpts, bounded};
use crate::jsonrpc::{self, Message};

type Waiters = HashMap<u64, oneshot::Sender<Answer>>;
type Stdin = Arc<tokio::sync::Mutex<Option<ChildStdin>>>;

/// One child process and its pipes.
#[derive(Debug)]
pub(crate) struct StdioLink {
    stdin: Stdin,
    waiters: Arc<Mutex<Waiters>>,
    /// Why the child's stdout ended, once it has.
    closed: Arc<Mutex<Option<String>>>,
    child: Mutex<Option<Child>>,
    negotiated: String,
    timeout: std::time::Duration,
}

impl StdioLink {
    /// Spawns `command`, reads its stdout from a task, and performs the handshake with
    /// request id `init_id`.
    pub(crate) async fn spawn(
        command: &[String],
        opts: &SessionOpts,
        init_id: u64,
    ) -> anyhow::Result<Arc<Self>> {
        let (program, args) = command
            .split_first()
            .ok_or_else(|| anyhow!("--stdio needs a command"))?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {program:?}"))?;
        let stdin = child.stdin.take().context("no stdin pipe")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let mut link = Self {
            stdin: Arc::new(tokio::sync::Mutex::new(Some(stdin))),
            waiters: Arc::default(),
            closed: Arc::default(),
            child: Mutex::new(Some(child)),
            negotiated: String::new(),
            timeout: opts.timeout,
        };
        tokio::spawn(read_stdout(
            stdout,
            link.waiters.clone(),
            link.closed.clone(),
            opts.max_message_bytes,
            link.stdin.clone(),
        ));
        let params = jsonrpc::initialize_params(&opts.protocol_version);
        let init = jsonrpc::request(init_id, "initialize", &params);
        let answer = link
            .call_within(init_id, init, opts.open_timeout)
            .await
            .context("initialize")?;
        link.negotiated = jsonrpc::negotiated(answer.outcome)?;
        link.write(jsonrpc::INITIALIZED.to_vec()).await?;
        Ok(Arc::new(link))
    }

    async fn write(&self, line: Vec<u8>) -> anyhow::Result<()> {
        write_line(&self.stdin, line).await
    }

    async fn call(&self, id: u64, body: Vec<u8>) -> anyhow::Result<Answer> {
        self.call_within(id, body, self.timeout).await
    }

    async fn call_within(
        &self,
        id: u64,
        body: Vec<u8>,
        timeout: std::time::Duration,
    ) -> anyhow::Result<Answer> {
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).insert(id, tx);
        if let Some(why) = lock(&self.closed).clone() {
            lock(&self.waiters).remove(&id);
            bail!("the stdio server is gone: {why}");
        }
        let result = bounded(timeout, "the request", async {
            self.write(body).await?;
            rx.await.map_err(|_| {
                let why = lock(&self.closed).clone().unwrap_or_default();
                anyhow!("the stdio server is gone: {why}")
            })
        })
        .await;
        if result.is_err() {
            lock(&self.waiters).remove(&id);
        }
        result
    }

    /// Closes stdin and waits a little for the child to exit, then kills it.
    pub(crate) async fn shutdown(&self) {
        let child = lock(&self.child).take();
        if let Some(mut child) = child {
            // The end of stdin asks a stdio server to exit; kill it if it does not.
            drop(self.stdin.lock().await.take());
            if tokio::time::timeout(std::time::Duration::from_secs(2), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}

async fn write_line(stdin: &Stdin, mut line: Vec<u8>) -> anyhow::Result<()> {
    line.push(b'\n');
    let mut stdin = stdin.lock().await;
    let pipe = stdin.as_mut().context("stdin is closed")?;
    pipe.write_all(&line)
        .await
        .context("writing to the server's stdin")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Routes every line of the child's stdout to the request waiting for it.
async fn read_stdout(
    stdout: ChildStdout,
    waiters: Arc<Mutex<Waiters>>,
    closed: Arc<Mutex<Option<String>>>,
    max: usize,
    stdin: Stdin,
) {
    let mut reader = BufReader::with_capacity(64 << 10, stdout);
    let mut line = Vec::new();
    let why = loop {
        line.clear();
        match read_line(&mut reader, &mut line, max).await {
            Ok(0) => break "its stdout ended".to_owned(),
            Ok(_) => {}
            Err(e) => break e.to_string(),
        }
        let Ok(msgs) = jsonrpc::parse(&line) else {
            continue; // a server may log to stdout; not a response
        };
        for m in msgs {
            match m {
                Message::Response {
                    id: Some(id),
                    outcome,
                } => {
                    if let Some(tx) = lock(&waiters).remove(&id) {
                        let _ = tx.send(Answer {
                            outcome,
                            bytes: line.len(),
                        });
                    }
                }
                // Answered from a task: writing here could block on a full stdin pipe
                // while the server blocks on a full stdout pipe.
                Message::Request { id, method } => {
                    let stdin = stdin.clone();
                    tokio::spawn(async move {
                        let _ = write_line(&stdin, jsonrpc::reply_to(&id, &method)).await;
                    });
                }
                _ => {}
            }
        }
    };
    *lock(&closed) = Some(why);
    lock(&waiters).clear();
}

/// Reads one line into `out` (without the newline), refusing lines longer than `max`.
async fn read_line(
    reader: &mut BufReader<ChildStdout>,
    out: &mut Vec<u8>,
    max: usize,
) -> anyhow::Result<usize> {
    loop {
        let buf = reader
            .fill_buf()
            .await
            .context("reading the server's stdout")?;
        if buf.is_empty() {
            return Ok(out.len());
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let end = if done { take - 1 } else { take };
        out.extend_from_slice(&buf[..end]);
        reader.consume(take);
        if out.len() > max {
            bail!("the server wrote a line longer than {max} bytes");
        }
        if done {
            if out.last() == Some(&b'\r') {
                out.pop();
            }
            // An empty line is skipped, not taken for the end of the stream.
            if out.is_empty() {
                continue;
            }
            return Ok(out.len());
        }
    }
}

/// A caller on a shared stdio link.
#[derive(Debug)]
pub(crate) struct StdioSession {
    link: Arc<StdioLink>,
}

impl StdioSession {
    pub(super) fn new(link: Arc<StdioLink>) -> Self {
        Self { link }
    }

    pub(super) async fn call(&mut self, id: u64, body: Vec<u8>) -> anyhow::Result<Answer> {
        self.link.call(id, body).await
    }

    pub(super) fn negotiated(&self) -> &str {
        &self.link.negotiated
    }

    pub(super) fn is_dead(&self) -> bool {
        lock(&self.link.closed).is_some()
    }
}
