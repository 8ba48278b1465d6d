//! The live status of one upstream: one shared record, updated in place by the supervisor
//! and the request path, snapshotted for readers.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use mcp_types::{ConnectionState, Era, McpStatus, Timestamp};

#[derive(Debug, Default)]
struct Inner {
    status: McpStatus,
    connected_at: Option<Instant>,
    response_time_total: Duration,
    answered: u64,
}

/// Shared, always-current status of an upstream.
#[derive(Debug, Default)]
pub(crate) struct LiveStatus {
    inner: Mutex<Inner>,
}

impl LiveStatus {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// A copy with `upTime` and `avgResponseTime` computed now.
    pub(crate) fn snapshot(&self) -> McpStatus {
        self.with(|i| {
            let mut s = i.status.clone();
            s.up_time = match (s.state, i.connected_at) {
                (ConnectionState::Connected, Some(t)) => Some(round_ms(t.elapsed())),
                _ => None,
            };
            s.avg_response_time = (i.answered > 0).then(|| {
                let avg = i.response_time_total / u32::try_from(i.answered).unwrap_or(u32::MAX);
                round_us(avg)
            });
            s
        })
    }

    /// The current state.
    pub(crate) fn state(&self) -> ConnectionState {
        self.with(|i| i.status.state)
    }

    /// The era found on the current (or last) connection.
    pub(crate) fn era(&self) -> Option<Era> {
        self.with(|i| i.status.era)
    }

    /// The last error, if any.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.with(|i| i.status.last_error.clone())
    }

    /// Sets the state; returns whether it changed.
    pub(crate) fn set_state(&self, state: ConnectionState) -> bool {
        self.with(|i| {
            let changed = i.status.state != state;
            i.status.state = state;
            if state != ConnectionState::Connected {
                i.connected_at = None;
            }
            changed
        })
    }

    /// Records a successful connect.
    pub(crate) fn connected(
        &self,
        protocol_version: String,
        era: Era,
        server_info: serde_json::Value,
        pid: Option<u32>,
    ) {
        self.with(|i| {
            i.status.state = ConnectionState::Connected;
            i.status.last_connected = Some(Timestamp::now());
            i.status.reconnect_attempts = 0;
            i.status.protocol_version = Some(protocol_version);
            i.status.era = Some(era);
            i.status.server_info = Some(server_info);
            i.status.pid = pid;
            i.connected_at = Some(Instant::now());
        });
    }

    /// Records a failure: the state becomes `error`.
    pub(crate) fn failed(&self, error: String, attempts: u32) {
        self.with(|i| {
            i.status.state = ConnectionState::Error;
            i.status.last_error = Some(error);
            i.status.last_error_time = Some(Timestamp::now());
            i.status.reconnect_attempts = attempts;
            i.status.pid = None;
            i.connected_at = None;
        });
    }

    /// Sets the number of visible tools.
    pub(crate) fn set_tool_count(&self, n: Option<u32>) {
        self.with(|i| i.status.tool_count = n);
    }

    /// Counts a forwarded request and how it ended.
    pub(crate) fn record_request(&self, elapsed: Duration, ok: bool) {
        self.with(|i| {
            i.status.total_requests += 1;
            if !ok {
                i.status.total_errors += 1;
            }
            i.response_time_total += elapsed;
            i.answered += 1;
        });
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn round_us(d: Duration) -> Duration {
    Duration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_state_errors_and_averages() {
        let s = LiveStatus::default();
        assert_eq!(s.state(), ConnectionState::Disconnected);
        s.failed("boom".into(), 2);
        let snap = s.snapshot();
        assert_eq!(snap.state, ConnectionState::Error);
        assert_eq!(snap.reconnect_attempts, 2);
        assert_eq!(snap.last_error.as_deref(), Some("boom"));
        s.connected(
            "2025-11-25".into(),
            Era::Legacy,
            serde_json::json!({"name": "x"}),
            Some(7),
        );
        s.record_request(Duration::from_millis(10), true);
        s.record_request(Duration::from_millis(30), false);
        let snap = s.snapshot();
        assert_eq!(snap.state, ConnectionState::Connected);
        assert_eq!(snap.reconnect_attempts, 0);
        assert_eq!(
            snap.last_error.as_deref(),
            Some("boom"),
            "kept for operators"
        );
        assert_eq!((snap.total_requests, snap.total_errors), (2, 1));
        assert_eq!(snap.avg_response_time, Some(Duration::from_millis(20)));
        assert!(snap.up_time.is_some());
        assert_eq!(snap.pid, Some(7));
        assert_eq!(snap.era, Some(Era::Legacy));
    }
}
