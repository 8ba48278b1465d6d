//! Runs a real `proxyd` process on a free loopback port.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The admin token the spawner configures.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// How [`Proxyd::launch`] starts the process.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// `--port`; 0 (the default) picks a free one.
    pub port: u16,
    /// The open-file limit (soft and hard, `ulimit -n`) proxyd runs under.
    pub open_files: Option<u64>,
}

/// A running `proxyd`; killed on drop.
#[derive(Debug)]
pub struct Proxyd {
    child: Child,
    addr: String,
    log: Arc<Mutex<VecDeque<String>>>,
    /// Holds the ready file proxyd writes (`--ready-file`).
    _dir: tempfile::TempDir,
}

impl Proxyd {
    /// Starts `binary` with `--port 0`, the test admin token and `args`, and waits (at most
    /// 30 s) until it writes its ready file (`--ready-file`) with the address it listens on.
    pub async fn start(binary: impl AsRef<Path>, args: &[&str]) -> anyhow::Result<Self> {
        Self::start_with_env(binary, args, &[]).await
    }

    /// The same, with extra environment variables.
    pub async fn start_with_env(
        binary: impl AsRef<Path>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        Self::launch(binary, args, env, &Launch::default()).await
    }

    /// The same, with the [`Launch`] settings (a fixed port, an open-file limit).
    pub async fn launch(
        binary: impl AsRef<Path>,
        args: &[&str],
        env: &[(&str, &str)],
        launch: &Launch,
    ) -> anyhow::Result<Self> {
        let mut cmd = match launch.open_files {
            // The shell sets the limit and becomes proxyd (same pid).
            Some(n) => {
                let mut sh = Command::new("/bin/sh");
                sh.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(binary.as_ref());
                sh
            }
            None => Command::new(binary.as_ref()),
        };
        let port = launch.port.to_string();
        let dir = tempfile::tempdir().context("cannot create the ready file's directory")?;
        let ready = dir.path().join("ready.json");
        cmd.args(["--host", "127.0.0.1", "--port", port.as_str()])
            .arg("--ready-file")
            .arg(&ready)
            .args(args)
            .env("MCP_PROXY_ADMIN_TOKENS", format!("[\"{ADMIN_TOKEN}\"]"))
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("cannot spawn proxyd")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let sink = log.clone();
        // Drain stderr for the whole life of the process so it never blocks on a full pipe.
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = sink.lock().expect("log lock");
                if log.len() == 200 {
                    log.pop_front();
                }
                log.push_back(line);
            }
        });
        let Some(addr) = ready_addr(&mut child, &ready, Duration::from_secs(30)).await else {
            let status = child.try_wait().ok().flatten();
            let lines = log
                .lock()
                .expect("log lock")
                .iter()
                .cloned()
                .collect::<Vec<_>>();
            bail!(
                "proxyd did not start (exit: {status:?}); its log:\n{}",
                lines.join("\n")
            );
        };
        Ok(Self {
            child,
            addr,
            log,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The log lines seen so far (the last 200).
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log lock").iter().cloned().collect()
    }

    /// Kills the process (SIGKILL, like a crash) and waits for it to exit.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Sends SIGTERM and waits (at most `within`) for the exit status.
    pub async fn terminate(
        &mut self,
        within: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.child.id().context("proxyd already exited")?;
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await?;
        if !status.success() {
            bail!("kill -TERM {pid} failed");
        }
        tokio::time::timeout(within, self.child.wait())
            .await
            .context("proxyd did not exit after SIGTERM")?
            .map_err(Into::into)
    }
}

/// The address in proxyd's ready file, once it is written; `None` when the process exits
/// first or `within` passes. The file appears whole (proxyd renames it into place).
async fn ready_addr(child: &mut Child, ready: &Path, within: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Ok(text) = std::fs::read_to_string(ready) {
            let value: serde_json::Value = serde_json::from_str(&text).ok()?;
            let url = value["url"].as_str()?;
            return Some(url.strip_prefix("http://").unwrap_or(url).to_owned());
        }
        if child.try_wait().ok().flatten().is_some() || tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The `proxyd` binary, built on first use, for tests of crates that cannot depend on it.
///
/// Runs `cargo build --quiet -p proxyd` once per test process, into the target directory
/// and profile of the running test (a no-op when it is up to date), like
/// [`crate::tools::mock_stdio`]. `MCP_TEST_PROXYD_BIN`, when set, names a prebuilt binary
/// to use instead.
pub fn proxyd_binary() -> std::path::PathBuf {
    static PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| match std::env::var_os("MCP_TEST_PROXYD_BIN") {
        Some(path) => path.into(),
        None => build_proxyd(),
    })
    .clone()
}

fn build_proxyd() -> std::path::PathBuf {
    crate::tools::cargo_bin("proxyd", "proxyd")
}
