//! A real `redis-server` on a free loopback port, for the Redis store tests.
//!
//! ```ignore
//! let mut redis = RedisServer::start().await;
//! let url = redis.url(); // redis://127.0.0.1:<port>
//! redis.stop().await; // the server is gone, as after a crash
//! redis.start_again().await; // a fresh, empty server on the same port
//! ```
//!
//! Persistence is off (`--save "" --appendonly no`) and the working directory is a temporary
//! directory, so a restarted server comes back empty; [`RedisServer::start_persistent`]
//! keeps an append-only file synced on every write instead, so a server killed and started
//! again comes back with every acknowledged write. [`RedisServer::not_started`] reserves a
//! port for a server started later.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// How long to wait for a started server to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A `redis-server` child process listening on `127.0.0.1:<port>`, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    program: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    persistent: bool,
}

impl RedisServer {
    /// Starts `redis-server` (found on `PATH`) on a free port and waits until it answers.
    ///
    /// # Panics
    /// When `redis-server` is not installed or does not come up.
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    /// Like [`start`](Self::start), with every write synced to an append-only file, so
    /// that [`stop`](Self::stop) then [`start_again`](Self::start_again) loses nothing that
    /// was acknowledged.
    pub async fn start_persistent() -> Self {
        Self::start_with(true).await
    }

    /// A harness on a port that was free a moment ago, with no server running: connections
    /// are refused until [`start_again`](Self::start_again).
    ///
    /// # Panics
    /// When `redis-server` is not installed.
    pub fn not_started() -> Self {
        Self {
            program: find_redis_server().unwrap_or_else(|| {
                panic!("redis-server not found: run scripts/install-test-deps.sh")
            }),
            port: free_port(),
            dir: tempfile::tempdir().expect("redis harness: create temporary directory"),
            child: None,
            persistent: false,
        }
    }

    async fn start_with(persistent: bool) -> Self {
        let program = find_redis_server()
            .unwrap_or_else(|| panic!("redis-server not found: run scripts/install-test-deps.sh"));
        let mut last_error = String::new();
        // A free port can be taken by someone else between probing and binding: retry a few.
        for _ in 0..3 {
            let mut server = Self {
                program: program.clone(),
                port: free_port(),
                dir: tempfile::tempdir().expect("redis harness: create temporary directory"),
                child: None,
                persistent,
            };
            match server.spawn_and_wait().await {
                Ok(()) => return server,
                Err(err) => last_error = err,
            }
        }
        panic!("redis harness: redis-server did not start: {last_error}");
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server process is running (as far as this harness knows).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL, like a crash) and waits for it to exit.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing answers, like a
    /// hung host. Undo with [`thaw`](Self::thaw).
    pub async fn freeze(&self) {
        self.signal("-STOP").await;
    }

    /// Resumes a frozen server (SIGCONT).
    pub async fn thaw(&self) {
        self.signal("-CONT").await;
    }

    async fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .expect("redis harness: server is not running");
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .await
            .expect("redis harness: run kill");
        assert!(
            status.success(),
            "redis harness: kill {signal} {pid}: {status}"
        );
    }

    /// Starts a server on the same port (empty, unless persistent) and waits until it
    /// answers.
    ///
    /// # Panics
    /// When the server does not come up.
    pub async fn start_again(&mut self) {
        self.stop().await;
        // The old listening socket is released when the process dies; allow a short grace
        // period in case the port is still held.
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.spawn_and_wait().await {
                Ok(()) => return,
                Err(err) if Instant::now() >= deadline => {
                    panic!("redis harness: restart on port {} failed: {err}", self.port)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn spawn_and_wait(&mut self) -> Result<(), String> {
        let mut child = Command::new(&self.program)
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", ""])
            .args(if self.persistent {
                ["--appendonly", "yes", "--appendfsync", "always"]
            } else {
                ["--appendonly", "no", "--appendfsync", "everysec"]
            })
            .args(["--daemonize", "no", "--dir"])
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.program.display()))?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "redis-server exited early with {status}; its log:\n{}",
                    self.log_tail()
                ));
            }
            if ping(self.port).await {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill().await;
                return Err(format!(
                    "no PONG on port {} within {READY_TIMEOUT:?}; its log:\n{}",
                    self.port,
                    self.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// The last lines of the server's log, for failure messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// Sends a raw `PING` and reports whether `+PONG` came back (each step bounded).
async fn ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut buf = [0u8; 16];
        let n = stream.read(&mut buf).await.ok()?;
        Some(buf[..n].starts_with(b"+PONG"))
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), attempt).await,
        Ok(Some(true))
    )
}

/// A port that was free a moment ago (bind port 0, read it, release it).
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .expect("redis harness: bind 127.0.0.1:0 to find a free port");
    listener
        .local_addr()
        .expect("redis harness: local address of probe listener")
        .port()
}

fn find_redis_server() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
}
