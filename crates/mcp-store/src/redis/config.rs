//! Settings of the Redis back-end and how they map onto fred's client options.

use std::fmt;
use std::time::Duration;

use fred::prelude::{
    Builder, Client, Config, ConnectionConfig, PerformanceConfig, ReconnectPolicy,
};
use fred::types::config::UnresponsiveConfig;

use crate::{Error, Result};

/// Where the Redis back-end connects and how long it waits.
///
/// `Debug` hides the password of the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[[user]:password@]host[:port][/db]`.
    pub url: String,
    /// Prepended to every key and to the event channel; default `mcp_proxy:`.
    pub prefix: String,
    /// Deadline of each command; default 2 s.
    pub command_timeout: Duration,
    /// Deadline of each connection attempt; default 5 s.
    pub connect_timeout: Duration,
}

/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "mcp_proxy:";
/// Default deadline of each command.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Default deadline of each connection attempt.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// First reconnect delay, doubled per failed attempt up to [`RECONNECT_MAX_DELAY_MS`].
const RECONNECT_MIN_DELAY_MS: u32 = 100;
/// Longest pause between two reconnect attempts.
const RECONNECT_MAX_DELAY_MS: u32 = 2_000;
/// Capacity of fred's internal broadcast channels (pub/sub messages, reconnect events).
const FRED_BROADCAST_CAPACITY: usize = 1024;

impl RedisConfig {
    /// Defaults with this URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// Checks the settings and builds an (unconnected) fred client.
    ///
    /// The client never gives up reconnecting (exponential back-off from 100 ms to 2 s), sends
    /// each command at most once, and closes a connection whose commands wait twice the
    /// command timeout without an answer, so a frozen server is noticed too.
    pub(crate) fn build_client(&self) -> Result<Client> {
        if self.command_timeout.is_zero() {
            return Err(Error::Config(
                "redis command_timeout must be above zero".into(),
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(Error::Config(
                "redis connect_timeout must be above zero".into(),
            ));
        }
        let mut config = Config::from_url(&self.url).map_err(|e| {
            Error::Config(format!(
                "redis url {:?}: {}",
                redacted_url(&self.url),
                e.details()
            ))
        })?;
        // Report a failed first connection to `connect` instead of retrying forever.
        config.fail_fast = true;
        let performance = PerformanceConfig {
            default_command_timeout: self.command_timeout,
            broadcast_channel_capacity: FRED_BROADCAST_CAPACITY,
            ..PerformanceConfig::default()
        };
        let unresponsive_after = self.command_timeout * 2;
        let connection = ConnectionConfig {
            connection_timeout: self.connect_timeout,
            internal_command_timeout: self.command_timeout,
            max_command_attempts: 1,
            unresponsive: UnresponsiveConfig {
                max_timeout: Some(unresponsive_after),
                interval: (unresponsive_after / 4).max(Duration::from_millis(50)),
            },
            ..ConnectionConfig::default()
        };
        let policy =
            ReconnectPolicy::new_exponential(0, RECONNECT_MIN_DELAY_MS, RECONNECT_MAX_DELAY_MS, 2);
        Builder::from_config(config)
            .set_performance_config(performance)
            .set_connection_config(connection)
            .set_policy(policy)
            .build()
            .map_err(|e| Error::Config(format!("redis client: {}", e.details())))
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            prefix: DEFAULT_PREFIX.into(),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redacted_url(&self.url))
            .field("prefix", &self.prefix)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// The URL with any user-info (user and password) replaced by `***`.
pub(crate) fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = RedisConfig::new("redis://h:1");
        assert_eq!(c.url, "redis://h:1");
        assert_eq!(c.prefix, "mcp_proxy:");
        assert_eq!(c.command_timeout, Duration::from_secs(2));
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
    }

    #[test]
    fn debug_hides_the_password() {
        let c = RedisConfig::new("redis://user:hunter2@10.0.0.1:6379/0");
        let text = format!("{c:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("redis://***@10.0.0.1:6379/0"), "{text}");
        assert_eq!(redacted_url("redis://h:1/0"), "redis://h:1/0");
    }

    #[test]
    fn bad_settings_are_config_errors() {
        let err = RedisConfig::new("not a url").build_client().unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
        let mut c = RedisConfig::new("redis://127.0.0.1:1");
        c.command_timeout = Duration::ZERO;
        assert!(matches!(c.build_client(), Err(Error::Config(_))));
    }
}
