//! The reload loop of declared servers: SIGHUP, or a change of the configuration file or
//! of `servers_dir` seen by polling their metadata (debounced: the change must hold still
//! for one poll interval). A reload that finds a problem keeps the running set.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use mcp_proxy_core::Manager;
use mcp_store::{Store, StoreEvent};
use tokio::signal::unix::Signal;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::load::dir_files;
use super::{DeclaredSet, load, reconcile};
use crate::config::{self, FlagOverrides, ProxydConfig};

/// How long after a failed write the declarations are applied again.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// What the reload loop needs.
#[derive(Debug)]
pub(crate) struct Reloader {
    /// `--config`, when given.
    pub(crate) config_file: Option<PathBuf>,
    /// The command-line overrides (they apply on every reload too).
    pub(crate) flags: FlagOverrides,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) manager: Manager,
}

/// The metadata the watcher compares: path, length, modification time, inode.
type Fingerprint = Vec<(PathBuf, Option<(u64, SystemTime, u64)>)>;

impl Reloader {
    /// Applies `set` now, then reloads on SIGHUP and on file changes until `cancel`.
    pub(crate) async fn run(
        self,
        cfg: ProxydConfig,
        set: DeclaredSet,
        mut hangup: Signal,
        cancel: CancellationToken,
        first_applied: tokio::sync::oneshot::Sender<()>,
    ) {
        let mut managed = set.managed;
        let mut current = set;
        let mut poll_every = cfg.servers_poll_interval;
        let mut watched = self.watched(&cfg);
        let mut seen = fingerprint(&watched);
        let mut pending: Option<Fingerprint> = None;
        // Declared servers served from memory while the store is down.
        let mut unstored = BTreeSet::new();
        // A resync (the store reconnected; it may have come back empty) applies the
        // declarations again.
        let mut feed = self.store.watch();
        let mut retry = managed && self.apply(&current, &mut unstored).await;
        let _ = first_applied.send(());
        let mut poll = ticker(poll_every);
        let mut retry_tick = ticker(RETRY_AFTER);
        loop {
            let trigger = tokio::select! {
                () = cancel.cancelled() => return,
                _ = hangup.recv() => "SIGHUP",
                _ = poll.tick(), if !poll_every.is_zero() => {
                    let now = fingerprint(&watched);
                    if now == seen {
                        pending = None;
                        continue;
                    }
                    if pending.as_ref() != Some(&now) {
                        // Changed since the last look: wait until it holds still.
                        pending = Some(now);
                        continue;
                    }
                    "file change"
                }
                _ = retry_tick.tick(), if retry => {
                    retry = self.apply(&current, &mut unstored).await;
                    continue;
                }
                event = feed.next() => {
                    match event {
                        Some(StoreEvent::Resync) if managed => {
                            retry = self.apply(&current, &mut unstored).await;
                        }
                        Some(_) => {}
                        None => feed = self.store.watch(),
                    }
                    continue;
                }
            };
            pending = None;
            info!(trigger, "reloading declared servers");
            // What is read below is at least as new as this: a file that changes while
            // the reload runs differs from it at the next poll and is reloaded then.
            let before = fingerprint(&watched);
            match self.reload() {
                Ok((cfg, set)) => {
                    managed |= set.managed;
                    current = set;
                    if cfg.servers_poll_interval != poll_every {
                        poll_every = cfg.servers_poll_interval;
                        poll = ticker(poll_every);
                    }
                    let now_watched = self.watched(&cfg);
                    seen = if now_watched == watched {
                        before
                    } else {
                        fingerprint(&now_watched)
                    };
                    watched = now_watched;
                    retry = managed && self.apply(&current, &mut unstored).await;
                }
                Err(e) => {
                    seen = before;
                    error!(
                        error = %one_line(&format!("{e:#}")),
                        "declared servers not reloaded; the running ones are kept"
                    );
                }
            }
        }
    }

    /// Re-reads the configuration (file, environment, flags) and the declarations.
    fn reload(&self) -> anyhow::Result<(ProxydConfig, DeclaredSet)> {
        let cfg = config::load(self.config_file.as_deref(), &self.flags)?;
        let set = load(&cfg, &|name| std::env::var(name).ok())?;
        Ok((cfg, set))
    }

    /// Applies `set`; `true` when something must be tried again. While the store cannot
    /// be reached the declared servers are served from the configuration (in memory
    /// only), and written to the store once it answers.
    async fn apply(&self, set: &DeclaredSet, unstored: &mut BTreeSet<String>) -> bool {
        match reconcile(&*self.store, &self.manager, set).await {
            Ok(applied) => {
                unstored.clear();
                applied.needs_retry()
            }
            Err(e) if e.is_retryable() => {
                let declared: BTreeSet<String> = set
                    .servers
                    .iter()
                    .map(|d| d.definition.name.clone())
                    .collect();
                for gone in unstored.difference(&declared) {
                    self.manager.apply_delete(gone, None);
                }
                if unstored.is_empty() && !declared.is_empty() {
                    warn!(
                        error = %e,
                        servers = declared.len(),
                        "store unavailable: serving the declared servers from the \
                         configuration until it answers"
                    );
                }
                for decl in &set.servers {
                    self.manager.apply_unstored(decl.definition.clone());
                }
                *unstored = declared;
                true
            }
            Err(e) => {
                warn!(error = %e, "cannot apply the declared servers yet; retrying");
                true
            }
        }
    }

    /// The configuration file and `servers_dir`.
    fn watched(&self, cfg: &ProxydConfig) -> Vec<PathBuf> {
        let file = self
            .config_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(config::DEFAULT_FILE));
        std::iter::once(file)
            .chain(cfg.servers_dir.clone())
            .collect()
    }
}

/// A problem list (`…:\n  - a\n  - b`) on one log line (`…: a; b`).
fn one_line(text: &str) -> String {
    text.replace(":\n  - ", ": ")
        .replace("\n  - ", "; ")
        .replace('\n', " ")
}

fn ticker(every: Duration) -> tokio::time::Interval {
    let mut t = tokio::time::interval_at(
        tokio::time::Instant::now() + every.max(Duration::from_millis(10)),
        every.max(Duration::from_millis(10)),
    );
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

/// Metadata of each watched path; for a directory, of each definition file in it.
fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
    use std::os::unix::fs::MetadataExt;
    let meta = |p: &PathBuf| {
        std::fs::metadata(p).ok().map(|m| {
            (
                m.len(),
                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                m.ino(),
            )
        })
    };
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            out.push((p.clone(), None));
            for f in dir_files(p).unwrap_or_default() {
                let m = meta(&f);
                out.push((f, m));
            }
        } else {
            out.push((p.clone(), meta(p)));
        }
    }
    out
}
