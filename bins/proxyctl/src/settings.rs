//! Where the proxy is and how to authenticate: flags, then the environment (both through
//! clap), then the config file, then the defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use mcp_proxy_client::{ProxyClient, RetryPolicy};
use serde::Deserialize;

use crate::cli::Global;
use crate::exit::{Exit, Failure};

/// The proxy `proxyd` listens on by default.
pub(crate) const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// proxyd's default admin token, accepted only on loopback.
pub(crate) const DEFAULT_TOKEN: &str = "CHANGE_ME_ADMIN_TOKEN";
/// Default per-request timeout.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    url: Option<String>,
    token: Option<String>,
    #[serde(default, with = "mcp_types::duration::option")]
    timeout: Option<Duration>,
}

/// The settings in force.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) url: String,
    pub(crate) token: String,
    pub(crate) timeout: Duration,
}

impl Settings {
    /// Resolves the settings from `global` and the config file.
    pub(crate) fn resolve(global: &Global) -> anyhow::Result<Self> {
        let file = match &global.config {
            Some(path) => read(path)?,
            None => match default_path() {
                Some(path) if path.is_file() => read(&path)?,
                _ => FileConfig::default(),
            },
        };
        Ok(Self {
            url: global
                .proxy
                .clone()
                .or(file.url)
                .unwrap_or_else(|| DEFAULT_URL.to_owned()),
            token: global
                .token
                .clone()
                .or(file.token)
                .unwrap_or_else(|| DEFAULT_TOKEN.to_owned()),
            timeout: global.timeout.or(file.timeout).unwrap_or(DEFAULT_TIMEOUT),
        })
    }

    /// A client of the proxy. One quick retry: a command line should answer, not wait.
    pub(crate) fn client(&self) -> anyhow::Result<ProxyClient> {
        let policy = RetryPolicy::try_new(
            2,
            Duration::from_millis(200),
            Duration::from_secs(1),
            Duration::from_secs(3),
        )?;
        let client = ProxyClient::try_new(&self.url, self.token.clone(), self.timeout)
            .map_err(|e| Failure::new(Exit::Usage, format!("--proxy: {e}")))?;
        Ok(client.with_retry(policy))
    }
}

/// `$XDG_CONFIG_HOME/proxyctl/config.toml`, or `~/.config/proxyctl/config.toml`.
fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("proxyctl").join("config.toml"))
}

fn read(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("config file {}: cannot read", path.display()))
        .map_err(|e| Failure::new(Exit::Usage, format!("{e:#}")))?;
    toml::from_str(&text).map_err(|e| {
        Failure::new(Exit::Usage, format!("config file {}: {e}", path.display())).into()
    })
}
