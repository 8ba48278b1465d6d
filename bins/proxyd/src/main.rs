//! `proxyd`: the MCP proxy daemon.
//!
//! Reads its configuration (defaults < `proxyd.toml`/`--config` < `MCP_PROXY_*` < flags),
//! opens the store, applies the declared servers (and again on SIGHUP or a file change),
//! serves the HTTP API, and shuts down gracefully on SIGINT/SIGTERM.

mod config;
mod declared;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use mcp_proxy_core::{Manager, ManagerConfig, TransportConnector};
use mcp_proxy_http::App;
use mcp_store::{MemoryStore, RedisConfig, RedisStore, SessionRegistry, Store};
use mcp_transport::TransportOptions;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

use crate::config::{FlagOverrides, LogFormat, ProxydConfig, StorageKind, StorageOverrides};
use crate::declared::DeclaredSet;

/// The MCP proxy daemon.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (default: ./proxyd.toml when present).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on (0 = any free port).
    #[arg(long, short = 'p')]
    port: Option<u16>,
    /// Log format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// Storage back-end.
    #[arg(long, value_enum)]
    storage: Option<StorageKind>,
    /// Redis URL (with `--storage redis`).
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
    /// Print the effective configuration (secrets redacted) and exit; non-zero when invalid.
    #[arg(long)]
    check_config: bool,
    /// Once listening, write `{"url": ..., "pid": ...}` to FILE (atomically: a temporary
    /// file renamed into place); removed again at a clean exit.
    #[arg(long, value_name = "FILE")]
    ready_file: Option<PathBuf>,
}

impl Cli {
    fn overrides(&self) -> FlagOverrides {
        let storage =
            (self.storage.is_some() || self.redis_url.is_some()).then(|| StorageOverrides {
                kind: self.storage,
                url: self.redis_url.clone(),
            });
        FlagOverrides {
            host: self.host.clone(),
            port: self.port,
            log_format: self.log_format,
            storage,
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let cfg = match config::load(cli.config.as_deref(), &cli.overrides()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("proxyd: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    // Only proxyd reads the environment: `${VAR}` in declared servers comes from here.
    let declared = match declared::load(&cfg, &|name| std::env::var(name).ok()) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("proxyd: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    if cli.check_config {
        print!("{}", cfg.redacted_toml());
        if declared.managed {
            println!(
                "# declared servers ({}): {}",
                declared.servers.len(),
                declared.summary()
            );
        }
        return std::process::ExitCode::SUCCESS;
    }
    init_tracing(cfg.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("proxyd: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let reload = Reload {
        config_file: cli.config.clone(),
        flags: cli.overrides(),
        declared,
    };
    match runtime.block_on(run(cfg, reload, cli.ready_file.as_deref())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %format!("{e:#}"), "proxyd failed");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// The store, and the session registry when sessions are shared between replicas (Redis
/// storage and `session_keys`).
async fn open_store(
    cfg: &ProxydConfig,
) -> anyhow::Result<(Arc<dyn Store>, Option<Arc<dyn SessionRegistry>>)> {
    Ok(match cfg.storage.kind {
        StorageKind::Memory => (Arc::new(MemoryStore::new()), None),
        StorageKind::Redis => {
            let mut rc = RedisConfig::new(cfg.storage.url.clone());
            rc.prefix.clone_from(&cfg.storage.prefix);
            // Redis down at start is not fatal: the store keeps connecting, proxyd serves
            // what it can (the declared servers) and /readyz says why it is not ready.
            let store = Arc::new(
                RedisStore::open(rc)
                    .await
                    .context("cannot open the redis store")?,
            );
            let registry =
                (!cfg.session_keys.is_empty()).then(|| store.clone() as Arc<dyn SessionRegistry>);
            (store, registry)
        }
    })
}

/// This process's id among the replicas: `replica_id`, or host name, pid and a random
/// suffix (unique per process, also after a restart with the same pid).
fn replica_id(cfg: &ProxydConfig) -> String {
    if !cfg.replica_id.is_empty() {
        return cfg.replica_id.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "proxyd".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{host}-{}-{:04x}", std::process::id(), nanos & 0xffff)
}

/// What the declared-servers reload loop starts from.
#[derive(Debug)]
struct Reload {
    config_file: Option<PathBuf>,
    flags: FlagOverrides,
    declared: DeclaredSet,
}

async fn run(
    mut cfg: ProxydConfig,
    reload: Reload,
    ready_file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    // Before anything can send it: SIGHUP's default action would end the process.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot install the SIGHUP handler")?;
    // Before any child is spawned, so that every one runs under the same limit.
    let open_files = raise_open_file_limit();
    if let Some(configured) = cfg.listener.fit_open_file_limit(open_files) {
        warn!(
            configured,
            allowed = cfg.listener.max_connections,
            open_file_limit = open_files,
            "listener.max_connections lowered to half the open-file limit, so that client \
             connections cannot starve stdio children and upstream connections; raise the \
             limit (ulimit -n, LimitNOFILE=) to serve more"
        );
    }
    let (store, registry) = open_store(&cfg).await?;
    let options = TransportOptions {
        max_message_bytes: cfg.max_message_bytes,
        allowed_commands: Arc::from(cfg.stdio_allowed_commands.clone()),
        ..TransportOptions::default()
    };
    let manager = Manager::new(
        store.clone(),
        Arc::new(TransportConnector::new(options)),
        ManagerConfig {
            max_connections: cfg.max_connections,
            aggregate_all: cfg.aggregate_all,
            strict_names: cfg.strict_names,
            stdio_allowed_commands: cfg.stdio_allowed_commands.clone(),
        },
    );
    manager.start().await;
    let shutdown = CancellationToken::new();
    if reload.declared.managed {
        info!(
            count = reload.declared.servers.len(),
            servers = %reload.declared.summary(),
            "declared servers"
        );
    }
    let reloader = declared::watch::Reloader {
        config_file: reload.config_file,
        flags: reload.flags,
        store: store.clone(),
        manager: manager.clone(),
    };
    // The first application happens before the listener opens, so the Admin API never
    // answers without the declared servers.
    let (first_applied, applied) = tokio::sync::oneshot::channel();
    tokio::spawn(reloader.run(
        cfg.clone(),
        reload.declared,
        hangup,
        shutdown.clone(),
        first_applied,
    ));
    let _ = applied.await;
    let http_config = cfg.http_config()?;
    if http_config.admin_allow_ips.is_empty() {
        warn!("admin_allow_ips is empty: the admin api is closed to every client");
    }
    let app = App::new(http_config, store.clone(), manager.clone());
    let listener = TcpListener::bind((cfg.host.as_str(), cfg.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", cfg.host, cfg.port))?;
    let addr: SocketAddr = listener.local_addr()?;
    let app = match registry {
        Some(registry) => {
            let id = replica_id(&cfg);
            let address = cfg
                .replica_url
                .clone()
                .unwrap_or_else(|| format!("http://{addr}"));
            info!(replica = %id, %address, "sessions shared with the other replicas through redis");
            app.with_registry(registry, &id, &address)
        }
        None => app,
    };
    // Signal handlers are in place before anyone can learn the address: a SIGTERM sent
    // right after the "listening" line is a clean shutdown, never the default action.
    let signals = Signals::install();
    info!(
        %addr,
        storage = store.backend(),
        version = env!("CARGO_PKG_VERSION"),
        "proxyd listening on http://{addr}"
    );
    if let Some(path) = ready_file {
        write_ready_file(path, addr)?;
    }
    tokio::spawn(signals.watch(shutdown.clone()));
    // Client sessions end first, so their SSE streams do not hold the drain up.
    let sessions = app.sessions().clone();
    let stopping = shutdown.clone();
    tokio::spawn(async move {
        stopping.cancelled().await;
        sessions.shutdown();
    });
    mcp_proxy_http::serve(listener, app.clone(), shutdown.cancelled_owned()).await?;
    app.retire().await;
    // The sessions' own tasks (closing their upstream sessions) end before the upstreams.
    if !app.sessions().wait(cfg.shutdown_timeout).await {
        warn!("client session tasks still running after shutdown_timeout");
    }
    // Upstreams last: stdio children get closed stdin, SIGTERM, then SIGKILL.
    manager.shutdown(cfg.shutdown_timeout).await;
    if let Some(path) = ready_file
        && let Err(e) = std::fs::remove_file(path)
    {
        warn!(path = %path.display(), error = %e, "cannot remove the ready file");
    }
    info!("proxyd stopped");
    Ok(())
}

/// Writes `{"url": "http://ADDR", "pid": PID}` to `path` through a temporary file in the
/// same directory and a rename, so a reader sees either no file or the whole of it.
fn write_ready_file(path: &std::path::Path, addr: SocketAddr) -> anyhow::Result<()> {
    let body = serde_json::json!({"url": format!("http://{addr}"), "pid": std::process::id()});
    let name = path
        .file_name()
        .with_context(|| format!("ready file {} names no file", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, format!("{body}\n"))
        .with_context(|| format!("cannot write the ready file {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| {
        let _ = std::fs::remove_file(&tmp);
        format!(
            "cannot move the ready file into place at {}",
            path.display()
        )
    })
}

/// Raises the soft open-file limit to the hard one (as servers commonly do: the soft
/// default of 1024 is meant for interactive programs) and returns the limit in force, or
/// `None` when it is unlimited.
fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
        && current < maximum
    {
        let raised = rustix::process::Rlimit {
            current: Some(maximum),
            maximum: Some(maximum),
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            warn!(error = %e, current, maximum, "cannot raise the open-file limit");
        }
    }
    getrlimit(Resource::Nofile).current
}

/// SIGTERM and SIGINT streams, installed before the listener is announced.
struct Signals(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

impl Signals {
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Self(Some((term, int))),
            _ => {
                error!("cannot install signal handlers; stop proxyd with SIGKILL");
                Self(None)
            }
        }
    }

    /// Cancels `token` on SIGINT or SIGTERM.
    async fn watch(self, token: CancellationToken) {
        let Some((mut term, mut int)) = self.0 else {
            return;
        };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        info!(signal = name, "shutting down");
        token.cancel();
    }
}
