//! `proxyd` configuration: built-in defaults < `proxyd.toml` (or `--config FILE`) <
//! `MCP_PROXY_*` environment (`__` for nesting) < command-line flags.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use mcp_proxy_http::security::{IpSet, TokenSet, is_loopback_name};
use mcp_proxy_http::{HttpConfig, ListenerLimits};
use mcp_types::Secret;
use serde::{Deserialize, Serialize};

/// The admin token shipped as the default; refused off loopback.
pub(crate) const DEFAULT_ADMIN_TOKEN: &str = "CHANGE_ME_ADMIN_TOKEN";
/// The configuration file read when `--config` is not given (and it exists).
pub(crate) const DEFAULT_FILE: &str = "proxyd.toml";
/// Shortest admin token accepted off loopback.
pub(crate) const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where definitions and statuses are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StorageKind {
    /// In process memory (lost at exit).
    Memory,
    /// Redis, shared by replicas.
    Redis,
}

/// `[storage]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StorageConfig {
    pub(crate) kind: StorageKind,
    pub(crate) url: String,
    pub(crate) prefix: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            kind: StorageKind::Memory,
            url: "redis://127.0.0.1:6379/0".into(),
            prefix: "mcp_proxy:".into(),
        }
    }
}

/// `[listener]`: limits and deadlines of client connections (see
/// [`ListenerLimits`] for what each one bounds).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ListenerConfig {
    pub(crate) max_connections: usize,
    #[serde(with = "mcp_types::duration")]
    pub(crate) connection_wait: Duration,
    #[serde(with = "mcp_types::duration")]
    pub(crate) first_byte_timeout: Duration,
    #[serde(with = "mcp_types::duration")]
    pub(crate) header_read_timeout: Duration,
    #[serde(with = "mcp_types::duration")]
    pub(crate) body_read_timeout: Duration,
    #[serde(with = "mcp_types::duration")]
    pub(crate) idle_timeout: Duration,
    #[serde(with = "mcp_types::duration")]
    pub(crate) http2_keepalive_interval: Duration,
    #[serde(with = "mcp_types::duration")]
    pub(crate) http2_keepalive_timeout: Duration,
    #[serde(with = "mcp_types::duration")]
    pub(crate) linger_timeout: Duration,
    pub(crate) linger_max_bytes: u64,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        let d = ListenerLimits::default();
        Self {
            max_connections: d.max_connections,
            connection_wait: d.connection_wait,
            first_byte_timeout: d.first_byte_timeout,
            header_read_timeout: d.header_read_timeout,
            body_read_timeout: d.body_read_timeout,
            idle_timeout: d.idle_timeout,
            http2_keepalive_interval: d.http2_keepalive_interval,
            http2_keepalive_timeout: d.http2_keepalive_timeout,
            linger_timeout: d.linger_timeout,
            linger_max_bytes: d.linger_max_bytes,
        }
    }
}

impl ListenerConfig {
    fn check(&self, problems: &mut Vec<String>) {
        if self.max_connections == 0 {
            problems.push("listener.max_connections: must be at least 1".into());
        }
        for (key, value) in [
            ("first_byte_timeout", self.first_byte_timeout),
            ("header_read_timeout", self.header_read_timeout),
            ("body_read_timeout", self.body_read_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if value.is_zero() {
                problems.push(format!("listener.{key}: must be above zero"));
            }
        }
        if !self.http2_keepalive_interval.is_zero() && self.http2_keepalive_timeout.is_zero() {
            problems.push(
                "listener.http2_keepalive_timeout: must be above zero while keep-alive pings \
                 are on (http2_keepalive_interval = \"0s\" turns them off)"
                    .into(),
            );
        }
    }

    fn limits(&self) -> ListenerLimits {
        ListenerLimits {
            max_connections: self.max_connections,
            connection_wait: self.connection_wait,
            first_byte_timeout: self.first_byte_timeout,
            header_read_timeout: self.header_read_timeout,
            body_read_timeout: self.body_read_timeout,
            idle_timeout: self.idle_timeout,
            http2_keepalive_interval: self.http2_keepalive_interval,
            http2_keepalive_timeout: self.http2_keepalive_timeout,
            linger_timeout: self.linger_timeout,
            linger_max_bytes: self.linger_max_bytes,
        }
    }

    /// Lowers `max_connections` to half the open-file limit when it is above that, so
    /// that client connections cannot take the descriptors stdio children, upstream
    /// connections and the store need. Returns the configured value when it was lowered.
    pub(crate) fn fit_open_file_limit(&mut self, open_files: Option<u64>) -> Option<usize> {
        let allowed = usize::try_from(open_files? / 2)
            .unwrap_or(usize::MAX)
            .max(1);
        (self.max_connections > allowed)
            .then(|| std::mem::replace(&mut self.max_connections, allowed))
    }
}

/// Every configuration key of `proxyd` (see `docs/configuration.md`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ProxydConfig {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) base_url: Option<String>,
    #[serde(with = "mcp_types::duration")]
    pub(crate) shutdown_timeout: Duration,
    pub(crate) admin_tokens: Vec<Secret>,
    pub(crate) admin_allow_ips: Vec<String>,
    pub(crate) trusted_proxies: Vec<String>,
    pub(crate) global_auth_tokens: Vec<Secret>,
    pub(crate) allowed_origins: Vec<String>,
    pub(crate) storage: StorageConfig,
    pub(crate) max_body_bytes: usize,
    pub(crate) max_message_bytes: usize,
    pub(crate) max_sessions: usize,
    #[serde(with = "mcp_types::duration")]
    pub(crate) session_idle_timeout: Duration,
    pub(crate) max_inflight_per_session: usize,
    pub(crate) session_replay_bytes: usize,
    /// `id:KEY` entries, KEY being 32 bytes as 64 hex digits: the first seals, all open.
    pub(crate) session_keys: Vec<Secret>,
    #[serde(with = "mcp_types::duration")]
    pub(crate) input_wait: Duration,
    /// With `session_keys`: how long a session token stays valid after `initialize`.
    #[serde(with = "mcp_types::duration")]
    pub(crate) session_token_lifetime: Duration,
    /// This replica's id in the session registry; empty: host name, pid and a suffix.
    pub(crate) replica_id: String,
    /// Where other replicas reach this one (recorded with its heartbeat); `None`: the
    /// address it listens on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) replica_url: Option<String>,
    pub(crate) max_connections: usize,
    pub(crate) aggregate_all: bool,
    pub(crate) strict_names: bool,
    pub(crate) listener: ListenerConfig,
    #[serde(with = "mcp_types::duration")]
    pub(crate) sse_keepalive: Duration,
    pub(crate) stdio_allowed_commands: Vec<String>,
    pub(crate) metrics_public: bool,
    pub(crate) log_format: LogFormat,
    /// `[[servers]]`: declared definitions, keys in snake_case or camelCase (see
    /// `crate::declared`). `None` when the key is absent: nothing is declared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) servers: Option<Vec<serde_json::Value>>,
    /// A directory of `*.json` / `*.toml` definition files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) servers_dir: Option<PathBuf>,
    /// How often the configuration file and `servers_dir` are checked for changes; `0s`
    /// turns the watcher off (SIGHUP still reloads).
    #[serde(with = "mcp_types::duration")]
    pub(crate) servers_poll_interval: Duration,
}

impl Default for ProxydConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            base_url: None,
            shutdown_timeout: Duration::from_secs(10),
            admin_tokens: vec![Secret::new(DEFAULT_ADMIN_TOKEN)],
            admin_allow_ips: vec!["127.0.0.1".into(), "::1".into()],
            trusted_proxies: Vec::new(),
            global_auth_tokens: Vec::new(),
            allowed_origins: Vec::new(),
            storage: StorageConfig::default(),
            max_body_bytes: mcp_proxy_http::DEFAULT_MAX_BODY_BYTES,
            max_message_bytes: mcp_transport::DEFAULT_MAX_MESSAGE_BYTES,
            max_sessions: 4096,
            session_idle_timeout: Duration::from_secs(30 * 60),
            max_inflight_per_session: 64,
            session_replay_bytes: 4 * 1024 * 1024,
            session_keys: Vec::new(),
            input_wait: mcp_proxy_http::DEFAULT_INPUT_WAIT,
            session_token_lifetime: mcp_proxy_http::DEFAULT_SESSION_TOKEN_LIFETIME,
            replica_id: String::new(),
            replica_url: None,
            max_connections: mcp_proxy_core::DEFAULT_MAX_CONNECTIONS,
            aggregate_all: true,
            strict_names: false,
            listener: ListenerConfig::default(),
            sse_keepalive: Duration::from_secs(15),
            stdio_allowed_commands: Vec::new(),
            metrics_public: false,
            log_format: LogFormat::Text,
            servers: None,
            servers_dir: None,
            servers_poll_interval: Duration::from_secs(1),
        }
    }
}

/// Command-line overrides; only the flags given override the layers below.
#[derive(Debug, Default, Serialize)]
pub(crate) struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) log_format: Option<LogFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) storage: Option<StorageOverrides>,
}

/// `--storage` / `--redis-url`.
#[derive(Debug, Default, Serialize)]
pub(crate) struct StorageOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) kind: Option<StorageKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) url: Option<String>,
}

/// Builds the layered figment. `file` is `--config`; without it `./proxyd.toml` is read
/// when present.
pub(crate) fn figment(file: Option<&Path>, flags: &FlagOverrides) -> anyhow::Result<Figment> {
    let mut fig = Figment::from(Serialized::defaults(ProxydConfig::default()));
    match file {
        Some(path) => {
            if !path.is_file() {
                bail!("config file {} does not exist", path.display());
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        None => {
            let default = PathBuf::from(DEFAULT_FILE);
            if default.is_file() {
                fig = fig.merge(Toml::file_exact(default));
            }
        }
    }
    Ok(fig
        .merge(Env::prefixed("MCP_PROXY_").split("__"))
        .merge(Serialized::defaults(flags)))
}

/// Extracts and checks the configuration.
pub(crate) fn load(file: Option<&Path>, flags: &FlagOverrides) -> anyhow::Result<ProxydConfig> {
    let cfg: ProxydConfig = figment(file, flags)?
        .extract()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {}", describe(e)))?;
    cfg.check()?;
    Ok(cfg)
}

/// Keys whose values are secret (tokens, the Redis URL with its password): an error about
/// one never shows the value that was given.
const SECRET_KEYS: &[&str] = &[
    "admin_tokens",
    "global_auth_tokens",
    "storage",
    "session_keys",
];

/// Every error of an extraction, one a line, values of [`SECRET_KEYS`] hidden.
fn describe(err: figment::Error) -> String {
    use figment::error::{Actual, Kind};
    let hide = |actual: &Actual| {
        Actual::Other(match actual {
            Actual::Str(_) => "a string (not shown: the key holds secrets)".to_owned(),
            Actual::Bytes(_) => "bytes (not shown: the key holds secrets)".to_owned(),
            Actual::Char(_) => "a character (not shown: the key holds secrets)".to_owned(),
            other => other.to_string(),
        })
    };
    err.into_iter()
        .map(|mut e| {
            let secret = e
                .path
                .first()
                .is_some_and(|k| SECRET_KEYS.contains(&k.as_str()));
            if !secret {
                return e.to_string();
            }
            let list =
                matches!(&e.kind, Kind::InvalidType(_, expected) if expected.contains("sequence"));
            e.kind = match e.kind {
                Kind::InvalidType(actual, expected) => Kind::InvalidType(hide(&actual), expected),
                Kind::InvalidValue(actual, expected) => Kind::InvalidValue(hide(&actual), expected),
                Kind::Unsupported(actual) => Kind::Unsupported(hide(&actual)),
                Kind::Message(_) => {
                    Kind::Message("invalid value (not shown: the key holds secrets)".into())
                }
                other => other,
            };
            let key = e.path.first().map(String::as_str).unwrap_or_default();
            let hint = if list {
                format!(
                    "; {key} is a list: MCP_PROXY_{}='[\"<token>\"]' or {key} = [\"<token>\"]",
                    key.to_uppercase()
                )
            } else {
                String::new()
            };
            format!("{e}{hint}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The URL with its password replaced by `***`.
fn redact_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        // Not a URL: it may still hold a password, so show nothing of it.
        Err(_) => "(not shown: not a URL, and it may hold a password)".to_owned(),
    }
}

impl ProxydConfig {
    /// Checks what serde cannot: addresses, networks, URLs, token strength off loopback.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        if self.host.parse::<IpAddr>().is_err() && !is_loopback_name(&self.host) {
            problems.push(format!(
                "host: {:?} is not an IP address or localhost",
                self.host
            ));
        }
        if let Err(e) = IpSet::parse(&self.admin_allow_ips) {
            problems.push(format!("admin_allow_ips: {e}"));
        }
        if let Err(e) = IpSet::parse(&self.trusted_proxies) {
            problems.push(format!("trusted_proxies: {e}"));
        }
        if self.admin_tokens.is_empty() {
            problems.push("admin_tokens: at least one token is required".into());
        }
        if self
            .admin_tokens
            .iter()
            .any(|t| t.expose().trim().is_empty())
        {
            problems.push("admin_tokens: tokens must not be empty".into());
        }
        if let Some(b) = &self.base_url {
            match url::Url::parse(b) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
                _ => problems.push(format!("base_url: {b:?} is not an http(s) URL")),
            }
        }
        if self.max_body_bytes < 1024 {
            problems.push("max_body_bytes: must be at least 1024".into());
        }
        if self.max_connections == 0 {
            problems.push("max_connections: must be at least 1".into());
        }
        if self.session_idle_timeout < Duration::from_secs(1) {
            problems.push("session_idle_timeout: must be at least 1s".into());
        }
        if self.max_inflight_per_session == 0 {
            problems.push("max_inflight_per_session: must be at least 1".into());
        }
        if let Err(e) = state_keys(&self.session_keys) {
            problems.push(format!("session_keys: {e}"));
        }
        if self.input_wait < Duration::from_secs(1) {
            problems.push("input_wait: must be at least 1s".into());
        }
        self.listener.check(&mut problems);
        if self.storage.kind == StorageKind::Redis && !self.storage.url.starts_with("redis") {
            problems.push(format!(
                "storage.url: {:?} is not a redis:// URL",
                redact_url(&self.storage.url)
            ));
        }
        if !self.is_loopback() {
            for t in &self.admin_tokens {
                let t = t.expose();
                if t == DEFAULT_ADMIN_TOKEN || t.len() < MIN_ADMIN_TOKEN_LEN {
                    problems.push(format!(
                        "admin_tokens: refusing to listen on {} with the default admin token or \
                         one shorter than {MIN_ADMIN_TOKEN_LEN} characters; set \
                         MCP_PROXY_ADMIN_TOKENS='[\"<a long random token>\"]'",
                        self.host
                    ));
                    break;
                }
            }
        }
        if let Some(servers) = &self.servers
            && let Some(i) = servers.iter().position(|s| !s.is_object())
        {
            problems.push(format!("servers[{i}]: must be a table ([[servers]])"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("invalid configuration:\n  - {}", problems.join("\n  - "))
        }
    }

    /// Whether `host` is a loopback address or name.
    pub(crate) fn is_loopback(&self) -> bool {
        is_loopback_name(&self.host)
    }

    /// The runtime settings of the HTTP layer.
    pub(crate) fn http_config(&self) -> anyhow::Result<HttpConfig> {
        let extra_hosts = self
            .base_url
            .as_deref()
            .and_then(|b| url::Url::parse(b).ok())
            .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_owned()))
            .into_iter()
            .collect();
        Ok(HttpConfig {
            admin_tokens: TokenSet::new(&self.admin_tokens),
            admin_allow_ips: IpSet::parse(&self.admin_allow_ips)
                .map_err(anyhow::Error::msg)
                .context("admin_allow_ips")?,
            trusted_proxies: IpSet::parse(&self.trusted_proxies)
                .map_err(anyhow::Error::msg)
                .context("trusted_proxies")?,
            global_auth_tokens: TokenSet::new(&self.global_auth_tokens),
            extra_hosts,
            check_host: self.is_loopback(),
            max_body_bytes: self.max_body_bytes,
            metrics_public: self.metrics_public,
            listener: self.listener.limits(),
            shutdown_timeout: self.shutdown_timeout,
            allowed_origins: self.allowed_origins.clone(),
            sse_keepalive: self.sse_keepalive,
            base_path: self
                .base_url
                .as_deref()
                .and_then(|b| url::Url::parse(b).ok())
                .map(|u| u.path().trim_end_matches('/').to_owned())
                .unwrap_or_default(),
            max_sessions: self.max_sessions,
            session_idle_timeout: self.session_idle_timeout,
            max_inflight_per_session: self.max_inflight_per_session,
            session_replay_bytes: self.session_replay_bytes,
            session_keys: state_keys(&self.session_keys)
                .map_err(anyhow::Error::msg)
                .context("session_keys")?,
            input_wait: self.input_wait,
            session_token_lifetime: self.session_token_lifetime,
        })
    }

    /// The effective configuration as TOML, secrets replaced by `***`.
    pub(crate) fn redacted_toml(&self) -> String {
        let mut shown = self.clone();
        let hide = |v: &mut Vec<Secret>| v.iter_mut().for_each(|t| *t = Secret::new("***"));
        hide(&mut shown.admin_tokens);
        hide(&mut shown.global_auth_tokens);
        hide(&mut shown.session_keys);
        if url::Url::parse(&shown.storage.url).is_ok_and(|u| u.password().is_some()) {
            shown.storage.url = redact_url(&shown.storage.url);
        }
        for server in shown.servers.iter_mut().flatten() {
            redact_server(server);
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// Reads `session_keys` entries (`id:KEY`, KEY 64 hex digits); an error never shows a key.
fn state_keys(entries: &[Secret]) -> Result<Vec<mcp_proxy_http::StateKey>, String> {
    let mut keys: Vec<mcp_proxy_http::StateKey> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let Some((id, hex)) = entry.expose().trim().split_once(':') else {
            return Err(format!(
                "entry {} is not id:KEY (KEY: 32 bytes as 64 hex digits)",
                i + 1
            ));
        };
        if id.is_empty()
            || id.len() > 16
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "entry {}: the key id must be 1 to 16 letters, digits, '-' or '_'",
                i + 1
            ));
        }
        if keys.iter().any(|k| k.id == id) {
            return Err(format!("entry {}: the key id {id:?} is used twice", i + 1));
        }
        let hex = hex.trim();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "entry {} ({id}): KEY must be 64 hex digits (32 bytes); the value is not shown",
                i + 1
            ));
        }
        let mut key = [0u8; 32];
        for (j, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * j..2 * j + 2], 16).map_err(|e| e.to_string())?;
        }
        keys.push(mcp_proxy_http::StateKey {
            id: id.to_owned(),
            key,
        });
    }
    Ok(keys)
}

/// Hides the secret values of a declared server (`env`, `headers`, `auth_tokens`), except
/// `${VAR}` placeholders, which are no secret.
fn redact_server(server: &mut serde_json::Value) {
    use serde_json::Value;
    let hide = |v: &mut Value| {
        if let Value::String(s) = v
            && !(s.starts_with("${") && s.ends_with('}') && s.matches("${").count() == 1)
        {
            *s = mcp_types::REDACTED.to_owned();
        }
    };
    let Some(obj) = server.as_object_mut() else {
        return;
    };
    for (k, v) in obj.iter_mut() {
        match (k.as_str(), v) {
            ("env" | "headers", Value::Object(m)) => m.values_mut().for_each(hide),
            ("auth_tokens" | "authTokens", Value::Array(a)) => a.iter_mut().for_each(hide),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    #[allow(
        clippy::result_large_err,
        reason = "figment's Jail API returns figment::Error"
    )]
    fn layers_apply_in_order_defaults_file_env_flags() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "proxyd.toml",
                "port = 9001\nhost = \"127.0.0.1\"\nshutdown_timeout = \"3s\"\n[storage]\nprefix = \"file:\"\n",
            )?;
            jail.set_env("MCP_PROXY_PORT", "9002");
            jail.set_env("MCP_PROXY_STORAGE__KIND", "redis");
            jail.set_env("MCP_PROXY_ADMIN_TOKENS", "[\"env-token-0123456789\"]");
            let none = FlagOverrides::default();
            let cfg = load(None, &none).map_err(|e| e.to_string())?;
            assert_eq!(cfg.port, 9002, "env beats file");
            assert_eq!(
                cfg.shutdown_timeout,
                Duration::from_secs(3),
                "file beats defaults"
            );
            assert_eq!(cfg.storage.kind, StorageKind::Redis);
            assert_eq!(cfg.storage.prefix, "file:");
            assert_eq!(cfg.admin_tokens[0].expose(), "env-token-0123456789");
            let flags = FlagOverrides {
                port: Some(9003),
                ..FlagOverrides::default()
            };
            let cfg = load(None, &flags).map_err(|e| e.to_string())?;
            assert_eq!(cfg.port, 9003, "flags beat env");
            Ok(())
        });
    }

    #[test]
    #[allow(
        clippy::result_large_err,
        reason = "figment's Jail API returns figment::Error"
    )]
    fn unknown_keys_are_rejected() {
        Jail::expect_with(|jail| {
            jail.create_file("proxyd.toml", "prot = 1\n")?;
            let err = load(None, &FlagOverrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains("prot"), "{err}");
            Ok(())
        });
    }

    #[test]
    #[allow(
        clippy::result_large_err,
        reason = "figment's Jail API returns figment::Error"
    )]
    fn a_malformed_secret_setting_is_refused_without_echoing_it() {
        Jail::expect_with(|jail| {
            let load_err = || {
                load(None, &FlagOverrides::default())
                    .unwrap_err()
                    .to_string()
            };
            jail.set_env("MCP_PROXY_ADMIN_TOKENS", "plainsecret-0123456789");
            let err = load_err();
            assert!(!err.contains("plainsecret"), "{err}");
            assert!(err.contains("admin_tokens"), "{err}");
            assert!(
                err.contains("MCP_PROXY_ADMIN_TOKENS='[\"<token>\"]'"),
                "{err}"
            );
            jail.clear_env();
            jail.set_env("MCP_PROXY_GLOBAL_AUTH_TOKENS", "other-secret-42");
            let err = load_err();
            assert!(!err.contains("other-secret"), "{err}");
            assert!(err.to_lowercase().contains("global_auth_tokens"), "{err}");
            jail.clear_env();
            jail.set_env("MCP_PROXY_PORT", "not-a-port");
            let err = load_err();
            assert!(err.contains("not-a-port"), "other values are shown: {err}");
            jail.clear_env();
            jail.set_env("MCP_PROXY_STORAGE__KIND", "redis");
            jail.set_env("MCP_PROXY_STORAGE__URL", "http://:pw-0987@127.0.0.1:6379");
            let err = load_err();
            assert!(!err.contains("pw-0987"), "{err}");
            assert!(err.contains("storage.url"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn default_or_short_admin_token_is_refused_off_loopback() {
        let mut cfg = ProxydConfig {
            host: "0.0.0.0".into(),
            ..ProxydConfig::default()
        };
        let err = cfg.check().unwrap_err().to_string();
        assert!(err.contains("default admin token"), "{err}");
        cfg.admin_tokens = vec![Secret::new("short")];
        assert!(cfg.check().is_err());
        cfg.admin_tokens = vec![Secret::new("a-long-random-admin-token")];
        cfg.check().unwrap();
        // loopback with the default token is fine
        ProxydConfig::default().check().unwrap();
    }

    #[test]
    fn listener_limits_are_checked_and_fitted_to_the_open_file_limit() {
        let mut cfg = ProxydConfig::default();
        cfg.listener.idle_timeout = Duration::ZERO;
        cfg.listener.max_connections = 0;
        let err = cfg.check().unwrap_err().to_string();
        assert!(err.contains("listener.idle_timeout"), "{err}");
        assert!(err.contains("listener.max_connections"), "{err}");
        let mut listener = ListenerConfig::default();
        assert_eq!(listener.fit_open_file_limit(None), None);
        assert_eq!(listener.fit_open_file_limit(Some(1 << 20)), None);
        assert_eq!(listener.fit_open_file_limit(Some(1024)), Some(1024));
        assert_eq!(listener.max_connections, 512);
    }

    #[test]
    fn redacted_output_hides_secrets() {
        let cfg = ProxydConfig {
            admin_tokens: vec![Secret::new("super-secret-admin-token")],
            storage: StorageConfig {
                url: "redis://:pw123@127.0.0.1:6379/0".into(),
                ..StorageConfig::default()
            },
            ..ProxydConfig::default()
        };
        let text = cfg.redacted_toml();
        assert!(
            !text.contains("super-secret") && !text.contains("pw123"),
            "{text}"
        );
        assert!(text.contains("***"));
    }

    #[test]
    #[allow(
        clippy::result_large_err,
        reason = "figment's Jail API returns figment::Error"
    )]
    fn declared_servers_are_read_and_their_secrets_redacted() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "proxyd.toml",
                "[[servers]]\nname = \"t\"\ntransport = \"stdio\"\ncommand = \"x\"\n\
                 env = { A = \"literal-secret\", B = \"${FROM_ENV}\" }\n",
            )?;
            let cfg = load(None, &FlagOverrides::default()).map_err(|e| e.to_string())?;
            let servers = cfg.servers.as_ref().expect("servers");
            assert_eq!(servers[0]["name"], "t");
            let text = cfg.redacted_toml();
            assert!(!text.contains("literal-secret"), "{text}");
            assert!(text.contains("${FROM_ENV}"), "{text}");
            Ok(())
        });
    }
}

#[cfg(test)]
mod doc_tests {
    use super::*;

    /// Every key of the configuration, dotted (`storage.kind`), from the defaults.
    fn keys() -> Vec<String> {
        fn walk(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
            match v {
                toml::Value::Table(t) => {
                    for (k, v) in t {
                        let key = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        walk(&key, v, out);
                    }
                }
                _ => out.push(prefix.to_owned()),
            }
        }
        let mut out = Vec::new();
        // Optional keys are absent from the defaults; give them a value to see them.
        let cfg = ProxydConfig {
            base_url: Some("http://localhost".into()),
            replica_url: Some("http://10.0.0.1:8080".into()),
            servers: Some(Vec::new()),
            servers_dir: Some("servers.d".into()),
            ..ProxydConfig::default()
        };
        walk("", &toml::Value::try_from(&cfg).unwrap(), &mut out);
        out
    }

    fn documented() -> Vec<String> {
        let doc = include_str!("../../../docs/configuration.md");
        doc.lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn configuration_reference_matches_the_code() {
        let (keys, docs) = (keys(), documented());
        for k in &keys {
            assert!(docs.contains(k), "{k} is not in docs/configuration.md");
            let env = format!("MCP_PROXY_{}", k.to_uppercase().replace('.', "__"));
            let doc = include_str!("../../../docs/configuration.md");
            assert!(doc.contains(&env), "{env} is not in docs/configuration.md");
        }
        for d in &docs {
            assert!(
                keys.contains(d),
                "docs/configuration.md documents unknown key {d}"
            );
        }
    }
}
