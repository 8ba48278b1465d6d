//! Connection status of an upstream, as reported by the Admin API and kept in the store.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Where an upstream's primary connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionState {
    /// Not connected and not trying (new, removed, or auto-reconnect off).
    #[default]
    Disconnected,
    /// A connection attempt is under way (or waiting for its back-off).
    Connecting,
    /// Initialized and answering.
    Connected,
    /// Failed; resting until a reconnect is asked for, or between attempts.
    Error,
}

impl ConnectionState {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disconnected => "disconnected",
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Error => "error",
        }
    }
}

/// Which family of protocol revisions an upstream speaks, as found by probing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Era {
    /// 2026-07-28 and later: stateless, every request carries its `_meta`.
    Modern,
    /// 2025-11-25 and earlier: an `initialize` handshake opens a session.
    Legacy,
}

impl Era {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Modern => "modern",
            Self::Legacy => "legacy",
        }
    }

    /// Whether it is [`Era::Modern`].
    pub fn is_modern(self) -> bool {
        self == Self::Modern
    }
}

/// The live status of an upstream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpStatus {
    /// The connection state.
    pub state: ConnectionState,
    /// When the last successful connect finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_connected: Option<Timestamp>,
    /// The last error, human readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the last error happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_time: Option<Timestamp>,
    /// Consecutive failed attempts since the last success.
    #[serde(default)]
    pub reconnect_attempts: u32,
    /// Time connected, when connected.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::duration::option"
    )]
    pub up_time: Option<Duration>,
    /// Requests forwarded to this upstream.
    #[serde(default)]
    pub total_requests: u64,
    /// Forwarded requests that failed (transport error, timeout or JSON-RPC error).
    #[serde(default)]
    pub total_errors: u64,
    /// Mean time to answer a forwarded request.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::duration::option"
    )]
    pub avg_response_time: Option<Duration>,
    /// Process id of the primary stdio child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The protocol version negotiated with the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    /// The era the upstream was found to speak on its current (or last) connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub era: Option<Era>,
    /// The upstream's `serverInfo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_info: Option<serde_json::Value>,
    /// Tools visible after the filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_count: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_camel_case_and_round_trips() {
        let s = McpStatus {
            state: ConnectionState::Connected,
            last_connected: Some(Timestamp::now()),
            reconnect_attempts: 2,
            up_time: Some(Duration::from_secs(61)),
            total_requests: 10,
            avg_response_time: Some(Duration::from_micros(1500)),
            ..McpStatus::default()
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["state"], "connected");
        assert_eq!(v["reconnectAttempts"], 2);
        assert_eq!(v["upTime"], "1m1s");
        assert_eq!(v["avgResponseTime"], "1.5ms");
        assert!(v.get("lastError").is_none());
        let back: McpStatus = serde_json::from_value(v).unwrap();
        assert_eq!(back.state, s.state);
        assert_eq!(back.up_time, s.up_time);
    }
}
